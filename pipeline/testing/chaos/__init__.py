"""Fault injection from outside: run ``jobs.segment`` for real, break it, count what reached ``masks/``.

Each scenario starts the job as a subprocess and injects a real fault (SIGKILL to the inference
actor or the driver, Ctrl-C, a flaky S3 endpoint, hostile files, a second run racing the first, files
replaced after a run); the production code has no hooks.
``python -m jobs.chaos`` runs them all and prints a table; ``tests/testing/test_faults.py`` asserts on them.
"""

from .check import tally
from .flaky_s3 import FAULTS, FlakyS3Proxy, moto_server
from .harness import CLASSES, JOB_FLAGS, REPO, job_command, run_job
from .hostile import hostile_files, hostile_inputs
from .inputs import ODD_NAMES, make_images, sources
from .kills import actor_killed, ctrl_c, driver_killed, nightly
from .node_loss import worker_lost as worker_lost
from .outcome import Outcome
from .races import racing_runs, replaced_files
from .s3_faults import s3_transient
from .scenarios import SCENARIOS, clean_run, run_all, table

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
    "racing_runs",
    "replaced_files",
    "run_all",
    "run_job",
    "s3_transient",
    "sources",
    "table",
    "tally",
]
