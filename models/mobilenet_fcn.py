"""FCN-8s skip architecture over MobileNetV3-Large: the light default for CPUs."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .upsample import bilinear_upsampler, crop_like, pad_to_multiple
from .vgg_fcn import score_layer

# Slices of torchvision's mobilenet_v3_large().features ending at strides 8 and 16.
STRIDE8_END, STRIDE16_END = 7, 13


class MobileNetFCN8s(nn.Module):
    """Class scores at strides 32, 16 and 8 of MobileNetV3-Large, fused by sum as in FCN-8s.

    The input is zero-padded to a multiple of 32 so every fusion aligns exactly,
    and the output is cropped back to the input's own size.

    Args:
        num_classes: number of output classes.
        width: channels of the 1x1 layer that stands in for VGG's fc7 before scoring.
    """

    def __init__(self, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.features = torchvision.models.mobilenet_v3_large(weights=None).features
        self.head = nn.Sequential(nn.Conv2d(960, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.score32 = score_layer(width, num_classes)
        self.score16 = score_layer(112, num_classes)
        self.score8 = score_layer(40, num_classes)
        self.up32 = bilinear_upsampler(num_classes, 2, padding=1)
        self.up16 = bilinear_upsampler(num_classes, 2, padding=1)
        self.up8 = bilinear_upsampler(num_classes, 8, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 32)
        f8 = self.features[:STRIDE8_END](x)
        f16 = self.features[STRIDE8_END:STRIDE16_END](f8)
        f32 = self.features[STRIDE16_END:](f16)
        score = self.up32(self.score32(self.head(f32))) + self.score16(f16)
        score = self.up16(score) + self.score8(f8)
        return crop_like(self.up8(score), height, width)
