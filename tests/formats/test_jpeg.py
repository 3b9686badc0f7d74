"""JPEGs decoded in the inference actor give the rows the decode tasks give (CPU here, nvJPEG on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from imagefiles import CLASSES, bad_images, encode, good_images, rgb, varied_checkpoint
from PIL import Image

from pipeline import RunConfig
from pipeline.formats.jpeg import actor_size
from pipeline.stages.decode import decode_batch
from pipeline.stages.segment import Segmenter

LEFT_TO_ACTOR = {"a.jpg", "upper.JPG", "truncated.jpg"}  # plain RGB JPEGs; the truncated one fails there


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    weights = varied_checkpoint(tmp_path_factory.mktemp("ckpt") / "varied.pth")
    return Segmenter(RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES)), storage={})


def files() -> dict[str, bytes]:
    blobs = {name: blob for name, (blob, _) in {**good_images(), **bad_images()}.items()}
    # the size of a.jpg, but CMYK: Pillow decodes it in the decode task, so its group mixes both kinds
    blobs["cmyk-64x80.jpg"] = encode(Image.fromarray(rgb(64, 80, 11)).convert("CMYK"), "JPEG")
    return blobs


def rows(blobs: dict[str, bytes], **decode) -> dict[str, np.ndarray]:
    names = list(blobs)
    batch = {
        "image_id": np.array(names, dtype=object),
        "source": np.array(names, dtype=object),
        "bytes": np.array([blobs[n] for n in names], dtype=object),
        "error": np.array([None] * len(names), dtype=object),
    }
    return decode_batch(batch, max_pixels=10**8, **decode)


def test_only_plain_upright_rgb_jpegs_within_a_tile_are_left_to_the_actor():
    decoded = rows(files(), resize=None, jpeg_in_actor_below=1024)
    left = {name for name, blob in zip(decoded["image_id"], decoded["jpeg"], strict=True) if len(blob)}
    assert left == LEFT_TO_ACTOR  # not PNG, CMYK, EXIF-rotated, empty or text files
    a = list(decoded["image_id"]).index("a.jpg")
    assert (decoded["height"][a], decoded["width"][a]) == (64, 80) and decoded["image"][a].shape == (1, 1, 3)
    big = encode(Image.fromarray(rgb(300, 200, 0)), "JPEG")
    assert actor_size(big, max_pixels=10**8, resize=None, tile=256) is None  # tiled on the CPU path
    assert actor_size(big, max_pixels=10**8, resize=128, tile=256) == (300, 200)  # fed at 192 x 128
    assert actor_size(big, max_pixels=300 * 200 - 1, resize=None, tile=1024) is None  # Pillow refuses it


@pytest.mark.parametrize("resize", [None, 48])
def test_actor_decoding_gives_the_task_decoded_rows(segmenter, resize):
    segmenter.resize = resize
    by_tasks = segmenter(rows(files(), resize=resize))
    by_actor = segmenter(rows(files(), resize=resize, jpeg_in_actor_below=1024))
    for key in ("image_id", "height", "width", "error"):
        assert list(by_tasks[key]) == list(by_actor[key]), key
    assert "truncated" in by_actor["error"][list(by_actor["image_id"]).index("truncated.jpg")]
    for name, a, b in zip(by_tasks["image_id"], by_tasks["mask"], by_actor["mask"], strict=True):
        if resize is None:  # the same libjpeg-turbo decode: identical masks
            assert np.array_equal(a, b), name
        else:  # antialiased bilinear on the device versus Pillow's: a few border pixels differ
            assert a.shape == b.shape and (a == b).mean() > 0.95, name
