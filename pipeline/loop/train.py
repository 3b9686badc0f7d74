"""Train an FCN with Ray Train on a Parquet dataset of image and mask PNGs: a checkpoint per epoch, resumable.

The driver streams the ``train`` and ``val`` splits with Ray Data; each worker decodes, crops and flips
in its loop, reports the validation mean IU every epoch with a checkpoint, and a later run with the same
``--output`` continues from the last one (Ray Train keeps its run under ``OUTPUT/train``). Reading and
preparing the examples is ``pipeline.loop.train_data``'s; the run's settings are ``pipeline.loop.train_config``'s.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F

import models
from models.weights import Weights

from ..cluster import init_ray
from ..io.storage import arrow_fs, storage_options
from .metrics import IGNORE, confusion_vector, scores
from .train_config import TrainConfig
from .train_data import decode, random_crop, read_splits, split_datasets, to_input

RUN_NAME = "train"  # Ray Train's run folder inside --output
MODEL_FILE, STATE_FILE = "model.pth", "train_state.pth"
SCORE = "val_mean_iu"


def learning_rate(config: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    """Linear warm-up over the first epoch, then cosine to zero at step ``total``."""
    if step < per_epoch:
        return config.lr * (step + 1) / per_epoch
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, (step - per_epoch) / max(1, total - per_epoch))))


def planned_epochs(config: TrainConfig, done: int, seconds: float) -> int:
    """``--epochs``, cut to what fits in ``--max-minutes`` at the pace so far."""
    if not config.max_minutes or done == 0:
        return config.epochs
    return max(done, min(config.epochs, done + int((config.max_minutes * 60 - seconds) / (seconds / done))))


def all_reduce_max(value: float) -> float:
    """The largest ``value`` over all workers (itself when there is one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor[0])


def validate(model: torch.nn.Module, record: Weights) -> np.ndarray:
    """Confusion matrix of the ``val`` split (never split across workers), each image whole at its own size."""
    n, confusion = record.num_classes, np.zeros(record.num_classes**2, np.int64)
    device = ray.train.torch.get_device()
    model.eval()
    with torch.inference_mode():
        for batch in ray.train.get_dataset_shard("val").iter_batches(batch_size=8, batch_format="numpy"):
            for image_png, mask_png in zip(batch["image_png"], batch["mask_png"], strict=True):
                image, mask = decode(image_png, mask_png)
                pred = model(to_input(image[None], record, device)).argmax(1)[0].cpu().numpy()
                confusion += confusion_vector(mask, pred, n)
    return confusion


def restore(model: torch.nn.Module) -> dict:
    """Load the last reported checkpoint (Ray Train hands it over on a rerun) into ``model``; its train state."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {"epoch": 0, "step": 0, "seconds": 0.0}
    with checkpoint.as_directory() as folder:
        model.load_state_dict(torch.load(os.path.join(folder, MODEL_FILE), weights_only=True)["state_dict"])
        return torch.load(os.path.join(folder, STATE_FILE), weights_only=True)


def build(config: TrainConfig) -> tuple[torch.nn.Module, Weights]:
    """The net (the same initial weights on every worker) and the record its checkpoints carry."""
    torch.manual_seed(config.seed)
    options = storage_options(config.init_from or "", config) or None  # --s3-* flags reach an s3:// --init-from
    model = models.get_model(
        config.model, num_classes=len(config.classes), init_from=config.init_from, storage_options=options
    )
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):  # MobileNetV3's 0.01 lags far behind a short run
            layer.momentum = 0.1
    name = f"{config.model}_trained"
    return model, Weights(name=name, arch=config.model, uri=None, sha256=None, categories=config.classes)


def train_epoch(model, optimizer, config: TrainConfig, record: Weights, rng, steps: tuple[int, int, int]) -> list:
    """One pass over this worker's ``train`` shard: decode, crop and flip, then one AdamW step per batch.

    Args:
        steps: ``(first step, steps in the whole schedule, steps per epoch)``, for the learning rate.
    """
    step, total, per_epoch = steps
    device, losses = ray.train.torch.get_device(), []
    model.train()
    shard = ray.train.get_dataset_shard("train")
    for batch in shard.iter_batches(batch_size=config.batch_size, local_shuffle_buffer_size=4 * config.batch_size):
        pairs = [decode(i, m) for i, m in zip(batch["image_png"], batch["mask_png"], strict=True)]
        crops = [random_crop(image, mask, config.crop, rng) for image, mask in pairs]
        x = to_input(np.stack([c[0] for c in crops]), record, device)
        y = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step + len(losses), total, per_epoch)
        loss = F.cross_entropy(model(x), y, ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def report(metrics: dict, net: torch.nn.Module, record: Weights, state: dict, rank: int) -> None:
    """Report an epoch; rank 0 attaches the checkpoint: ``model.pth`` (weights and record) and the train state."""
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        torch.save({"state_dict": net.state_dict(), "weights": record.to_dict()}, os.path.join(folder, MODEL_FILE))
        torch.save(state, os.path.join(folder, STATE_FILE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def train_loop(loop_config: dict) -> None:
    """One Ray Train worker: resume if a checkpoint exists, then epochs of training, validation and a report."""
    config, per_epoch = loop_config["config"], loop_config["steps_per_epoch"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // context.get_local_world_size()))
    model, record = build(config)
    state = restore(model)
    model = ray.train.torch.prepare_model(model.to(memory_format=torch.channels_last))
    net = getattr(model, "module", model)  # DDP wraps it when there are several workers
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    epoch, step, seconds = state["epoch"], state["step"], state["seconds"]
    while epoch < planned_epochs(config, epoch, seconds):
        started, total = time.monotonic(), planned_epochs(config, epoch, seconds) * per_epoch
        rng = np.random.default_rng([config.seed, rank, epoch])
        losses = train_epoch(model, optimizer, config, record, rng, (step, total, per_epoch))
        # Ray Train keeps rank 0's metrics only, so the others skip validation
        confusion = validate(net, record) if rank == 0 else np.zeros(record.num_classes**2)
        result = scores(confusion, config.classes)
        # every worker must plan the same epochs, so all take the slowest one's clock
        epoch, step, seconds = epoch + 1, step + len(losses), all_reduce_max(seconds + time.monotonic() - started)
        metrics = {"epoch": epoch, SCORE: result["mean_iu"] or 0.0, "val_pixel_accuracy": result["pixel_accuracy"]}
        metrics.update(
            train_loss=float(np.mean(losses or [np.nan])), seconds=seconds, resumed_from_epoch=state["epoch"]
        )
        train_state = {"epoch": epoch, "step": step, "seconds": seconds, "optimizer": optimizer.state_dict()}
        report(metrics, net, record, train_state, rank)


def fit(config: TrainConfig) -> dict:
    """Train (or continue the run already in ``config.output``), then copy the best checkpoint's weights
    to ``OUTPUT/model.pth``; return its epoch, ``val_mean_iu``, the wall time and where training resumed.

    Args:
        config: the run (see ``TrainConfig``).
    """
    started = time.monotonic()
    files, fs, counts = read_splits(config)
    out_fs, out_path = arrow_fs(config.output, config)
    out_fs.create_dir(out_path, recursive=True)
    resumed = resumed_epoch(config, out_fs, out_path)
    init_ray(config.ray_address, config.num_cpus)
    trainer = make_trainer(config, split_datasets(files, fs, config), counts["train"], (out_fs, out_path))
    metrics = save_best(trainer.fit(), out_fs, out_path)
    return {
        "epoch": metrics["epoch"],
        SCORE: metrics[SCORE],
        "seconds": time.monotonic() - started,
        "resumed_from_epoch": resumed,
        "model_path": f"{config.output.rstrip('/')}/{MODEL_FILE}",
    }


def resumed_epoch(config: TrainConfig, out_fs, out_path: str) -> int | None:
    """The epoch of the last checkpoint of a run already in the output folder (said aloud), else ``None``.

    Args:
        config: the run, for the message.
        out_fs: pyarrow filesystem of the output folder.
        out_path: the output folder inside ``out_fs``.
    """
    if not out_fs.get_file_info(f"{out_path}/{RUN_NAME}/checkpoint_manager_snapshot.json").is_file:
        return None
    last = ray.train.Result.from_path(f"{out_path}/{RUN_NAME}", storage_filesystem=out_fs).metrics or {}
    resumed = last.get("epoch")
    print(f"continuing from the checkpoint of epoch {resumed} in {config.output}/{RUN_NAME}", flush=True)
    return resumed


def make_trainer(config: TrainConfig, datasets: dict, train_rows: int, out: tuple) -> ray.train.torch.TorchTrainer:
    """The Ray Train run: ``train_loop`` on each worker, keeping the two best checkpoints by ``val_mean_iu``.

    Args:
        config: the run.
        datasets: the ``train`` and ``val`` Ray Datasets.
        train_rows: rows of the ``train`` split, for the steps per epoch.
        out: ``(pyarrow filesystem, path)`` of the output folder.
    """
    out_fs, out_path = out
    best_only = ray.train.CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
    )
    return ray.train.torch.TorchTrainer(
        train_loop,
        train_loop_config={
            "config": config,
            "steps_per_epoch": math.ceil(train_rows / config.workers / config.batch_size),
        },
        scaling_config=ray.train.ScalingConfig(num_workers=config.workers, use_gpu=torch.cuda.is_available()),
        run_config=ray.train.RunConfig(
            name=RUN_NAME, storage_path=out_path, storage_filesystem=out_fs, checkpoint_config=best_only
        ),
        datasets=datasets,
        # val is never split (rank 0 scores all of it); one worker reads train whole, without a split coordinator
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"] if config.workers > 1 else []),
    )


def save_best(result: ray.train.Result, out_fs, out_path: str) -> dict:
    """Copy the best checkpoint's ``model.pth`` (ties go to the later epoch) into the output folder; its metrics.

    Args:
        result: what the trainer returned.
        out_fs: pyarrow filesystem of the output folder.
        out_path: the output folder inside ``out_fs``.
    """
    best, metrics = max(result.best_checkpoints, key=lambda pair: (pair[1][SCORE], pair[1]["epoch"]))
    with best.as_directory() as folder, open(os.path.join(folder, MODEL_FILE), "rb") as f:
        weights = f.read()
    with out_fs.open_output_stream(f"{out_path}/{MODEL_FILE}") as f:
        f.write(weights)
    return metrics
