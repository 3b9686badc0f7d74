"""FCN-32s, FCN-16s and FCN-8s over VGG16, as in the paper and its reference code.

The first convolution pads by 100 and pools round up (Caffe's ceil mode), so
any input size gives a score map at least as large as the input; skips and the
final output are then cropped at the reference code's exact offsets.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from .upsample import bilinear_upsampler, crop_like

# Offsets of the reference Caffe nets (voc-fcn{32,16,8}s/net.py).
POOL4_OFFSET, POOL3_OFFSET = 5, 9
FINAL_OFFSET = {32: 19, 16: 27, 8: 31}
# Slices of torchvision's vgg16().features ending at pool3, pool4 and pool5.
POOL3_END, POOL4_END = 17, 24


def vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 convolutions (same parameter names), padded and ceil-pooled like Caffe."""
    features = torchvision.models.vgg16(weights=None).features
    features[0].padding = (100, 100)
    for layer in features:
        if isinstance(layer, nn.MaxPool2d):
            layer.ceil_mode = True
    return features


def score_layer(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 class-scoring convolution initialised to zero (the paper's choice)."""
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class VGGFCN(nn.Module):
    """FCN over VGG16 with output stride 32, 16 or 8 (the paper's FCN-32s/16s/8s).

    Args:
        num_classes: number of output classes.
        stride: 32 (no skip), 16 (pool4 skip) or 8 (pool4 and pool3 skips).
    """

    def __init__(self, num_classes: int, stride: int = 8) -> None:
        super().__init__()
        if stride not in FINAL_OFFSET:
            raise ValueError(f"stride must be 32, 16 or 8, got {stride}")
        self.stride = stride
        self.features = vgg16_features()
        self.fc6 = nn.Sequential(nn.Conv2d(512, 4096, 7), nn.ReLU(inplace=True), nn.Dropout2d())
        self.fc7 = nn.Sequential(nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout2d())
        self.score_fr = score_layer(4096, num_classes)
        if stride <= 16:
            self.score_pool4 = score_layer(512, num_classes)
            self.upscore2 = bilinear_upsampler(num_classes, 2)
        if stride == 8:
            self.score_pool3 = score_layer(256, num_classes)
            self.upscore_pool4 = bilinear_upsampler(num_classes, 2)
        self.upscore = bilinear_upsampler(num_classes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pool3 = self.features[:POOL3_END](x)
        pool4 = self.features[POOL3_END:POOL4_END](pool3)
        score = self.score_fr(self.fc7(self.fc6(self.features[POOL4_END:](pool4))))
        if self.stride <= 16:
            score = self.upscore2(score)
            skip = self.score_pool4(pool4)
            score = score + crop_like(skip, score.shape[2], score.shape[3], POOL4_OFFSET)
        if self.stride == 8:
            score = self.upscore_pool4(score)
            skip = self.score_pool3(pool3)
            score = score + crop_like(skip, score.shape[2], score.shape[3], POOL3_OFFSET)
        return crop_like(self.upscore(score), height, width, FINAL_OFFSET[self.stride])


def vgg16_backbone_state(classifier_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision's ``vgg16-397923af.pth`` onto ``VGGFCN`` names: fc6 and fc7 become convolutions."""
    state = {k: v for k, v in classifier_state.items() if k.startswith("features.")}
    state["fc6.0.weight"] = classifier_state["classifier.0.weight"].reshape(4096, 512, 7, 7)
    state["fc6.0.bias"] = classifier_state["classifier.0.bias"]
    state["fc7.0.weight"] = classifier_state["classifier.3.weight"].reshape(4096, 4096, 1, 1)
    state["fc7.0.bias"] = classifier_state["classifier.3.bias"]
    return state


def convolutionalize(vgg: torchvision.models.VGG) -> nn.Sequential:
    """The paper's surgery: a VGG classifier turned into a net that gives a map of class scores.

    fc6 becomes a 7x7 convolution and fc7, fc8 become 1x1 convolutions carrying the
    classifier's own weights. On a 224x224 input the 1x1 output equals the
    classifier's logits; a larger input gives a coarse heat map of class scores.

    Args:
        vgg: a torchvision VGG (any depth) whose classifier is fc6-ReLU-Dropout-fc7-ReLU-Dropout-fc8.
    """
    fc6, fc7, fc8 = (m for m in vgg.classifier if isinstance(m, nn.Linear))
    channels = fc6.in_features // 49
    convs = []
    for fc, kernel, in_channels in ((fc6, 7, channels), (fc7, 1, fc6.out_features), (fc8, 1, fc7.out_features)):
        conv = nn.Conv2d(in_channels, fc.out_features, kernel)
        with torch.no_grad():
            conv.weight.copy_(fc.weight.reshape(conv.weight.shape))
            conv.bias.copy_(fc.bias)
        convs.append(conv)
    return nn.Sequential(
        vgg.features,
        convs[0], nn.ReLU(inplace=True), nn.Dropout(),
        convs[1], nn.ReLU(inplace=True), nn.Dropout(),
        convs[2],
    )  # fmt: skip
