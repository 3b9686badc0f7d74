"""Decode and preprocess on CPU tasks: bytes -> RGB uint8 frames at the size the model is fed.

Photos go through Pillow (EXIF orientation, every common mode); TIFF/GeoTIFF through
tifffile and DICOM through pydicom (``rasters``). A DICOM file with several frames
becomes one row per frame.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import replace

import numpy as np
from PIL import Image, ImageOps

from ..formats.jpeg import actor_size, shorter_side_size
from ..formats.rasters import Raster, RasterOptions, decode_dicom, decode_tiff, is_dicom, is_tiff, to_rgb
from ..grid import NO_TILE
from ..probe import probed
from ..rows import ALL_VALID, DECODED_COLUMNS, failed

PLACEHOLDER = np.zeros((1, 1, 3), np.uint8)  # image of an error row; never segmented
NO_TRANSFORM = np.full(6, np.nan)


@probed("decode")
def decode_batch(
    batch: dict[str, np.ndarray],
    *,
    resize: int | None,
    max_pixels: int,
    options: RasterOptions = RasterOptions(),  # noqa: B008 (frozen, never mutated)
    jpeg_in_actor_below: int | None = None,
    reduced_jpeg: bool = False,
) -> dict[str, np.ndarray]:
    """Decode every row; a row that cannot be decoded keeps its place with an ``error``.

    Args:
        batch: ``image_id, source, source_version, bytes, error`` columns.
        resize: shorter side fed to the model, or ``None`` for the native size.
        max_pixels: larger images become error rows (Pillow's bomb guard stays on below it).
        options: band selection, scaling and no-data of scientific rasters.
        jpeg_in_actor_below: when set (the tile size), plain JPEGs fed within it are not decoded
            here: their bytes go on in ``jpeg`` for the inference actor (``pipeline.formats.jpeg``).
    """
    rows: dict[str, list] = {k: [] for k in DECODED_COLUMNS}
    draft = resize if reduced_jpeg else None
    versions = batch["source_version"] if "source_version" in batch else [None] * len(batch["image_id"])
    for image_id, source, version, blob, error in zip(
        batch["image_id"], batch["source"], versions, batch["bytes"], batch["error"], strict=True
    ):
        error = error if failed(error) else None
        frames, error, size = _decode_one(blob, error, resize, max_pixels, options, jpeg_in_actor_below, draft)
        for raster in frames or [Raster(PLACEHOLDER)]:
            rows["source_version"].append(version if isinstance(version, str) else None)
            _append_frame(rows, image_id, source, blob, raster, error, size, resize)
    return _columns(rows)


def _decode_one(
    blob: bytes,
    error: str | None,
    resize: int | None,
    max_pixels: int,
    options: RasterOptions,
    jpeg_in_actor_below: int | None,
    draft: int | None = None,
) -> tuple[list[Raster], str | None, tuple[int, int] | None]:
    """Frames, error and the (height, width) of a JPEG left to the inference actor (else ``None``)."""
    frames: list[Raster] = []
    size = None
    if error is None and jpeg_in_actor_below:
        size = actor_size(blob, max_pixels=max_pixels, resize=resize, tile=jpeg_in_actor_below)
    if error is None and size is None:
        try:
            frames = decode_frames(blob, max_pixels, options, draft)
        except Exception as exc:  # any decoder failure is this image's error row
            error = describe_decode_error(exc)
    if frames and resize and (too_large := fed_too_large(frames, resize, max_pixels)):
        frames, error = [], too_large
    return frames, error, size


def fed_too_large(frames: list[Raster], resize: int, max_pixels: int) -> str | None:
    """Why the frames, scaled to the fed size, are above ``--max-pixels`` (a 2 x 40,000 strip at
    ``--resize 520`` would be 10.4 M x 520 pixels), or ``None``."""
    height, width = shorter_side_size(*source_size(frames[0]), resize)
    if height * width * len(frames) <= max_pixels:
        return None
    count = f"{len(frames)} frames of " if len(frames) > 1 else ""
    return (
        f"fed at --resize {resize} the image would be {count}{width}x{height} pixels, above --max-pixels "
        f"{max_pixels}; lower --resize (0 feeds the native size) or raise --max-pixels"
    )


def _append_frame(
    rows: dict[str, list],
    image_id: str,
    source: str,
    blob: bytes,
    raster: Raster,
    error: str | None,
    size: tuple[int, int] | None,
    resize: int | None,
) -> None:
    """One output row per frame; a multi-frame file's ids get ``#frame``."""
    multi = raster.frame is not None
    height, width = (size or source_size(raster)) if error is None else (0, 0)
    rows["image_id"].append(f"{image_id}#{raster.frame}" if multi else image_id)
    rows["source"].append(source)
    rows["frame"].append(raster.frame if multi else -1)
    rows["height"].append(height)
    rows["width"].append(width)
    fed = resize and error is None and size is None
    rows["image"].append(resize_shorter(raster.rgb, resize, source_size(raster)) if fed else raster.rgb)
    rows["valid"].append(ALL_VALID if raster.valid is None else raster.valid)
    rows["crs"].append(raster.crs or "")  # never an all-None column: see rows.strings
    rows["geotransform"].append(NO_TRANSFORM if raster.geotransform is None else np.asarray(raster.geotransform))
    rows["error"].append(error)
    rows["jpeg"].append(blob if size is not None else b"")
    rows["tile"].append(NO_TILE)  # a whole image, not a tile of a scene (scenes/read)
    rows["pixel_area"].append(np.nan if raster.pixel_area is None else raster.pixel_area)


def _columns(rows: dict[str, list]) -> dict[str, np.ndarray]:
    """Lists -> the batch's arrays: objects, except int32 sizes and an ``[N, 6]`` geotransform."""
    out = {k: _objects(v) for k, v in rows.items()}
    for key, dtype in (("frame", np.int32), ("height", np.int32), ("width", np.int32)):
        out[key] = np.asarray(rows[key], dtype)
    out["geotransform"] = np.stack(rows["geotransform"]) if rows["geotransform"] else np.zeros((0, 6))
    out["tile"] = np.stack(rows["tile"]) if rows["tile"] else np.zeros((0, len(NO_TILE)), np.int64)
    out["pixel_area"] = np.asarray(rows["pixel_area"], np.float64)
    return out


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def decode_frames(blob: bytes, max_pixels: int, options: RasterOptions, resize: int | None = None) -> list[Raster]:
    """Every frame of one file; a JPEG may be decoded smaller, at least ``resize`` (``decode_photo``)."""
    if not blob:
        raise ValueError("the file is empty (0 bytes)")
    if is_dicom(blob):  # first: a DICOM preamble may itself look like a TIFF header
        return decode_dicom(blob, options, max_pixels)
    if is_tiff(blob):
        return decode_tiff(blob, options, max_pixels)
    return [decode_photo(blob, max_pixels, options, resize)]


def decode_photo(blob: bytes, max_pixels: int, options: RasterOptions, resize: int | None = None) -> Raster:
    """Pillow: EXIF orientation applied, every common mode to RGB, 16-bit scaled like rasters.

    With ``resize`` (``--jpeg-reduced-decode`` only: it changes pixels), a JPEG is decoded at the smallest
    of libjpeg's 1/2, 1/4 and 1/8 scales that stays at least that size (``Image.draft``: a 12 MP photo
    fed at 520 decodes at 1/4, about a tenth of the work); ``Raster.size`` keeps the source's size for the mask.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        image = Image.open(io.BytesIO(blob))
        if image.width * image.height > max_pixels:
            raise ValueError(f"image is {image.width}x{image.height}, above --max-pixels {max_pixels}")
        source = image.height, image.width
        if resize and image.format == "JPEG" and image.mode in ("RGB", "L"):
            scale = resize / min(source)  # the shorter side stays the shorter side under any EXIF rotation
            image.draft(image.mode, (math.ceil(source[1] * scale), math.ceil(source[0] * scale)))
        transposed = ImageOps.exif_transpose(image)
        if transposed is not image and transposed.size != image.size:
            source = source[::-1]
        transposed.load()
    rgb = pil_to_rgb(transposed, options)
    valid = transparent_pixels(transposed) if options.transparent_nodata else None
    return Raster(rgb, valid, size=source if rgb.shape[:2] != source else None)


def source_size(raster: Raster) -> tuple[int, int]:
    """The source's ``(height, width)``: the mask's size, also where the frame was decoded smaller."""
    return raster.size or raster.rgb.shape[:2]


def transparent_pixels(image: Image.Image) -> np.ndarray | None:
    """``False`` where a pixel is fully transparent (alpha 0), else ``None`` when every pixel is opaque.

    What lies under a transparent pixel is arbitrary (white in one export, black in its resized copy),
    so it is no-data: 255 in the mask and not counted, as GeoTIFF no-data is.
    """
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return None
    valid = np.asarray(image.convert("RGBA"))[:, :, 3] > 0
    return None if valid.all() else valid


def pil_to_rgb(image: Image.Image, options: RasterOptions = RasterOptions()) -> np.ndarray:  # noqa: B008
    """Any Pillow mode (1, L, LA, P, RGBA, CMYK, I;16, I, F) -> ``[H, W, 3]`` uint8."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image)
        return to_rgb(values[:, :, None], None, replace(options, bands=None), "image")  # --bands: TIFF only
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def resize_shorter(rgb: np.ndarray, shorter: int, source: tuple[int, int] | None = None) -> np.ndarray:
    """``rgb`` resized (bilinear) to the fed size: the shorter side of ``source`` (default ``rgb``'s) at ``shorter``."""
    height, width = shorter_side_size(*(source or rgb.shape[:2]), shorter)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


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
