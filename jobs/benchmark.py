"""Benchmark: ``python -m jobs.benchmark`` prints (a) model alone, (b) plain loop, (c) pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace

from pipeline.bench.baselines import actor_breakdown, model_alone
from pipeline.bench.benchmark import benchmark, huge_image, median_run
from pipeline.bench.inputs import BenchConfig, bench_inputs
from pipeline.bench.model_zoo import model_zoo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmark", description=__doc__)
    parser.add_argument("--model", default="fcn8s_mobilenet_v3", help="registered model name")
    parser.add_argument("--weights", default=None, help="weights name or URI; default the bundled scenes weights")
    parser.add_argument("--size", type=int, default=512, help="height and width of the generated JPEG files")
    parser.add_argument("--images", type=int, default=200, help="number of JPEG files")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass, in all three")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of (a) and (b): the cores")
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="logical CPUs of the local Ray cluster; default the job's"
    )
    parser.add_argument(
        "--actor-threads", type=int, default=None, help="torch threads per inference actor; default the job's"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device of all three")
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="CUDA autocast, all three"
    )
    parser.add_argument(
        "--jpeg-decode", default="auto", choices=["auto", "tasks", "actor"], help="the job's --jpeg-decode for (c)"
    )
    parser.add_argument("--num-gpus", type=float, default=None, help="GPUs per inference actor of (c) (0.5: two)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="FIELD=VALUE[,FIELD=VALUE]",
        help="run (c) again with these changes, e.g. jpeg_decode=tasks or num_gpus=0.5 (repeatable)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument(
        "--scale", type=int, default=4, help="also run (c) on this x N images: steady-state rate, memory; 1 = off"
    )
    parser.add_argument("--huge", type=int, default=0, help="only: one image of this side through the job, in tiles")
    parser.add_argument("--tile-size", type=int, default=1024, help="tile side for --huge")
    parser.add_argument("--tile-overlap", type=int, default=128, help="tile overlap for --huge")
    parser.add_argument(
        "--sweep", default=None, help="only: (a) at each of these comma-separated batch sizes, e.g. 8,16,32,64"
    )
    parser.add_argument(
        "--actor-parts", action="store_true", help="only: ms per batch of each part of the inference actor's work"
    )
    parser.add_argument("--zoo", action="store_true", help="only: parameters and images/s of every registered model")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "fcn-benchmark"), help="scratch folder"
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def bench_config(args: argparse.Namespace, **sizes) -> BenchConfig:
    return BenchConfig(
        model=args.model, weights=args.weights or default_weights(args.model), batch_size=args.batch_size,
        threads=args.threads, num_cpus=args.num_cpus, actor_threads=args.actor_threads, workdir=args.workdir,
        device=args.device, precision=args.precision, jpeg_decode=args.jpeg_decode, num_gpus=args.num_gpus, **sizes,
    )  # fmt: skip


def default_weights(model: str) -> str:
    import models

    bundled = f"{model}_scenes"
    return bundled if bundled in models.list_weights() else "random"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.huge:
        bench = bench_config(args, size=args.huge, images=1, reps=1, scale=1)
        result = huge_image(bench, args.huge, args.tile_size, args.tile_overlap)
        mib = 1 << 20
        print(f"{args.huge}x{args.huge} in {args.tile_size}-px tiles: {result['seconds']:.1f} s, ", end="")
        driver, workers = result["peak_driver_bytes"] / mib, result["peak_workers_bytes"] / mib
        print(f"peak driver {driver:.0f} MiB, Ray workers {workers:.0f} MiB")
    elif args.sweep:
        result = {"sweep": batch_sweep(args, [int(b) for b in args.sweep.split(",")])}
    elif args.actor_parts:
        bench = bench_config(args, size=args.size, images=args.batch_size, reps=args.reps, scale=1)
        paths = bench_inputs(bench, bench.images)
        result = {"actor_parts_ms_per_batch": actor_breakdown(bench, paths)}
        for name, ms in result["actor_parts_ms_per_batch"].items():
            print(f"{name:<24}{ms:9.1f} ms per batch of {args.batch_size} ({args.model}, {args.size} px)")
    elif args.zoo:
        rows = model_zoo(args.size, args.threads, batch_size=1)
        print(f"{'model':<22}{'parameters':>14}{'images/s':>10}   ({args.size}x{args.size}, {args.threads} threads)")
        for row in rows:
            print(f"{row['model']:<22}{row['parameters']:>14,}{row['images_per_second']:>10.2f}")
        result = {"zoo": rows}
    else:
        bench = bench_config(args, size=args.size, images=args.images, reps=args.reps, scale=args.scale)
        result = benchmark(bench, variants(args.also), log=lambda line: print(line, flush=True))
        print_summary(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


def variants(also: list[str]) -> dict[str, dict]:
    """``--also`` values as label -> changed ``BenchConfig`` fields (numbers parsed as numbers)."""
    return {label: {k: number(v) for k, v in (part.split("=", 1) for part in label.split(","))} for label in also}


def number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def batch_sweep(args: argparse.Namespace, sizes: list[int]) -> list[dict]:
    """(a), the model alone, at each batch size: the figures behind the --batch-size default."""
    bench = bench_config(args, size=args.size, images=args.images, reps=args.reps, scale=1)
    paths = bench_inputs(bench, bench.images)
    rows = []
    for size in sizes:
        rate, gpu = median_run([model_alone(replace(bench, batch_size=size), paths) for _ in range(bench.reps)])
        rows.append({"batch_size": size, "images_per_second": rate, "gpu": gpu})
        busy = f", GPU busy {gpu['busy_percent']:.0f}%, peak {gpu['peak_memory_mib']:.0f} MiB" if gpu else ""
        print(f"(a) {args.model} at {args.size}, batch {size:>4}: {rate:8.2f} images/s{busy}", flush=True)
    return rows


def print_summary(result: dict) -> None:
    a, b = result["model_alone_images_per_second"], result["plain_loop_images_per_second"]
    print(f"(a) model alone               {a:8.2f} images/s{gpu_note(result['gpu_model_alone'])}")
    print(f"(b) plain loop                {b:8.2f} images/s{gpu_note(result['gpu_plain_loop'])}")
    print_pipeline(result, result["config"]["images"])
    for label, figures in result["variants"].items():
        print(f"--- (c) again with {label}")
        print_pipeline(figures, result["config"]["images"])
    if result["device"] != "cpu":
        print(f"Ray Data's published ResNet-50 batch inference: about {RAY_DATA_T4} images/s per T4 GPU (10 TB scale)")


RAY_DATA_T4 = 290  # images/s per T4: Ray Data's published ResNet-50 batch inference at 10 TB scale


def gpu_note(gpu: dict | None) -> str:
    """GPU busy share over the measurement and from its first to its last kernel, and peak memory."""
    if not gpu:
        return ""
    busy, active, peak = (gpu[k] for k in ("busy_percent", "busy_percent_active", "peak_memory_mib"))
    return f"   GPU busy {busy:.1f}% ({active:.1f}% first to last kernel), peak {peak:.0f} MiB"


def print_pipeline(figures: dict, images: int) -> None:
    mib = 1 << 20
    for count, run in figures["pipeline_runs"].items():
        rate = run["images_per_second"]
        print(f"(c) pipeline, {count:>5} images   {rate:8.2f} images/s end to end{gpu_note(run['gpu'])}")
    print(f"end to end on {images} images: c/a = {figures['c_over_a']:.3f}   c/b = {figures['c_over_b']:.3f}")
    steady = figures.get("steady_state")
    if steady:
        small, large = steady["images"]
        if steady["pipeline_images_per_second"] is None:
            print(f"(c) steady state: not measurable, {large} images took no longer than {small}; use more images")
        else:
            print(f"(c) steady state              {steady['pipeline_images_per_second']:8.2f} images/s ", end="")
            print(f"({large - small} more images over the extra seconds; start-up {steady['startup_seconds']:.1f} s)")
            print(f"steady state: c/a = {steady['c_over_a']:.3f}   c/b = {steady['c_over_b']:.3f}")
        print(f"peak memory at {large} vs {small} images: ", end="")
        print(f"workers x{steady['workers_memory_ratio']:.2f}, driver x{steady['driver_memory_ratio']:.2f}")
    print(f"peak memory ({images} images): driver {figures['pipeline_peak_driver_bytes'] / mib:.0f} MiB, ", end="")
    print(f"Ray workers (sum) {figures['pipeline_peak_workers_bytes'] / mib:.0f} MiB")
    stages = figures["pipeline_stage_seconds"]
    print("task time by stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))


if __name__ == "__main__":
    sys.exit(main())
