"""Train an FCN with Ray Train on a Parquet dataset of image and mask PNGs: a checkpoint per epoch, resumable.

The driver streams the ``train`` and ``val`` splits with Ray Data; each worker decodes, crops and flips
in its loop, reports the validation mean IU every epoch with a checkpoint, and a later run with the same
``--output`` continues from the last one (Ray Train keeps its run under ``OUTPUT/train``).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image

import models
from models.weights import Weights

from ..cluster import init_ray
from ..io.output import list_parquet
from ..io.storage import arrow_fs
from .evaluate import IGNORE, confusion_vector, decode_mask, scores, storage_config
from .scenes import CLASSES

RUN_NAME = "train"  # Ray Train's run folder inside --output
MODEL_FILE, STATE_FILE = "model.pth", "train_state.pth"
SCORE = "val_mean_iu"


class TrainError(ValueError):
    """A training run that cannot start; the message names the thing and what to do."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        data: Parquet dataset (file, folder or ``s3://`` prefix) with image and mask PNGs and a split column.
        output: folder or ``s3://`` prefix for Ray Train's checkpoints and the best ``model.pth``.
        model: registered architecture.
        epochs: most epochs; fewer when ``max_minutes`` runs out first.
        batch_size: crops per step and worker.
        lr: peak AdamW learning rate (linear warm-up over the first epoch, then cosine to zero).
        weight_decay: AdamW weight decay.
        crop: side of the square training crops; smaller images are padded with ignored pixels.
        init_from: checkpoint whose same-named layers initialise the net (FCN-16s -> FCN-8s).
        workers: Ray Train workers (data-parallel replicas).
        threads: torch threads per worker; default this host's cores over its workers.
        num_cpus: logical CPUs of a local Ray cluster; default the cores plus one (``pipeline.cluster``).
        max_minutes: training-time budget; the cosine schedule is shortened to end within it.
        classes: class names, index = class id in the masks.
        seed: seed of crops, flips and initialisation.
        ray_address: cluster to join; default ``$RAY_ADDRESS``, else a new local one.
    """

    data: str
    output: str
    model: str = "fcn8s_mobilenet_v3"
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop: int = 192
    init_from: str | None = None
    workers: int = 1
    threads: int | None = None
    num_cpus: int | None = None
    max_minutes: float | None = None
    classes: tuple[str, ...] = CLASSES
    image_column: str = "image"
    mask_column: str = "mask"
    split_column: str = "split"
    seed: int = 0
    ray_address: str | None = None


def png_columns(batch: pa.Table, config: TrainConfig, split: str) -> pa.Table:
    """The rows of one split as ``image_png, mask_png`` (binary, or the bytes of a ``{bytes, path}`` struct)."""
    batch = batch.filter(pc.equal(batch[config.split_column], split))
    out = {}
    for name, column in (("image_png", config.image_column), ("mask_png", config.mask_column)):
        values = batch[column]
        out[name] = pc.struct_field(values, "bytes") if pa.types.is_struct(values.type) else values
    return pa.table(out)


def decode(image_png: bytes, mask_png: bytes) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(Image.open(io.BytesIO(image_png)).convert("RGB")), decode_mask(mask_png)


def random_crop(image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator) -> tuple:
    """A ``crop`` x ``crop`` window (padding with ignored pixels where the image is smaller), randomly
    flipped and transposed: aerial scenes have no up, so all eight symmetries of the square are fair."""
    pad_h, pad_w = max(0, crop - mask.shape[0]), max(0, crop - mask.shape[1])
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    y, x = (int(rng.integers(0, side - crop + 1)) for side in mask.shape)
    image, mask = image[y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if rng.random() < 0.5:
        image, mask = image[::-1], mask[::-1]
    if rng.random() < 0.5:
        image, mask = image.transpose(1, 0, 2), mask.T
    return image, mask


def to_input(images: np.ndarray, record: Weights, device: torch.device) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 to a normalised float ``[N, 3, H, W]`` batch, channels-last (fastest on CPU)."""
    return record.normalise(torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device))


def learning_rate(config: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    if step < per_epoch:
        return config.lr * (step + 1) / per_epoch
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, (step - per_epoch) / max(1, total - per_epoch))))


def planned_epochs(config: TrainConfig, done: int, seconds: float) -> int:
    """``--epochs``, cut to what fits in ``--max-minutes`` at the pace so far."""
    if not config.max_minutes or done == 0:
        return config.epochs
    return max(done, min(config.epochs, done + int((config.max_minutes * 60 - seconds) / (seconds / done))))


def all_reduce_max(value: float) -> float:
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
    model = models.get_model(config.model, num_classes=len(config.classes), init_from=config.init_from)
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
    storage = storage_config(config.data, config.output)
    fs, path = arrow_fs(config.data, storage)
    files = [path] if path.endswith(".parquet") else list_parquet(fs, path)
    if not files:
        raise TrainError(f"--data {config.data}: no Parquet files there")
    try:
        splits = pads.dataset(files, filesystem=fs).to_table(columns=[config.split_column])[config.split_column]
    except (pa.ArrowInvalid, KeyError) as exc:
        raise TrainError(f"--data {config.data}: cannot read a {config.split_column!r} column: {exc}") from exc
    counts = {split: pc.sum(pc.equal(splits, split)).as_py() or 0 for split in ("train", "val")}
    for split, count in counts.items():
        if not count:
            raise TrainError(f"--data {config.data}: no rows with {config.split_column} == {split!r}")
    out_fs, out_path = arrow_fs(config.output, storage)
    out_fs.create_dir(out_path, recursive=True)
    resumed = None
    if out_fs.get_file_info(f"{out_path}/{RUN_NAME}/checkpoint_manager_snapshot.json").is_file:
        last = ray.train.Result.from_path(f"{out_path}/{RUN_NAME}", storage_filesystem=out_fs).metrics or {}
        resumed = last.get("epoch")
        print(f"continuing from the checkpoint of epoch {resumed} in {config.output}/{RUN_NAME}", flush=True)
    init_ray(config.ray_address, config.num_cpus)
    columns = [config.image_column, config.mask_column, config.split_column]
    datasets = {
        split: ray.data.read_parquet(files, filesystem=fs, columns=columns).map_batches(
            png_columns, fn_kwargs={"config": config, "split": split}, batch_format="pyarrow"
        )
        for split in ("train", "val")
    }
    best_only = ray.train.CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
    )
    trainer = ray.train.torch.TorchTrainer(
        train_loop,
        train_loop_config={
            "config": config,
            "steps_per_epoch": math.ceil(counts["train"] / config.workers / config.batch_size),
        },
        scaling_config=ray.train.ScalingConfig(num_workers=config.workers, use_gpu=torch.cuda.is_available()),
        run_config=ray.train.RunConfig(
            name=RUN_NAME, storage_path=out_path, storage_filesystem=out_fs, checkpoint_config=best_only
        ),
        datasets=datasets,
        # val is never split (rank 0 scores all of it); one worker reads train whole, without a split coordinator
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"] if config.workers > 1 else []),
    )
    result = trainer.fit()
    best, metrics = max(result.best_checkpoints, key=lambda pair: (pair[1][SCORE], pair[1]["epoch"]))
    with best.as_directory() as folder, open(os.path.join(folder, MODEL_FILE), "rb") as f:
        weights = f.read()
    with out_fs.open_output_stream(f"{out_path}/{MODEL_FILE}") as f:
        f.write(weights)
    return {
        "epoch": metrics["epoch"],
        SCORE: metrics[SCORE],
        "seconds": time.monotonic() - started,
        "resumed_from_epoch": resumed,
        "model_path": f"{config.output.rstrip('/')}/{MODEL_FILE}",
    }
