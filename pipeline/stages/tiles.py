"""Overlap-tile segmentation of images larger than a tile (the U-Net/FCN "overlap-tile" strategy).

Tiles overlap by ``overlap`` pixels; each output pixel is taken from the one tile whose
centre region owns it (the cut runs through the middle of every overlap), so every pixel
is predicted at least ``overlap / 2`` pixels away from its tile's inner border and no
seam is blended. Memory stays O(H x W) bytes: the class-score maps of one batch of tiles
exist at a time, never a ``classes x H x W`` array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..grid import Tile, axis_windows, tile_grid  # noqa: F401 (the grid is shared with scene reading)


def needs_tiles(shape: tuple[int, ...], tile: int) -> bool:
    return max(shape[0], shape[1]) > tile


def segment_tiled(
    forward: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
    image: np.ndarray,
    valid: np.ndarray | None,
    num_classes: int,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment ``image`` ([H, W, 3] uint8) tile by tile.

    Args:
        forward: ``[N, h, w, 3]`` uint8 -> ``(classes [N, h, w], probability [N, h, w])``.
        valid: [H, W] bool of pixels to count, or ``None`` for all.
        num_classes: length of the per-class tallies.
        tile, overlap: tile side and overlap in pixels.
        batch_size: tiles per forward pass.

    Returns:
        ``(mask [H, W] uint8 with 255 where not valid, pixels per class, probability sums per class)``.
    """
    height, width = image.shape[:2]
    mask = np.empty((height, width), np.uint8)
    counts = np.zeros(num_classes, np.int64)
    confidence = np.zeros(num_classes, np.float64)
    tiles = tile_grid(height, width, tile, overlap)
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        classes, prob = forward(np.stack([image[t.y0 : t.y1, t.x0 : t.x1] for t in chunk]))
        for k, t in enumerate(chunk):
            own = (slice(t.oy0 - t.y0, t.oy1 - t.y0), slice(t.ox0 - t.x0, t.ox1 - t.x0))
            region = classes[k][own].cpu().numpy().astype(np.int64)
            weights = prob[k][own].double().cpu().numpy()
            keep = valid[t.oy0 : t.oy1, t.ox0 : t.ox1] if valid is not None else np.ones(region.shape, bool)
            counts += np.bincount(region[keep], minlength=num_classes)[:num_classes]
            confidence += np.bincount(region[keep], weights=weights[keep], minlength=num_classes)[:num_classes]
            mask[t.oy0 : t.oy1, t.ox0 : t.ox1] = np.where(keep, region, 255)
    return mask, counts, confidence
