"""Our masks equal torchvision's own recipe on real photos, written here independently of the pipeline:
Pillow decode and EXIF orientation, torchvision's ``Resize`` of the decoded image, ``Normalize``, the model's
logits upsampled bilinearly to the source size, argmax. The photos are matplotlib's samples and a 12 MP
EXIF-rotated phone JPEG made from one of them; the weights are seeded with the scoring layer scaled up so the
top two classes are apart (random logits near a tie would flip on rounding alone)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from imagefiles import CLASSES
from matplotlib import cbook
from PIL import Image, ImageOps
from torch.nn import functional as F
from torchvision.transforms import functional as TF

from jobs.segment import main
from pipeline.stages.postprocess import decode_png
from tests.outputs import read_tables

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZE = 520
NUM_CLASSES = len(CLASSES)


def phone_photo() -> bytes:
    """A 12 MP JPEG stored landscape (4000 x 3000) with EXIF orientation 6: shown portrait, as phones write."""
    hopper = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    stored = hopper.transpose(Image.Transpose.ROTATE_90).resize((4000, 3000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def real_photos() -> dict[str, bytes]:
    sample = {"hopper.jpg": "grace_hopper.jpg", "pack.png": "Minduka_Present_Blue_Pack.png"}
    photos = {name: Path(cbook.get_sample_data(f, asfileobj=False)).read_bytes() for name, f in sample.items()}
    return {**photos, "phone.jpg": phone_photo()}


@pytest.fixture(scope="module")
def resnet_checkpoint(tmp_path_factory):
    """torchvision's FCN-ResNet50, seeded, with a scoring layer whose classes stand apart."""
    torch.manual_seed(0)
    model = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES, aux_loss=True
    )
    with torch.no_grad():
        model.classifier[4].weight.mul_(40)
    path = tmp_path_factory.mktemp("agree") / "resnet50.pth"
    torch.save(model.state_dict(), path)
    return str(path), model.eval()


def reference(blob: bytes, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torchvision's recipe: ``(class, softmax probability of that class, transparent)`` at the source size;
    fully transparent pixels are ours to call no-data (255), torchvision's recipe ignores alpha."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(blob)))
    transparent = np.asarray(image.convert("RGBA"))[:, :, 3] == 0
    image = image.convert("RGB")
    fed = TF.resize(image, RESIZE)  # the shorter side at 520, Pillow's bilinear, torchvision's rounding
    x = TF.normalize(TF.to_tensor(fed), IMAGENET_MEAN, IMAGENET_STD).unsqueeze(0)
    with torch.inference_mode():
        logits = model(x)["out"]
        logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
        prob, classes = logits.softmax(dim=1).max(dim=1)
    return classes[0].numpy(), prob[0].numpy(), transparent


def test_masks_equal_torchvisions_recipe_on_real_photos(ray_local, resnet_checkpoint, tmp_path):
    checkpoint, model = resnet_checkpoint
    (tmp_path / "in").mkdir()
    photos = real_photos()
    for name, blob in photos.items():
        (tmp_path / "in" / name).write_bytes(blob)
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", "fcn_resnet50"]
    argv += ["--weights", checkpoint, "--classes", ",".join(CLASSES), "--resize", str(RESIZE)]
    assert main([*argv, "--actors-max", "1", "--batch-size", "1"]) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in masks.to_pylist()}
    stats = stats.to_pylist()
    report = {}
    for name, blob in photos.items():
        row = rows[name]
        assert row["status"] == "ok", row["error"]
        ours = decode_png(row["mask_png"])
        classes, prob, transparent = reference(blob, model)
        assert ours.shape == classes.shape, name
        assert np.array_equal(ours == 255, transparent), f"{name}: no-data is not exactly the transparent pixels"
        classes, prob, ours = classes[~transparent], prob[~transparent], ours[~transparent]
        equal = float((ours == classes).mean())
        confidence = {s["class_id"]: s["mean_confidence"] for s in stats if s["image_id"] == row["image_id"]}
        reference_confidence = {int(c): float(prob[classes == c].mean()) for c in np.unique(classes)}
        shared = set(confidence) & set(reference_confidence)
        worst = max(abs(confidence[c] - reference_confidence[c]) for c in shared)
        report[name] = (equal, worst, len(reference_confidence))
    print("pixels equal, largest mean_confidence difference, classes:", report)
    for name, (equal, worst, present) in report.items():
        assert present >= 3, f"{name}: the weights must give several classes, not {present}"
        assert equal >= 0.9999, f"{name}: {equal:.4%} of pixels equal torchvision's recipe ({report})"
        assert worst < 1e-3, f"{name}: mean_confidence differs by {worst} ({report})"
