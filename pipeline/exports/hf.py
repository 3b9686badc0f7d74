"""The masks as a Hugging Face ``datasets`` Parquet file: ``load_dataset("parquet", ...)`` gives PIL masks.

The table is what ``datasets`` itself writes for ``Features({"image_id": Value("string"), "source":
Value("string"), "mask": Image()})``: an ``Image`` column is a ``{bytes, path}`` struct, and the schema's
``huggingface`` key-value metadata names the features, so the loader decodes ``mask`` as a PIL image
whose pixel values are the class ids (255 = no-data; 16-bit PNG above 256 classes).

``datasets`` is not needed to write it: the features are spelled out here (the test checks them against
``datasets.Features.to_dict``), so the export job does not import it.

Class names travel twice: as ``fcn.class_names`` (JSON list, index = class id, as in the masks table)
and inside the ``huggingface`` key as ``info.description`` (the loader ignores every ``info`` key but
``features``, and ``datasets`` has no per-feature description, so people read it, code reads
``fcn.class_names``).
"""

from __future__ import annotations

import json

import pyarrow as pa

from ..io.schema import CLASS_NAMES_KEY
from .georef import NODATA

# the arrow type of a datasets ``Image`` feature (datasets.features.image.Image.pa_type)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
HF_SCHEMA = pa.schema([("image_id", pa.string()), ("source", pa.string()), ("mask", IMAGE)])
# Features(...).to_dict() for HF_SCHEMA, key order and all
HF_FEATURES = {
    "image_id": {"dtype": "string", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
    "mask": {"_type": "Image"},
}


def description(class_names: list[str]) -> str:
    """What the mask pixels mean, for people: ``pixel value = class id: 0=background, 1=water; 255 = no-data``."""
    classes = ", ".join(f"{k}={name}" for k, name in enumerate(class_names))
    return f"FCN segmentation masks; pixel value = class id: {classes}; {NODATA} = no-data (not a class)"


def hf_table(rows: list[dict], class_names: list[str], metadata: dict[bytes, bytes]) -> pa.Table:
    """``rows`` as a ``datasets``-loadable table: ``mask`` an ``Image`` feature holding each ``mask_png``.

    Args:
        rows: dicts with ``image_id``, ``source``, ``mask_png`` (PNG bytes) and ``stem`` (``file_stem`` of the
            id; the image's ``path`` is ``{stem}.png``, which ``datasets`` keeps as the file name).
        class_names: names by class id; written as ``fcn.class_names`` and in the description.
        metadata: more key-value metadata (the masks table's ``fcn.*`` keys, the exported image ids).
    """
    table = pa.Table.from_pylist(
        [
            {
                "image_id": r["image_id"],
                "source": r["source"],
                "mask": {"bytes": r["mask_png"], "path": f"{r['stem']}.png"},
            }
            for r in rows
        ],
        schema=HF_SCHEMA,
    )
    hf_meta = {"info": {"features": HF_FEATURES, "description": description(class_names)}}
    return table.replace_schema_metadata(
        {
            **metadata,
            # the argument wins over a stale copy in ``metadata``: these are the names the masks were made with
            CLASS_NAMES_KEY.encode(): json.dumps(list(class_names)).encode(),
            b"huggingface": json.dumps(hf_meta).encode(),
        }
    )
