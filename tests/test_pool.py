"""Inference pool sizing from what the cluster reports; no Ray is started (``ray.cluster_resources`` is faked)."""

from __future__ import annotations

import pytest
import ray

from pipeline.config import RunConfig
from pipeline.pool import actor_resources


def pool(monkeypatch, resources: dict, **flags) -> tuple[int, int, float]:
    """(min_size, max_size, num_gpus) of the pool ``actor_resources`` builds on a cluster reporting ``resources``."""
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    chosen = actor_resources(RunConfig(input="in", output="out", weights="random", **flags))
    compute = chosen["compute"]
    return compute.min_size, compute.max_size, chosen["num_gpus"]


def test_cpu_cluster_keeps_a_quarter_of_the_cpus_free(monkeypatch):
    assert pool(monkeypatch, {"CPU": 16.0}) == (12, 12, 0.0)
    assert pool(monkeypatch, {"CPU": 16.0}, actors_max=4) == (4, 4, 0.0)
    assert pool(monkeypatch, {"CPU": 2.0}) == (1, 1, 0.0)


def test_gpu_cluster_with_every_gpu_up_starts_the_whole_pool(monkeypatch):
    resources = {"CPU": 32.0, "GPU": 4.0}
    assert pool(monkeypatch, resources) == (4, 4, 1.0)
    assert pool(monkeypatch, resources, actors_max=4) == (4, 4, 1.0)
    assert pool(monkeypatch, resources, actors_max=2) == (2, 2, 1.0)


def test_gpu_cluster_without_actors_max_sizes_from_the_gpus_up(monkeypatch):
    assert pool(monkeypatch, {"CPU": 8.0, "GPU": 1.0}) == (1, 1, 1.0)
    assert pool(monkeypatch, {"CPU": 8.0, "GPU": 2.0}, num_gpus=0.5) == (4, 4, 0.5)


@pytest.mark.parametrize("gpus_up", [1.0, 3.0])
def test_some_gpus_up_asks_for_actors_max_and_starts_on_what_is_there(monkeypatch, gpus_up):
    # the autoscaler only adds GPU nodes for actors that are pending: the pool must ask for all 4
    assert pool(monkeypatch, {"CPU": 8.0, "GPU": gpus_up}, actors_max=4) == (1, 4, 1.0)


def test_zero_gpus_up_with_actors_max_scales_from_zero(monkeypatch):
    assert pool(monkeypatch, {"CPU": 4.0}, num_gpus=1, actors_max=6) == (1, 6, 1)


def test_actors_min_overrides_the_smallest_pool(monkeypatch):
    assert pool(monkeypatch, {"CPU": 8.0, "GPU": 1.0}, actors_max=4, actors_min=2) == (2, 4, 1.0)


def test_a_small_run_gets_no_more_actors_than_batches_and_scene_items(monkeypatch):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0})
    config = RunConfig(input="in", output="out", weights="random")

    def size(inputs, scene_items=0):
        return actor_resources(config, inputs, scene_items=scene_items)["compute"].max_size

    assert (size(None), size(7), size(40)) == (12, 1, 3)  # 16 images a decode batch
    # a scene item goes to one actor
    assert (size(0, scene_items=3), size(7, scene_items=3), size(1000, scene_items=3)) == (3, 4, 12)
