"""Quiet, useful logs: Ray's own log lines, its warnings and per-operator progress go to a log file,
and the terminal keeps one progress bar and the job's own lines (``--verbose`` keeps Ray's output)."""

from __future__ import annotations

import logging
import os
import tempfile

RAY_LOGGERS = ("ray", "ray.data", "ray.air", "ray.train", "py.warnings")


def quiet_ray(run_id: str) -> str:
    """Send Ray's Python logging and warnings to ``fcn-archive-RUN.log`` in the temp folder; return its path.

    Ray Data keeps its overall progress bar; the per-operator bars and the execution plan it
    prints at start go to the file. Call before Ray starts.

    Args:
        run_id: names the log file.
    """
    from ray.data import DataContext

    path = os.path.join(tempfile.gettempdir(), f"fcn-archive-{run_id}.log")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    context = DataContext.get_current()
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    return path
