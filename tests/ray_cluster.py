"""A throwaway Ray cluster on this machine for tests and benchmarks: a head and worker nodes, each started
with ``ray start --block`` as its own process group on 127.0.0.1 (so killing a worker is a real
``SIGKILL`` of its raylet and workers, and stopping the cluster touches no other Ray on the machine),
a session folder of its own, usage statistics off. ``Cluster.address`` is what ``[engine] address``
takes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
START_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # A dead node is noticed in about a second rather than the default 15 s.
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
            "RAY_health_check_period_ms": "300", "RAY_health_check_failure_threshold": "3", **(extra or {})}


@dataclass
class Cluster:
    address: str
    root: Path
    head: subprocess.Popen[bytes]
    client_address: str = ""
    """The head's Ray Client server (``ray://127.0.0.1:<port>``), as a KubeRay head service exposes it."""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_worker(self, *, cpus: int = 1, env: Mapping[str, str] | None = None,
                   wrap: list[str] | None = None, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start a worker node (``wrap``: a command line to run ``ray start`` under, e.g. ``unshare``)
        and, with ``wait``, return once the head counts it."""
        cmd = [str(RAY), "start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
               f"--num-cpus={cpus}", "--block", "--disable-usage-stats"]
        log = (self.root / f"worker-{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen([*(wrap or []), *cmd], env=_env(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.workers.append(proc)
        if wait:  # the head and every worker still running, as the head counts them
            alive = 1 + sum(p.poll() is None for p in self.workers)
            _until(lambda: self.nodes() == alive, proc, log.name, "the worker node to join")
        return proc

    def nodes(self) -> int:
        """Alive nodes, as the head's GCS counts them."""
        out = subprocess.run([str(RAY), "status", f"--address={self.address}"], env=_env(None),
                             capture_output=True, text=True, check=False)
        if out.returncode != 0 or "Active:" not in out.stdout:
            return 0
        active = out.stdout.split("Active:", 1)[1].split("Pending:", 1)[0]
        return sum(" node_" in line for line in active.splitlines())

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a node's whole process group (its raylet, object store and task workers)."""
        _killpg(proc)

    def stop(self) -> None:
        for p in [*self.workers, self.head]:
            _killpg(p)
        shutil.rmtree(self.root, ignore_errors=True)


def _killpg(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _until(ok: object, proc: subprocess.Popen[bytes], log: str, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if callable(ok) and ok():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited ({proc.returncode}) waiting for {what}: "
                               f"{Path(log).read_text(errors='replace')[-2000:]}")
        time.sleep(1.0)
    raise RuntimeError(f"timed out waiting for {what}: {Path(log).read_text(errors='replace')[-2000:]}")


@contextmanager
def cluster(workers: int = 1, *, head_cpus: int = 0, head_env: Mapping[str, str] | None = None) -> Iterator[Cluster]:
    """A head (``head_cpus`` CPUs for tasks: 0 keeps tasks on the workers; ``head_env`` added to its
    environment) and ``workers`` one-CPU worker nodes; everything killed and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="finops-ray-"))
    port, client_port = _free_port(), _free_port()
    cmd = [str(RAY), "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
           "--node-ip-address=127.0.0.1",
           f"--num-cpus={head_cpus}", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={root / 'session'}", "--block"]
    log = (root / "head.log").open("wb")
    head = subprocess.Popen(cmd, env=_env(head_env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    c = Cluster(f"127.0.0.1:{port}", root, head, f"ray://127.0.0.1:{client_port}")
    try:
        _until(lambda: c.nodes() >= 1, head, log.name, "the head node")
        for _ in range(workers):
            c.add_worker()
        yield c
    finally:
        c.stop()
