"""The inference pool's size and resources, from what the cluster reports and what the run has to do."""

from __future__ import annotations

import ray
import ray.data

from .config import RunConfig
from .stages.replica import default_batch_size


def actor_resources(config: RunConfig, inputs: int | None = None, scene_items: int = 0) -> dict:
    """Pool size and per-actor resources from what the cluster reports.

    On CPU clusters a quarter of the CPUs (at least one) stays free for reading,
    decoding and writing: a pool that takes every CPU starves the read tasks.
    The whole pool starts at once unless GPU nodes must first be added by an autoscaler.

    Args:
        config: the run configuration (pool bounds, resources per actor).
        inputs: inputs still to do, when known from the listing: the pool is no larger than their batches.
        scene_items: read items of scenes (``scenes.read.scene_items``), each taken whole by one actor.
    """
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    num_gpus = config.num_gpus if config.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
    if num_gpus > 0:
        up = int(gpus // num_gpus)  # actors the GPUs already up can hold
        # --actors-max on an autoscaling cluster: ask for all of them even while only some (or no) GPU
        # nodes are up, so that the pending actors make the autoscaler add the rest
        largest = config.actors_max or up or 1
    else:
        up = None
        largest = max(1, int((cpus - max(1, cpus // 4)) // config.cpus_per_actor))
    size = min(config.actors_max or largest, largest)
    if inputs is not None:  # a small run: no more actors than decode batches and scene items to give them
        size = max(1, min(size, -(-inputs // config.decode_batch_size) + scene_items))
    # fewer GPUs up than the pool asks for: start on what is there instead of waiting for the whole pool
    smallest = config.actors_min or (1 if up is not None and up < size else size)
    return {
        # several calls per actor: Ray's per-batch work (batching, serialising) runs beside the model,
        # whose calls still run one at a time (``enable_true_multi_threading`` stays off)
        "compute": ray.data.ActorPoolStrategy(
            min_size=min(smallest, size), max_size=size, max_concurrent_calls_per_actor=config.calls_per_actor
        ),
        "num_gpus": num_gpus,
        "num_cpus": config.cpus_per_actor,
    }


def with_batch_size(config: RunConfig, num_gpus: float) -> RunConfig:
    """``--batch-size``, or the default for the pool's device."""
    return config if config.batch_size else config.model_copy(update={"batch_size": default_batch_size(num_gpus > 0)})
