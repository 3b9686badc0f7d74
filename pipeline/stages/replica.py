"""One FCN replica on its device: the model calls, and the reduction of its logits to masks and tallies.

``Replica`` loads the model once (BatchNorm folded, channels_last) and turns a stack of images of one
size into the top class and its probability at any output size, strip by strip (``top_class``), or
straight into masks, per-class pixel counts and confidence sums. The batch around it (grouping by size,
tiling, scene windows, JPEGs decoded on the device) is ``segment.Segmenter``'s.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

import models

from ..config import RunConfig
from .top_class import strip_budget, top_class_strips


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 or fp16 autocast on CUDA; CPU inference stays fp32."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_model(config: RunConfig, storage: dict) -> torch.nn.Module:
    """The run's model: its checkpoint, or random weights sized by ``--classes`` (same in every replica).

    Args:
        config: model, weights and class names of the run.
        storage: fsspec options for an S3 checkpoint.
    """
    weights = None if config.random_weights else config.weights
    num_classes = len(config.classes) if config.classes and config.random_weights else None
    torch.manual_seed(0)  # random weights are the same in the driver's check and in every replica
    return models.get_model(config.model, weights=weights, num_classes=num_classes, storage_options=storage)


def default_batch_size(gpu: bool) -> int:
    """4 on CPU (measured here, fcn8s_mobilenet_v3 at 512: 4 > 2 > 8 > 16 images/s), 32 on GPU (not measured)."""
    return 32 if gpu else 4


def stack_images(images: list, device: torch.device) -> torch.Tensor:
    """``[N, h, w, 3]`` uint8 on ``device`` from arrays of the decode tasks and tensors decoded in the actor."""
    if all(isinstance(image, np.ndarray) for image in images):
        return torch.from_numpy(np.stack(images)).to(device, non_blocking=True)  # one host copy, one transfer
    # a group may mix both: a JPEG that Pillow decoded beside ones decoded on the device
    return torch.stack(
        [im if isinstance(im, torch.Tensor) else torch.from_numpy(np.array(im)).to(device) for im in images]
    )


class Replica:
    """The run's model on this process's device (CUDA when asked and present, else CPU with ``--threads``).

    Args:
        config: model, weights, device, precision and threads of the run.
        storage: fsspec options for an S3 checkpoint.
    """

    def __init__(self, config: RunConfig, storage: dict) -> None:
        self.device = pick_device(config.device)
        if self.device.type == "cpu":
            torch.set_num_threads(config.threads or max(1, int(config.cpus_per_actor)))
        model = build_model(config, storage)
        self.meta = model.weights_meta
        self.num_classes = self.meta.num_classes
        self.amp = autocast_dtype(self.device, config.precision)
        # BatchNorm folded into its convolution: measured 1.6x faster on CPU here (fcn8s_mobilenet_v3)
        models.fold_batchnorm(model.eval())
        # channels_last on CUDA and on CPU alike: measured 1.85x faster on CPU here (oneDNN NHWC kernels)
        self.model = model.to(self.device, memory_format=torch.channels_last)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def logits(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[N, h, w, 3]`` uint8 -> float32 logits ``[N, C, h, w]`` at the fed size."""
        x = self.meta.normalise(torch.as_tensor(images).to(self.device, non_blocking=True))
        amp = torch.autocast("cuda", dtype=self.amp) if self.amp else contextlib.nullcontext()
        with amp:
            logits = self.model(x)
        return logits.float()

    def forward(
        self, images: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, h, w, 3]`` uint8 -> ``(class [N, H, W], probability of it)``, at ``size`` if given.

        Built strip by strip, so the upsampled logits (``C x H x W`` floats) never exist at once.
        """
        logits = self.logits(images)
        n, _, h, w = logits.shape
        height, width = size or (h, w)
        classes = torch.empty((n, height, width), dtype=torch.int64, device=logits.device)
        prob = torch.empty((n, height, width), dtype=torch.float32, device=logits.device)
        for y0, y1, top, p in top_class_strips(logits, (height, width), strip_budget(logits.device)):
            classes[:, y0:y1], prob[:, y0:y1] = top, p
        return classes, prob

    def segment(self, images: torch.Tensor, height: int, width: int, valid: list):
        """Masks ``[N, height, width]`` (255 where not valid), pixel counts and confidence sums ``[N, C]``.

        The model runs once; the mask and the tallies are then filled a strip of rows at a time,
        so neither the upsampled logits nor a full-size probability ever exist.
        """
        logits = self.logits(images)
        n, c, device = len(images), self.num_classes, logits.device
        mask = torch.empty((n, height, width), dtype=torch.uint8 if c < 256 else torch.int32, device=device)
        # one bin past the last image's classes takes the pixels left out, then is dropped
        counts = torch.zeros(n * c + 1, dtype=torch.int64, device=device)
        conf = torch.zeros(n * c + 1, dtype=torch.float64, device=device)
        keep = None  # the common case, every pixel valid, skips the masking
        if any(v is not None for v in valid):
            keep = torch.ones((n, height, width), dtype=torch.bool, device=device)
            for j, v in enumerate(valid):
                if v is not None:
                    keep[j] = torch.from_numpy(v).to(device)
        offset = torch.arange(n, device=device).view(n, 1, 1) * c
        for y0, y1, classes, prob in top_class_strips(logits, (height, width), strip_budget(device)):
            flat = classes + offset
            if keep is not None:
                outside = ~keep[:, y0:y1]
                flat.masked_fill_(outside, n * c)
                classes.masked_fill_(outside, 255)
            mask[:, y0:y1] = classes
            counts += torch.bincount(flat.view(-1), minlength=n * c + 1)
            conf += torch.bincount(flat.view(-1), weights=prob.view(-1).double(), minlength=n * c + 1)
        counts, conf = counts[:-1], conf[:-1]
        return mask.cpu().numpy(), counts.view(n, c).cpu().numpy(), conf.view(n, c).cpu().numpy()
