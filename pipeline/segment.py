"""The inference stage: one FCN replica per actor, batches grouped by image size."""

from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np
import ray
import torch
from torch.nn import functional as F

import models

from .config import RunConfig
from .decode import failed


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


class Segmenter:
    """Loads the model once; ``__call__`` maps decoded rows to masks and per-class statistics.

    Args:
        config: the run configuration (model, weights, device, precision, threads).
        storage: fsspec options for an S3 checkpoint.
    """

    def __init__(self, config: RunConfig, storage: dict, classes: tuple[str, ...] | None = None) -> None:
        self.device = pick_device(config.device)
        if self.device.type == "cpu":
            torch.set_num_threads(config.threads or max(1, int(config.cpus_per_actor)))
        weights = None if config.random_weights else config.weights
        num_classes = len(classes) if classes and config.random_weights else None
        torch.manual_seed(0)  # random weights are the same in every replica
        model = models.get_model(config.model, weights=weights, num_classes=num_classes, storage_options=storage)
        meta = model.weights_meta
        self.num_classes = meta.num_classes
        self.mean = torch.tensor(meta.mean, device=self.device).view(1, 3, 1, 1) * meta.value_range
        self.std = torch.tensor(meta.std, device=self.device).view(1, 3, 1, 1) * meta.value_range
        self.amp = autocast_dtype(self.device, config.precision)
        memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.memory_format = memory_format
        self.model = model.eval().to(self.device, memory_format=memory_format)
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(batch["image_id"])
        masks = np.empty(rows, dtype=object)
        pixels = np.zeros((rows, self.num_classes), np.int64)
        confidence = np.zeros((rows, self.num_classes), np.float64)
        errors = np.array([e if failed(e) else None for e in batch["error"]], dtype=object)
        groups = defaultdict(list)  # same fed size and same source size: no padding ever changes a result
        for i in range(rows):
            masks[i] = np.zeros((1, 1), np.uint8)
            if errors[i] is None:
                key = (batch["image"][i].shape, int(batch["height"][i]), int(batch["width"][i]))
                groups[key].append(i)
        with torch.inference_mode():
            for (_, height, width), index in groups.items():
                for part, result in self.segment_fitting(batch["image"], index, height, width):
                    if result is None:
                        errors[part[0]] = f"out of GPU memory even alone ({height}x{width}): lower --resize"
                        continue
                    mask, counts, conf = result
                    for j, i in enumerate(part):
                        masks[i] = mask[j]
                    pixels[part], confidence[part] = counts, conf
        out = {k: batch[k] for k in ("image_id", "source", "height", "width")}
        node = np.full(rows, self.node_id, dtype=object)  # for the manifest's per-node row counts
        return {
            **out,
            "error": errors,
            "mask": masks,
            "class_pixels": pixels,
            "confidence_sum": confidence,
            "node": node,
        }

    def segment_fitting(self, images: np.ndarray, index: list[int], height: int, width: int):
        """Yield ``(rows, result)``; on CUDA out-of-memory the rows are retried in halves.

        Only an image that does not fit even alone gets ``result = None`` (an error row).
        """
        try:
            yield index, self.segment(np.stack([images[i] for i in index]), height, width)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if len(index) == 1:
                yield index, None
                return
            half = len(index) // 2
            yield from self.segment_fitting(images, index[:half], height, width)
            yield from self.segment_fitting(images, index[half:], height, width)

    def segment(self, images: np.ndarray, height: int, width: int):
        """``[N, h, w, 3]`` uint8 -> masks ``[N, height, width]``, pixel counts and confidence sums ``[N, C]``."""
        x = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        amp = torch.autocast("cuda", dtype=self.amp) if self.amp else contextlib.nullcontext()
        with amp:
            logits = self.model(x)
        logits = logits.float()
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        prob, mask = logits.softmax(dim=1).max(dim=1)
        n, c = len(images), self.num_classes
        flat = (mask + torch.arange(n, device=mask.device).view(n, 1, 1) * c).flatten()
        counts = torch.bincount(flat, minlength=n * c).view(n, c)
        conf = torch.bincount(flat, weights=prob.flatten().double(), minlength=n * c).view(n, c)
        mask_dtype = torch.uint8 if c <= 256 else torch.int32
        return mask.to(mask_dtype).cpu().numpy(), counts.cpu().numpy(), conf.cpu().numpy()
