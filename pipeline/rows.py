"""What rows carry between stages: the columns of a decoded row, and nullable string columns (``error``: a
reason or None), shared by every stage, the scene reader and the sink."""

from __future__ import annotations

import numpy as np

# a decoded row, from the decode stage or the scene reader (scenes/read): both feed one union into the actors
DECODED_COLUMNS = ("image_id", "source", "source_version", "frame", "height", "width", "image", "valid", "crs",
                   "geotransform", "error", "jpeg", "tile", "pixel_area")  # fmt: skip
ALL_VALID = np.ones((1, 1), bool)  # the ``valid`` of an image with no no-data pixel


def failed(error) -> bool:
    """Whether an ``error`` cell holds a reason (Arrow may turn an all-null column into NaN)."""
    return isinstance(error, str)


def strings(values: np.ndarray) -> np.ndarray:
    """A nullable string column as ``str`` and ``None``, whatever Arrow made of its nulls between stages.

    ``""`` is a null too: stages write it where a block's column would otherwise be all None, which Arrow
    may type as float and then refuse to merge with the string column of another block (``crs`` of photos
    beside GeoTIFF tiles).
    """
    return np.array([v if isinstance(v, str) and v else None for v in values], dtype=object)


def reasons(errors: np.ndarray) -> np.ndarray:
    """An ``error`` column as reasons and ``None``."""
    return strings(errors)
