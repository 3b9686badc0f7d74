"""A Ray cluster of real ``ray start`` nodes on this machine, each node in a process group of its own.

The nodes run as a cluster launcher or KubeRay starts them, in token mode (``RAY_AUTH_MODE=token``, the
token in a file of the cluster's folder) like every cluster in deploy/, with their own temp dir and ports,
so that they live beside any other Ray on the machine and only they are ever stopped (never ``ray stop``,
which stops every Ray process here).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

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
        self.token = token
        self.nodes: list[subprocess.Popen] = []
        self.address, self.dashboard = "", None

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        agent, agent_grpc, runtime_env, metrics = free_ports(4)  # the defaults may be taken by other clusters
        command = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={self.root}/ray", *args]
        command += [f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}"]
        command += [f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}"]
        environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH")}
        environ |= {k: v for k, v in self.env.items() if v is not None}
        # this venv's python first: a submitted job's entrypoint runs `python` from the head's PATH
        environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
        with open(self.root / f"{name}.log", "ab") as log:
            node = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int = 0, dashboard: bool = False) -> str:
        """The head: the GCS and the driver's node, by default no CPUs for work. Returns its GCS address.

        Args:
            num_cpus: CPUs for tasks and actors on the head.
            dashboard: start the dashboard and job API too (``self.dashboard`` is then its URL); off, it
                leaves this machine's cores to the work.
        """
        gcs, client, port = free_ports(3)
        args = ["--head", f"--num-cpus={num_cpus}", f"--port={gcs}", f"--ray-client-server-port={client}"]
        args += [f"--dashboard-port={port}"] if dashboard else ["--include-dashboard=false"]
        self._start("head", args)
        self.address, self.dashboard = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{port}" if dashboard else None
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
