"""Strip-wise top class and probability against one full ``F.interpolate``, as the actor did before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from imagefiles import CLASSES, rgb
from torch.nn import functional as F

from pipeline.config import RunConfig
from pipeline.stages import top_class
from pipeline.stages.segment import Segmenter
from pipeline.stages.top_class import top_class_strips


def reference(logits: torch.Tensor, size: tuple[int, int]):
    """The old path: ``(classes, prob, top-two margin)`` of the whole upsampled logits."""
    up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False, antialias=False)
    two = up.topk(2, dim=1).values
    top, classes = up.max(dim=1)
    prob = up.sub_(top.unsqueeze(1)).exp_().sum(dim=1).reciprocal_()
    return classes, prob, two[:, 0] - two[:, 1]


def assert_close_to_reference(classes, prob, ref_classes, ref_prob, margin):
    clear = margin > 1e-4  # elsewhere rounding of the interpolation may pick the other class
    assert clear.float().mean() > 0.99  # nearly every pixel is compared
    assert torch.equal(classes[clear], ref_classes[clear])
    torch.testing.assert_close(prob, ref_prob, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "size", "budget"),
    [
        ((2, 5, 7, 9), (31, 23), 1 << 30),  # up on both axes, one strip
        ((2, 5, 13, 17), (5, 6), 1 << 30),  # down on both axes (no antialias)
        ((2, 5, 13, 17), (13, 17), 1 << 30),  # same size: no interpolation
        ((2, 5, 13, 17), (13, 17), 2 * 5 * 17 * 4 * 4),  # same size, several strips
        ((2, 5, 7, 9), (31, 23), 1),  # a budget below one row: one row per strip
        ((2, 5, 7, 9), (31, 23), 2 * 5 * 23 * 4 * 4),  # 4 rows per strip, the last one 3
        ((1, 21, 13, 17), (40, 11), 21 * 11 * 4 * 6),  # up vertically, down horizontally
        ((3, 4, 29, 11), (9, 26), 3 * 4 * 26 * 4 * 4),  # down vertically (2 rows a strip), up horizontally
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])  # the model's logits are channels_last
def test_strips_match_one_full_interpolation(shape, size, budget, channels_last):
    torch.manual_seed(sum(shape) + sum(size))
    logits = torch.randn(shape) * 3
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    before = logits.clone()
    n, c = shape[:2]
    classes = torch.full((n, *size), -1, dtype=torch.int64)
    prob = torch.full((n, *size), float("nan"))
    edges = []
    for y0, y1, strip_classes, strip_prob in top_class_strips(logits, size, budget):
        assert strip_classes.shape == strip_prob.shape == (n, y1 - y0, size[1])
        assert y1 - y0 == 1 or n * c * (y1 - y0) * size[1] * 4 <= budget
        classes[:, y0:y1], prob[:, y0:y1] = strip_classes, strip_prob
        edges.append((y0, y1))
    assert [e[0] for e in edges] == [0] + [e[1] for e in edges[:-1]] and edges[-1][1] == size[0]
    assert len(edges) > 1 or budget > n * c * size[0] * size[1] * 4
    assert torch.equal(logits, before)  # the caller's logits are left as they were
    assert_close_to_reference(classes, prob, *reference(logits, size))


def test_a_tie_goes_to_the_lowest_class_as_in_max():
    logits = torch.zeros(1, 4, 3, 5)
    logits[:, 2] = 1.0
    logits[:, 3] = 1.0
    classes, prob = next(top_class_strips(logits, (3, 5), 1 << 20))[2:]
    assert (classes == 2).all()
    torch.testing.assert_close(prob, torch.full_like(prob, 1 / (2 + 2 / np.e)))


@pytest.fixture
def segmenter(weights):
    return Segmenter(RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES)), storage={})


@pytest.mark.parametrize("strip_bytes", [None, 2 * len(CLASSES) * 139 * 4 * 7])  # one strip; 7 rows each
def test_segment_tallies_match_the_full_upsampling(segmenter, monkeypatch, strip_bytes):
    if strip_bytes:
        monkeypatch.setattr(top_class, "CPU_STRIP_BYTES", strip_bytes)
    images = torch.from_numpy(np.stack([rgb(37, 53, 0), rgb(37, 53, 1)]))
    height, width, c = 101, 139, len(CLASSES)
    valid = np.random.default_rng(0).random((height, width)) > 0.3
    with torch.inference_mode():
        ref_classes, ref_prob, margin = reference(segmenter.logits(images), (height, width))
        classes, prob = segmenter.forward(images, (height, width))
        assert_close_to_reference(classes, prob, ref_classes, ref_prob, margin)
        for masks in ([None, None], [None, valid]):
            mask, counts, conf = segmenter.segment(images, height, width, masks)
            keep = torch.ones(2, height, width, dtype=torch.bool)
            keep[1] = torch.from_numpy(valid) if masks[1] is not None else True
            assert mask.dtype == np.uint8
            assert np.array_equal(mask, classes.masked_fill(~keep, 255).numpy())  # the strips of forward()
            clear = (margin > 1e-4).numpy()
            assert np.array_equal(mask[clear], ref_classes.masked_fill(~keep, 255).numpy()[clear])
            for j in range(2):
                k = keep[j].numpy()
                # the tallies are those of the mask and probabilities, every pixel counted once
                assert np.array_equal(counts[j], np.bincount(mask[j][k], minlength=c))
                weights = prob[j].double().numpy()[k]
                np.testing.assert_allclose(conf[j], np.bincount(mask[j][k], weights=weights, minlength=c), rtol=1e-12)
                # and those of the old path, but for pixels at a near tie whose class may flip
                ref_counts = np.bincount(ref_classes[j].numpy()[k], minlength=c)
                ref_conf = np.bincount(ref_classes[j].numpy()[k], weights=ref_prob[j].double().numpy()[k], minlength=c)
                unclear = int((~clear[j] & k).sum())
                assert (ref_counts > 0).sum() >= 2  # several classes: the comparison means something
                assert np.abs(counts[j] - ref_counts).sum() <= 2 * unclear
                np.testing.assert_allclose(conf[j], ref_conf, rtol=0, atol=1e-3 + unclear)


def test_forward_without_size_is_the_fed_size(segmenter):
    images = torch.from_numpy(rgb(37, 53, 2)[None])
    with torch.inference_mode():
        classes, prob = segmenter.forward(images)
        logits = segmenter.logits(images)
    top, expected = logits.max(dim=1)
    assert classes.shape == prob.shape == (1, 37, 53)
    assert torch.equal(classes, expected)
    torch.testing.assert_close(prob, torch.softmax(logits, dim=1).amax(dim=1), rtol=0, atol=1e-5)
