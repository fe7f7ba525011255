"""Real models no one here wrote (and one Flax CNN trained here), rebuilt from installed packages and
exported to ONNX through ``exporters/``, each with its source framework's own forward and Grad-CAM as
oracles. ``models/build_real_exports.py`` builds them into a cache folder; ``tests/test_real_exports.py``
checks fixtrace against the oracles."""
