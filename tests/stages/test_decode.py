"""Decode tasks bound their memory: every pixel of every page or frame, and the size fed after --resize,
count against --max-pixels; what is above it becomes an error row naming the limit and the flag."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from imagefiles import batch, encode, rgb
from PIL import Image
from pydicom.data import get_testdata_file

from pipeline.formats.rasters import RasterOptions
from pipeline.stages.decode import decode_batch


def test_a_thin_strip_is_refused_at_its_fed_size_not_its_stored_size():
    strip = encode(Image.fromarray(rgb(2, 4000, 0)), "PNG")  # 8,000 pixels stored
    out = decode_batch(batch(strip), resize=520, max_pixels=10**6)  # 520 x 1,040,000 fed
    assert out["image"][0].shape == (1, 1, 3)  # nothing was resized
    assert "fed at --resize 520 the image would be 1040000x520 pixels, above --max-pixels 1000000" in out["error"][0]
    assert "lower --resize" in out["error"][0]
    native = decode_batch(batch(strip), resize=None, max_pixels=10**6)
    assert native["error"][0] is None and native["image"][0].shape == (2, 4000, 3)


def test_every_page_of_a_tiff_counts_against_the_limit():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((5, 100, 100), np.uint8))  # 5 pages of 10,000 pixels
    out = decode_batch(batch(buffer.getvalue()), resize=None, max_pixels=20_000)
    assert "image is 100x100 x 5 pages, above --max-pixels 20000" in out["error"][0]
    assert decode_batch(batch(buffer.getvalue()), resize=None, max_pixels=50_000)["error"][0] is None


def test_every_frame_of_a_dicom_counts_against_the_limit():
    dose = Path(get_testdata_file("rtdose.dcm")).read_bytes()  # 15 frames of 10 x 10
    out = decode_batch(batch(dose), resize=None, max_pixels=1000)
    assert "x 15 frames, above --max-pixels 1000" in out["error"][0]
    assert len(decode_batch(batch(dose), resize=None, max_pixels=1500)["image_id"]) == 15
    resized = decode_batch(batch(dose), resize=20, max_pixels=1500)  # 15 frames of 20 x 20 fed
    assert "15 frames of 20x20 pixels" in resized["error"][0]


def test_fully_transparent_pixels_are_no_data_whatever_colour_lies_under_them():
    picture = rgb(20, 30, 3)
    white = np.dstack([picture, np.full((20, 30), 255, np.uint8)])
    white[:, :10, :3], white[:, :10, 3] = 255, 0  # a transparent left third, white beneath
    black = white.copy()
    black[:, :10, :3] = 0  # the same picture exported over black
    palette = Image.fromarray(picture).convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])  # one palette index is transparent
    blobs = [encode(Image.fromarray(white, "RGBA"), "PNG"), encode(Image.fromarray(black, "RGBA"), "PNG")]
    out = decode_batch(batch(*blobs, encode(palette, "PNG")), resize=None, max_pixels=10**6)
    assert np.array_equal(out["valid"][0], out["valid"][1])
    assert not out["valid"][0][:, :10].any() and out["valid"][0][:, 10:].all()
    index = np.asarray(palette)
    assert np.array_equal(out["valid"][2], index != index[0, 0])
    kept = decode_batch(batch(*blobs), resize=None, max_pixels=10**6, options=RasterOptions(transparent_nodata=False))
    assert all(v.shape == (1, 1) and v.all() for v in kept["valid"])  # --keep-transparent: every pixel counts


def test_a_large_jpeg_fed_small_is_decoded_at_reduced_scale_only_when_asked_and_keeps_its_source_size(monkeypatch):
    from PIL import JpegImagePlugin

    from pipeline.loop.synthetic import make_scene

    scales = []
    draft = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda im, *a: scales.append(draft(im, *a)[1]))

    scene = make_scene(3, 1000, 1400)[0]  # smooth regions, as photos are
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait: the mask is 1400 x 1000
    stored = io.BytesIO()
    Image.fromarray(scene).save(stored, "JPEG", quality=95, exif=exif)
    assert decode_batch(batch(stored.getvalue()), resize=120, max_pixels=10**8)["error"][0] is None
    assert scales == []  # by default every JPEG is decoded whole: masks equal torchvision's recipe
    out = decode_batch(batch(stored.getvalue()), resize=120, max_pixels=10**8, reduced_jpeg=True)
    assert out["error"][0] is None
    assert scales == [(0, 0, 1400 // 8, 1000 // 8)]  # decoded at 1/8: still above the fed size
    assert (out["height"][0], out["width"][0]) == (1400, 1000)  # the source's size, rotated
    fed = out["image"][0]
    assert fed.shape == (168, 120, 3)  # the shorter side at 120, from the source's size
    # against the full decode, resized the same way: libjpeg's 1/8 scale is a box filter, close to it
    full = np.asarray(Image.fromarray(np.rot90(scene, k=-1).copy()).resize((120, 168), Image.Resampling.BILINEAR))
    assert np.abs(fed.astype(int) - full.astype(int)).mean() < 6


def test_the_decode_tasks_never_import_torch():
    import subprocess
    import sys

    # every decode task's worker would pay torch's import (2.4 s here) while the actors start
    code = "import sys, pipeline.stages.decode, pipeline.io.reading; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
