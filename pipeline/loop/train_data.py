"""The data of a training run: the Parquet dataset's splits, read with Ray Data, and each example's
decoding, random crop and conversion to the net's input.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray
import torch
from PIL import Image

from models.weights import Weights

from ..io.output import list_parquet
from ..io.storage import arrow_fs
from .evaluate import decode_mask
from .metrics import IGNORE
from .train_config import TrainConfig, TrainError

SPLITS = ("train", "val")


def read_splits(config: TrainConfig) -> tuple[list[str], object, dict[str, int]]:
    """The dataset's Parquet files, their filesystem and the rows of each split; checks there are some.

    Args:
        config: the run, for ``data``, ``split_column`` and the S3 settings.
    """
    fs, path = arrow_fs(config.data, config)
    files = [path] if path.endswith(".parquet") else list_parquet(fs, path)
    if not files:
        raise TrainError(f"--data {config.data}: no Parquet files there")
    try:
        splits = pads.dataset(files, filesystem=fs).to_table(columns=[config.split_column])[config.split_column]
    except (pa.ArrowInvalid, KeyError) as exc:
        raise TrainError(f"--data {config.data}: cannot read a {config.split_column!r} column: {exc}") from exc
    counts = {split: pc.sum(pc.equal(splits, split)).as_py() or 0 for split in SPLITS}
    for split, count in counts.items():
        if not count:
            raise TrainError(f"--data {config.data}: no rows with {config.split_column} == {split!r}")
    return files, fs, counts


def split_datasets(files: list[str], fs, config: TrainConfig) -> dict[str, ray.data.Dataset]:
    """One Ray Dataset of ``image_png, mask_png`` rows per split, read lazily from ``files``.

    Args:
        files: the dataset's Parquet files.
        fs: their pyarrow filesystem.
        config: the run, for its column names.
    """
    columns = [config.image_column, config.mask_column, config.split_column]
    return {
        split: ray.data.read_parquet(files, filesystem=fs, columns=columns).map_batches(
            png_columns, fn_kwargs={"config": config, "split": split}, batch_format="pyarrow"
        )
        for split in SPLITS
    }


def png_columns(batch: pa.Table, config: TrainConfig, split: str) -> pa.Table:
    """The rows of one split as ``image_png, mask_png`` (binary, or the bytes of a ``{bytes, path}`` struct).

    Args:
        batch: rows of the training dataset.
        config: the run, for its column names.
        split: ``train`` or ``val``.
    """
    batch = batch.filter(pc.equal(batch[config.split_column], split))
    out = {}
    for name, column in (("image_png", config.image_column), ("mask_png", config.mask_column)):
        values = batch[column]
        out[name] = pc.struct_field(values, "bytes") if pa.types.is_struct(values.type) else values
    return pa.table(out)


def decode(image_png: bytes, mask_png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """An image and mask PNG pair as an ``[H, W, 3]`` uint8 image and an ``[H, W]`` class-id mask.

    Args:
        image_png: the image's bytes.
        mask_png: the mask's bytes.
    """
    return np.asarray(Image.open(io.BytesIO(image_png)).convert("RGB")), decode_mask(mask_png)


def random_crop(image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator) -> tuple:
    """A ``crop`` x ``crop`` window (padding with ignored pixels where the image is smaller), randomly
    flipped and transposed: aerial scenes have no up, so all eight symmetries of the square are fair.

    Args:
        image: ``[H, W, 3]`` uint8 image.
        mask: ``[H, W]`` class ids.
        crop: side of the window.
        rng: source of the window's place and symmetry.
    """
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
    """``[N, H, W, 3]`` uint8 to a normalised float ``[N, 3, H, W]`` batch, channels-last (fastest on CPU).

    Args:
        images: the batch of images.
        record: weights record whose normalisation the net expects.
        device: where the batch goes.
    """
    return record.normalise(torch.from_numpy(np.require(images, requirements=["C", "W"])).to(device))
