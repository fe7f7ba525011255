"""LayerReader: a model's chosen intermediates over a stream of photos, a batch at a time."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from fixtrace.errors import ImageError, OptionError
from fixtrace.toolbox.stream import LayerReader

LAYER = "/features/features.10/Add_output_0"


def test_values_are_onnxruntime_s_and_a_bad_photo_is_reported_in_its_batch(mobilenet_path, chelsea_path, tmp_path):
    reader = LayerReader(mobilenet_path, [LAYER])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    photos = [chelsea_path, broken, chelsea_path.parent / "coffee.jpg"]
    batches = list(reader.read(photos, batch_size=2))
    assert [b.indices for b in batches] == [[0], [2]]
    assert isinstance(batches[0].failed[1][1], ImageError) and batches[1].failed == {}
    alone = next(iter(reader.read([chelsea_path])))
    np.testing.assert_array_equal(batches[0].values[LAYER], alone.values[LAYER])
    assert batches[0].values[LAYER].shape == (1, 64, 14, 14) and batches[0].scores.shape == (1, 1000)
    assert int(np.argmax(batches[0].scores)) == 285


def test_a_fixed_batch_dim_is_filled_and_the_fill_dropped(mobilenet_path, chelsea_path):
    model = onnx.load(str(mobilenet_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    photos = [chelsea_path, chelsea_path.parent / "coffee.jpg", chelsea_path.parent / "camera.jpg"]
    fixed = [b for b in LayerReader(model, [LAYER]).read(photos, batch_size=8)]
    free = [b for b in LayerReader(mobilenet_path, [LAYER]).read(photos, batch_size=8)]
    assert len(fixed) == 1 and fixed[0].indices == [0, 1, 2]
    np.testing.assert_allclose(fixed[0].values[LAYER], free[0].values[LAYER], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fixed[0].scores, free[0].scores, rtol=0, atol=1e-4)


def test_a_layer_that_is_not_a_tensor_is_refused_with_the_closest_names(mobilenet_path):
    with pytest.raises(OptionError, match=r"closest: /features/features\.10/Add_output_0"):
        LayerReader(mobilenet_path, ["/features/features.10/Add_output"])
