"""The shared test images (the first few with hostile names) and the ``source`` values the job gives them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

# quotes, $(), #, %2e, spaces, unicode, glob characters; and names Ray's own file listing would skip
ODD_NAMES = ("sp ace ;$(x)'\"&.png", "hash#frag%2e%2e.jpg", "ünï 日本 [1]*.png", "q?mark.png", "_DSC0001.jpg")


def make_images(folder: Path, count: int, start: int = 0) -> list[str]:
    """Write ``count`` small PNG and JPEG files (the first few with hostile names); return all sources."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        name = ODD_NAMES[i] if i < len(ODD_NAMES) else f"img-{i:03d}.{('jpg', 'png')[i % 2]}"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 64, 3), np.uint8)).save(folder / name)
    return sources(folder)


def sources(folder: Path) -> list[str]:
    """The ``source`` values the job gives the files of ``folder``."""
    return sorted(os.path.abspath(p) for p in Path(folder).rglob("*") if p.is_file())
