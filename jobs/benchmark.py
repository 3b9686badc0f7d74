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
        help="run (c) again with these changes (benchmark fields or the job's options), e.g. jpeg_decode=tasks, "
        "num_gpus=0.5, calls_per_actor=2 (repeatable)",
    )
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of (a), (b), (c), interleaved; min, median, max reported"
    )
    parser.add_argument(
        "--scale", type=int, default=1, help="also run (c) once on this x N images: peak memory at both; 1 = off"
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
    parser.add_argument(
        "--photos", type=int, default=0, metavar="N",
        help="only: N photos of 3, 12 and 48 MP at --resize 520 through the job: the inference actor's time "
        "against the same photos stored at the fed size, and its peak memory",
    )  # fmt: skip
    parser.add_argument(
        "--exports", type=int, default=0, metavar="N",
        help="only: N georeferenced masks of --size px exported as cog, geoparquet, cog+stac and all: images/s, "
        "polygons/s, CPU-ms per image",
    )  # fmt: skip
    parser.add_argument(
        "--scenes", default=None, metavar="SIDES",
        help="only: scenes of these comma-separated sides (e.g. 20000,50000) as tile rows: peak memory against a "
        "2048 px scene, throughput against the smallest scene's tiles as separate files",
    )  # fmt: skip
    parser.add_argument(
        "--agreement", type=int, default=0, metavar="SIDE",
        help="only: a SIDE px scene as tile rows and in memory: time, memory, pixels that agree",
    )  # fmt: skip
    parser.add_argument(
        "--bookkeeping", default=None, metavar="N[,N...]",
        help="only: the driver's bookkeeping at N inputs (empty files, a committed table of N rows, no inference): "
        "listing, resume set, a no-op resume and one of 1%% new through the job, the totals; time and peak memory",
    )  # fmt: skip
    parser.add_argument("--zoo", action="store_true", help="only: parameters and images/s of every registered model")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "fcn-benchmark"), help="scratch folder"
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def bench_from_args(args: argparse.Namespace, **sizes) -> BenchConfig:
    """The benchmark's settings from the parsed flags.

    Args:
        args: ``parse_args``'s namespace.
        sizes: ``size``, ``images``, ``reps`` and ``scale`` of the chosen measurement.
    """
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
        bench = bench_from_args(args, size=args.huge, images=1, reps=1, scale=1)
        result = huge_image(bench, args.huge, args.tile_size, args.tile_overlap)
        mib = 1 << 20
        print(f"{args.huge}x{args.huge} in {args.tile_size}-px tiles: {result['seconds']:.1f} s, ", end="")
        driver, workers = result["peak_driver_bytes"] / mib, result["peak_workers_bytes"] / mib
        print(f"peak driver {driver:.0f} MiB, Ray workers {workers:.0f} MiB")
    elif args.sweep:
        result = {"sweep": batch_sweep(args, [int(b) for b in args.sweep.split(",")])}
    elif args.actor_parts:
        bench = bench_from_args(args, size=args.size, images=args.batch_size, reps=args.reps, scale=1)
        paths = bench_inputs(bench, bench.images)
        result = {"actor_parts_ms_per_batch": actor_breakdown(bench, paths)}
        for name, ms in result["actor_parts_ms_per_batch"].items():
            print(f"{name:<24}{ms:9.1f} ms per batch of {args.batch_size} ({args.model}, {args.size} px)")
    elif args.photos:
        from pipeline.bench.photos import photos

        bench = bench_from_args(args, size=0, images=args.photos, reps=1, scale=1)
        result = photos(bench, args.photos, log=lambda line: print(line, flush=True))
        for label, run in result["runs"].items():
            task, call, model = (run[f"actor_{k}_seconds"] for k in ("task", "call", "model"))
            peak = run["actor_peak_bytes"] / 2**20
            print(f"{label:<29} actor task {task:.1f} s, call {call:.1f} s, model {model:.1f} s, peak {peak:.0f} MiB")
        task, call = (result[f"actor_{k}_seconds_12mp_over_fed"] for k in ("task", "call"))
        print(f"12 MP / fed size: actor task time x{task:.2f}, call time x{call:.2f}")
    elif args.exports:
        from pipeline.bench.exports import export_benchmark

        log = lambda line: print(line, flush=True)  # noqa: E731
        result = export_benchmark(args.workdir, args.exports, args.size, args.num_cpus, log=log)
    elif args.scenes or args.agreement:
        from pipeline.bench.scenes import agreement, scenes_benchmark

        bench = bench_from_args(args, size=0, images=0, reps=1, scale=1)
        log = lambda line: print(line, flush=True)  # noqa: E731
        sides = [int(s) for s in args.scenes.split(",")] if args.scenes else []
        result = scenes_benchmark(bench, sides, log=log) if sides else {}
        if args.agreement:
            result["agreement"] = agreement(bench, args.agreement, log=log)
    elif args.bookkeeping:
        from pipeline.bench.bookkeeping import bookkeeping, print_table

        sizes = [int(n) for n in args.bookkeeping.split(",")]
        result = bookkeeping(args.workdir, sizes, log=lambda line: print(line, flush=True))
        print_table(result)
    elif args.zoo:
        rows = model_zoo(args.size, args.threads, batch_size=1)
        print(f"{'model':<22}{'parameters':>14}{'images/s':>10}   ({args.size}x{args.size}, {args.threads} threads)")
        for row in rows:
            print(f"{row['model']:<22}{row['parameters']:>14,}{row['images_per_second']:>10.2f}")
        result = {"zoo": rows}
    else:
        bench = bench_from_args(args, size=args.size, images=args.images, reps=args.reps, scale=args.scale)
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
    bench = bench_from_args(args, size=args.size, images=args.images, reps=args.reps, scale=1)
    paths = bench_inputs(bench, bench.images)
    rows = []
    for size in sizes:
        rate, gpu = median_run([model_alone(replace(bench, batch_size=size), paths) for _ in range(bench.reps)])
        rows.append({"batch_size": size, "images_per_second": rate, "gpu": gpu})
        busy = f", GPU busy {gpu['busy_percent']:.0f}%, peak {gpu['peak_memory_mib']:.0f} MiB" if gpu else ""
        print(f"(a) {args.model} at {args.size}, batch {size:>4}: {rate:8.2f} images/s{busy}", flush=True)
    return rows


def print_summary(result: dict) -> None:
    """Every figure as median (min - max) over the repetitions, (c) and each variant of it."""
    reps = len(result["reps"])
    print(f"--- {reps} repetitions of (a), (b), (c) interleaved; median (min - max)")
    for label, figures in result["figures"].items():
        print(f"--- (c) = {label}" if label != "pipeline" else "--- (c) = the pipeline as configured")
        for name, unit in FIGURES:
            if figures.get(name):
                print(f"{name:<36}{show(figures[name], unit)}")
        for stage, spread in (figures.get("feed_ms_per_image") or {}).items():
            print(f"  CPU-ms per image, {stage:<22}{show(spread, '')}")
        if figures.get("c_over_b_steady_spread") is not None:
            print(f"steady c/b spread (max - min) / median: {figures['c_over_b_steady_spread']:.1%}")
    gpu = result["reps"][0]
    if gpu["gpu_a"]:
        print(f"(a) GPU:{gpu_note(gpu['gpu_a'])}\n(b) GPU:{gpu_note(gpu['gpu_b'])}")
        print(f"(c) GPU:{gpu_note(gpu['c']['pipeline']['gpu'])}")
    scale = result.get("memory_scale")
    if scale:
        small, large = scale["images"]
        print(f"peak memory at {large} vs {small} images: ", end="")
        print(f"Ray workers x{scale['workers_ratio']:.2f}, driver x{scale['driver_ratio']:.2f}")
    stages = result["reps"][-1]["c"]["pipeline"]["stage_seconds"]
    print("task time by stage, last (c) (s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    if result["device"] != "cpu":
        print(f"Ray Data's published ResNet-50 batch inference: about {RAY_DATA_T4} images/s per T4 GPU (10 TB scale)")


FIGURES = (
    ("a_images_per_second", "images/s"),
    ("b_images_per_second", "images/s"),
    ("c_images_per_second", "images/s end to end"),
    ("c_steady_images_per_second", "images/s, 10th-90th percentile of rows"),
    ("c_over_b_end_to_end", ""),
    ("c_over_a_end_to_end", ""),
    ("c_over_b_steady", ""),
    ("c_over_a_steady", ""),
    ("first_mask_seconds", "s after Ray is up"),
    ("actor_overhead_per_call", "(actor task time - __call__) / __call__"),
    ("cpus_per_gpu_at_model_alone_rate", "CPUs at the last GPU run's (a) rate"),
    ("peak_workers_bytes", "bytes, Ray workers (sum)"),
    ("peak_driver_bytes", "bytes, driver"),
)
RAY_DATA_T4 = 290  # images/s per T4: Ray Data's published ResNet-50 batch inference at 10 TB scale


def show(spread: dict, unit: str) -> str:
    low, mid, high = spread["min"], spread["median"], spread["max"]
    if mid >= 1e6:
        return f"{mid / 2**20:9.0f} MiB ({low / 2**20:.0f} - {high / 2**20:.0f})"
    return f"{mid:9.3f} ({low:.3f} - {high:.3f}) {unit}"


def gpu_note(gpu: dict | None) -> str:
    """GPU busy share over the measurement and from its first to its last kernel, and peak memory."""
    if not gpu:
        return ""
    busy, active, peak = (gpu[k] for k in ("busy_percent", "busy_percent_active", "peak_memory_mib"))
    return f"   GPU busy {busy:.1f}% ({active:.1f}% first to last kernel), peak {peak:.0f} MiB"


if __name__ == "__main__":
    sys.exit(main())
