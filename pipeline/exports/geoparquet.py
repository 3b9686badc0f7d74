"""GeoParquet 1.1 polygons: one row per connected region of one class, WKB in the source CRS, bbox covering.

``regions`` polygonises a mask (GDAL's polygonize through rasterio, 4-connected, no-data left out);
``geoparquet_table`` adds the ``geo`` key-value metadata that geopandas, DuckDB and GDAL read.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from .georef import NODATA, Georef

GEO_VERSION = "1.1.0"
BBOX = pa.struct([("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64())])
SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("class_id", pa.int32()),
        ("class_name", pa.string()),
        ("pixels", pa.int64()),
        ("area", pa.float64()),  # in the CRS's units squared, of the region before --simplify
        ("area_unit", pa.string()),
        ("mean_confidence", pa.float64()),  # the image's mean confidence over all pixels of this class
        ("geometry", pa.binary()),  # WKB
        ("bbox", BBOX),
    ]
)


def regions(
    image_id: str,
    mask: np.ndarray,
    geo: Georef,
    class_names: list[str],
    confidence: dict[int, float],
    *,
    min_area: float = 0.0,
    simplify: float = 0.0,
) -> list[dict]:
    """Rows of ``SCHEMA`` for every 4-connected region of one class in ``mask`` (no-data left out).

    ``pixels`` and ``area`` are those of the exact region; ``--simplify`` changes only the geometry.

    Args:
        image_id: the mask row's id.
        mask: ``[H, W]`` class ids, 255 where no-data.
        geo: the mask's CRS and transform.
        class_names: names by class id.
        confidence: mean confidence by class id (from class_stats); missing ids get null.
        min_area: regions smaller than this (CRS units squared) are left out.
        simplify: Douglas-Peucker tolerance in CRS units (topology preserved); 0 keeps the pixel outlines.
    """
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    source = mask if mask.dtype in (np.uint8, np.uint16, np.int32) else mask.astype(np.int32)
    found = [
        (shape(g), int(v)) for g, v in shapes(source, mask=mask != NODATA, connectivity=4, transform=geo.transform)
    ]
    if not found:
        return []
    polygons = np.array([p for p, _ in found], dtype=object)
    area = shapely.area(polygons)
    keep = area >= min_area
    polygons, area, classes = polygons[keep], area[keep], np.array([v for _, v in found])[keep]
    if simplify > 0:
        polygons = shapely.simplify(polygons, simplify, preserve_topology=True)
    bounds = shapely.bounds(polygons)
    unit, pixel = geo.area_unit, geo.pixel_area
    return [
        {
            "image_id": image_id,
            "class_id": c,
            "class_name": class_names[c] if c < len(class_names) else f"class_{c}",
            "pixels": int(round(a / pixel)),
            "area": float(a),
            "area_unit": unit,
            "mean_confidence": confidence.get(c),
            "geometry": wkb,
            "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), map(float, b), strict=True)),
        }
        for c, a, wkb, b in zip(classes.tolist(), area.tolist(), shapely.to_wkb(polygons), bounds, strict=True)
    ]


def geoparquet_table(rows: list[dict], geo: Georef, metadata: dict[bytes, bytes]) -> pa.Table:
    """``rows`` as a GeoParquet 1.1 table: the ``geo`` metadata (PROJJSON CRS, bbox, covering) plus ``metadata``.

    Args:
        rows: rows of ``SCHEMA``, all in ``geo``'s CRS.
        geo: their CRS.
        metadata: more key-value metadata (the ``fcn.*`` keys, the exported image ids).
    """
    from pyproj import CRS

    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    column = {
        "encoding": "WKB",
        "geometry_types": ["Polygon"],
        "crs": json.loads(CRS.from_wkt(geo.crs.to_wkt()).to_json()),
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
    }
    if rows:
        boxes = np.array([[r["bbox"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for r in rows])
        column["bbox"] = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
    geo_meta = {"version": GEO_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}
    return table.replace_schema_metadata({**metadata, b"geo": json.dumps(geo_meta).encode()})
