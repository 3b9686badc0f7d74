"""``make demo``: held-out synthetic scenes -> segment -> evaluate -> report, with bundled weights.

Every step is the real job (``jobs.segment``, ``jobs.evaluate``, ``jobs.report``) run in
this process on one local Ray cluster; nothing is downloaded. ``--geo`` (``make demo-geo``) makes
the scenes GeoTIFFs in UTM zone 33N, exports the masks as COG, GeoParquet and STAC
(``jobs.segment --export all``) and opens each export with its own reader.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import models
from jobs import evaluate, make_scenes, report, segment

BUNDLED = "fcn8s_mobilenet_v3_scenes"
HELD_OUT_SEED = 1000  # the bundled weights were trained on seed 0: these scenes are new to them
GEO_CRS = "EPSG:32633"  # UTM zone 33N: metres, so the GeoParquet areas are m^2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__)
    parser.add_argument(
        "--workdir", default=None, help="where scenes, masks and the report go (out/demo, out/demo-geo)"
    )
    parser.add_argument("--geo", action="store_true", help="georeferenced scenes (GeoTIFF), exported for GIS tools")
    parser.add_argument("--count", type=int, default=48, help="number of held-out scenes to generate")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    workdir = args.workdir or ("out/demo-geo" if args.geo else "out/demo")
    scenes, out = os.path.join(workdir, "scenes"), os.path.join(workdir, "segmented")
    generate = ["--output", scenes, "--count", str(args.count), "--seed", str(HELD_OUT_SEED)]
    steps = [
        ("generate", make_scenes.main, generate + (["--crs", GEO_CRS] if args.geo else [])),
        ("segment", segment.main, segment_args(scenes, out, args.num_cpus) + (["--export", "all"] if args.geo else [])),
        (
            "evaluate",
            evaluate.main,
            ["--masks", out, "--truth", os.path.join(scenes, "masks"), "--json", f"{out}/eval.json"],
        ),
        ("report", report.main, ["--masks", out]),
    ]
    for name, step, step_args in steps:
        print(f"== {name}: python -m jobs.{step.__module__.rsplit('.', 1)[-1]} {' '.join(step_args)}", flush=True)
        if step(step_args) != 0:
            print(f"demo: the {name} step failed", file=sys.stderr)
            return 1
    with open(f"{out}/eval.json", encoding="utf-8") as f:
        mean_iu = json.load(f)["mean_iu"]
    print(f"\ndemo done in {time.time() - started:.0f} s: mean IU {mean_iu:.3f} on {args.count} held-out scenes")
    print(f"open the report: {os.path.abspath(os.path.join(out, 'report', 'index.html'))}")
    if args.geo:
        show_exports(out)
    return 0


def show_exports(out: str) -> None:
    """Open one export of each format with its own reader and say what it holds."""
    import glob

    import geopandas
    import pystac
    import pystac.validation
    import rasterio

    cog = sorted(glob.glob(f"{out}/exports/cog/*.tif"))[0]
    with rasterio.open(cog) as src:
        print(f"COG {cog}: rasterio reads {src.width}x{src.height} {src.dtypes[0]}, {src.crs}, "
              f"pixel {src.transform.a} m, overviews {src.overviews(1)}, no-data {src.nodata:g}")  # fmt: skip
    frame = geopandas.read_parquet(f"{out}/exports/geoparquet/epsg-32633")
    print(f"GeoParquet {out}/exports/geoparquet/epsg-32633: geopandas reads {len(frame)} polygons of "
          f"{frame.image_id.nunique()} images, CRS {frame.crs.to_string()}, {frame.area.sum():.0f} m^2")  # fmt: skip
    collection = pystac.read_file(f"{out}/exports/stac/collection.json")
    item = next(iter(collection.get_items()))
    # pystac ships the core STAC schemas; the extensions' schemas are fetched online, so offline this checks the core
    pystac.validation.validate_dict(item.to_dict(), extensions=[])
    print(f"STAC {out}/exports/stac/collection.json: {len(list(collection.get_items()))} items; item {item.id} is "
          f"valid STAC {item.to_dict()['stac_version']}, proj:code {item.properties['proj:code']}")  # fmt: skip


def segment_args(scenes: str, out: str, num_cpus: int | None) -> list[str]:
    weights = BUNDLED if BUNDLED in models.list_weights() else "random"
    argv = ["--input", os.path.join(scenes, "images"), "--output", out, "--weights", weights, "--mode", "overwrite"]
    return argv + (["--num-cpus", str(num_cpus)] if num_cpus else [])


if __name__ == "__main__":
    sys.exit(main())
