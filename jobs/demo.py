"""``make demo``: held-out synthetic scenes -> segment -> evaluate -> report, with bundled weights.

Every step is the real job (``jobs.segment``, ``jobs.evaluate``, ``jobs.report``) run in
this process on one local Ray cluster; nothing is downloaded. ``--geo`` (``make demo-geo``) makes
the scenes GeoTIFFs in UTM zone 33N, exports the masks as COG, GeoParquet and STAC and opens each
with its own reader. ``--dicom`` (``make demo-dicom``) segments DICOM files that pydicom ships (CT, MR,
a two-frame image), exports DICOM SEG, Hugging Face and COCO and reads each back the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import models
from jobs import evaluate, make_scenes, report, segment

BUNDLED = "fcn8s_mobilenet_v3_scenes"
HELD_OUT_SEED = 1000  # the bundled weights were trained on seed 0: these scenes are new to them
GEO_CRS = "EPSG:32633"  # UTM zone 33N: metres, so the GeoParquet areas are m^2
DICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle_2frame.dcm")  # shipped inside pydicom


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__)
    parser.add_argument("--workdir", default=None, help="where inputs, masks and the report go (default out/demo*)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--geo", action="store_true", help="georeferenced scenes (GeoTIFF), exported for GIS tools")
    kind.add_argument("--dicom", action="store_true", help="pydicom's own DICOM files, exported for PACS and labels")
    parser.add_argument("--count", type=int, default=48, help="number of held-out scenes to generate")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    workdir = args.workdir or ("out/demo-geo" if args.geo else "out/demo-dicom" if args.dicom else "out/demo")
    inputs, out = os.path.join(workdir, "scenes"), os.path.join(workdir, "segmented")
    segmenting = segment_args(os.path.join(inputs, "images"), out, args.num_cpus)
    if args.dicom:
        dicom_inputs(os.path.join(inputs, "images"))
        steps = [("segment", segment.main, [*segmenting, "--export", "dicom-seg,hf,coco"])]
    else:
        generate = ["--output", inputs, "--count", str(args.count), "--seed", str(HELD_OUT_SEED)]
        truth = ["--masks", out, "--truth", os.path.join(inputs, "masks"), "--json", f"{out}/eval.json"]
        steps = [
            ("generate", make_scenes.main, generate + (["--crs", GEO_CRS] if args.geo else [])),
            ("segment", segment.main, segmenting + (["--export", "cog,geoparquet,stac"] if args.geo else [])),
            ("evaluate", evaluate.main, truth),
        ]
    for name, step, step_args in [*steps, ("report", report.main, ["--masks", out])]:
        print(f"== {name}: python -m jobs.{step.__module__.rsplit('.', 1)[-1]} {' '.join(step_args)}", flush=True)
        if step(step_args) != 0:
            print(f"demo: the {name} step failed", file=sys.stderr)
            return 1
    if not args.dicom:
        with open(f"{out}/eval.json", encoding="utf-8") as f:
            mean_iu = json.load(f)["mean_iu"]
        print(f"\ndemo done in {time.time() - started:.0f} s: mean IU {mean_iu:.3f} on {args.count} held-out scenes")
    print(f"open the report: {os.path.abspath(os.path.join(out, 'report', 'index.html'))}")
    if args.geo or args.dicom:
        from pipeline.loop.readback import gis_exports, label_exports

        print("== exports, each opened by its own reader", flush=True)
        for line in gis_exports(out) if args.geo else label_exports(out):
            print(line, flush=True)
    return 0


def dicom_inputs(folder: str) -> None:
    """Copy the DICOM files pydicom ships (nothing downloaded) into ``folder``."""
    from pydicom.data import get_testdata_file

    os.makedirs(folder, exist_ok=True)
    for name in DICOM_FILES:
        shutil.copyfile(get_testdata_file(name), os.path.join(folder, name))
    print(f"copied {', '.join(DICOM_FILES)} from pydicom's test files to {folder}; the bundled weights know "
          "aerial scenes, so these masks show the formats, not anatomy", flush=True)  # fmt: skip


def segment_args(images: str, out: str, num_cpus: int | None) -> list[str]:
    weights = BUNDLED if BUNDLED in models.list_weights() else "random"
    argv = ["--input", images, "--output", out, "--weights", weights, "--mode", "overwrite"]
    return argv + (["--num-cpus", str(num_cpus)] if num_cpus else [])


if __name__ == "__main__":
    sys.exit(main())
