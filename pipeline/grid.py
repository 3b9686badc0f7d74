"""The overlap-tile grid: which windows of an image are fed, and which part of each one a tile owns.

Shared by the in-memory tiled path (``stages/tiles``) and the tiles-as-rows reading of huge scenes
(``scenes/read``), so both cut an image the same way.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np


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


@dataclass(frozen=True)
class TileRow:
    """The ``tile`` column of a row, by name: where a tile of a scene lies, or ``NO_TILE`` (every field -1).

    The tables keep it as a ``list<int64>`` of ``TILE_FIELDS`` in this order (the order is the fields'
    here, nowhere else); ``from_vector`` and ``to_vector`` convert. A frozen dataclass, not a NamedTuple:
    a tuple's ``index`` and ``count`` methods would clash with the fields of those names.

    Args:
        scene_height, scene_width: the scene's size in pixels.
        y0, y1, x0, x1, oy0, oy1, ox0, ox1: the window fed and the region it owns (``Tile``).
        index: the tile's number in the scene's grid, row by row.
        count: tiles in the scene.
    """

    scene_height: int
    scene_width: int
    y0: int
    y1: int
    x0: int
    x1: int
    oy0: int
    oy1: int
    ox0: int
    ox1: int
    index: int
    count: int

    @classmethod
    def from_vector(cls, vector) -> TileRow:
        """A ``tile`` vector (numpy row or list of ``len(TILE_FIELDS)`` integers) by name."""
        if len(vector) != len(TILE_FIELDS):
            names = ", ".join(TILE_FIELDS)
            raise ValueError(f"a tile vector has {len(TILE_FIELDS)} numbers ({names}), not {len(vector)}")
        return cls(*(int(v) for v in vector))

    def to_vector(self) -> np.ndarray:
        """The ``tile`` vector the tables keep: int64 in ``TILE_FIELDS`` order."""
        return np.asarray(astuple(self), np.int64)

    @property
    def is_tile(self) -> bool:
        """Whether the row is a tile of a scene (not ``NO_TILE``)."""
        return self.scene_height >= 0

    @property
    def window(self) -> Tile:
        """The window fed and the region owned, in scene pixels."""
        return Tile(self.y0, self.y1, self.x0, self.x1, self.oy0, self.oy1, self.ox0, self.ox1)


# a tile row of a scene carries where it lies (``tile`` column); every other row carries NO_TILE
TILE_FIELDS = tuple(f.name for f in fields(TileRow))
NO_TILE = TileRow(*[-1] * len(TILE_FIELDS)).to_vector()


def tile_column(tiles: np.ndarray, field: str) -> np.ndarray:
    """One field (``TILE_FIELDS``) of every row of a ``(rows, len(TILE_FIELDS))`` stack of tile vectors."""
    return np.asarray(tiles)[:, TILE_FIELDS.index(field)]


def is_tile(tiles: np.ndarray) -> np.ndarray:
    """Which rows of a stack of tile vectors are tiles of a scene (the rest are ``NO_TILE``)."""
    return tile_column(tiles, "scene_height") >= 0


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
