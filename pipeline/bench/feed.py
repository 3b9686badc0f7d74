"""What one pipeline run spent besides the model: steady-state rate, CPU per image by stage, start-up.

Inputs are the per-batch records of ``pipeline.probe`` and the CPU time of every process of the run
(``PeakMemory``). The steady state is the part of the run between the moments 10% and 90% of its
rows came out of the inference actors: start-up and the drain at the end are left out, inside one run.
"""

from __future__ import annotations

from .measure import PeakMemory

# (a) of the last GPU run (README): fcn_resnet50 at 520, bf16, one H100; CPUs per GPU = feed cost x this
GPU_MODEL_ALONE_IMAGES_PER_SECOND = 767
STAGES = ("read", "decode", "segment", "finish", "write")


def feed_figures(records: list[dict], memory: PeakMemory, started: float, segment_task_seconds: float) -> dict:
    """Steady-state rate, feed cost by stage, the actor's per-batch overhead and the time to first mask.

    Args:
        records: ``pipeline.probe`` records of the run.
        memory: the sampler that ran around the run (CPU time of every process).
        started: ``time.time()`` when the run was called (Ray already up).
        segment_task_seconds: the inference operator's summed Ray task time (manifest ``stage_seconds``).
    """
    finished, segment = of_stage(records, "finish"), of_stage(records, "segment")
    rows = sum(r["rows"] for r in segment)
    if not finished or rows < 10:
        return {}
    # the window is timed by rows leaving the inference actors: encoding may come in bundles of blocks
    w0, w1 = _moment(segment, 0.1 * rows), _moment(segment, 0.9 * rows)
    figures = {
        "first_mask_seconds": min(r["end"] for r in finished) - started,
        "steady_window_seconds": w1 - w0,
        "steady_images_per_second": 0.8 * rows / (w1 - w0) if w1 > w0 else None,
    }
    calls = sum(r["end"] - r["start"] for r in segment)
    figures["actor_call_seconds"] = calls
    figures["actor_task_seconds"] = segment_task_seconds
    overhead = (segment_task_seconds - calls) / calls if calls and segment_task_seconds else None
    figures["actor_overhead_per_call"] = overhead  # Ray's per-batch work in the actor, per second of __call__
    if w1 > w0:
        figures["feed_ms_per_image"] = _feed_by_stage(records, memory, w0, w1, 0.8 * rows)
        feed = figures["feed_ms_per_image"]["feed"]
        figures["cpus_per_gpu_at_model_alone_rate"] = feed * GPU_MODEL_ALONE_IMAGES_PER_SECOND / 1000
    return figures


def actor_task_seconds(stage_seconds: dict[str, float]) -> float:
    """The inference operator's Ray task time, from the manifest's ``stage_seconds``."""
    return sum(seconds for operator, seconds in stage_seconds.items() if "Segmenter" in operator)


def of_stage(records: list[dict], stage: str) -> list[dict]:
    """The records of one stage."""
    return [r for r in records if r["stage"] == stage]


def _moment(batches: list[dict], rows: float) -> float:
    """When the ``rows``-th row came out of ``batches`` (in order of their end; interpolated inside one)."""
    done = 0
    for record in sorted(batches, key=lambda r: r["end"]):
        if done + record["rows"] >= rows:
            return record["start"] + (record["end"] - record["start"]) * (rows - done) / record["rows"]
        done += record["rows"]
    return batches[-1]["end"]


def _share(record: dict, w0: float, w1: float) -> float:
    """The part of a record's batch inside the window ``[w0, w1]``."""
    start, end = record["start"], record["end"]
    if end <= start:
        return float(w0 <= end <= w1)
    return max(0.0, min(end, w1) - max(start, w0)) / (end - start)


def _feed_by_stage(records: list[dict], memory: PeakMemory, w0: float, w1: float, images: float) -> dict:
    """CPU milliseconds per image, by stage; ``feed`` is everything but the model's own work.

    What the stages measure around each batch is summed over the whole run (work per image does not
    depend on when it ran: decoding runs ahead and may finish before the window opens). What only
    process CPU time shows (Ray's work in the actors and task workers, Ray's own processes, the
    driver) is taken inside the steady window, so that process start-up (imports) is left out.
    """
    rows = {s: sum(r["rows"] for r in records if r["stage"] == s) for s in STAGES}
    cpu = {s: sum(r["cpu"] for r in records if r["stage"] == s) for s in STAGES}
    segment = of_stage(records, "segment")
    model = sum(r.get("model_cpu", 0.0) for r in segment)
    per_image = {s: cpu[s] * 1000 / rows[s] if rows[s] else 0.0 for s in ("read", "decode", "write")}
    per_image["actor_call_outside_model"] = (cpu["segment"] - model) * 1000 / rows["segment"]
    per_image["encode"] = cpu["finish"] * 1000 / rows["finish"] if rows["finish"] else 0.0
    before, after = memory.cpu_at(w0), memory.cpu_at(w1)
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    in_window = {s: sum(r["cpu"] * _share(r, w0, w1) for r in records if r["stage"] == s) for s in STAGES}
    actor_cpu = sum(spent.get(pid, 0.0) for pid in {r["pid"] for r in segment})
    tasks = sum(in_window[s] for s in ("read", "decode", "finish", "write"))
    seconds = {
        "actor_ray_around_calls": actor_cpu - in_window["segment"],
        "ray_in_task_workers": spent["workers"] - actor_cpu - tasks,
        "ray_processes": spent["ray"],
        "driver": spent["driver"],
    }
    per_image.update({k: v * 1000 / images for k, v in seconds.items()})
    per_image["feed"] = sum(per_image.values())
    per_image["model"] = model * 1000 / rows["segment"]
    return per_image
