"""Export a segment run's masks for GIS and labelling tools: ``python -m jobs.export --masks OUT --to cog,hf``.

Writes ``OUT/exports/<format>/``: one COG per georeferenced image, GeoParquet polygons (a folder per
CRS), a STAC item per COG and a collection; a DICOM SEG per mask of a DICOM source; Hugging Face and
COCO RLE Parquet tables and a COCO JSON file per export. Incremental: a rerun exports only what is new.
"""

from __future__ import annotations

import sys

from jobs.flags import model_parser, parse, refuse
from pipeline.config import ConfigError, load_config
from pipeline.exports.config import ExportConfig
from pipeline.quiet import quiet_ray


def main(argv: list[str] | None = None) -> int:
    overrides, config_file = parse(model_parser("python -m jobs.export", __doc__.split("\n")[0], ExportConfig), argv)
    try:
        config = load_config(overrides, config_file, ExportConfig)
    except ConfigError as exc:
        return refuse(exc)
    return run_export(config)


def run_export(config: ExportConfig) -> int:
    """Run the export, print its summary; exit code 0, or 1 when some image failed (listed)."""
    from pipeline.exports.job import SKIPPED, export  # Ray and GDAL load only once the arguments are good

    if not config.verbose:
        quiet_ray("export")
    try:
        record = export(config)
    except ConfigError as exc:
        return refuse(exc)
    for fmt, counts in record["formats"].items():
        extra = "".join(f", {counts[k]} {k}" for k in ("polygons", "annotations") if k in counts)
        skips = "".join(f", {counts[k]} skipped ({why})" for k, why in SKIPPED.items() if counts.get(k))
        print(
            f"export {fmt}: {counts['exported']} exported{extra}, {counts['already']} already{skips}, "
            f"{counts['errors']} errors",
            flush=True,
        )
    if record.get("coco_json"):
        print(f"export coco: this export's COCO JSON: {config.masks.rstrip('/')}/{record['coco_json']}", flush=True)
    for error in record["errors"]:
        print(f"  error {error['format']} {error['image_id']}: {error['error']}", file=sys.stderr)
    if not record["images"]:
        print("nothing new to export: Ray was not started", flush=True)
    print(f"done in {record['seconds']:.1f}s; summary: {config.masks.rstrip('/')}/exports/_manifest.json", flush=True)
    return 1 if any(c["errors"] for c in record["formats"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
