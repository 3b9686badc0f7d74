"""DICOM Segmentation objects (highdicom) of masks whose source is a DICOM image, for PACS and DICOM viewers.

One SEG per mask row, in the source's study and referencing the source instance (and frame): one segment
per class id present in the mask, numbered 1..k in class id order and labelled with the class name; no-data
(255) is background (label 0), never a segment. ``segmentation_type="LABELMAP"`` (the default) writes the
Label Map Segmentation SOP class (one frame of segment numbers, highdicom >= 0.23); ``"BINARY"`` writes the
classic Segmentation SOP class (one bit plane per segment) for viewers that do not read label maps yet.

Sources (tried on pydicom's test files and a highdicom legacy-converted enhanced MR):

- single-frame images (CT, MR, ...): the SEG references the instance;
- multi-frame images with per-frame functional groups (enhanced and legacy-converted enhanced CT/MR/PET):
  the SEG holds the one frame, at that frame's plane position, and its derivation names the frame number;
- images without a frame of reference (ultrasound multi-frame, secondary capture): highdicom derives a SEG
  from one frame only there and wants functional groups from every multi-frame SOP class, so the SEG is
  built against a one-frame Secondary Capture copy of the header, and the source's SOP class and frame
  number are written back into the references; the SEG carries no pixel spacing (see ``_unplaced_header``);
- multi-frame images with a frame of reference but no functional groups (RT Dose, old-style multi-frame
  MR/NM) are refused with ``ExportError``: nothing in them says where frame k lies.

UIDs are named by the masks' ``run_id`` and the source's UIDs (``2.25.`` + a name-based UUID),
so exporting the same mask again yields the same instance (a PACS replaces it) and all masks of one source
series from one run share one SEG series.
"""

from __future__ import annotations

import io

import numpy as np

from .georef import NODATA, ExportError

SERIES_OFFSET = 1000  # the SEG series number = the source's + this, its own line in a viewer's series list


def dicom_seg_bytes(
    source: bytes,
    frame: int | None,
    mask: np.ndarray,
    class_names: list[str],
    algorithm: dict,
    *,
    segmentation_type: str = "LABELMAP",
) -> bytes:
    """The mask as a DICOM SEG file (Part 10 bytes) referencing its source image.

    Args:
        source: the bytes of the source DICOM file (its pixel data is not read).
        frame: the 0-based frame of a multi-frame source the mask belongs to; None for a single-frame one.
        mask: ``[rows, cols]`` class ids, 255 where no-data, the size of the source's frames.
        class_names: names by class id (segment labels); an id beyond the list is named ``class_<id>``.
        algorithm: ``name`` (model name), ``version`` (weights sha256, or ``random``), ``run_id``.
        segmentation_type: ``LABELMAP`` or ``BINARY``.

    Raises:
        ExportError: the source is not readable DICOM, not the mask's size, not placeable (see the module
            docstring), or the mask holds no class pixels.
    """
    import highdicom as hd

    ds = _read(source)
    frames = int(ds.get("NumberOfFrames") or 1)
    what = f"DICOM {getattr(ds.SOPClassUID, 'name', ds.SOPClassUID)}"
    if (frame is None and frames > 1) or (frame is not None and not 0 <= frame < frames):
        raise ExportError(f"frame {frame} of a {what} with {frames} frame(s); the masks row's frame is wrong")
    if mask.shape != (ds.Rows, ds.Columns):
        raise ExportError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the source {what} is {ds.Columns}x{ds.Rows}")
    labels, classes = _label_map(mask)
    if not classes:
        raise ExportError("the mask has no class pixels (all no-data): a SEG needs at least one segment")

    image, pixels, frame_number = _placement(ds, frames, frame, labels, what)
    try:
        seg = hd.seg.Segmentation(
            source_images=[image],
            pixel_array=pixels,
            segmentation_type=segmentation_type,
            segment_descriptions=_segments(classes, class_names, algorithm),
            series_instance_uid=_uid(algorithm, ds.SeriesInstanceUID),
            series_number=int(ds.get("SeriesNumber") or 0) + SERIES_OFFSET,
            sop_instance_uid=_uid(algorithm, ds.SOPInstanceUID, frame),
            instance_number=frame + 1 if frame is not None else int(ds.get("InstanceNumber") or 1),
            manufacturer="fcn-archive",
            manufacturer_model_name=algorithm["name"],
            software_versions=_software_version(),
            device_serial_number=algorithm["run_id"],
            content_description="FCN segmentation",
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # highdicom's word on an unusual source
        raise ExportError(f"highdicom cannot derive a SEG from this {what}: {exc}") from None
    if image is not ds:
        _restore_references(seg, ds, frame_number)
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read(source: bytes):
    """The source's header, or ``ExportError`` naming why it is not a DICOM image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ExportError(f"the source is not readable DICOM ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns")
               if k not in ds]  # fmt: skip
    if missing:
        raise ExportError(f"the source DICOM is not an image: it lacks {', '.join(missing)}")
    return ds


def _label_map(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Segment numbers 1..k for the k classes present (class id order), 0 for no-data; and those class ids."""
    counts = np.bincount(mask.ravel(), minlength=NODATA + 1)
    counts[NODATA] = 0
    classes = np.flatnonzero(counts)
    lookup = np.zeros(counts.size, np.uint8 if classes.size < 256 else np.uint16)
    lookup[classes] = np.arange(1, classes.size + 1)
    return lookup[mask], classes.tolist()


def _segments(classes: list[int], class_names: list[str], algorithm: dict) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm["name"],
        version=algorithm.get("version") or "random",
        family=codes.cid7162.ArtificialIntelligence,
        parameters={"run_id": algorithm["run_id"]},
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            # SegmentLabel is a DICOM LO: at most 64 characters
            segment_label=(class_names[c] if c < len(class_names) else f"class_{c}")[:64],
            # the model's classes carry no coded meaning; "Tissue" is CID 7150's most general concept
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
        )
        for number, c in enumerate(classes, start=1)
    ]


def _uid(algorithm: dict, *parts) -> str:
    """A UID named by ``parts`` and the run: ``2.25.`` and a name-based (v5) UUID, as DICOM PS3.5 B.2 allows."""
    import uuid

    name = "/".join(["fcn-archive", algorithm["run_id"], *map(str, parts)])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, name).int}"


def _placement(ds, frames: int, frame: int | None, labels: np.ndarray, what: str):
    """What highdicom builds the SEG from: a source header, the pixel array, and the frame number to write
    into the references afterwards (None: highdicom writes the right ones itself)."""
    import highdicom as hd

    if hd.spatial.get_image_coordinate_system(ds) is None:
        return _unplaced_header(ds), labels, (frame + 1 if frames > 1 else None)
    if frames == 1:
        return ds, labels, None
    if "PerFrameFunctionalGroupsSequence" not in ds:
        raise ExportError(
            f"a multi-frame {what} with a frame of reference but without per-frame functional groups: where its "
            "frames lie is unknown, so the SEG cannot be placed; convert the source to an enhanced image first"
        )
    # frame i of the array is frame i + 1 of the source, and empty frames are left out of the SEG
    # (np.zeros pages that are only read are never allocated)
    pixels = np.zeros((frames, *labels.shape), labels.dtype)
    pixels[frame] = labels
    return ds, pixels, None


def _unplaced_header(ds):
    """The header of a source without a frame of reference, in a form highdicom derives a readable SEG from.

    highdicom derives a SEG from one frame only there, and reads the functional groups of any multi-frame
    SOP class: a multi-frame source stands in as a one-frame Secondary Capture (``_restore_references`` puts
    back its class and frame). No Pixel Spacing: highdicom 0.28 would write it without Slice Thickness (valid
    without a frame of reference), and its own reader refuses such a Pixel Measures item.
    """
    import copy

    from pydicom.uid import SecondaryCaptureImageStorage

    header = copy.deepcopy(ds)  # Dataset.copy() shares its elements: a change would reach the source's
    if "NumberOfFrames" in header:
        del header.NumberOfFrames
        header.SOPClassUID = SecondaryCaptureImageStorage
    header.pop("PixelSpacing", None)
    return header


def _restore_references(seg, ds, frame_number: int | None) -> None:
    """Point every reference of ``seg`` to the source's own SOP class, and each frame's derivation to its frame.

    The instance-level references (Source Image, Referenced Series) name no frame, as highdicom's own
    multi-frame SEGs do; highdicom shares those two sequences' items.
    """
    derivations = [i for f in seg.PerFrameFunctionalGroupsSequence for d in f.get("DerivationImageSequence", [])
                   for i in d.SourceImageSequence]  # fmt: skip
    instances = [i for s in seg.get("ReferencedSeriesSequence", []) for i in s.ReferencedInstanceSequence]
    for item in [*derivations, *seg.get("SourceImageSequence", []), *instances]:
        if item.ReferencedSOPInstanceUID == ds.SOPInstanceUID:
            item.ReferencedSOPClassUID = ds.SOPClassUID
    if frame_number is not None:
        for item in derivations:
            item.ReferencedFrameNumber = frame_number


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"fcn-archive {version('fcn-archive')}"
    except PackageNotFoundError:
        return "fcn-archive"
