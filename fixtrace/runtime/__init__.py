"""Running the model: the onnxruntime session, the values of a run, the batched forward, and the
threads around it (limits, reading ahead)."""
