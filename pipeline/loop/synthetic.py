"""Synthetic aerial scenes with exact ground-truth masks, for demos and for training a small FCN on a CPU.

The label map is composed first (ground, vegetation, water, roads, buildings, each layer over the last) and the
image is then rendered from it, so every pixel's colour comes from its own class: mask and image cannot disagree.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CLASSES = ("background", "water", "vegetation", "building", "road")
BACKGROUND, WATER, VEGETATION, BUILDING, ROAD = range(len(CLASSES))
ROOFS = np.array([(172, 72, 56), (204, 122, 64), (152, 152, 156), (112, 108, 116)], np.float32)
_PNG_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema([("image", _PNG_STRUCT), ("mask", _PNG_STRUCT), ("image_id", pa.string()), ("split", pa.string())])


def make_scene(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One aerial scene: the same seed and size always give the same arrays.

    Args:
        seed: seeds ``np.random.default_rng``; every random draw comes from it, in a fixed order.
        height: rows of the scene, at least 16.
        width: columns of the scene, at least 16.

    Returns:
        ``(image, mask)``: RGB uint8 ``[H, W, 3]`` and uint8 ``[H, W]`` holding indices into ``CLASSES``.
    """
    if height < 16 or width < 16:
        raise ValueError(f"scene size {height}x{width} is too small; use at least 16x16")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), np.uint8)
    field = _smooth_noise(rng, height, width, 48) + 0.35 * _smooth_noise(rng, height, width, 12)
    mask[field > np.quantile(field, rng.uniform(0.6, 0.8))] = VEGETATION  # top 20-40% of the field: organic patches
    mask[_water(rng, yy, xx)] = WATER
    road, centre_line = _roads(rng, yy, xx)
    mask[road] = ROAD  # bridges: a road crossing water is labelled road
    roof = _buildings(rng, mask)
    return _render(rng, mask, road & centre_line, roof), mask


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Zero-mean, unit-ish noise that varies over about ``cell`` pixels (bicubic upsampled random grid)."""
    grid = rng.standard_normal((height // cell + 3, width // cell + 3)).astype(np.float32)
    up = Image.fromarray(grid).resize((grid.shape[1] * cell, grid.shape[0] * cell), Image.Resampling.BICUBIC)
    offset_y, offset_x = rng.integers(0, cell, size=2)  # so the grid lattice is not aligned with the image corner
    return np.asarray(up)[offset_y : offset_y + height, offset_x : offset_x + width]


def _water(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A meandering river band across the scene, or one to three lakes with wobbly shores."""
    height, width = yy.shape
    size = min(height, width)
    wobble = _smooth_noise(rng, height, width, 24)
    if rng.random() < 0.5:
        angle = rng.uniform(0, np.pi)
        normal_y, normal_x = np.cos(angle), np.sin(angle)
        along = (yy - height / 2) * -normal_x + (xx - width / 2) * normal_y
        meander = rng.uniform(0.05, 0.15) * size * np.sin(along / (rng.uniform(0.3, 0.6) * size) + rng.uniform(0, 6))
        offset = (yy - height / 2) * normal_y + (xx - width / 2) * normal_x - rng.uniform(-0.25, 0.25) * size
        return np.abs(offset - meander) < rng.uniform(0.04, 0.08) * size + 1.5 * wobble
    water = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.08, 0.2, size=2) * size
        water |= np.hypot((yy - cy) / ry, (xx - cx) / rx) + 0.25 * wobble < 1
    return water


def _roads(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One to three straight bands of constant width, near horizontal or vertical; also their dashed centre lines."""
    height, width = yy.shape
    road, line = np.zeros((2, height, width), bool)
    for _ in range(rng.integers(1, 4)):
        angle = rng.integers(0, 2) * np.pi / 2 + rng.uniform(-0.25, 0.25)  # slight slant at most
        normal_y, normal_x = np.cos(angle), np.sin(angle)
        cy, cx = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
        across = (yy - cy) * normal_y + (xx - cx) * normal_x
        along = (yy - cy) * -normal_x + (xx - cx) * normal_y
        road |= np.abs(across) < rng.uniform(3.0, 6.0)
        if rng.random() < 0.6:
            line |= (np.abs(across) < 0.75) & (np.mod(along, 14) < 7)
    return road, line


def _buildings(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Write rectangles into ``mask`` on ground or vegetation only; return ``[H, W]`` roof shades: 0 off buildings,
    palette index + 1 on a roof, negated on its darker two-pixel edge, so rendering needs no second geometry pass."""
    height, width = mask.shape
    roof = np.zeros((height, width), np.float32)
    wanted = max(3, int(rng.uniform(4, 9) * height * width / 192**2))
    placed = 0
    for _ in range(wanted * 6):  # rejection sampling: most scenes have ample free ground
        if placed == wanted:
            break
        long_side, short_side = rng.uniform(10, 26), rng.uniform(8, 16)
        angle = 0.0 if rng.random() < 0.5 else rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        reach = int(np.hypot(long_side, short_side) / 2) + 1
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach + 1)
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = np.abs((yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)) - long_side / 2
        v = np.abs((yy - cy) * -np.sin(angle) + (xx - cx) * np.cos(angle)) - short_side / 2
        inside = (u < 0) & (v < 0)
        window, margin = mask[y0:y1, x0:x1], (u < 1.5) & (v < 1.5)  # margin: keep off roads, water, neighbours
        if inside.sum() < 20 or np.isin(window[margin], (WATER, ROAD, BUILDING)).any():
            continue
        window[inside] = BUILDING
        shade = np.where(np.maximum(u, v) > -2, -1.0, 1.0) * (rng.integers(0, len(ROOFS)) + 1)
        roof[y0:y1, x0:x1][inside] = shade[inside]
        placed += 1
    return roof


def _render(rng: np.random.Generator, mask: np.ndarray, centre_line: np.ndarray, roof: np.ndarray) -> np.ndarray:
    """Colour each pixel from its class, with class-specific texture, then global jitter and sensor noise."""
    height, width = mask.shape
    base = np.array([(138, 122, 100), (44, 84, 128), (62, 108, 52), (0, 0, 0), (118, 118, 122)], np.float32)
    image = base[mask] + rng.uniform(-10, 10, size=(1, 1, 3)).astype(np.float32)
    ground = 14 * _smooth_noise(rng, height, width, 32) + 7 * _smooth_noise(rng, height, width, 4)
    canopy = 16 * _smooth_noise(rng, height, width, 3) + 8 * _smooth_noise(rng, height, width, 24)
    ripple = 6 * _smooth_noise(rng, height, width, 40)
    texture = np.select([mask == BACKGROUND, mask == VEGETATION, mask == WATER], [ground, canopy, ripple], 0.0)
    image += texture[..., None] * np.array([1.0, 0.95, 0.8], np.float32)
    image[mask == ROAD] += 4 * _smooth_noise(rng, height, width, 6)[mask == ROAD, None]
    image[centre_line] = (204, 202, 190)
    on_roof = roof != 0
    image[on_roof] = ROOFS[np.abs(roof[on_roof]).astype(int) - 1] * np.where(roof[on_roof] < 0, 0.6, 1.0)[:, None]
    gain = rng.uniform(0.88, 1.12) * rng.uniform(0.95, 1.05, size=3)  # brightness, then white balance
    image = image * gain.astype(np.float32) + rng.normal(0, 4, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).round().astype(np.uint8)


def write_dataset(
    root: str,
    count: int,
    *,
    seed: int = 0,
    sizes: tuple[int, int] = (160, 320),
    rows_per_file: int = 64,
    crs: str | None = None,
) -> dict:
    """Write ``count`` scenes as PNG files and as a Hugging Face style Parquet dataset; a repeat call is a no-op.

    Args:
        root: local folder; gets ``images/``, ``masks/``, ``parquet/part-NNNNN.parquet`` and, last, ``_SUCCESS``.
        count: number of scenes; every fifth one (index 4, 9, ...) is ``split="val"``, the rest ``"train"``.
        seed: dataset seed; scene ``i`` depends only on ``(seed, i)`` and ``sizes``.
        sizes: inclusive ``(min, max)`` from which each scene's height and width are drawn independently.
        rows_per_file: scenes per Parquet file.
        crs: write the images as GeoTIFFs in this CRS (``EPSG:32633``: 0.5 m pixels; a geographic CRS: 5e-6
            degrees), side by side from a fixed origin, every third one with a no-data corner (value 0).

    Returns:
        ``count, seed, sizes, root, images, masks, parquet, parquet_files, classes``.
    """
    low, high = (int(v) for v in sizes)
    if min(count, seed) < 0 or rows_per_file < 1 or not 16 <= low <= high:
        raise ValueError(f"{count=} {seed=} {sizes=} {rows_per_file=}: need 16<=min<=max, rows_per_file>=1, rest>=0")
    out = Path(root)
    key = {"count": count, "seed": seed, "sizes": [low, high], **({"crs": crs} if crs else {})}
    marker = out / "_SUCCESS"
    if marker.exists():
        if json.loads(marker.read_text()) == key:
            return _record(out, key)
        raise ValueError(f"{out} already holds a different scene dataset ({marker.read_text()}); use another folder")
    for sub in ("images", "masks", "parquet"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for stale in (out / "parquet").glob("part-*.parquet"):  # from an interrupted run with a larger count
        stale.unlink()
    for start in range(0, count, rows_per_file):
        indices = range(start, min(count, start + rows_per_file))
        rows = [_write_scene(out, index, seed, low, high, crs) for index in indices]
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        pq.write_table(table, out / "parquet" / f"part-{start // rows_per_file:05d}.parquet")
    marker.write_text(json.dumps(key))
    return _record(out, key)


def _write_scene(out: Path, index: int, seed: int, low: int, high: int, crs: str | None = None) -> dict:
    """Make scene ``index``, write its two files (image PNG or GeoTIFF, mask PNG), and return its Parquet row."""
    rng = np.random.default_rng([seed, index])
    height, width = (int(v) for v in rng.integers(low, high + 1, size=2))
    image, mask = make_scene(int(rng.integers(0, 2**63 - 1)), height, width)
    name = f"scene_{index:05d}"
    row = {"image_id": name, "split": "val" if index % 5 == 4 else "train"}
    for column, folder, array in (("image", "images", image), ("mask", "masks", mask)):
        path, buffer = f"{folder}/{name}.png", io.BytesIO()
        if crs and column == "image":
            path, array = f"{folder}/{name}.tif", np.where(_nodata_corner(array, index)[..., None], 0, array)
            buffer.write(geotiff(array, crs, index))
        else:
            Image.fromarray(array).save(buffer, format="PNG")
        (out / path).write_bytes(buffer.getvalue())
        row[column] = {"bytes": buffer.getvalue(), "path": path}
    return row


def _nodata_corner(image: np.ndarray, index: int) -> np.ndarray:
    """Where scene ``index`` has no data: the top-left sixth of every third scene (as an edge of a swath)."""
    corner = np.zeros(image.shape[:2], bool)
    if index % 3 == 2:
        corner[: image.shape[0] // 3, : image.shape[1] // 2] = True
    return corner


def geotiff(image: np.ndarray, crs: str, index: int) -> bytes:
    """An RGB GeoTIFF of ``image`` (no-data 0), scene ``index`` placed east of the one before it."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    geographic = rasterio.crs.CRS.from_user_input(crs).is_geographic
    pixel, (x0, y0) = (5e-6, (15.0, 45.0)) if geographic else (0.5, (500_000.0, 5_000_000.0))
    transform = from_origin(x0 + index * 400 * pixel, y0, pixel, pixel)
    height, width = image.shape[:2]
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 3, "dtype": "uint8", "crs": crs,
               "transform": transform, "nodata": 0, "photometric": "RGB"}  # fmt: skip
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(np.moveaxis(image, -1, 0))
        return memory.read()


def _record(out: Path, key: dict) -> dict:
    folders = {name: str(out / name) for name in ("images", "masks", "parquet")}
    parts = sorted(str(p) for p in (out / "parquet").glob("part-*.parquet"))
    return {**key, "root": str(out), **folders, "parquet_files": parts, "classes": list(CLASSES)}
