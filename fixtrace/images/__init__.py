"""Images in: loading and validation, preprocessing presets, and the geometry back to the photo."""
