"""The label formats of one export batch: a DICOM SEG per image, a Hugging Face and a COCO part file per batch.

Which rows get a SEG is decided twice. ``job.worklist`` (on the driver, from the masks table alone) skips a row
whose source is surely no DICOM file by its name (``dicom_skip``): a suffix other than ``.dcm``, ``.dicom``,
``.dic``, ``.ima``, none, or a number (files named by their UID), or an image inside a Parquet file, so an
archive of photos or GeoTIFFs is never read. The task reads each remaining source (fsspec, the job's S3
options) and checks the bytes: no ``DICM`` magic is a skip too; a source that cannot be read (deleted,
moved, forbidden) or that highdicom cannot derive a SEG from is an error of the summary.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import TYPE_CHECKING

import numpy as np

from ..formats.rasters import is_dicom
from ..io.schema import PARQUET_SOURCE
from ..io.storage import is_s3
from . import coco, hf, ledger
from .dicom_seg import dicom_seg_bytes
from .georef import ExportError, file_stem
from .results import reason, result

if TYPE_CHECKING:
    from .batch import ExportJob

DICOM_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".dic", ".ima"})
LABEL_FORMATS = ("dicom-seg", "hf", "coco")


def dicom_skip(source: str) -> str | None:
    """The summary key of why ``source`` is no DICOM file, by its name alone; None where it may be one.

    Args:
        source: the masks row's ``source`` URI.
    """
    if PARQUET_SOURCE.match(source):
        return "skipped_in_parquet"
    suffix = posixpath.splitext(source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])[1].lower()
    return None if suffix in DICOM_SUFFIXES or suffix[1:].isdigit() else "skipped_not_dicom"


class Labels:
    """The label formats of one batch: SEG files as the rows come, the ``hf`` and ``coco`` parts at the end.

    Args:
        job: the export job (where to write, class names, S3 options of the sources).
    """

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.hf: list[dict] = []
        self.coco: dict[str, tuple[dict, list[dict]]] = {}  # image id -> (COCO image, its annotations)
        self._source: tuple[str | None, bytes | ExportError | None] = (None, None)  # frames of a file are adjacent

    def add(self, row: dict, mask: np.ndarray, wanted: tuple[str, ...]) -> list[dict]:
        """Export ``row`` as a SEG now and keep it for the tables; the results known now (SEG, a failed COCO).

        Args:
            row: the masks row (``COLUMNS`` of ``batch``).
            mask: its class map, read and checked.
            wanted: the label formats it still needs.
        """
        results, image_id = [], row["image_id"]
        if "dicom-seg" in wanted:
            results.append(self._dicom_seg(row, mask))
        if "hf" in wanted:
            self.hf.append({**row, "stem": file_stem(image_id)})
        if "coco" in wanted:
            try:
                found = coco.annotations(image_id, mask, self.job.class_names)
            except Exception as exc:
                results.append(result(image_id, "coco", error=reason(exc)))
            else:
                image = {k: row[k] for k in ("image_id", "source", "height", "width")}
                self.coco[image_id] = (image, found)
        return results

    def finish(self) -> list[dict]:
        """Commit the batch's ``hf`` and ``coco`` part files; a result per image (all failed if its file did)."""
        results = []
        if self.hf:
            ids = [r["image_id"] for r in self.hf]
            error = self._commit("hf", ids, lambda meta: hf.hf_table(self.hf, self.job.class_names, meta))
            results += [result(i, "hf", error=error) for i in ids]
        if self.coco:
            rows = [a for _, found in self.coco.values() for a in found]
            error = self._commit("coco", list(self.coco), lambda meta: coco.coco_table(rows, meta))
            for image_id, (image, found) in self.coco.items():
                item = None if error else json.dumps({"image": image, "annotations": found})
                results.append(result(image_id, "coco", error=error, annotations=len(found), item=item))
        return results

    def _commit(self, fmt: str, ids: list[str], build) -> str | None:
        """One part file of ``fmt`` naming ``ids`` in its metadata; None, or why it could not be written."""
        metadata = {**self.job.metadata, ledger.EXPORTED_IDS_KEY: json.dumps(sorted(ids)).encode()}
        # named by content: a retried task rewrites the same file instead of adding a twin
        digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
        target = f"{ledger.folder(self.job.root, fmt)}/part-{self.job.run_id}-{digest}.parquet"
        try:
            ledger.commit(self.job.fs, self.job.root, self.job.run_id, target, build(metadata))
        except Exception as exc:  # the batch's rows fail in this format; the next export tries them again
            return reason(exc)
        return None

    def _dicom_seg(self, row: dict, mask: np.ndarray) -> dict:
        image_id = row["image_id"]
        try:
            source = self._read(row["source"])
            if not is_dicom(source):
                return result(image_id, "dicom-seg", skipped="skipped_not_dicom")
            algorithm = {"name": row["model"], "version": row["weights_sha256"] or "random", "run_id": row["run_id"]}
            data = dicom_seg_bytes(source, row["frame"], mask, self.job.class_names, algorithm)
            target = f"{ledger.folder(self.job.root, 'dicom-seg')}/{file_stem(image_id)}.dcm"
            ledger.commit(self.job.fs, self.job.root, self.job.run_id, target, data)
        except Exception as exc:  # an unreadable source or an unusual DICOM: this row's error, never the batch's
            return result(image_id, "dicom-seg", error=reason(exc))
        return result(image_id, "dicom-seg")

    def _read(self, source: str) -> bytes:
        """The source's bytes (the last one's again for the next frame of a multi-frame file)."""
        import fsspec

        if self._source[0] != source:
            try:
                with fsspec.open(source, "rb", **(self.job.source_options if is_s3(source) else {})) as f:
                    found: bytes | ExportError = f.read()
            except FileNotFoundError:
                found = ExportError(f"the DICOM source {source} is gone (deleted or moved since the segment run)")
            except Exception as exc:  # permissions, a 403, an unknown protocol
                found = ExportError(f"cannot read the DICOM source {source}: {type(exc).__name__}: {exc}")
            self._source = (source, found)
        if isinstance(self._source[1], ExportError):
            raise self._source[1]
        return self._source[1]
