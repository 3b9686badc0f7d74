"""The ``error`` column's convention, shared by every stage and the sink: a reason string or None."""

from __future__ import annotations

import numpy as np


def failed(error) -> bool:
    """Whether an ``error`` cell holds a reason (Arrow may turn an all-null column into NaN)."""
    return isinstance(error, str)


def reasons(errors: np.ndarray) -> np.ndarray:
    """An ``error`` column as reasons and ``None``, whatever Arrow made of its nulls between stages."""
    return np.array([e if failed(e) else None for e in errors], dtype=object)
