"""Run the segmentation job in this process, as its command line would, with the test classes."""

from __future__ import annotations

from imagefiles import CLASSES

from jobs.segment import main


def job(input_uri, output_uri, weights, *extra) -> int:
    """``python -m jobs.segment`` on one inference actor, batches of 4; returns its exit code."""
    argv = ["--input", str(input_uri), "--output", str(output_uri), "--weights", weights]
    return main([*argv, "--classes", ",".join(CLASSES), "--actors-max", "1", "--batch-size", "4", *extra])
