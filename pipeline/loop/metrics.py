"""The FCN paper's four metrics: confusion counts of class pairs, the scores from them, a text table.

Pure arithmetic on arrays: ``pipeline.loop.evaluate`` sums the counts over Ray Data and training scores
its validation split with the same functions.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255  # truth pixels with this value (or any id the model has no class for) are not scored
METRICS = (
    ("pixel_accuracy", "pixel accuracy"),
    ("mean_accuracy", "mean accuracy"),
    ("mean_iu", "mean IU"),
    ("frequency_weighted_iu", "frequency weighted IU"),
)


def confusion_vector(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs as a flat ``n*n`` int64 vector; ignored pixels left out.

    Args:
        true: truth class ids, any shape; values ``>= n`` (255 included) are ignored.
        pred: predicted class ids, same shape.
        n: number of classes.
    """
    true, pred = np.asarray(true, np.int64).ravel(), np.asarray(pred, np.int64).ravel()
    valid = (true < n) & (pred < n)
    return np.bincount(n * true[valid] + pred[valid], minlength=n * n)


def scores(confusion: np.ndarray, class_names: list[str] | tuple[str, ...]) -> dict:
    """The FCN paper's pixel accuracy, mean accuracy, mean IU and frequency-weighted IU, plus per-class values.

    A class absent from truth has no accuracy; one absent from truth and prediction has no IU (both are
    left out of the means and shown as ``None``); a class only predicted scores IU 0.

    Args:
        confusion: ``[n, n]`` or flat ``n*n`` counts, rows = truth, columns = prediction.
        class_names: names of the ``n`` classes.
    """
    n = len(class_names)
    conf = np.asarray(confusion, np.float64).reshape(n, n)
    hits, truth, predicted, total = np.diag(conf), conf.sum(1), conf.sum(0), conf.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = hits / truth
        iu = hits / (truth + predicted - hits)
    seen = truth > 0

    def mean(values: np.ndarray) -> float | None:
        return float(np.nanmean(values)) if np.isfinite(values).any() else None

    return {
        "pixel_accuracy": float(hits.sum() / total) if total else None,
        "mean_accuracy": mean(accuracy),
        "mean_iu": mean(iu),
        "frequency_weighted_iu": float((truth[seen] * iu[seen]).sum() / total) if total else None,
        "per_class": {
            name: {
                "iu": None if np.isnan(iu[i]) else float(iu[i]),
                "accuracy": None if np.isnan(accuracy[i]) else float(accuracy[i]),
                "truth_pixels": int(truth[i]),
                "predicted_pixels": int(predicted[i]),
            }
            for i, name in enumerate(class_names)
        },
    }


def format_report(result: dict) -> str:
    """The metrics as a plain-text table.

    Args:
        result: what ``pipeline.loop.evaluate.evaluate`` returns.
    """
    counts = result["counts"]
    lines = [
        f"scored {counts['scored']} images; skipped {counts['errors']} error rows, {counts['missing_truth']} without "
        f"truth, {counts['size_mismatch']} of another size, {counts['unreadable']} unreadable"
        + (f", {counts['scenes']} scenes (masks at mask_uri, not scored)" if counts.get("scenes") else ""),
    ]
    for key, label in METRICS:
        lines.append(f"{label:<24}{_fmt(result[key])}")
    lines.append(f"{'class':<24}{'IU':>8}{'accuracy':>10}{'truth px':>12}")
    for name, row in result["per_class"].items():
        lines.append(f"{name:<24}{_fmt(row['iu']):>8}{_fmt(row['accuracy']):>10}{row['truth_pixels']:>12}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
