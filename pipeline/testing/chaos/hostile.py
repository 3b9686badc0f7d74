"""Scenario f: hostile files (empty, truncated, not images, bombs, odd modes, missing) and what each must give."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .check import tally
from .harness import job_command, run_job
from .outcome import Outcome, begin


def hostile_files(folder: Path) -> dict[str, tuple[str, str | None]]:
    """Write the hostile files; return ``source -> (status, a phrase its error must contain)``.

    Args:
        folder: where to write them (``missing.png`` is listed but never written).
    """
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    jpeg, png = _encode(Image.fromarray(pixels), "JPEG"), _encode(Image.fromarray(pixels), "PNG")
    sixteen = Image.fromarray(np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 30)
    files = {
        "zero.jpg": (b"", ("error", "empty")),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], ("error", "truncated")),
        "truncated.png": (png[: len(png) // 2], ("error", "truncated")),
        "text.png": (b"hello, I am not a picture\n", ("error", "not a recognised image")),
        "bomb.png": (_encode(Image.new("L", (3000, 3000), 7), "PNG"), ("error", "max-pixels")),
        "bomb-warning.png": (_encode(Image.new("RGB", (1200, 1000), 7), "PNG"), ("error", "max-pixels")),
        "sixteen.png": (_encode(sixteen, "PNG"), ("ok", None)),
        "onebit.png": (_encode(Image.fromarray(pixels).convert("1"), "PNG"), ("ok", None)),
        "cmyk.jpg": (_encode(Image.fromarray(pixels).convert("CMYK"), "JPEG"), ("ok", None)),
        "good.png": (png, ("ok", None)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    expected = {os.path.abspath(folder / name): want for name, (_, want) in files.items()}
    return expected | {os.path.abspath(folder / "missing.png"): ("error", "not found")}


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def hostile_inputs(workdir: Path, images: Path | None = None) -> Outcome:
    """f. A URI list of hostile files and one that does not exist; ``--max-pixels 1000000``.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: unused (the scenario writes its own files).
    """
    outcome, out = begin(workdir, "f", "f. hostile inputs")
    expected = hostile_files(workdir / "f-in")
    (workdir / "f-list.txt").write_text("".join(f"{s}\n" for s in expected))
    run_job(outcome, job_command(workdir / "f-list.txt", out, "--max-pixels", "1000000"))
    tally(outcome, out, list(expected))
    for source, (status, phrase) in expected.items():
        got = outcome.rows_by_source.get(source)
        if got and (got[0] != status or (phrase and phrase not in (got[1] or ""))):
            outcome.problems.append(f"{Path(source).name}: got {got}, expected {status} with {phrase!r}")
    return outcome
