"""Fault injection from outside: run ``jobs.segment`` for real, break it, count what reached ``masks/``.

Each scenario starts the job as a subprocess and injects a real fault (SIGKILL to the inference
actor or the driver, Ctrl-C, a flaky S3 endpoint, hostile files); the production code has no hooks.
``python -m jobs.chaos`` runs them all and prints a table; ``tests/test_faults.py`` asserts on them.
"""

from .flaky_s3 import FAULTS, FlakyS3Proxy, moto_server
from .harness import CLASSES, JOB_FLAGS, ODD_NAMES, REPO, Outcome, job_command, make_images, run_job, sources, tally
from .scenarios import (
    SCENARIOS,
    actor_killed,
    clean_run,
    ctrl_c,
    driver_killed,
    hostile_files,
    hostile_inputs,
    nightly,
    run_all,
    s3_transient,
    table,
)

__all__ = [
    "CLASSES",
    "FAULTS",
    "JOB_FLAGS",
    "ODD_NAMES",
    "REPO",
    "SCENARIOS",
    "FlakyS3Proxy",
    "Outcome",
    "actor_killed",
    "clean_run",
    "ctrl_c",
    "driver_killed",
    "hostile_files",
    "hostile_inputs",
    "job_command",
    "make_images",
    "moto_server",
    "nightly",
    "run_all",
    "run_job",
    "s3_transient",
    "sources",
    "table",
    "tally",
]
