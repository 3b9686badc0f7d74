"""Training with Ray Train on tiny scenes: a loadable checkpoint with the class names, and a rerun that resumes."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import models
from models.registry import WEIGHTS
from pipeline.loop.metrics import IGNORE, confusion_vector, scores
from pipeline.loop.synthetic import CLASSES, make_scene, write_dataset
from pipeline.loop.train import fit, planned_epochs
from pipeline.loop.train_config import TrainConfig
from pipeline.loop.train_data import decode, png_columns, random_crop, to_input


def test_random_crop_pads_small_images_with_ignored_pixels():
    rng = np.random.default_rng(0)
    image, mask = np.full((20, 40, 3), 7, np.uint8), np.ones((20, 40), np.uint8)
    crop_image, crop_mask = random_crop(image, mask, 32, rng)
    assert crop_image.shape == (32, 32, 3) and crop_mask.shape == (32, 32)
    assert (crop_mask == IGNORE).sum() == 32 * 12  # 12 padded rows or columns, flipped or transposed anywhere
    assert set(np.unique(crop_image[crop_mask != IGNORE])) == {7}


def test_schedule_fits_the_time_budget():
    config = TrainConfig(data="d", output="o", epochs=50, max_minutes=10)
    assert planned_epochs(config, 0, 0.0) == 50
    assert planned_epochs(config, 4, 120.0) == 20  # 30 s an epoch: 20 fit in 10 minutes
    assert planned_epochs(config, 20, 630.0) == 20  # over budget: stop here


def test_shipped_scene_weights_load_as_float32_and_segment_new_scenes():
    model = models.get_model("fcn8s_mobilenet_v3", weights="fcn8s_mobilenet_v3_scenes").eval()
    assert model.weights_meta.categories == CLASSES == WEIGHTS["fcn8s_mobilenet_v3_scenes"].categories
    assert {v.dtype for v in model.state_dict().values() if v.is_floating_point()} == {torch.float32}
    confusion = 0
    with torch.inference_mode():
        for seed in (10_001, 10_002):  # scenes that were never in the training set
            image, mask = make_scene(seed, 176, 208)
            logits = model(to_input(image[None], model.weights_meta, torch.device("cpu")))
            confusion = confusion + confusion_vector(mask, logits.argmax(1)[0].numpy(), len(CLASSES))
    assert scores(confusion, CLASSES)["pixel_accuracy"] > 0.9


@pytest.mark.slow
def test_train_writes_a_checkpoint_and_a_rerun_resumes(ray_local, tmp_path, capsys):
    from jobs.train import main

    data = write_dataset(str(tmp_path / "scenes"), 12, sizes=(64, 64))["parquet"]
    output = tmp_path / "run"
    summary = fit(TrainConfig(data=data, output=str(output), epochs=1, batch_size=4, crop=64))
    assert summary["epoch"] == 1 and summary["resumed_from_epoch"] is None
    model = models.get_model("fcn8s_mobilenet_v3", weights=str(output / "model.pth")).eval()
    assert model.weights_meta.categories == CLASSES
    # the reported score is the written checkpoint's, on the val split: scored again here, outside Ray Train
    config = TrainConfig(data=data, output=str(output))
    val = png_columns(pq.read_table(data), config, "val").to_pylist()
    assert len(val) == 2  # every fifth of 12 scenes
    confusion = np.zeros(len(CLASSES) ** 2, np.int64)
    with torch.inference_mode():
        for row in val:
            image, mask = decode(row["image_png"], row["mask_png"])
            pred = model(to_input(image[None], model.weights_meta, torch.device("cpu"))).argmax(1)[0].numpy()
            confusion += confusion_vector(mask, pred, len(CLASSES))
    assert summary["val_mean_iu"] == pytest.approx(scores(confusion, CLASSES)["mean_iu"] or 0.0, abs=1e-6)
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 40, 56)).shape == (1, len(CLASSES), 40, 56)

    argv = ["--data", data, "--output", str(output), "--epochs", "2", "--batch-size", "4", "--crop", "64"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"continuing from the checkpoint of epoch 1 in {output}" in printed
    assert "val mean IU" in printed
    assert models.get_model("fcn8s_mobilenet_v3", weights=str(output / "model.pth")).weights_meta.num_classes == 5


def test_unusable_data_is_a_clear_error(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.train import main

    assert main(["--data", str(tmp_path / "none"), "--output", str(tmp_path / "out")]) == 2
    assert "no Parquet files" in capsys.readouterr().err
    pq.write_table(pa.table({"image": [b"x"], "mask": [b"y"], "split": ["train"]}), tmp_path / "only_train.parquet")
    assert main(["--data", str(tmp_path / "only_train.parquet"), "--output", str(tmp_path / "out")]) == 2
    assert "no rows with split == 'val'" in capsys.readouterr().err
