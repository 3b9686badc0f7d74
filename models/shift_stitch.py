"""Shift-and-stitch: the dense-prediction trick FCN replaced, kept as a reference."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from .upsample import pad_to_multiple


def shift_and_stitch(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, factor: int) -> torch.Tensor:
    """Dense output of a net that downsamples by ``factor``.

    The input is shifted up and left by every ``(dy, dx)`` in ``range(factor)**2``
    (zero-filling the bottom and right), the net runs on each of the ``factor**2``
    shifted inputs, and the coarse outputs are interleaved so that output pixel
    ``(i, j)`` comes from the shift ``(i % factor, j % factor)``.

    Args:
        net: maps ``[N, C, H, W]`` to ``[N, K, H / factor, W / factor]``.
        x: input batch; H and W need not be multiples of ``factor``.
        factor: the net's total downsampling factor.

    Returns:
        ``[N, K, H, W]``.
    """
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    height, width = x.shape[-2:]
    x = pad_to_multiple(x, factor)
    out = None
    for dy in range(factor):
        for dx in range(factor):
            shifted = F.pad(x[:, :, dy:, dx:], (0, dx, 0, dy))
            coarse = net(shifted)
            if out is None:
                out = coarse.new_zeros(*coarse.shape[:2], x.shape[-2], x.shape[-1])
            out[:, :, dy::factor, dx::factor] = coarse
    return out[:, :, :height, :width]
