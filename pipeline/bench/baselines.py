"""What the pipeline is measured against: (a) the model alone on tensors in memory, (b) the plain loop.

Both run the model as the pipeline does (BatchNorm folded, channels_last, the same autocast) in one process.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

import models

from ..stages.postprocess import encode_png
from ..stages.replica import autocast_dtype, pick_device
from .inputs import BenchConfig
from .measure import GpuBusy


def load_model(bench: BenchConfig) -> tuple[torch.nn.Module, torch.device, contextlib.AbstractContextManager]:
    """The model as the pipeline runs it (BatchNorm folded, channels_last), its device and autocast."""
    weights = None if bench.weights == "random" else bench.weights
    model = models.get_model(bench.model, weights=weights).eval()
    models.fold_batchnorm(model)
    device = pick_device(bench.device)
    dtype = autocast_dtype(device, bench.precision)
    amp = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
    return model.to(device, memory_format=torch.channels_last), device, amp


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def normalise(images: np.ndarray, meta: models.Weights) -> torch.Tensor:
    """Normalisation as a user's own loop writes it (torchvision style), not the pipeline's ``Weights.normalise``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / meta.value_range
    mean, std = torch.tensor(meta.mean).view(1, 3, 1, 1), torch.tensor(meta.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def model_alone(bench: BenchConfig, paths: list[Path]) -> tuple[float, dict | None]:
    """(a) forward passes over tensors already in memory (on the device): the ceiling.

    Returns images/s and the GPU's busy figures (``None`` on CPU).
    """
    torch.set_num_threads(bench.threads)
    model, device, amp = load_model(bench)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    batches = [
        normalise(images[i : i + bench.batch_size], model.weights_meta).to(device)
        for i in range(0, len(paths), bench.batch_size)
    ]
    with torch.inference_mode(), amp:
        for x in batches[:3]:  # warm-up: kernels chosen, memory pools grown
            model(x)
        synchronize(device)
        with GpuBusy() as gpu:
            started = time.perf_counter()
            for x in batches:
                model(x).argmax(dim=1)
            synchronize(device)
            seconds = time.perf_counter() - started
    return len(paths) / seconds, gpu.summary()


def plain_loop(bench: BenchConfig, paths: list[Path], out: Path) -> tuple[float, dict | None]:
    """(b) one process: read, decode, preprocess, run, encode masks, write Parquet with pyarrow.

    It computes what the pipeline's masks table holds: the mask, pixels and mean confidence per class.
    Returns images/s and the GPU's busy figures (``None`` on CPU).
    """
    torch.set_num_threads(bench.threads)
    with GpuBusy() as gpu:
        started = time.perf_counter()
        rows = plain_rows(bench, paths)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows), out / "masks.parquet")
        seconds = time.perf_counter() - started
    return len(paths) / seconds, gpu.summary()


def plain_rows(bench: BenchConfig, paths: list[Path]) -> dict[str, list]:
    """The body of the loop a user writes: model load, then decode, run and encode batch by batch."""
    model, device, amp = load_model(bench)
    classes = model.weights_meta.num_classes
    rows = {"source": [], "height": [], "width": [], "mask_png": [], "class_pixels": [], "class_confidence": []}
    with torch.inference_mode():
        for i in range(0, len(paths), bench.batch_size):
            chunk = paths[i : i + bench.batch_size]
            images = np.stack([np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGB")) for p in chunk])
            with amp:
                logits = model(normalise(images, model.weights_meta).to(device))
            probs, masks = (t.cpu() for t in logits.float().softmax(dim=1).max(dim=1))
            for path, mask, prob in zip(chunk, masks.to(torch.uint8).numpy(), probs.numpy(), strict=True):
                pixels = np.bincount(mask.ravel(), minlength=classes)
                confidence = np.bincount(mask.ravel(), weights=prob.ravel(), minlength=classes)
                rows["source"].append(str(path))
                rows["height"].append(mask.shape[0])
                rows["width"].append(mask.shape[1])
                rows["mask_png"].append(encode_png(mask))
                rows["class_pixels"].append(pixels.tolist())
                rows["class_confidence"].append((confidence / np.maximum(pixels, 1)).tolist())
    return rows


def actor_breakdown(bench: BenchConfig, paths: list[Path], reps: int = 5) -> dict[str, float]:
    """Milliseconds per batch of each part of the inference actor's work, on one process and no Ray.

    Where the actor's Ray task time per batch (the manifest's stage seconds) exceeds the
    ``call_*`` figures, the rest is Ray's own per-batch work in the actor.
    """
    from ..config import RunConfig
    from ..stages.decode import decode_batch
    from ..stages.segment import Segmenter

    config = RunConfig(
        input="in", output="out", model=bench.model, weights=bench.weights, batch_size=bench.batch_size,
        device=bench.device, precision=bench.precision, threads=bench.actor_threads,
    )  # fmt: skip
    segmenter = Segmenter(config, storage={})
    blobs = [p.read_bytes() for p in paths[: bench.batch_size]]
    rows = {"image_id": [str(p) for p in paths[: len(blobs)]], "bytes": blobs, "error": [None] * len(blobs)}
    batch = {k: np.array(v, dtype=object) for k, v in {**rows, "source": rows["image_id"]}.items()}
    decoded = decode_batch(batch, resize=None, max_pixels=10**9)
    left = decode_batch(batch, resize=None, max_pixels=10**9, jpeg_in_actor_below=10**6)
    host = np.stack(list(decoded["image"]))
    x = torch.from_numpy(host).to(segmenter.device)
    size, device = host.shape[1:3], segmenter.device
    parts = {
        "host_to_device": lambda: torch.from_numpy(host).to(device),
        "decode_jpegs_in_actor": lambda: segmenter.decode_jpegs(left["jpeg"], list(left["image"]), left["error"]),
        "forward": lambda: segmenter.forward(x, size),
        "segment": lambda: segmenter.segment(x, *size, [None] * len(host)),
        "call_task_decoded": lambda: segmenter(decoded),
        "call_actor_decoded": lambda: segmenter(left),
    }
    timings = {}
    with torch.inference_mode():
        for name, part in parts.items():
            part()  # warm-up
            synchronize(device)
            started = time.perf_counter()
            for _ in range(reps):
                part()
            synchronize(device)
            timings[name] = (time.perf_counter() - started) / reps * 1000
    return timings
