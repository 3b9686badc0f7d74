"""Scenario e: input and output on S3 behind a proxy that fails every N-th request."""

from __future__ import annotations

import os
from pathlib import Path

from .check import tally
from .flaky_s3 import FlakyS3Proxy, moto_server
from .harness import job_command, run_job
from .inputs import sources
from .outcome import Outcome, begin


def s3_transient(workdir: Path, images: Path, every: int = 4) -> Outcome:
    """e. Input and output on S3 behind a proxy that fails every ``every``-th request.

    The job's environment holds a secret key and a session token; ``details`` names them so
    callers can check that neither leaks into the outputs (copied to ``details["copy"]``) or the log.

    Args:
        workdir: folder for this scenario's output copy and log.
        images: folder of the images uploaded as the input.
        every: period of the proxy's faults.
    """
    outcome, out = begin(workdir, "e", "e. transient S3 errors")
    secret, token = f"chaos-secret-{os.urandom(8).hex()}", f"chaos-token-{os.urandom(8).hex()}"
    env = {"AWS_ACCESS_KEY_ID": "chaos", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": None, "AWS_ENDPOINT_URL_S3": None}
    bucket = f"chaos-{os.urandom(4).hex()}"
    with moto_server() as (upstream, fs):
        fs.mkdir(bucket)
        names = [os.path.relpath(p, images) for p in sources(images)]
        for name in names:
            fs.put_file(str(Path(images) / name), f"{bucket}/in/{name}")
        with FlakyS3Proxy(upstream, every) as proxy:
            command = job_command(f"s3://{bucket}/in/", f"s3://{bucket}/out", "--s3-endpoint-url", proxy.url)
            run_job(outcome, command, env)
        outcome.notes.append(f"proxy: {dict(proxy.counts)}")
        fs.get(f"{bucket}/out", str(out), recursive=True)
    outcome.details = {"secrets": (secret, token), "proxy": dict(proxy.counts), "copy": str(out)}
    return tally(outcome, out, [f"s3://{bucket}/in/{n}" for n in names])
