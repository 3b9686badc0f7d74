"""The seed write-up's FCN-16s decoder: five learned stride-2 deconvolutions over VGG16."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .upsample import crop_like, pad_to_multiple

POOL4_END = 24  # torchvision vgg16().features[:24] ends at pool4


class DeconvFCN16s(nn.Module):
    """VGG16 encoder; decoder of five 3x3 stride-2 transposed convolutions with ReLU and
    BatchNorm, pool4 fused by sum after the first, and a 1x1 classifier (the seed's code).

    The input is zero-padded to a multiple of 32 and the output cropped back, so any
    H and W work and the pool4 fusion always aligns exactly.

    Args:
        num_classes: number of output classes.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = torchvision.models.vgg16(weights=None).features
        self.relu = nn.ReLU(inplace=True)
        widths = (512, 512, 256, 128, 64, 32)
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
            for cin, cout in zip(widths, widths[1:], strict=False)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in widths[1:])
        self.classifier = nn.Conv2d(32, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 32)
        x4 = self.features[:POOL4_END](x)
        x5 = self.features[POOL4_END:](x4)
        score = self.relu(self.deconvs[0](x5))
        score = self.bns[0](score + x4)
        for deconv, bn in zip(self.deconvs[1:], self.bns[1:], strict=True):
            score = bn(self.relu(deconv(score)))
        return crop_like(self.classifier(score), height, width)
