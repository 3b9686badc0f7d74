"""torchvision's FCN-ResNet, returned as a module that gives the logits tensor."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCN, FCNHead


class ResNetFCN(FCN):
    """torchvision's FCN with the same parameter names (auxiliary head included, so
    ``fcn_resnet50_coco-1167a1af.pth`` loads strictly), whose forward returns logits only.

    The auxiliary head is kept for training and checkpoints; inference skips it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        features = self.backbone(x)
        return F.interpolate(self.classifier(features["out"]), size=x.shape[-2:], mode="bilinear", align_corners=False)


def resnet_fcn(depth: int, num_classes: int) -> nn.Module:
    """Assemble torchvision's dilated ResNet-{50,101} with its FCN and auxiliary heads."""
    resnet = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}[depth]
    backbone = resnet(weights=None, replace_stride_with_dilation=[False, True, True])
    backbone = IntermediateLayerGetter(backbone, return_layers={"layer4": "out", "layer3": "aux"})
    return ResNetFCN(backbone, FCNHead(2048, num_classes), FCNHead(1024, num_classes))
