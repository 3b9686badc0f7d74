"""What an export task hands back to the driver: one result row per (image, format), ok, skipped or failed."""

from __future__ import annotations

import pyarrow as pa

from .georef import ExportError

RESULT = pa.schema(
    [
        ("image_id", pa.string()),
        ("format", pa.string()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("skipped", pa.string()),  # a summary key (``skipped_not_dicom``): not exported, and no error
        ("polygons", pa.int64()),
        ("annotations", pa.int64()),
        # JSON the driver needs beyond counts: a new STAC item (the collection), a COCO image and its annotations
        ("item", pa.string()),
    ]
)


def result(
    image_id: str,
    fmt: str,
    *,
    error: str | None = None,
    skipped: str | None = None,
    polygons: int | None = None,
    annotations: int | None = None,
    item: str | None = None,
) -> dict:
    """One row of ``RESULT``; ``ok`` unless there is an ``error``.

    Args:
        image_id: the masks row's id.
        fmt: the format.
        error: why it failed (listed in the summary; the next export tries again).
        skipped: the summary key of why it was not exported (a ``SKIPPED`` key of ``pipeline.exports.job``).
        polygons: GeoParquet regions written.
        annotations: COCO annotations written.
        item: JSON for the driver.
    """
    return {
        "image_id": image_id,
        "format": fmt,
        "ok": error is None,
        "error": error,
        "skipped": skipped,
        "polygons": polygons,
        "annotations": annotations,
        "item": item,
    }


def reason(exc: Exception) -> str:
    """An ``ExportError``'s own message, any other exception's type and message."""
    return str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
