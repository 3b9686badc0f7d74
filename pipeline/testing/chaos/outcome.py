"""What one scenario saw (``Outcome``) and a fresh outcome, log and output folder for it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """What a scenario fed the job, what reached ``masks/``, and every guarantee it saw broken.

    Attributes:
        scenario: name shown in the table.
        inputs: inputs the scenario expects one masks row for.
        rows, errors: rows in ``masks/`` and how many have status ``error``.
        lost, duplicated: inputs without a row; rows beyond one per ``image_id``.
        problems: broken guarantees (a passing scenario has none).
        notes: what was done and seen (signals sent, exit codes, proxy counts).
        rows_by_source: ``source -> (status, error)`` of every masks row.
        runs: the run records of ``_manifest.json``.
        log: path of the jobs' combined stdout and stderr.
        details: scenario-specific facts (secrets used, output copy, ...).
    """

    scenario: str
    inputs: int = 0
    rows: int = 0
    errors: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows_by_source: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    log: str = ""
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0 and self.rows == self.inputs


def begin(workdir: Path, key: str, scenario: str) -> tuple[Outcome, Path]:
    """A fresh outcome, log and output folder for scenario ``key`` (left over ones are removed)."""
    for old in (workdir / f"{key}-out", workdir / f"{key}-in"):
        shutil.rmtree(old, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{key}.log").unlink(missing_ok=True)
    return Outcome(scenario, log=str(workdir / f"{key}.log")), workdir / f"{key}-out"
