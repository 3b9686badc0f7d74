"""Scientific rasters: multi-band and 16-bit/float TIFF and GeoTIFF (tifffile), DICOM (pydicom).

Each decoder returns ``Raster`` frames: an RGB uint8 image for the model, a no-data mask,
and where known the georeferencing. Scaling to 8 bits is explicit: a fixed value range
or a per-band percentile stretch over the valid pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RasterOptions:
    """How to turn a raster into the model's RGB input.

    Args:
        bands: 1-based band numbers to use as R, G, B (one band is repeated to grey).
        value_range: ``(low, high)`` mapped to 0..255; ``None`` for a percentile stretch.
        stretch: ``(low, high)`` percentiles of the stretch.
        nodata: value marking no-data (overrides the file's own GDAL_NODATA tag).
        dicom_window: ``(centre, width)``; default the file's own window, else the full range.
        transparent_nodata: fully transparent pixels of a photo (alpha 0) are no-data, like GeoTIFF no-data.
    """

    bands: tuple[int, ...] | None = None
    value_range: tuple[float, float] | None = None
    stretch: tuple[float, float] = (2.0, 98.0)
    nodata: float | None = None
    dicom_window: tuple[float, float] | None = None
    transparent_nodata: bool = True


@dataclass
class Raster:
    rgb: np.ndarray  # [H, W, 3] uint8
    valid: np.ndarray | None = None  # [H, W] bool, None when every pixel is valid
    frame: int | None = None
    crs: str | None = None
    geotransform: tuple[float, ...] | None = None
    size: tuple[int, int] | None = None  # the source's (height, width) where ``rgb`` was decoded smaller
    pixel_area: float | None = None  # mm^2 of one pixel where a DICOM file says (PixelSpacing)


def is_tiff(blob: bytes) -> bool:
    return blob[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_dicom(blob: bytes) -> bool:
    return blob[128:132] == b"DICM"


def to_uint8(bands: np.ndarray, valid: np.ndarray | None, options: RasterOptions) -> np.ndarray:
    """``[H, W, B]`` of any dtype -> uint8, by value range or per-band percentile stretch."""
    if bands.dtype == np.uint8 and options.value_range is None:
        return bands
    data = bands.astype(np.float32)
    if options.value_range is not None:
        low = np.full(data.shape[-1], options.value_range[0], np.float32)
        high = np.full(data.shape[-1], options.value_range[1], np.float32)
    else:
        sample = data[valid] if valid is not None and valid.any() else data.reshape(-1, data.shape[-1])
        low, high = np.percentile(sample, options.stretch, axis=0)
    scale = 255.0 / np.maximum(high - low, 1e-12)
    scaled = np.nan_to_num((data - low) * scale + 0.5, nan=0.0)  # NaN no-data: 0, not an undefined cast
    return np.clip(scaled, 0, 255).astype(np.uint8)


def to_rgb(bands: np.ndarray, valid: np.ndarray | None, options: RasterOptions, name: str) -> np.ndarray:
    """Select bands (1-based) and scale; one band becomes grey."""
    if options.bands:
        if max(options.bands) > bands.shape[-1] or min(options.bands) < 1:
            raise ValueError(
                f"--bands {list(options.bands)} asks for bands the {name} lacks (it has {bands.shape[-1]})"
            )
        bands = bands[..., [b - 1 for b in options.bands]]
    elif bands.shape[-1] > 3:
        bands = bands[..., :3]
    scaled = to_uint8(bands, valid, options)
    if scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    if scaled.shape[-1] != 3:
        raise ValueError(f"{name} has {scaled.shape[-1]} bands; choose three or one with --bands")
    return np.ascontiguousarray(scaled)


def decode_tiff(blob: bytes, options: RasterOptions, max_pixels: int) -> list[Raster]:
    """A (Geo)TIFF's first image as one frame, channels last, with no-data and georeferencing."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(blob)) as tif:
        series = tif.series[0]
        shape = dict(zip(series.axes, series.shape, strict=True))
        height, width = shape.get("Y", 0), shape.get("X", 0)
        planes = int(np.prod([n for a, n in shape.items() if a not in "YXSC"], dtype=np.int64))  # pages, depth
        if height * width * planes > max_pixels:
            pages = f" x {planes} pages" if planes > 1 else ""
            raise ValueError(f"image is {width}x{height}{pages}, above --max-pixels {max_pixels}")
        try:
            data = series.asarray()
        except (KeyError, ValueError, NotImplementedError) as exc:  # a codec tifffile lacks (JPEG: imagecodecs)
            if "imagecodecs" not in str(exc):
                raise
            return [decode_tiff_gdal(blob, options)]
        page = tif.pages[0]
        geo = page.geotiff_tags if page.is_geotiff else None
        file_nodata = page.tags.get("GDAL_NODATA")
        palette = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
    axes = series.axes
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"TIFF axes {axes!r} hold no 2-D image")
    band_axes = [a for a in axes if a not in "YX"]
    data = np.moveaxis(data, [axes.index("Y"), axes.index("X")], [0, 1])
    data = data.reshape(height, width, -1) if band_axes else data[:, :, None]
    if palette is not None:  # the colours the indices name, not the indices stretched as grey
        data = palette_colours(palette)[data].reshape(height, width, -1)
    nodata = options.nodata if options.nodata is not None else _parse_nodata(file_nodata)
    valid = tiff_valid(data, nodata)
    crs, transform = georeference(geo) if geo else (None, None)
    return [Raster(to_rgb(data, valid, options, "TIFF"), valid, crs=crs, geotransform=transform)]


def tiff_valid(data: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """``[H, W]`` False at no-data: every band equal to ``nodata``, and in float data any band NaN
    (``nodata=nan`` is GDAL's usual float no-data, and NaN never equals itself); ``None`` when all valid."""
    invalid = np.zeros(data.shape[:2], bool)
    if nodata is not None and not np.isnan(nodata):
        invalid |= np.all(data == nodata, axis=-1)
    if np.issubdtype(data.dtype, np.floating):
        invalid |= np.isnan(data).any(axis=-1)
    return ~invalid if invalid.any() else None


def palette_colours(colormap: np.ndarray) -> np.ndarray:
    """A palette TIFF's ColorMap (``[3, entries]``, 16-bit) -> ``[entries, 3]`` uint8, as Pillow reads it."""
    colours = np.asarray(colormap).T
    return (colours >> 8 if colours.max() > 255 else colours).astype(np.uint8)


def decode_tiff_gdal(blob: bytes, options: RasterOptions) -> Raster:
    """A TIFF whose codec tifffile lacks (JPEG tiles without imagecodecs), through GDAL (rasterio) instead."""
    from rasterio.io import MemoryFile

    from .windows import read_rgb, scene_info, scene_range

    with MemoryFile(blob) as memory, memory.open() as src:
        info = scene_info(src)
        rgb, valid = read_rgb(src, (0, info.height), (0, info.width), scene_range(src, options))
    return Raster(rgb, valid, crs=info.crs, geotransform=info.geotransform)


def _parse_nodata(tag) -> float | None:
    if tag is None:
        return None
    try:
        return float(str(tag.value).strip("\x00 "))
    except ValueError:
        return None


def georeference(geo: dict) -> tuple[str | None, tuple[float, ...] | None]:
    """CRS (``EPSG:code``) and GDAL-order geotransform from tifffile's GeoTIFF tags."""
    code = geo.get("ProjectedCSTypeGeoKey") or geo.get("GeographicTypeGeoKey")
    code = getattr(code, "value", code)
    crs = f"EPSG:{int(code)}" if isinstance(code, (int, np.integer)) and 0 < int(code) < 32767 else None
    matrix = geo.get("ModelTransformation")
    if matrix is not None:
        m = np.asarray(matrix, float).reshape(4, 4)
        return crs, (m[0, 3], m[0, 0], m[0, 1], m[1, 3], m[1, 0], m[1, 1])
    scale, tie = geo.get("ModelPixelScale"), geo.get("ModelTiepoint")
    if scale is None or tie is None:
        return crs, None
    i, j, _, x, y, _ = (float(v) for v in tie[:6])
    sx, sy = float(scale[0]), float(scale[1])
    return crs, (x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy)


def decode_dicom(blob: bytes, options: RasterOptions, max_pixels: int) -> list[Raster]:
    """One frame per DICOM frame: rescale slope/intercept, window, MONOCHROME1 inverted."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(io.BytesIO(blob))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if int(ds.Rows) * int(ds.Columns) * frames > max_pixels:  # every frame counts against the limit
        count = f" x {frames} frames" if frames > 1 else ""
        raise ValueError(f"image is {ds.Columns}x{ds.Rows}{count}, above --max-pixels {max_pixels}")
    pixels = ds.pixel_array
    colour = int(getattr(ds, "SamplesPerPixel", 1)) == 3
    if frames == 1:
        pixels = pixels[None]
    if colour:
        area = pixel_area_mm2(ds)
        return [
            Raster(to_rgb(f, None, options, "DICOM"), frame=k if frames > 1 else None, pixel_area=area)
            for k, f in enumerate(pixels)
        ]
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    centre, width = options.dicom_window or _file_window(ds) or (None, None)
    if centre is None:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = centre - width / 2.0, centre + width / 2.0
    area = pixel_area_mm2(ds)
    grey = np.clip((values - low) / max(high - low, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        grey = 255 - grey  # MONOCHROME1: high values are dark
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    return [
        Raster(np.ascontiguousarray(f), frame=k if frames > 1 else None, pixel_area=area) for k, f in enumerate(rgb)
    ]


def pixel_area_mm2(ds) -> float | None:
    """Area of one pixel in mm^2 from PixelSpacing (row, column spacing in mm; also an enhanced file's
    shared Pixel Measures), or None where the file does not say. ImagerPixelSpacing is left out: it is
    measured at the detector, not in the patient."""
    spacing = ds.get("PixelSpacing")
    if spacing is None:
        try:
            spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError):
            return None
    try:
        rows, cols = (float(v) for v in spacing)
    except (TypeError, ValueError):
        return None
    return rows * cols if rows > 0 and cols > 0 else None


def _file_window(ds) -> tuple[float, float] | None:
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    return float(np.atleast_1d(np.asarray(centre, float))[0]), float(np.atleast_1d(np.asarray(width, float))[0])
