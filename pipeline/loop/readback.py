"""Opening a run's exports with each ecosystem's own reader, for the demos: what a user will see.

Each function returns printable lines; an export that its reader refuses raises (the demo fails).
"""

from __future__ import annotations

import glob
import io

import numpy as np


def gis_exports(out: str) -> list[str]:
    """A COG by rasterio, the GeoParquet by geopandas, a STAC item by pystac's schema validation."""
    import geopandas
    import pystac
    import pystac.validation
    import rasterio

    lines = []
    cog = sorted(glob.glob(f"{out}/exports/cog/*.tif"))[0]
    with rasterio.open(cog) as src:
        lines.append(f"COG {cog}: rasterio reads {src.width}x{src.height} {src.dtypes[0]}, {src.crs}, "
                     f"pixel {src.transform.a} m, overviews {src.overviews(1)}, no-data {src.nodata:g}")  # fmt: skip
    frame = geopandas.read_parquet(f"{out}/exports/geoparquet/epsg-32633")
    lines.append(f"GeoParquet {out}/exports/geoparquet/epsg-32633: geopandas reads {len(frame)} polygons of "
                 f"{frame.image_id.nunique()} images, CRS {frame.crs.to_string()}, "
                 f"{frame.area.sum():.0f} m^2")  # fmt: skip
    collection = pystac.read_file(f"{out}/exports/stac/collection.json")
    items = list(collection.get_items())
    # pystac ships the core STAC schemas; the extensions' schemas are fetched online (none here)
    pystac.validation.validate_dict(items[0].to_dict(), extensions=[])
    lines.append(f"STAC {out}/exports/stac/collection.json: {len(items)} items; item {items[0].id} is valid STAC "
                 f"{items[0].to_dict()['stac_version']}, proj:code {items[0].properties['proj:code']}")  # fmt: skip
    return lines


def label_exports(out: str) -> list[str]:
    """Each DICOM SEG by highdicom (references and pixels), the hf table by ``datasets``, the COCO JSON by
    pycocotools, each compared with the masks table's own PNG masks."""
    import datasets
    import highdicom
    import pyarrow.dataset as pads
    import pydicom
    from PIL import Image
    from pycocotools.coco import COCO

    masks = {r["image_id"]: r for r in pads.dataset(f"{out}/masks").to_table().to_pylist() if r["status"] == "ok"}
    pngs = {i: np.asarray(Image.open(io.BytesIO(r["mask_png"]))) for i, r in masks.items()}
    lines = []
    for path in sorted(glob.glob(f"{out}/exports/dicom-seg/*.dcm")):
        seg = highdicom.seg.segread(path)
        study, series, sop = seg.get_source_image_uids()[0]
        source = pydicom.dcmread(next(r["source"] for r in masks.values() if pydicom.dcmread(
            r["source"], stop_before_pixels=True).SOPInstanceUID == sop), stop_before_pixels=True)  # fmt: skip
        labels = [seg.get_segment_description(n).segment_label for n in seg.segment_numbers]
        lines.append(f"DICOM SEG {path}: highdicom reads {seg.SegmentationType} {len(labels)} segments {labels}, "
                     f"references {source.Modality} study/series/instance of the source: "
                     f"{(study, series, sop) == (source.StudyInstanceUID, source.SeriesInstanceUID, sop)}")  # fmt: skip
    table = datasets.load_dataset("parquet", data_files=f"{out}/exports/hf/*.parquet", split="train")
    same = all(np.array_equal(np.asarray(row["mask"]), pngs[row["image_id"]]) for row in table)
    lines.append(f"Hugging Face {out}/exports/hf: datasets loads {len(table)} rows, mask feature "
                 f"{type(table.features['mask']).__name__}, every mask equal to the table's: {same}")  # fmt: skip
    document = sorted(glob.glob(f"{out}/exports/coco/_coco-*.json"))[-1]
    coco = COCO(document)
    exact = 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        exact += np.array_equal(coco.annToMask(ann), pngs[image["fcn_image_id"]] == ann["category_id"] - 1)
    lines.append(f"COCO {document}: pycocotools reads {len(coco.imgs)} images, {len(coco.cats)} categories, "
                 f"{len(coco.anns)} RLE annotations, {exact} decoded exactly")  # fmt: skip
    return lines
