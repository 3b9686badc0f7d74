"""Scenario j: a worker node lost mid-run (its raylet SIGKILLed) on a local two-node cluster, one added back.

The cluster is real ``ray start`` processes on this machine, as a cluster launcher or KubeRay starts them:
a head with no CPUs for work (it holds the GCS and the job's driver) and a worker node that runs the
read, decode and write tasks and the inference actor. Both run in token mode (``RAY_AUTH_MODE=token``,
the token in a file of the scenario's folder), like every cluster in deploy/. Ray retries the lost
tasks and restarts the actor on the new node, so a batch can run twice: the sink's exactly-once must
hold under that.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .check import masks_files, readers_see, tally
from .harness import finish, job_command, start_job, wait_for
from .inputs import sources
from .outcome import Outcome, begin
from .races import LEASE

RAY = str(Path(sys.executable).with_name("ray"))
WORKER_CPUS = 3  # the inference actor takes one; reading, decoding and writing keep the others


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LocalCluster:
    """Ray nodes started with ``ray start --block``, each in a process group of its own, on this machine.

    Only these nodes are ever stopped (never ``ray stop``, which stops every Ray process here).

    Args:
        root: a short folder for the token, the temp dir and the nodes' logs (Ray's socket paths are limited).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        token = self.root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # every Ray process of this cluster, the job's driver included, states its mode and reads this token
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_AUTH_TOKEN": None}
        self.nodes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        agent, agent_grpc, runtime_env, metrics = free_ports(4)  # the defaults may be taken by other clusters
        command = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={self.root}/ray", *args]
        command += [f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}"]
        command += [f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}"]
        environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH")}
        environ |= {k: v for k, v in self.env.items() if v is not None}
        with open(self.root / f"{name}.log", "ab") as log:
            node = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(node)
        return node

    def start_head(self) -> str:
        """The head: the GCS and the driver's node, no CPUs for tasks or actors. Returns its address."""
        gcs, client = free_ports(2)
        # no dashboard: nothing submits through it here, and it would take a core of this machine
        self._start(
            "head",
            [
                "--head",
                "--num-cpus=0",
                f"--port={gcs}",
                f"--ray-client-server-port={client}",
                "--include-dashboard=false",
            ],
        )
        self.address = f"127.0.0.1:{gcs}"
        return self.address

    def add_worker(self, timeout: float = 60.0) -> subprocess.Popen:
        """A worker node with ``WORKER_CPUS`` CPUs; returns once its raylet is up."""
        node = self._start(f"worker-{len(self.nodes)}", [f"--address={self.address}", f"--num-cpus={WORKER_CPUS}"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and node.poll() is None and self.raylet(node) is None:
            time.sleep(0.2)
        if self.raylet(node) is None:
            raise RuntimeError(f"the worker node did not start (see {self.root})")
        return node

    @staticmethod
    def raylet(node: subprocess.Popen) -> psutil.Process | None:
        for p in group(node.pid):
            with contextlib.suppress(psutil.Error):
                if p.name() == "raylet":
                    return p
        return None

    def stop(self) -> None:
        """End every process of these nodes and of their Ray session (the jobs' workers included)."""
        ours = [p for node in self.nodes for p in group(node.pid)]
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if str(self.root) in " ".join(p.info["cmdline"] or ()):
                    ours.append(p)
        for p in ours:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(ours, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=10)
        shutil.rmtree(self.root / "ray", ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def group(pgid: int) -> list[psutil.Process]:
    """The processes of process group ``pgid`` (a node started by ``LocalCluster``)."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) == pgid:
                found.append(p)
    return found


def worker_lost(workdir: Path, images: Path, root: Path | None = None) -> Outcome:
    """j. The worker node's raylet is SIGKILLed once rows are committed; a new node joins; run, or rerun, to the end.

    Then the lease must be gone and one more resume must commit nothing.

    Args:
        workdir: folder for this scenario's output and log.
        images: folder of the shared input images.
        root: a short folder for the cluster, kept (default: a new one under /tmp, removed unless a problem).
    """
    outcome, out = begin(workdir, "j", "j. worker node lost")
    expected = sources(images)
    folder = Path(root or tempfile.mkdtemp(prefix="chaos-j-", dir="/tmp"))
    with LocalCluster(folder) as cluster:
        command = job_command(images, out, "--ray-address", cluster.start_head())
        first = cluster.add_worker()
        proc = start_job(command, outcome.log, cluster.env)
        if wait_for(lambda: bool(masks_files(out)), proc):
            files = len(masks_files(out))
            cluster.raylet(first).send_signal(signal.SIGKILL)
            outcome.notes.append(f"SIGKILL to the worker node's raylet, {files} masks files committed")
            if (readers_see(out, outcome) or 0) >= len(expected):
                outcome.problems.append("the node was lost after every input was committed: not mid-run")
            cluster.add_worker()
        else:
            outcome.problems.append(f"the run ended (exit {proc.poll()}) before the node could be lost")
        code = finish(proc, outcome, expect=None)
        outcome.notes.append(f"the run exited {code}" + ("; rerun on the new node" if code else ", no rerun needed"))
        if code != 0:
            finish(start_job(command, outcome.log, cluster.env), outcome)
        if (out / LEASE).exists():
            outcome.problems.append("the lease was left behind after the run ended")
        before = {p.name for p in masks_files(out)}
        finish(start_job(command, outcome.log, cluster.env), outcome)  # one more resume: nothing left to do
    tally(outcome, out, expected)
    resumed = outcome.runs[-1]["counts"] if outcome.runs else {}
    if resumed.get("rows") != 0 or resumed.get("already_committed") != len(expected):
        outcome.problems.append(f"a further resume did not find everything committed: {resumed}")
    if {p.name for p in masks_files(out)} != before:
        outcome.problems.append("a further resume committed new masks files")
    if root is None and not outcome.problems:
        shutil.rmtree(folder, ignore_errors=True)
    elif outcome.problems:
        outcome.notes.append(f"the nodes' logs are in {folder}")
    return outcome
