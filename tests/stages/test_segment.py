"""The inference actor's numbers against an independent computation: softmax of the same net's logits."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from imagefiles import CLASSES, encode, rgb
from PIL import Image

import models
from pipeline.config import RunConfig
from pipeline.stages.decode import decode_batch
from pipeline.stages.postprocess import finish_batch
from pipeline.stages.segment import Segmenter


def test_mean_confidence_is_the_mean_softmax_probability_of_the_predicted_class(weights):
    images = [rgb(37, 53, 0), rgb(64, 48, 1)]
    batch = {
        "image_id": np.array(["a", "b"], dtype=object),
        "source": np.array(["a", "b"], dtype=object),
        "bytes": np.array([encode(Image.fromarray(i), "PNG") for i in images], dtype=object),
        "error": np.array([None, None], dtype=object),
    }
    config = RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES))
    rows = finish_batch(Segmenter(config, storage={})(decode_batch(batch, resize=None, max_pixels=10**8)))

    net = models.get_model("fcn8s_mobilenet_v3", num_classes=len(CLASSES), weights=weights).eval()
    mean, std = torch.tensor(net.weights_meta.mean), torch.tensor(net.weights_meta.std)
    for i, image in enumerate(images):
        x = ((torch.from_numpy(image).float() / 255 - mean) / std).permute(2, 0, 1)[None]
        with torch.inference_mode():
            probabilities = torch.softmax(net(x)[0].double(), dim=0)  # [C, H, W], no BatchNorm folding
        top, classes = probabilities.max(dim=0)
        counts = torch.bincount(classes.flatten(), minlength=len(CLASSES)).numpy()
        assert np.abs(counts - rows["class_pixels"][i]).sum() <= 2  # folding may flip a pixel at a near tie
        assert (counts > 0).sum() >= 2  # several classes present: the comparison means something
        for c in np.flatnonzero(counts):
            expected = top[classes == c].mean().item()
            assert rows["class_confidence"][i][c] == pytest.approx(expected, abs=2e-4), (i, c)


def test_on_cpu_a_forward_call_holds_at_most_a_megapixel(weights):
    """Four 1024-px images run one by one (faster on CPU, a quarter of the activations); four 512-px images
    (a megapixel together) run in one call; each image's counts are those it gets alone."""
    sizes = [(1024, 1024)] * 4 + [(512, 512)] * 4
    images = [rgb(h, w, seed) for seed, (h, w) in enumerate(sizes)]
    batch = {
        "image_id": np.array([str(i) for i in range(8)], dtype=object),
        "source": np.array([str(i) for i in range(8)], dtype=object),
        "bytes": np.array([encode(Image.fromarray(i), "PNG") for i in images], dtype=object),
        "error": np.array([None] * 8, dtype=object),
    }
    config = RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES), batch_size=4, device="cpu")
    segmenter = Segmenter(config, storage={})
    calls, model = [], segmenter.model
    segmenter.model = lambda x: calls.append(tuple(x.shape)) or model(x)
    decoded = decode_batch(batch, resize=None, max_pixels=10**8)
    rows = segmenter(decoded)
    assert sorted(calls) == sorted([(1, 3, 1024, 1024)] * 4 + [(4, 3, 512, 512)])
    alone = segmenter({k: v[5:6] for k, v in decoded.items()})
    assert np.abs(alone["class_pixels"][0] - rows["class_pixels"][5]).sum() <= 2  # a near tie may flip


def test_images_of_other_sizes_in_a_batch_do_not_change_a_mask(weights):
    config = RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES))
    segmenter = Segmenter(config, storage={})
    blobs = [Image.fromarray(rgb(*size, seed)) for seed, size in enumerate([(45, 61), (64, 64), (45, 61), (30, 90)])]
    encoded = []
    for image in blobs:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())

    def segment(indices):
        batch = {
            "image_id": np.array([str(i) for i in indices], dtype=object),
            "source": np.array([str(i) for i in indices], dtype=object),
            "bytes": np.array([encoded[i] for i in indices], dtype=object),
            "error": np.array([None] * len(indices), dtype=object),
        }
        return segmenter(decode_batch(batch, resize=None, max_pixels=10**8))

    alone = segment([0, 2])  # the 45x61 images without the others
    mixed = segment([1, 0, 3, 2])
    assert np.array_equal(alone["mask"][0], mixed["mask"][1])
    assert np.array_equal(alone["mask"][1], mixed["mask"][3])
    assert np.array_equal(alone["class_pixels"], mixed["class_pixels"][[1, 3]])
    assert mixed["mask"][2].shape == (30, 90)


def test_out_of_memory_batches_are_split_before_any_image_fails(weights):
    segmenter = Segmenter(RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES)), storage={})
    model, calls = segmenter.model, []

    def tight_memory(x):
        calls.append(len(x))
        if len(x) > 1 or x.shape[-1] > 60:  # only single images up to 60 px wide fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return model(x)

    segmenter.model = tight_memory
    sizes = [(40, 50)] * 4 + [(40, 70)]
    batch = {
        "image_id": np.array([str(i) for i in range(5)], dtype=object),
        "source": np.array([str(i) for i in range(5)], dtype=object),
        "source_version": np.array([None] * 5, dtype=object),
        "height": np.array([h for h, _ in sizes], np.int32),
        "width": np.array([w for _, w in sizes], np.int32),
        "image": np.array([rgb(h, w, i) for i, (h, w) in enumerate(sizes)] + [None], dtype=object)[:5],
        "error": np.array([None] * 5, dtype=object),
        "valid": np.array([np.ones((1, 1), bool)] * 5 + [None], dtype=object)[:5],
        "frame": np.full(5, -1, np.int32),
        "crs": np.array([None] * 5, dtype=object),
        "geotransform": np.full((5, 6), np.nan),
    }
    out = segmenter(batch)
    assert calls == [4, 2, 1, 1, 2, 1, 1, 1]  # halves until every 40x50 image fits, then the wide one alone
    assert all(out["error"][i] is None and out["mask"][i].shape == (40, 50) for i in range(4))
    assert "out of GPU memory even alone (40x70)" in out["error"][4]
