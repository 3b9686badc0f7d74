"""COCO run-length-encoded annotations: one per class present in a mask, as a Parquet table and a COCO JSON document.

``annotations`` encodes each class's binary mask with pycocotools (compressed RLE, the ``counts`` string
``pycocotools.mask.decode`` and ``COCO.annToMask`` read); no-data (255) is no class and is left out.
``coco_document`` assembles the ``instances``-style JSON that pycocotools, FiftyOne, CVAT and Detectron2 load.

Ids in the JSON document: images and annotations are numbered 1, 2, ... in the order given, and a class's
category id is ``class_id + 1``: COCO itself allows 0, but several tools (CVAT, some Detectron2 paths)
take 0 for "none". The Parquet table keeps the model's own ``class_id``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .georef import NODATA

COCO_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("class_id", pa.int32()),
        ("class_name", pa.string()),
        ("counts", pa.string()),  # compressed RLE (column-major, as pycocotools writes it)
        ("size", pa.list_(pa.int32())),  # [height, width]
        ("area", pa.int64()),  # pixels
        ("bbox", pa.list_(pa.float64())),  # [x, y, width, height] in pixels
    ]
)
CATEGORY_OFFSET = 1  # category_id = class_id + 1 in the JSON document


def annotations(image_id: str, mask: np.ndarray, class_names: list[str]) -> list[dict]:
    """Rows of ``COCO_SCHEMA``, one per class present in ``mask`` (no-data left out), in class id order.

    Args:
        image_id: the mask row's id.
        mask: ``[H, W]`` class ids, 255 where no-data (uint8; uint16 above 256 classes).
        class_names: names by class id; an id beyond the list is named ``class_<id>``.
    """
    from pycocotools import mask as rle

    counts = np.bincount(mask.ravel(), minlength=NODATA + 1)
    counts[NODATA] = 0
    present = np.flatnonzero(counts)
    # pycocotools encodes column-major masks only: one Fortran-ordered buffer, refilled per class
    binary = np.empty(mask.shape, dtype=bool, order="F")
    encoded = []
    for class_id in present:
        np.equal(mask, class_id, out=binary)
        encoded.append(rle.encode(binary.view(np.uint8)))
    if not encoded:
        return []
    areas, boxes = rle.area(encoded), rle.toBbox(encoded)
    height, width = mask.shape
    return [
        {
            "image_id": image_id,
            "class_id": int(c),
            "class_name": class_names[c] if c < len(class_names) else f"class_{c}",
            "counts": e["counts"].decode("ascii"),
            "size": [height, width],
            "area": int(a),
            "bbox": [float(v) for v in b],
        }
        for c, e, a, b in zip(present.tolist(), encoded, areas.tolist(), boxes, strict=True)
    ]


def coco_table(rows: list[dict], metadata: dict[bytes, bytes]) -> pa.Table:
    """``rows`` (from ``annotations``) as a Parquet-ready table with ``metadata`` (the ``fcn.*`` keys).

    Args:
        rows: rows of ``COCO_SCHEMA``.
        metadata: key-value metadata (the masks table's ``fcn.*`` keys, the exported image ids).
    """
    return pa.Table.from_pylist(rows, schema=COCO_SCHEMA).replace_schema_metadata(metadata)


def coco_document(
    images: list[dict], annotations: list[dict], class_names: list[str], *, info: dict | None = None
) -> dict:
    """A COCO JSON document (``images``, ``categories``, ``annotations``) of masks and their RLE annotations.

    Every class is a category (``id = class_id + 1``), present or not, so documents of one model agree.
    Annotations are ``iscrowd: 1``: a compressed RLE is COCO's "crowd" segmentation, and a class's pixels
    in one image are one region set, not one object.

    Args:
        images: dicts with ``image_id`` (our string id), ``source`` (URI), ``height``, ``width``; an optional
            ``file_name`` (else the last part of ``source``, which COCO tools join to their image folder).
        annotations: rows of ``annotations`` for those images.
        class_names: names by class id.
        info: more ``info`` keys (model, run id).

    Raises:
        ValueError: an annotation of an image not in ``images``.
    """
    numbers = {image["image_id"]: k for k, image in enumerate(images, start=1)}
    missing = sorted({a["image_id"] for a in annotations} - set(numbers))
    if missing:
        raise ValueError(f"annotations of images not in the document: {', '.join(missing[:5])}")
    return {
        "info": {
            "description": f"FCN segmentation masks; category_id = class id + {CATEGORY_OFFSET}",
            **(info or {}),
        },
        "images": [
            {
                "id": numbers[image["image_id"]],
                "file_name": image.get("file_name") or image["source"].rstrip("/").rsplit("/", 1)[-1],
                "coco_url": image["source"],
                "height": int(image["height"]),
                "width": int(image["width"]),
                "fcn_image_id": image["image_id"],
            }
            for image in images
        ],
        "categories": [
            {"id": k + CATEGORY_OFFSET, "name": name, "supercategory": "fcn"}
            for k, name in enumerate(class_names)
            if k != NODATA  # never a class: the no-data value of the masks
        ],
        "annotations": [
            {
                "id": k,
                "image_id": numbers[a["image_id"]],
                "category_id": a["class_id"] + CATEGORY_OFFSET,
                "segmentation": {"size": list(a["size"]), "counts": a["counts"]},
                "area": int(a["area"]),
                "bbox": list(a["bbox"]),
                "iscrowd": 1,
            }
            for k, a in enumerate(annotations, start=1)
        ],
    }
