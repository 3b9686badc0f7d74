"""The model registry and ``get_model``: architecture + weights record + checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from .deconv_fcn import DeconvFCN16s
from .mobilenet_fcn import MobileNetFCN8s
from .resnet_fcn import resnet_fcn
from .vgg_fcn import VGGFCN, vgg16_backbone_state
from .weights import (
    VOC_CATEGORIES,
    Weights,
    WeightsError,
    copy_matching,
    generic_weights,
    load_into,
    read_checkpoint,
    resolve_uri,
    split_checkpoint,
)

DEFAULT_NUM_CLASSES = 21  # PASCAL VOC, as in the paper


@dataclass(frozen=True)
class ModelSpec:
    """How to build one architecture and where its class count shows in a state dict."""

    build: Callable[[int], nn.Module]
    classifier_key: str
    vgg_backbone: bool = False


MODELS: dict[str, ModelSpec] = {
    "fcn32s": ModelSpec(lambda n: VGGFCN(n, stride=32), "score_fr.weight", vgg_backbone=True),
    "fcn16s": ModelSpec(lambda n: VGGFCN(n, stride=16), "score_fr.weight", vgg_backbone=True),
    "fcn8s": ModelSpec(lambda n: VGGFCN(n, stride=8), "score_fr.weight", vgg_backbone=True),
    "fcn16s_deconv": ModelSpec(DeconvFCN16s, "classifier.weight", vgg_backbone=True),
    "fcn_resnet50": ModelSpec(lambda n: resnet_fcn(50, n), "classifier.4.weight"),
    "fcn_resnet101": ModelSpec(lambda n: resnet_fcn(101, n), "classifier.4.weight"),
    "fcn8s_mobilenet_v3": ModelSpec(MobileNetFCN8s, "score32.weight"),
}

_TORCHVISION = {"categories": VOC_CATEGORIES, "resize": 520}
TORCHVISION_MODELS = "https://download.pytorch.org/models"  # torchvision's own checkpoint URLs
# the classes of pipeline.loop.synthetic (models/ imports nothing from pipeline/)
SCENE_CATEGORIES = ("background", "water", "vegetation", "building", "road")
_SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
WEIGHTS: dict[str, Weights] = {
    "fcn_resnet50_coco": Weights(
        name="fcn_resnet50_coco",
        arch="fcn_resnet50",
        uri="fcn_resnet50_coco-1167a1af.pth",
        sha256="1167a1af",
        url=f"{TORCHVISION_MODELS}/fcn_resnet50_coco-1167a1af.pth",
        **_TORCHVISION,
    ),
    "fcn_resnet101_coco": Weights(
        name="fcn_resnet101_coco",
        arch="fcn_resnet101",
        uri="fcn_resnet101_coco-7ecb50ca.pth",
        sha256="7ecb50ca",
        url=f"{TORCHVISION_MODELS}/fcn_resnet101_coco-7ecb50ca.pth",
        **_TORCHVISION,
    ),
    # trained by jobs.train on 320 synthetic scenes; fp16 tensors, loaded into the float32 model
    "fcn8s_mobilenet_v3_scenes": Weights(
        name="fcn8s_mobilenet_v3_scenes",
        arch="fcn8s_mobilenet_v3",
        uri=os.path.join(_SHIPPED, "fcn8s_mobilenet_v3_scenes.pth"),
        sha256="528b7cb5c472ada5c16b3fb64f21582ba9427deab0a2ee2496689e1e50e7addd",
        categories=SCENE_CATEGORIES,
        resize=None,
    ),
}


def list_models() -> list[str]:
    """Names accepted by ``get_model``."""
    return sorted(MODELS)


def list_weights() -> list[str]:
    """Registered weights names accepted by ``get_model(weights=...)``."""
    return sorted(WEIGHTS)


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(list_models())}")
    return MODELS[name]


def find_weights(name: str, weights: str) -> Weights | None:
    """The registered record for a weights name or for a URI ending in a registered file name."""
    record = WEIGHTS.get(weights) or next(
        (w for w in WEIGHTS.values() if w.uri and weights.rsplit("/", 1)[-1] == w.uri), None
    )
    if record and record.arch != name:
        raise WeightsError(
            f"weights {weights!r} belong to model {record.arch!r}, not {name!r}: pass --model {record.arch}"
        )
    if record and record.name != weights:
        record = replace(record, uri=weights)
    return record


def get_model(
    name: str,
    *,
    num_classes: int | None = None,
    weights: str | Weights | None = None,
    backbone_weights: str | None = None,
    init_from: str | None = None,
    storage_options: dict | None = None,
) -> nn.Module:
    """Build a registered FCN; the returned module carries its ``Weights`` record as ``.weights_meta``.

    Args:
        name: one of ``list_models()``.
        num_classes: output classes; taken from the checkpoint when omitted, else 21.
        weights: ``None`` (random init, never touches the network), a registered
            weights name, a ``Weights`` record, or a URI of a checkpoint.
        backbone_weights: URI of torchvision's ``vgg16-397923af.pth`` for the VGG-based nets.
        init_from: URI of a trained net whose same-named layers initialise this one
            (FCN-16s from FCN-32s, FCN-8s from FCN-16s, as in the paper).
        storage_options: fsspec options for S3 (endpoint, profile, anonymous access).
    """
    spec = model_spec(name)
    record = weights if isinstance(weights, Weights) else find_weights(name, weights) if weights else None
    state, sha = None, None
    if weights is not None:
        uri = resolve_uri(record.uri if record else weights)
        obj, sha = read_checkpoint(uri, sha256=record.sha256 if record else None, storage_options=storage_options)
        state, embedded = split_checkpoint(obj)
        if record is None and embedded:
            record = Weights.from_dict({**embedded, "uri": weights})
        found = _classes_in(state, spec, uri)
        if num_classes is not None and num_classes != found:
            raise WeightsError(f"{uri} has {found} classes but num_classes={num_classes} was asked for")
        num_classes = found
        record = record or generic_weights(name, weights, num_classes)
        if record.num_classes != num_classes:
            raise WeightsError(f"{uri} has {num_classes} classes but its record names {record.num_classes}")
    num_classes = num_classes or DEFAULT_NUM_CLASSES
    model = spec.build(num_classes)
    if state is not None:
        load_into(model, state, uri)
    if backbone_weights:
        _load_vgg_backbone(model, name, spec, backbone_weights, storage_options)
    if init_from:
        obj, _ = read_checkpoint(resolve_uri(init_from), storage_options=storage_options)
        copy_matching(model, split_checkpoint(obj)[0], init_from)
    model.weights_meta = replace(record, sha256=sha) if record else generic_weights(name, None, num_classes)
    return model


def _classes_in(state: dict[str, torch.Tensor], spec: ModelSpec, uri: str) -> int:
    if spec.classifier_key not in state:
        raise WeightsError(f"{uri} has no {spec.classifier_key!r}: it is not a checkpoint of this model")
    return int(state[spec.classifier_key].shape[0])


def _load_vgg_backbone(model: nn.Module, name: str, spec: ModelSpec, uri: str, storage_options: dict | None) -> None:
    if not spec.vgg_backbone:
        raise WeightsError(f"backbone_weights applies to the VGG16 models only, not {name!r}")
    obj, _ = read_checkpoint(resolve_uri(uri), storage_options=storage_options)
    classifier_state = split_checkpoint(obj)[0]
    if "classifier.0.weight" not in classifier_state:
        raise WeightsError(f"{uri} is not torchvision's VGG16 classifier checkpoint (no classifier.0.weight)")
    state = vgg16_backbone_state(classifier_state)
    if name == "fcn16s_deconv":  # the seed's decoder has no fc6/fc7
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    own = model.state_dict()
    missing = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if missing:
        raise WeightsError(f"{uri} does not fit the VGG16 backbone: {', '.join(missing[:8])}")
    model.load_state_dict(state, strict=False)
