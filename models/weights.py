"""Weights as declared data, and the one safe way to load a checkpoint.

A `Weights` record carries everything the pipeline needs beside the tensors:
where the file is, its hash, the class names and the input normalisation.
Loading goes through fsspec (plain path, ``file://``, ``s3://``), checks the
sha256 when one is known and never unpickles arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
from dataclasses import dataclass

import fsspec
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VOC_CATEGORIES = (
    "__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# Where registered checkpoints are looked for: torchvision's own cache, so a
# user who once downloaded a file with torchvision already has it.
WEIGHTS_DIR_ENV = "FCN_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = os.path.join("~", ".cache", "torch", "hub", "checkpoints")


class WeightsError(ValueError):
    """A checkpoint that cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class Weights:
    """A checkpoint described as data.

    Args:
        name: registered name, or the file name for an ad-hoc checkpoint.
        arch: the registered model it belongs to.
        uri: file location (path, ``file://`` or ``s3://``); relative names are
            looked up in ``$FCN_WEIGHTS_DIR`` (default torchvision's cache).
        sha256: full hash or a prefix of it (torchvision names embed 8 hex digits);
            ``None`` when unknown.
        categories: class names, index = class id.
        mean, std: per-channel normalisation of values scaled to [0, 1], in ``color_order``.
        color_order: ``RGB``, or ``BGR`` for a checkpoint trained on BGR input (images are flipped).
        resize: preferred length of the shorter side, or ``None`` for native size.
        url: where the checkpoint is published (``python -m jobs.weights fetch`` reads it; a run never does).
    """

    name: str
    arch: str
    uri: str | None
    sha256: str | None
    categories: tuple[str, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "RGB"
    value_range: float = 255.0
    resize: int | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if self.color_order not in ("RGB", "BGR"):
            raise WeightsError(f"weights {self.name}: color_order {self.color_order!r} is neither RGB nor BGR")

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, h, w, 3]`` uint8 -> normalised float ``[N, 3, h, w]``, channels_last (the same memory).

        Rows of ``w * 3`` values against a repeated ``(mean, 1 / std)`` row: 2.5x faster on CPU than
        the same arithmetic broadcast over a channel axis of 3, and bit-identical to it.
        """
        if self.color_order == "BGR":  # a checkpoint trained on BGR input (Caffe's, OpenCV's); mean/std in BGR
            images = images.flip(-1)
        n, h, w, _ = images.shape
        mean = torch.tensor(self.mean, device=images.device) * self.value_range
        inv_std = 1 / (torch.tensor(self.std, device=images.device) * self.value_range)
        rows = images.reshape(n * h, w * 3)
        x = (rows - mean.repeat(w)).mul_(inv_std.repeat(w))  # uint8 - float32: one pass to float
        return x.view(n, h, w, 3).permute(0, 3, 1, 2)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Weights:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise WeightsError(f"weights record has unknown fields {sorted(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def generic_weights(arch: str, uri: str | None, num_classes: int, sha256: str | None = None) -> Weights:
    """A record for a checkpoint nobody registered: class_0, class_1, ..."""
    name = os.path.basename(uri) if uri else "random"
    categories = tuple(f"class_{i}" for i in range(num_classes))
    return Weights(name=name, arch=arch, uri=uri, sha256=sha256, categories=categories)


def resolve_uri(uri: str) -> str:
    """Make a registered relative file name absolute; leave real URIs alone."""
    if "://" in uri or os.path.isabs(uri) or uri.startswith("~") or os.sep in uri:
        return os.path.expanduser(uri)
    base = os.environ.get(WEIGHTS_DIR_ENV, DEFAULT_WEIGHTS_DIR)
    return os.path.join(os.path.expanduser(base), uri)


def read_checkpoint(uri: str, *, sha256: str | None = None, storage_options: dict | None = None):
    """Read a checkpoint through fsspec and return ``(object, sha256_hex)``.

    Args:
        uri: path, ``file://`` or ``s3://`` location of a file saved by ``torch.save``.
        sha256: expected hash or prefix; checked before anything is unpickled.
        storage_options: fsspec options (S3 endpoint, credentials profile, ...).
    """
    buffer = io.BytesIO()
    digest = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
                buffer.write(chunk)
    except FileNotFoundError as exc:
        raise WeightsError(
            f"weights file not found: {uri}. Check the path, or set ${WEIGHTS_DIR_ENV} to the folder "
            "that holds the checkpoint; a registered one can be fetched on request with "
            "`python -m jobs.weights fetch NAME` (a run never downloads)."
        ) from exc
    except (OSError, PermissionError) as exc:
        raise WeightsError(f"cannot read weights file {uri}: {exc}") from exc
    actual = digest.hexdigest()
    if sha256 and not actual.startswith(sha256.lower()):
        raise WeightsError(
            f"sha256 of {uri} is {actual}, expected {sha256}: the file is corrupt or is not "
            "the checkpoint it is named for. Download it again."
        )
    buffer.seek(0)
    try:
        obj = torch.load(buffer, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{uri} needs arbitrary unpickling (it stores Python objects, not only tensors), "
            "which we refuse for safety. Re-save it with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise WeightsError(f"{uri} is not a readable PyTorch checkpoint: {exc}") from exc
    return obj, actual


def split_checkpoint(obj) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Return ``(state_dict, weights_record_or_None)`` from any supported layout.

    Supported: a plain state dict, ``{"state_dict": ..., "weights": {...}}`` as
    saved by ``jobs.train``, and ``{"model": ...}`` as saved by torchvision's
    reference scripts.
    """
    if not isinstance(obj, dict):
        raise WeightsError(f"checkpoint holds a {type(obj).__name__}, expected a state dict")
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            return obj[key], obj.get("weights")
    return obj, None


def load_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], uri: str) -> None:
    """Load strictly, naming missing, unexpected and mis-shaped keys in one error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    )
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", mis_shaped)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError(
            f"{uri} does not fit {type(module).__name__}: "
            + "; ".join(problems)
            + ". Check that --model matches the checkpoint."
        )
    module.load_state_dict(state_dict, strict=True)


def copy_matching(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], uri: str) -> list[str]:
    """Copy every tensor whose name and shape match (the paper's FCN-32s -> 16s -> 8s init).

    Returns the copied names; raises when nothing matches.
    """
    own = module.state_dict()
    shared = {k: v for k, v in state_dict.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not shared:
        raise WeightsError(f"{uri} shares no layer with {type(module).__name__}: nothing to initialise from")
    module.load_state_dict(shared, strict=False)
    return sorted(shared)
