"""STAC: an Item per exported COG (projection and classification extensions) and a Collection over them.

Items live at ``exports/stac/items/<stem>.json`` and link to ``../collection.json``; the collection is
rewritten after each export from the previous one plus the items it does not list yet, so a killed
export's items join it on the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np

from .georef import NODATA, Georef

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
COLLECTION_ID = "fcn-masks"
_NAME = re.compile(r"[^0-9A-Za-z_-]")


def run_datetime(run_id: str) -> dt.datetime:
    """When the masks' run started, from its id (``20261127T051234Z-ab12cd``); now for other ids."""
    try:
        return dt.datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)


def footprint(geo: Georef, height: int, width: int) -> dict:
    """The image's outline as GeoJSON in EPSG:4326 (edges densified, so curved after reprojection)."""
    import shapely
    from rasterio.warp import transform_geom
    from shapely.geometry import Polygon, mapping

    corners = [geo.transform @ xy for xy in ((0, 0), (width, 0), (width, height), (0, height))]
    outline = Polygon(corners)
    dense = shapely.segmentize(outline, max(outline.length / 64, 1e-9))
    return transform_geom(geo.crs, "EPSG:4326", mapping(dense))


def classes(class_names: list[str], pixels: list[int] | None = None) -> list:
    """Classification-extension classes by id (``name`` made to fit the extension's pattern), and no-data."""
    from pystac.extensions.classification import Classification

    found = []
    for value, name in enumerate(class_names):
        count = int(pixels[value]) if pixels is not None and value < len(pixels) else None
        found.append(Classification.create(value=value, name=_NAME.sub("_", name) or f"class_{value}",
                                           title=name, count=count))  # fmt: skip
    found.append(Classification.create(value=NODATA, name="no_data", title="no data", nodata=True))
    return found


def stac_item(row: dict, geo: Georef, stem: str, class_names: list[str]) -> dict:
    """The STAC Item of one exported mask.

    Args:
        row: the masks row (``image_id``, ``source``, ``height``, ``width``, ``class_pixels``, ``run_id``, ``model``).
        geo: its CRS and transform.
        stem: its file stem (``exports/cog/<stem>.tif``).
        class_names: names by class id.
    """
    import pystac
    import shapely
    from pystac.extensions.classification import ClassificationExtension
    from pystac.extensions.projection import ProjectionExtension
    from shapely.geometry import shape

    geometry = footprint(geo, row["height"], row["width"])
    item = pystac.Item(
        id=row["image_id"],
        geometry=geometry,
        bbox=list(shapely.bounds(shape(geometry))),
        datetime=run_datetime(row["run_id"]),
        properties={"fcn:model": row["model"], "fcn:run_id": row["run_id"], "fcn:source": row["source"]},
        collection=COLLECTION_ID,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = geo.code()
    if proj.code is None:
        proj.wkt2 = geo.crs.to_wkt()
    proj.transform = list(geo.transform)[:6]
    proj.shape = [int(row["height"]), int(row["width"])]
    mask = pystac.Asset(href=f"../../cog/{stem}.tif", media_type=COG_MEDIA_TYPE, title="class ids", roles=["data"])
    item.add_asset("mask", mask)
    ClassificationExtension.ext(mask, add_if_missing=True).classes = classes(class_names, row.get("class_pixels"))
    item.add_asset("source", pystac.Asset(href=row["source"], title="segmented image", roles=["source"]))
    for rel in ("collection", "parent", "root"):
        item.add_link(pystac.Link(rel, "../collection.json", media_type="application/json"))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def collection_dict(previous: dict | None, new_items: list[dict], class_names: list[str]) -> dict:
    """The collection over ``previous``'s items and ``new_items``: extents widened, one item link each.

    Args:
        previous: the collection as written before (None on the first export).
        new_items: items it does not list yet.
        class_names: names by class id (the collection's classification summary).
    """
    import pystac

    boxes = [i["bbox"] for i in new_items]
    times = [i["properties"]["datetime"] for i in new_items]
    links = list(previous["links"]) if previous else []
    if previous:
        boxes += previous["extent"]["spatial"]["bbox"][:1]
        times += [t for t in previous["extent"]["temporal"]["interval"][0] if t]
    box = np.array(boxes, float) if boxes else np.array([[-180.0, -90.0, 180.0, 90.0]])
    stamps = sorted(pystac.utils.str_to_datetime(t) for t in times) or [dt.datetime.now(dt.timezone.utc)]
    collection = pystac.Collection(
        id=COLLECTION_ID,
        description="Masks of an FCN segmentation run, one COG per image (python -m jobs.export)",
        extent=pystac.Extent(
            pystac.SpatialExtent([[*box[:, :2].min(axis=0), *box[:, 2:].max(axis=0)]]),
            pystac.TemporalExtent([[stamps[0], stamps[-1]]]),
        ),
        license="other",
    )
    from pystac.extensions.classification import ClassificationExtension

    ClassificationExtension.summaries(collection, add_if_missing=True).classes = classes(class_names)
    out = collection.to_dict(include_self_link=False, transform_hrefs=False)
    known = {link["href"] for link in links if link.get("rel") == "item"}
    added = [f"./items/{i['_stem']}.json" for i in new_items]
    items = [link for link in links if link.get("rel") == "item"]
    items += [{"rel": "item", "href": h, "type": "application/geo+json"} for h in added if h not in known]
    out["links"] = [{"rel": "root", "href": "./collection.json", "type": "application/json"}, *items]
    return out


def dumps(document: dict) -> bytes:
    return json.dumps({k: v for k, v in document.items() if not k.startswith("_")}, indent=1).encode()
