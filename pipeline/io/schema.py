"""The output contract in one place: both table schemas, the ``fcn.*`` key-value metadata, RunInfo,
and the rule that names an image stored inside a Parquet file (``file.parquet#tag``).

Writers (the sink) and readers (evaluate, report, train) import these names; a change here is a
change of the contract that DuckDB, pandas and the users' own code read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow as pa

MASKS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("source", pa.string()),
        ("source_version", pa.string()),  # size and mtime of a listed file: a changed file is done again
        ("frame", pa.int32()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("mask_png", pa.binary()),
        ("mask_uri", pa.string()),  # a scene's tiled raster (tiles as rows), where mask_png is null
        ("class_pixels", pa.list_(pa.int64())),
        ("crs", pa.string()),
        ("geotransform", pa.list_(pa.float64())),
        ("model", pa.string()),
        ("weights_sha256", pa.string()),
        ("run_id", pa.string()),
    ]
)
STATS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("class_id", pa.int32()),
        ("class_name", pa.string()),
        ("pixels", pa.int64()),
        ("fraction", pa.float64()),
        ("mean_confidence", pa.float64()),
        ("area", pa.float64()),  # pixels x the area of one pixel, where the source says (io/areas)
        ("area_unit", pa.string()),  # mm^2 (DICOM PixelSpacing) or m^2 (a metric projected CRS); else null
    ]
)

# the Parquet key-value metadata of both tables
META_PREFIX = "fcn."
CLASS_NAMES_KEY = "fcn.class_names"  # JSON list, index = class id
MODEL_KEY = "fcn.model"
RUN_ID_KEY = "fcn.run_id"
WEIGHTS_KEY = "fcn.weights_sha256"  # empty for random weights

PARQUET_SOURCE = re.compile(r"^(.*?\.(?:parquet|pq))#(.+)$", re.IGNORECASE)  # groups: file, tag


@dataclass(frozen=True)
class RunInfo:
    """Provenance written into every row and into the Parquet key-value metadata."""

    run_id: str
    model: str
    weights_sha256: str | None
    class_names: tuple[str, ...]

    def metadata(self) -> dict[bytes, bytes]:
        values = {
            CLASS_NAMES_KEY: json.dumps(list(self.class_names)),
            MODEL_KEY: self.model,
            RUN_ID_KEY: self.run_id,
            WEIGHTS_KEY: self.weights_sha256 or "",
        }
        return {k.encode(): v.encode() for k, v in values.items()}


def read_metadata(raw: dict[bytes, bytes] | None) -> dict[str, str]:
    """The ``fcn.*`` keys of a Parquet schema's key-value metadata, decoded."""
    return {k.decode(): v.decode() for k, v in (raw or {}).items() if k.startswith(META_PREFIX.encode())}


def class_names(meta: dict[str, str]) -> list[str] | None:
    """Class names from decoded metadata (``read_metadata``), or None when the file has none."""
    return json.loads(meta[CLASS_NAMES_KEY]) if CLASS_NAMES_KEY in meta else None


def parquet_image_tag(row: int, inner_path: str | None) -> str:
    """What follows ``#`` in the source of an image stored in a Parquet file: ``row-N`` and its own path.

    ``row`` is the row's number in its file (unique even where a ``{bytes, path}`` column repeats its
    ``path``); the struct's ``path``, when it has one, follows for people. The sources write it, and
    the report finds the image again by it.
    """
    return f"row-{row}/{inner_path}" if inner_path else f"row-{row}"
