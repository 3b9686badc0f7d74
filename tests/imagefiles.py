"""Small real image files of every kind the pipeline must take, and a few it must refuse."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

import models

CLASSES = ("sky", "land", "sea")


def rgb(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def good_images() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """name -> (file bytes, (height, width) after EXIF orientation), one per common mode."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: a 40x30 stored image is 30 wide, 40 high when shown
    sixteen = Image.fromarray((np.arange(33 * 47, dtype=np.uint16).reshape(33, 47) * 40).astype(np.uint16))
    return {
        "a.jpg": (encode(Image.fromarray(rgb(64, 80, 0)), "JPEG"), (64, 80)),
        "b/c.png": (encode(Image.fromarray(rgb(67, 91, 1)), "PNG"), (67, 91)),
        "b/gray.png": (encode(Image.fromarray(rgb(50, 41, 2)[:, :, 0]), "PNG"), (50, 41)),
        "b/rgba.png": (encode(Image.fromarray(rgb(45, 52, 3)).convert("RGBA"), "PNG"), (45, 52)),
        "b/la.png": (encode(Image.fromarray(rgb(31, 29, 4)).convert("LA"), "PNG"), (31, 29)),
        "b/palette.png": (encode(Image.fromarray(rgb(40, 44, 5)).convert("P"), "PNG"), (40, 44)),
        "b/sixteen.png": (encode(sixteen, "PNG"), (33, 47)),
        "cmyk.jpg": (encode(Image.fromarray(rgb(36, 48, 6)).convert("CMYK"), "JPEG"), (36, 48)),
        "rotated.jpg": (encode(Image.fromarray(rgb(30, 40, 7)), "JPEG", exif=exif), (40, 30)),
        "upper.JPG": (encode(Image.fromarray(rgb(64, 64, 8)), "JPEG"), (64, 64)),
    }


def bad_images() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a word the error reason must contain)."""
    jpeg = encode(Image.fromarray(rgb(64, 64, 9)), "JPEG")
    return {
        "zero.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "truncated"),
        "text.png": (b"hello, I am not a picture\n", "not a recognised image"),
    }


def batch(*blobs: bytes) -> dict[str, np.ndarray]:
    """A read batch of these files' bytes, as the decode stage takes it."""
    n = len(blobs)
    return {
        "image_id": np.array([f"id{i}" for i in range(n)], dtype=object),
        "source": np.array([f"src{i}" for i in range(n)], dtype=object),
        "bytes": np.array(list(blobs), dtype=object),
        "error": np.array([None] * n, dtype=object),
    }


def write_tree(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def varied_checkpoint(path, num_classes: int = len(CLASSES)) -> str:
    """A state dict whose scoring layers are random, so masks hold several classes."""
    torch.manual_seed(1)
    model = models.get_model("fcn8s_mobilenet_v3", num_classes=num_classes)
    with torch.no_grad():
        for layer in (model.score8, model.score16, model.score32):
            layer.weight.normal_(0, 0.5)
            layer.bias.normal_(0, 0.5)
    torch.save(model.state_dict(), path)
    return str(path)
