"""Benchmark: ``python -m jobs.benchmark`` prints (a) model alone, (b) plain loop, (c) pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from pipeline.benchmark import BenchConfig, benchmark, huge_image
from pipeline.model_zoo import model_zoo


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
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument(
        "--scale", type=int, default=4, help="also run (c) on this x N images: steady-state rate, memory; 1 = off"
    )
    parser.add_argument("--huge", type=int, default=0, help="only: one image of this side through the job, in tiles")
    parser.add_argument("--tile-size", type=int, default=1024, help="tile side for --huge")
    parser.add_argument("--tile-overlap", type=int, default=128, help="tile overlap for --huge")
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
    elif args.zoo:
        rows = model_zoo(args.size, args.threads, batch_size=1)
        print(f"{'model':<22}{'parameters':>14}{'images/s':>10}   ({args.size}x{args.size}, {args.threads} threads)")
        for row in rows:
            print(f"{row['model']:<22}{row['parameters']:>14,}{row['images_per_second']:>10.2f}")
        result = {"zoo": rows}
    else:
        bench = bench_config(args, size=args.size, images=args.images, reps=args.reps, scale=args.scale)
        result = benchmark(bench)
        print_summary(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


def print_summary(result: dict) -> None:
    mib, images = 1 << 20, result["config"]["images"]
    a, b = result["model_alone_images_per_second"], result["plain_loop_images_per_second"]
    print(f"(a) model alone               {a:8.2f} images/s")
    print(f"(b) plain loop                {b:8.2f} images/s")
    for count, run in result["pipeline_runs"].items():
        print(f"(c) pipeline, {count:>5} images   {run['images_per_second']:8.2f} images/s end to end")
    print(f"end to end on {images} images: c/a = {result['c_over_a']:.3f}   c/b = {result['c_over_b']:.3f}")
    steady = result.get("steady_state")
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
    print(f"peak memory ({images} images): driver {result['pipeline_peak_driver_bytes'] / mib:.0f} MiB, ", end="")
    print(f"Ray workers (sum) {result['pipeline_peak_workers_bytes'] / mib:.0f} MiB")
    print("task time by stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result["pipeline_stage_seconds"].items()))
    if result["gpu"]:
        print_gpu(result)


RAY_DATA_T4 = 290  # images/s per T4: Ray Data's published ResNet-50 batch inference at 10 TB scale


def print_gpu(result: dict) -> None:
    """GPU busy share of each measurement, and the pipeline's rate per GPU beside Ray Data's figure."""
    gpu = result["gpu"]
    for name, label in (("model_alone", "(a)"), ("plain_loop", "(b)"), ("pipeline", "(c)")):
        g = gpu[name] or {}
        busy, active, peak = (g.get(k, 0) for k in ("busy_percent", "busy_percent_active", "peak_memory_mib"))
        print(
            f"GPU busy {label} {busy:5.1f}% of the run, {active:5.1f}% from first to last kernel; peak {peak:.0f} MiB"
        )
    runs = result["pipeline_runs"]
    largest = runs[max(runs, key=int)]
    print(f"(c) on {result['device']}: {largest['images_per_second']:.0f} images/s per GPU end to end, ", end="")
    print(f"GPU busy {(largest['gpu'] or {}).get('busy_percent', 0):.1f}% ({max(runs, key=int)} images); ", end="")
    print(f"Ray Data's published ResNet-50 figure: about {RAY_DATA_T4} images/s per T4")


if __name__ == "__main__":
    sys.exit(main())
