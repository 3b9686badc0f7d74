"""Top class and its softmax probability at the source size, a strip of rows at a time.

Upsampling ``[N, C, h, w]`` logits to a 12 MP source size in one ``F.interpolate`` call holds
``C x H x W`` floats per image (about 1 GB at 21 classes). The strips here compute the same
bilinear values as ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``, but
only ``rows x W`` of them per class at a time, and reduce each strip to its class and probability.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.nn import functional as F

# Per float strip tensor [N, C, rows, W]. CPU: 8 MiB measured best or near it here (12 MP from 520 px,
# 21 classes, 1 or 4 images, 1 or 2 threads); smaller strips redo more overlapping logit rows, larger
# ones fall out of cache. CUDA: large enough to keep the GPU busy, small beside a batch (not measured).
CPU_STRIP_BYTES = 8 << 20
CUDA_STRIP_BYTES = 512 << 20


def strip_budget(device: torch.device) -> int:
    """Bytes allowed to one float strip tensor (a strip holds two of them).

    Args:
        device: where the logits are.
    """
    return CUDA_STRIP_BYTES if device.type == "cuda" else CPU_STRIP_BYTES


def bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ATen's bilinear neighbours and weights along one axis (``align_corners=False``, no antialias).

    Args:
        in_size: length of the axis in the logits.
        out_size: length of the axis in the output.

    Returns:
        ``(index0, index1, weight0, weight1)`` per output position, float32 weights.
    """
    scale = np.float32(in_size) / np.float32(out_size)  # ATen divides in float32 when given a size
    # ATen's CPU kernels (checked here; CUDA's too, by nvcc's default contraction) fuse scale * (dst + 0.5)
    # - 0.5 into one rounding: exact in float64, then rounded once, gives the same float32 coordinate
    src = ((np.arange(out_size) + 0.5) * np.float64(scale) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    index0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    weight1 = np.clip(src - index0.astype(np.float32), 0, 1).astype(np.float32)
    index1 = np.where(index0 < in_size - 1, index0 + 1, index0)
    return index0, index1, np.float32(1) - weight1, weight1


def top_class_and_prob(out: torch.Tensor, scratch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, C, r, W]`` logits -> ``(class [N, r, W] int64, 1 / sum(exp(logit - top)) [N, r, W])``.

    Args:
        out: float32 logits, overwritten.
        scratch: a float32 tensor of the same shape, overwritten.
    """
    c = out.shape[1]
    # amax is an order of magnitude faster than max(dim) with indices on CPU; the class is then
    # found from the sign bit of logit - top, which is +0.0 exactly at the top class(es)
    out.sub_(out.amax(dim=1, keepdim=True))
    key = torch.bitwise_right_shift(out.view(torch.int32), 31, out=scratch.view(torch.int32))  # 0 top, -1 other
    first = torch.arange(c, 0, -1, dtype=torch.int32, device=out.device).view(1, c, 1, 1)  # C - class
    # at a tie the lowest class wins, as in max(dim); clamp keeps NaN logits (no +0.0) in range
    classes = (c - key.bitwise_or_(first).amax(dim=1).clamp_(min=1)).long()
    prob = out.exp_().sum(dim=1).reciprocal_()
    return classes, prob


def top_class_strips(
    logits: torch.Tensor, size: tuple[int, int], budget_bytes: int
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Yield ``(y0, y1, classes [N, y1-y0, W] int64, prob [N, y1-y0, W] float32)`` over the output rows.

    Each strip interpolates horizontally only the logit rows it needs (with ``F.interpolate``'s
    own linear kernel, at full width), then lerps those rows vertically with ATen's weights
    (horizontal first, as ATen's kernels). At the logits' size nothing is interpolated.

    Args:
        logits: ``[N, C, h, w]`` on any device, any float dtype and memory format; left unchanged.
        size: output ``(H, W)``, larger or smaller than ``(h, w)`` on either axis.
        budget_bytes: bytes for one float ``[N, C, rows, W]`` tensor (at least one row per strip);
            a strip holds two of them, plus its rows of horizontally interpolated logits.
    """
    n, c, h, w = logits.shape
    height, width = size
    device = logits.device
    row_bytes = n * c * width * 4
    rows = max(1, min(height, budget_bytes // row_bytes))
    if height < h:  # a downsampling strip reads up to two logit rows per output row
        rows = max(1, rows // 2)
    work = torch.empty(2, n * c * rows * width, dtype=torch.float32, device=device)  # reused by every strip
    taps = bilinear_taps(h, height)
    used, inverse0, inverse1, counts = strip_plan(taps[0], taps[1], rows)
    used, inverse0, inverse1 = (torch.from_numpy(a).to(device) for a in (used, inverse0, inverse1))
    weight0, weight1 = (torch.from_numpy(a).to(device).view(1, 1, -1, 1) for a in taps[2:])
    starts = np.concatenate([[0], np.cumsum(counts)])  # on the host: slicing needs no device sync
    for strip, y0 in enumerate(range(0, height, rows)):
        y1 = min(height, y0 + rows)
        out, scratch = (buffer[: n * c * (y1 - y0) * width].view(n, c, y1 - y0, width) for buffer in work)
        # at the logits' height the vertical weights are 1 and 0: the strip's own rows
        src = logits[:, :, y0:y1] if height == h else logits.index_select(2, used[starts[strip] : starts[strip + 1]])
        src, m = src.float(), src.shape[2]
        if width != w:
            src = src.reshape(n, c * m, w)
            src = F.interpolate(src, size=width, mode="linear", align_corners=False).view(n, c, m, width)
        if height == h:
            out.copy_(src)
        else:
            torch.index_select(src, 2, inverse0[y0:y1], out=out).mul_(weight0[:, :, y0:y1])
            torch.index_select(src, 2, inverse1[y0:y1], out=scratch)
            out.addcmul_(scratch, weight1[:, :, y0:y1])
        yield y0, y1, *top_class_and_prob(out, scratch)


def strip_plan(index0: np.ndarray, index1: np.ndarray, rows: int) -> tuple[np.ndarray, ...]:
    """The logit rows each strip reads, and where each output row's two neighbours sit among them.

    Args:
        index0, index1: each output row's neighbour rows in the logits (``bilinear_taps``).
        rows: output rows per strip.

    Returns:
        ``(used, inverse0, inverse1, counts)``: the strips' sorted logit rows, concatenated; per
        output row the positions of its neighbours in its own strip's part of ``used``; the length
        of each strip's part.
    """
    used, inverse = [], []
    for y0 in range(0, len(index0), rows):
        part = slice(y0, y0 + rows)
        rows_used, inv = np.unique(np.concatenate([index0[part], index1[part]]), return_inverse=True)
        used.append(rows_used)
        inverse.append(inv.reshape(2, -1))
    inverse = np.concatenate(inverse, axis=1)
    return np.concatenate(used), inverse[0], inverse[1], np.array([len(u) for u in used])
