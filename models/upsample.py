"""Transposed-convolution upsampling initialised to bilinear, as in the FCN paper."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def bilinear_kernel(size: int) -> torch.Tensor:
    """The 2-D bilinear interpolation filter of the reference Caffe code."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


def bilinear_upsampler(channels: int, factor: int, *, padding: int = 0) -> nn.ConvTranspose2d:
    """A ``channels -> channels`` transposed convolution without bias that upsamples by ``factor``.

    Each channel is upsampled on its own at initialisation (a diagonal weight);
    training may later mix classes, as in the paper's learned 2x layers.

    Args:
        channels: number of class-score maps.
        factor: stride of the upsampling; the kernel is ``2 * factor``.
        padding: the transposed convolution's padding (``factor // 2`` gives exactly
            ``factor`` times the input size).
    """
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=padding, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(2 * factor)
        for c in range(channels):
            layer.weight[c, c] = kernel
    return layer


def crop_like(x: torch.Tensor, height: int, width: int, offset: int = 0) -> torch.Tensor:
    """Crop ``x`` to ``height x width`` starting ``offset`` pixels in (exact alignment)."""
    return x[:, :, offset : offset + height, offset : offset + width]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom and right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple))
