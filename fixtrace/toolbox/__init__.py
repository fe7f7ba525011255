"""Seeing inside the network (the CS231n toolbox): activations, filters, maximally activating
images and t-SNE of CNN codes, each from the ONNX graph and onnxruntime alone."""
