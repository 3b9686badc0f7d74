"""Decode and preprocess on CPU tasks: bytes -> RGB uint8 at the size the model is fed."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

PLACEHOLDER = np.zeros((1, 1, 3), np.uint8)  # image of an error row; never segmented


def failed(error) -> bool:
    """Whether an ``error`` cell holds a reason (Arrow may turn an all-null column into NaN)."""
    return isinstance(error, str)


def decode_batch(batch: dict[str, np.ndarray], *, resize: int | None, max_pixels: int) -> dict[str, np.ndarray]:
    """Decode every row; a row that cannot be decoded keeps its place with an ``error``.

    Args:
        batch: ``image_id, source, bytes, error`` columns.
        resize: shorter side fed to the model, or ``None`` for the native size.
        max_pixels: larger images become error rows (Pillow's bomb guard stays on below it).
    """
    images, heights, widths, errors = [], [], [], []
    for blob, error in zip(batch["bytes"], batch["error"], strict=True):
        image, height, width = PLACEHOLDER, 0, 0
        error = error if failed(error) else None
        if error is None:
            try:
                rgb = decode_image(blob, max_pixels)
                height, width = rgb.shape[:2]
                image = resize_shorter(rgb, resize) if resize else rgb
            except Exception as exc:  # any decoder failure is this image's error row
                error = describe_decode_error(exc)
        images.append(image)
        heights.append(height)
        widths.append(width)
        errors.append(error)
    out = np.empty(len(images), dtype=object)
    out[:] = images
    return {
        "image_id": batch["image_id"],
        "source": batch["source"],
        "height": np.asarray(heights, np.int32),
        "width": np.asarray(widths, np.int32),
        "image": out,
        "error": np.asarray(errors, dtype=object),
    }


def decode_image(blob: bytes, max_pixels: int) -> np.ndarray:
    """Bytes -> ``[H, W, 3]`` uint8 RGB with EXIF orientation applied."""
    if not blob:
        raise ValueError("the file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        image = Image.open(io.BytesIO(blob))
        if image.width * image.height > max_pixels:
            raise ValueError(f"image is {image.width}x{image.height}, above --max-pixels {max_pixels}")
        image = ImageOps.exif_transpose(image)
        image.load()
    return to_rgb(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any common mode (1, L, LA, P, RGBA, CMYK, I;16, I, F) -> RGB uint8."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def resize_shorter(rgb: np.ndarray, shorter: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = shorter / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def describe_decode_error(exc: Exception) -> str:
    """A reason a person understands, naming what to do where there is something to do."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a recognised image format (is the file an image?)"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"image is too large (decompression-bomb guard): {exc}; raise --max-pixels to allow it"
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return f"the image is truncated or corrupt: {exc}"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"cannot decode image: {type(exc).__name__}: {exc}"
