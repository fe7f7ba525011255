"""Running the model: the onnxruntime session, the values of a run, and the batched forward."""
