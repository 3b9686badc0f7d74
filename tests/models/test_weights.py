"""Weights: round trips through a local file and S3, and one test per refusal."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import boto3
import pytest
import torch
import torchvision

import models
from models import WeightsError
from models.registry import WEIGHTS


def save(obj, path):
    torch.save(obj, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_equal(a, b):
    x = torch.randn(1, 3, 40, 56)
    with torch.inference_mode():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_local_round_trip_infers_classes_and_hash(tmp_path):
    source = models.get_model("fcn8s_mobilenet_v3", num_classes=6)
    sha = save(source.state_dict(), tmp_path / "m.pth")
    for uri in (str(tmp_path / "m.pth"), f"file://{tmp_path}/m.pth"):
        loaded = models.get_model("fcn8s_mobilenet_v3", weights=uri)
        assert outputs_equal(source, loaded)
        assert loaded.weights_meta.num_classes == 6
        assert loaded.weights_meta.sha256 == sha
        assert loaded.weights_meta.categories[0] == "class_0"


def test_checkpoint_with_record_keeps_its_class_names(tmp_path):
    source = models.get_model("fcn8s_mobilenet_v3", num_classes=2)
    record = models.Weights(name="mine", arch="fcn8s_mobilenet_v3", uri=None, sha256=None, categories=("sea", "land"))
    save({"state_dict": source.state_dict(), "weights": record.to_dict()}, tmp_path / "c.pth")
    loaded = models.get_model("fcn8s_mobilenet_v3", weights=str(tmp_path / "c.pth"))
    assert loaded.weights_meta.categories == ("sea", "land")


def test_s3_round_trip(s3_bucket):
    source = models.get_model("fcn16s_deconv", num_classes=3)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="w/deconv.pth", Body=buffer.getvalue())
    loaded = models.get_model("fcn16s_deconv", weights=f"s3://{s3_bucket}/w/deconv.pth")
    assert outputs_equal(source, loaded)
    assert loaded.weights_meta.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()


def test_torchvision_checkpoint_layout_loads_with_aux_keys_and_voc_names(tmp_path, monkeypatch):
    reference = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    )
    path = tmp_path / "fcn_resnet50_coco-1167a1af.pth"
    sha = save(reference.state_dict(), path)
    assert any(k.startswith("aux_classifier.") for k in reference.state_dict())
    monkeypatch.setitem(WEIGHTS, "fcn_resnet50_coco", WEIGHTS["fcn_resnet50_coco"].__class__(
        **{**WEIGHTS["fcn_resnet50_coco"].to_dict(), "sha256": sha[:8]}
    ))  # fmt: skip
    loaded = models.get_model("fcn_resnet50", weights=str(path))
    meta = loaded.weights_meta
    assert meta.categories[15] == "person" and meta.resize == 520 and meta.num_classes == 21
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.eval()(x), reference.eval()(x)["out"])


def test_registered_name_is_looked_up_in_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=r"not found: .*fcn_resnet101_coco-7ecb50ca.pth.*FCN_WEIGHTS_DIR"):
        models.get_model("fcn_resnet101", weights="fcn_resnet101_coco")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file not found: .*nope.pth"):
        models.get_model("fcn8s", weights=str(tmp_path / "nope.pth"))


def test_hash_mismatch_is_refused(tmp_path):
    path = tmp_path / "fcn_resnet50_coco-1167a1af.pth"
    torch.save({"classifier.4.weight": torch.zeros(21, 512, 1, 1)}, path)
    with pytest.raises(WeightsError, match=r"sha256 of .* expected 1167a1af"):
        models.get_model("fcn_resnet50", weights=str(path))


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = models.get_model("fcn8s_mobilenet_v3", num_classes=3).state_dict()
    del state["head.0.weight"]
    state["extra.layer"] = torch.zeros(1)
    save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"missing keys: head.0.weight; unexpected keys: extra.layer"):
        models.get_model("fcn8s_mobilenet_v3", weights=str(tmp_path / "bad.pth"))


def test_wrong_model_for_checkpoint_is_refused(tmp_path):
    save(models.get_model("fcn8s_mobilenet_v3", num_classes=3).state_dict(), tmp_path / "m.pth")
    with pytest.raises(WeightsError, match=r"has no 'score_fr.weight'"):
        models.get_model("fcn32s", weights=str(tmp_path / "m.pth"))


class Pickled:
    pass


def test_arbitrary_unpickling_is_refused(tmp_path):
    torch.save({"obj": Pickled()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="arbitrary unpickling"):
        models.get_model("fcn8s", weights=str(tmp_path / "evil.pth"))


def test_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        models.get_model("fcn8s", weights=str(tmp_path / "text.pth"))


@pytest.mark.slow  # builds, saves and loads VGG16 FCNs (134 M parameters) several times
def test_vgg16_backbone_and_staged_init(tmp_path):
    vgg = torchvision.models.vgg16(weights=None)
    save(vgg.state_dict(), tmp_path / "vgg16-397923af.pth")
    fcn32 = models.get_model("fcn32s", num_classes=4, backbone_weights=str(tmp_path / "vgg16-397923af.pth"))
    torch.testing.assert_close(fcn32.features[0].weight, vgg.features[0].weight)
    torch.testing.assert_close(fcn32.fc6[0].weight.flatten(1), vgg.classifier[0].weight)
    with torch.no_grad():
        fcn32.score_fr.weight.normal_()
    save(fcn32.state_dict(), tmp_path / "fcn32s.pth")
    fcn16 = models.get_model("fcn16s", num_classes=4, init_from=str(tmp_path / "fcn32s.pth"))
    torch.testing.assert_close(fcn16.score_fr.weight, fcn32.score_fr.weight)
    assert not fcn16.score_pool4.weight.any()
    with pytest.raises(WeightsError, match="VGG16 models only"):
        models.get_model("fcn_resnet50", backbone_weights=str(tmp_path / "vgg16-397923af.pth"))


def test_bgr_checkpoints_are_fed_blue_first():
    rgb_meta = models.Weights(name="x", arch="fcn8s", uri=None, sha256=None, categories=("a",),
                              mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))  # fmt: skip
    bgr_meta = dataclasses.replace(rgb_meta, color_order="BGR", mean=(0.3, 0.2, 0.1), std=(0.6, 0.5, 0.4))
    images = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    torch.testing.assert_close(bgr_meta.normalise(images), rgb_meta.normalise(images)[:, [2, 1, 0]])
    with pytest.raises(WeightsError, match="neither RGB nor BGR"):
        dataclasses.replace(rgb_meta, color_order="RBG")
