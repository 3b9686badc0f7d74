"""The ``tile`` vector by name (``grid.TileRow``): the tables' order pinned, and the round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.grid import NO_TILE, TILE_FIELDS, TileRow, is_tile, tile_column, tile_grid


def test_the_tile_vector_keeps_the_order_the_tables_hold():
    # the list<int64> ``tile`` column of both tables: a change here breaks every committed output
    assert TILE_FIELDS == ("scene_height", "scene_width", "y0", "y1", "x0", "x1", "oy0", "oy1", "ox0", "ox1",
                           "index", "count")  # fmt: skip
    assert NO_TILE.dtype == np.int64 and NO_TILE.tolist() == [-1] * 12


def test_a_tile_row_round_trips_and_names_its_window():
    window = tile_grid(1000, 700, 256, 32)[5]
    row = TileRow(1000, 700, window.y0, window.y1, window.x0, window.x1, window.oy0, window.oy1, window.ox0,
                  window.ox1, index=5, count=len(tile_grid(1000, 700, 256, 32)))  # fmt: skip
    vector = row.to_vector()
    assert vector.dtype == np.int64 and TileRow.from_vector(vector) == row
    assert TileRow.from_vector(vector.tolist()) == row and row.window == window and row.is_tile
    assert not TileRow.from_vector(NO_TILE).is_tile
    stack = np.stack([NO_TILE, vector])
    assert is_tile(stack).tolist() == [False, True] and tile_column(stack, "index").tolist() == [-1, 5]
    with pytest.raises(ValueError, match="12 numbers"):
        TileRow.from_vector(vector[:10])
