"""DICOM SEG export on pydicom's own test images, read back by highdicom: references, segments, pixels."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

from pipeline.exports.dicom_seg import dicom_seg_bytes
from pipeline.exports.georef import ExportError

NAMES = ["background", "soft", "bright", "unused"]  # class 3 never appears: no segment for it
ALGORITHM = {"name": "fcn_resnet50", "version": "ab" * 32, "run_id": "run-7"}
LABELMAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom and highdicom on old test files


def pydicom_file(name: str) -> bytes:
    from pydicom.data import get_testdata_file

    with open(get_testdata_file(name), "rb") as f:
        return f.read()


def enhanced_mr() -> bytes:
    """Three MR_small slices 5 mm apart, converted by highdicom to one Legacy Converted Enhanced MR (3 frames)."""
    import highdicom as hd
    import pydicom

    base = pydicom.dcmread(io.BytesIO(pydicom_file("MR_small.dcm")))
    slices = []
    for k in range(3):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID, ds.InstanceNumber = hd.UID(), k + 1
        ds.ImagePositionPatient = [*base.ImagePositionPatient[:2], float(base.ImagePositionPatient[2]) + 5 * k]
        ds.PixelData = (base.pixel_array // (k + 1)).astype(base.pixel_array.dtype).tobytes()
        slices.append(ds)
    converted = hd.legacy.LegacyConvertedEnhancedMRImage(slices, hd.UID(), 9, hd.UID(), 1)
    buffer = io.BytesIO()
    converted.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


SOURCES = {
    "ct": lambda: pydicom_file("CT_small.dcm"),
    "mr": lambda: pydicom_file("MR_small.dcm"),
    "enhanced-mr": enhanced_mr,  # multi-frame with functional groups
    "us-multiframe": lambda: pydicom_file("examples_ybr_color.dcm"),  # 30 frames, no frame of reference
}


def class_mask(source: bytes, frame: int | None) -> np.ndarray:
    """Classes 0-2 by thresholding the frame's pixels (stripes where they are JPEG), a no-data corner."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(source))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        pixels = np.add.outer(np.arange(ds.Rows), np.arange(ds.Columns)) % 30
    else:
        pixels = ds.pixel_array if frame is None else ds.pixel_array[frame]
    mask = np.digitize(pixels, np.quantile(pixels, [0.4, 0.8])).astype(np.uint8)
    mask[: ds.Rows // 4, : ds.Columns // 5] = 255
    return mask


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    return {name: make() for name, make in SOURCES.items()}


@pytest.mark.parametrize(
    ("name", "frame", "kind"),
    [("ct", None, "LABELMAP"), ("ct", None, "BINARY"), ("mr", None, "LABELMAP"),
     ("enhanced-mr", 1, "LABELMAP"), ("us-multiframe", 7, "LABELMAP")],
)  # fmt: skip
def test_seg_references_its_source_and_holds_the_mask(sources, name, frame, kind):
    import highdicom as hd
    import pydicom

    source = sources[name]
    original = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    mask = class_mask(source, frame)
    data = dicom_seg_bytes(source, frame, mask, NAMES, ALGORITHM, segmentation_type=kind)
    seg = hd.seg.segread(io.BytesIO(data))

    uids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
    assert seg.get_source_image_uids() == [uids]
    assert seg.StudyInstanceUID == original.StudyInstanceUID and seg.Modality == "SEG"
    assert (seg.SOPClassUID == LABELMAP_SOP_CLASS) == (kind == "LABELMAP")
    references = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert references.ReferencedSOPClassUID == original.SOPClassUID  # the source's own, never a stand-in
    present = [c for c in range(len(NAMES)) if (mask == c).any()]
    assert present == [0, 1, 2]
    descriptions = [seg.get_segment_description(n) for n in seg.segment_numbers]
    assert [d.segment_label for d in descriptions] == [NAMES[c] for c in present]
    for d in descriptions:
        assert d.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        assert d.algorithm_identification[0].AlgorithmName == "fcn_resnet50"
        assert d.algorithm_identification[0].AlgorithmVersion == ALGORITHM["version"]
    assert seg.ManufacturerModelName == "fcn_resnet50" and seg.DeviceSerialNumber == "run-7"

    if frame is None:
        pixels = seg.get_pixels_by_source_instance([original.SOPInstanceUID], combine_segments=True)
    else:
        # only the mask's own frame is in the SEG, and its derivation names that frame of the source
        derived = {
            int(i.ReferencedFrameNumber)
            for f in seg.PerFrameFunctionalGroupsSequence
            for d in f.DerivationImageSequence
            for i in d.SourceImageSequence
        }
        assert derived == {frame + 1}
        pixels = seg.get_pixels_by_source_frame(original.SOPInstanceUID, [frame + 1], combine_segments=True)
    class_of_segment = np.array([255, *present])  # segment 0 is background: the no-data pixels
    assert pixels.shape == (1, *mask.shape)
    assert np.array_equal(class_of_segment[pixels[0]], mask)


def test_exporting_again_gives_the_same_uids_and_each_frame_its_own(sources):
    import pydicom

    source = sources["enhanced-mr"]
    read = [
        pydicom.dcmread(io.BytesIO(dicom_seg_bytes(source, f, class_mask(source, f), NAMES, ALGORITHM)))
        for f in (0, 0, 2)
    ]
    assert read[0].SOPInstanceUID == read[1].SOPInstanceUID != read[2].SOPInstanceUID
    assert read[0].SeriesInstanceUID == read[2].SeriesInstanceUID


def test_unusable_sources_and_rows_are_export_errors_that_say_why(sources):
    mask = class_mask(sources["ct"], None)
    with pytest.raises(ExportError, match="not readable DICOM"):
        dicom_seg_bytes(b"this is no DICOM file" * 10, None, mask, NAMES, ALGORITHM)
    with pytest.raises(ExportError, match=r"mask is 64x64, the source DICOM CT Image Storage is 128x128"):
        dicom_seg_bytes(sources["ct"], None, mask[:64, :64], NAMES, ALGORITHM)
    with pytest.raises(ExportError, match="frame None of a DICOM .* with 3 frame"):
        dicom_seg_bytes(sources["enhanced-mr"], None, class_mask(sources["mr"], None), NAMES, ALGORITHM)
    with pytest.raises(ExportError, match="no class pixels"):
        dicom_seg_bytes(sources["ct"], None, np.full_like(mask, 255), NAMES, ALGORITHM)
    with pytest.raises(ExportError, match="RT Dose Storage with a frame of reference but without per-frame"):
        dicom_seg_bytes(pydicom_file("rtdose.dcm"), 3, np.ones((10, 10), np.uint8), NAMES, ALGORITHM)
