"""Quiet, useful logs: Ray's own log lines, its warnings and per-operator progress go to a log file,
and the terminal keeps one progress bar and the job's own lines (``--verbose`` keeps Ray's output)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import tempfile
import threading

RAY_LOGGERS = ("ray", "ray.data", "ray.air", "ray.train", "py.warnings")
# lines Ray's C++ core writes straight to the driver's stderr on every clean run, known to be harmless:
# Ray Data's own map actors take their constructor arguments by reference with max_restarts > 0
# (ray-project/ray#53727, #57733); any other line, C++ error or not, still reaches the terminal
KNOWN_LINES = (b"has constructor arguments in the object store and max_restarts > 0",)


def quiet_ray(run_id: str) -> str:
    """Send Ray's Python logging and warnings to ``fcn-archive-RUN.log`` in the temp folder; return its path.

    Ray Data's progress bars are off (the job draws one line of its own, ``pipeline.progress``) and the
    execution plan it prints at start goes to the file. Call before Ray starts.

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
    context.enable_progress_bars = False  # the job draws its own line, with errors so far (``progress``)
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    divert_known_lines(path)
    return path


def divert_known_lines(path: str) -> None:
    """Route this process's stderr (file descriptor 2, where Ray's C++ logs go) through a filter thread:
    lines holding one of ``KNOWN_LINES`` go to the log file at ``path``, every other line to the terminal.

    At exit the descriptor is put back and what is in flight is passed on (a traceback is never lost).
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def forward() -> None:
        with os.fdopen(read, "rb") as lines, open(path, "ab", buffering=0) as log:
            for line in iter(lines.readline, b""):
                os.write(log.fileno() if any(k in line for k in KNOWN_LINES) else terminal, line)

    thread = threading.Thread(target=forward, name="fcn-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # the pipe's last writer here: the thread reads to its end
        thread.join(timeout=2)

    atexit.register(restore)
