"""Masks are lossless PNGs of class ids: 8-bit up to 256 classes, 16-bit above."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.stages.postprocess import decode_png, encode_png


@pytest.mark.parametrize(("classes", "dtype", "mode"), [(21, np.uint8, "L"), (300, np.int32, "I;16")])
def test_a_mask_round_trips_exactly_through_its_png(classes, dtype, mode):
    mask = np.random.default_rng(0).integers(0, classes, (37, 53)).astype(dtype)
    mask[:5] = 255 if dtype == np.uint8 else classes - 1  # long runs, as class maps have
    data = encode_png(mask)
    assert Image.open(io.BytesIO(data)).mode == mode
    np.testing.assert_array_equal(decode_png(data), mask)
