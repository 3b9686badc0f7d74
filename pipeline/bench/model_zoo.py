"""Parameters and CPU images/s of every registered model (random weights)."""

from __future__ import annotations

import statistics
import time

import torch

import models


def model_zoo(size: int, threads: int, batch_size: int, reps: int = 3) -> list[dict]:
    """Parameters and CPU images/s at ``size`` x ``size`` of every registered model (random weights)."""
    torch.set_num_threads(threads)
    rows = []
    for name in models.list_models():
        model = models.get_model(name).eval()
        params = sum(p.numel() for p in model.parameters())
        models.fold_batchnorm(model)  # run as the pipeline runs it: BatchNorm folded, channels_last
        model = model.to(memory_format=torch.channels_last)
        x = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            model(x)  # warm-up
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - started)
        rows.append({"model": name, "parameters": params, "images_per_second": batch_size / statistics.median(times)})
    return rows
