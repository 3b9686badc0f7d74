"""The feed-cost arithmetic on records whose answer is known: the steady window, CPU by stage, overhead."""

from __future__ import annotations

import pytest

from pipeline.bench.feed import feed_figures


class Sampler:
    """Cumulative CPU seconds growing linearly: workers 1.0/s (of which pid 7, the actor, 0.6/s), Ray 0.1/s."""

    def cpu_at(self, when: float) -> dict:
        return {"driver": 0.05 * when, "workers": 1.0 * when, "ray": 0.1 * when, "sampler": 0.0, 7: 0.6 * when}


def records() -> list[dict]:
    """100 images in 10 batches, one finished every second from t=1; the actor's batch ends as it is encoded."""
    out = []
    for k in range(10):
        end = 1.0 + k
        common = {"rows": 10, "start": end - 1.0, "end": end}
        out.append({"stage": "decode", "pid": 5, "cpu": 0.1, **common})
        out.append({"stage": "segment", "pid": 7, "cpu": 0.5, "model_cpu": 0.4, "model_seconds": 0.4, **common})
        out.append({"stage": "finish", "pid": 6, "cpu": 0.2, **common})
    return out


def test_steady_window_and_cpu_per_image_by_stage():
    figures = feed_figures(records(), Sampler(), started=0.0, segment_task_seconds=12.0)
    # rows 10 and 90 come out at t=1 and t=9: 80 images in 8 s
    assert figures["steady_window_seconds"] == pytest.approx(8.0)
    assert figures["steady_images_per_second"] == pytest.approx(10.0)
    assert figures["first_mask_seconds"] == pytest.approx(1.0)
    assert figures["actor_overhead_per_call"] == pytest.approx(0.2)  # 12 s of task time around 10 s of calls
    feed = figures["feed_ms_per_image"]
    # each second: 10 images; decode 0.1 s, actor call 0.5 of which model 0.4, encode 0.2; per image x100
    assert feed["decode"] == pytest.approx(10.0) and feed["encode"] == pytest.approx(20.0)
    assert feed["model"] == pytest.approx(40.0) and feed["actor_call_outside_model"] == pytest.approx(10.0)
    assert feed["actor_ray_around_calls"] == pytest.approx(10.0)  # the actor process: 0.6 s/s, its calls 0.5
    assert feed["ray_in_task_workers"] == pytest.approx(10.0)  # workers 1.0 - actor 0.6 - tasks 0.3
    assert feed["ray_processes"] == pytest.approx(10.0) and feed["driver"] == pytest.approx(5.0)
    assert feed["feed"] == pytest.approx(115.0 - 40.0)  # all processes 1.15 s/s, less the model's 0.4
    assert figures["cpus_per_gpu_at_model_alone_rate"] == pytest.approx(75.0 * 767 / 1000)


def test_too_few_rows_give_no_figures():
    unfinished = [r for r in records() if r["stage"] != "finish"]  # nothing came out of postprocess yet
    assert feed_figures(unfinished, Sampler(), started=0.0, segment_task_seconds=1.0) == {}
