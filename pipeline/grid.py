"""The overlap-tile grid: which windows of an image are fed, and which part of each one a tile owns.

Shared by the in-memory tiled path (``stages/tiles``) and the tiles-as-rows reading of huge scenes
(``scenes/read``), so both cut an image the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# a tile row of a scene carries where it lies (``tile`` column); every other row carries NO_TILE
TILE_FIELDS = ("scene_height", "scene_width", "y0", "y1", "x0", "x1", "oy0", "oy1", "ox0", "ox1", "index", "count")
NO_TILE = np.full(len(TILE_FIELDS), -1, np.int64)


@dataclass(frozen=True)
class Tile:
    """A window ``[y0:y1, x0:x1]`` fed to the model and the region ``[oy0:oy1, ox0:ox1]`` it owns."""

    y0: int
    y1: int
    x0: int
    x1: int
    oy0: int
    oy1: int
    ox0: int
    ox1: int


def axis_windows(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(start, end, own_start, own_end)`` along one axis; windows are ``min(tile, length)`` long."""
    if length <= tile:
        return [(0, length, 0, length)]
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    cuts = [0] + [(a + tile + b) // 2 for a, b in zip(starts, starts[1:], strict=False)] + [length]
    return [(s, s + tile, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    rows, cols = axis_windows(height, tile, overlap), axis_windows(width, tile, overlap)
    return [Tile(y0, y1, x0, x1, oy0, oy1, ox0, ox1) for y0, y1, oy0, oy1 in rows for x0, x1, ox0, ox1 in cols]
