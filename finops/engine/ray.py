"""The Ray engine: each item is a Ray task on the cluster ``[engine] address`` names.

Connecting checks, before any work is sent: that Ray is installed (the ``finops[ray]`` extra), that
the address answers, that the cluster runs the same finops, polars and Python as this driver, and
(:meth:`RayEngine.check_store`) that every node that runs tasks reads and writes the store. A task
whose worker or node dies is re-run (``[engine] retries``, Ray's own task retries); an exception in
our code (a bad file, a broken rule) is raised here as it is and never retried. Results come back as
tasks finish, so progress is drawn per task.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from finops.engine.base import EngineError
from finops.services.progress import QUIET, Progress

if TYPE_CHECKING:
    from finops.config import EngineConfig
    from finops.store import Store

R = TypeVar("R")
EXTRA = "pip install 'finops[ray]'"
# Memory reserved per task: the input's bytes on disk times this (decoded columns, the aggregation's
# hash tables), at least MIN_TASK_MEMORY, at most most of the largest node's memory.
MEMORY_PER_BYTE = 6
MIN_TASK_MEMORY = 256 << 20
NODE_SHARE = 0.8
# With no CPU left in the cluster (every worker node gone) pending tasks would wait for ever.
NO_CPU_GRACE_SECONDS = 30.0
WAIT_SECONDS = 2.0


def versions() -> dict[str, str]:
    """What must match between the driver and the workers for results to be the same."""
    import polars as pl

    return {"finops": importlib.metadata.version("finops"), "polars": pl.__version__,
            "python": platform.python_version()}


def _apply(fn: Callable[[Any], R], item: Any) -> R:
    """A task: ``fn(item)`` on a worker (Ray remote functions must be plain functions; ``fn`` may be a
    ``functools.partial``)."""
    return fn(item)


def _probe_store(args: tuple[Any, str]) -> str | None:
    """On a worker: read the driver's token through the store (None when it is there)."""
    from finops.engine.pieces import StoreSpec

    spec, token = args
    spec_: StoreSpec = spec
    try:
        store = spec_.open()
        found = store.read_probe(token)
    except Exception as e:  # noqa: BLE001 - any failure is the answer the driver reports
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None if found else "the store is there but empty (a different folder of the same name)"


def _node_facts(_: object) -> dict[str, str]:
    return {**versions(), "host": socket.gethostname()}


class RayEngine:
    """Tasks on a Ray cluster (see the module's docstring)."""

    name = "ray"

    def __init__(self, cfg: EngineConfig) -> None:
        try:
            import ray
        except ImportError:
            raise EngineError(f"[engine] kind = \"ray\" needs Ray, which is not installed: {EXTRA}") from None
        self.ray = ray
        self.cfg = cfg
        self.address = cfg.address
        self.rows_per_task: int | None = cfg.rows_per_task
        self._apply: Any = None
        self._connect()
        self._nodes = self._task_nodes()
        self._check_versions()
        self._memory_cap = int(NODE_SHARE * max(float(n["Resources"].get("memory", 0)) for n in self._nodes))

    # -- connecting ------------------------------------------------------------------------------
    def _connect(self) -> None:
        ray = self.ray
        if self.address != "auto":
            _answers(self.address, self.cfg.connect_timeout)
        if ray.is_initialized():  # one cluster per process: an earlier engine's connection is replaced
            ray.shutdown()
        tries = self.cfg.connect_tries
        for attempt in range(1, tries + 1):
            try:
                ray.init(address=self.address, namespace="finops", logging_level=logging.ERROR,
                         log_to_driver=False, configure_logging=False)
                return
            except Exception as e:
                # A failed init leaves Ray's client mode half set up: every later ray.init in this process
                # (the retry, the next engine) would fail on an assertion of Ray's instead of connecting.
                with suppress(Exception):
                    ray.shutdown()
                if _session_refused(e) and attempt < tries:
                    continue
                refusal = _refusal(self.address, e, tries)
                if refusal is e:
                    raise
                raise refusal from None

    def _task_nodes(self) -> list[dict[str, Any]]:
        nodes = [n for n in self.ray.nodes() if n.get("Alive") and float(n["Resources"].get("CPU", 0)) > 0]
        if not nodes:
            self.close()
            raise EngineError(f"the Ray cluster at {self.address} has no node with a CPU to run tasks on")
        return nodes

    def _on_each_node(self, fn: Callable[[Any], R], arg: Any) -> list[tuple[dict[str, Any], R]]:
        """``fn(arg)`` once on every node that runs tasks."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = self.ray.remote(fn)
        refs = [remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                               num_cpus=0.01, max_retries=0).remote(arg) for n in self._nodes]
        wait = max(60.0, 4 * self.cfg.connect_timeout)
        try:
            answers = self.ray.get(refs, timeout=wait)
        except self.ray.exceptions.GetTimeoutError:
            for r in refs:
                self.ray.cancel(r, force=True)
            raise EngineError(f"the Ray cluster at {self.address} did not run a check task on every node within "
                              f"{wait:.0f}s (is it busy, or short of CPUs?)") from None
        except self.ray.exceptions.RayError as e:
            if "No module named" in str(e):
                raise EngineError(f"the Ray cluster at {self.address} cannot import finops ({_missing(e)}): install "
                                  f"the same finops as here on the cluster's image ({EXTRA})") from None
            raise EngineError(f"a check task failed on the Ray cluster at {self.address}: {_line(e)}") from None
        return list(zip(self._nodes, answers, strict=True))

    def _check_versions(self) -> None:
        here = versions()
        for node, facts in self._on_each_node(_node_facts, None):
            differ = [f"{k} {facts.get(k)} there, {v} here" for k, v in here.items() if facts.get(k) != v]
            if differ:
                self.close()
                raise EngineError(f"Ray node {node.get('NodeManagerAddress')} of {self.address} runs other versions "
                                  f"than this machine ({'; '.join(differ)}): install the same finops (and polars, "
                                  f"Python) on the cluster's image and here")

    def check_store(self, store: Store) -> None:
        from finops.engine.pieces import spec_of

        token = uuid.uuid4().hex
        store.write_probe(token)
        try:
            for node, problem in self._on_each_node(_probe_store, (spec_of(store), token)):
                if problem is not None:
                    raise EngineError(
                        f"the store {store.url} cannot be used from Ray node {node.get('NodeManagerAddress')} "
                        f"({problem}): every node must see the same store — put it on object storage (s3://…, "
                        f"gs://…, az://…) or on a folder mounted at the same path on every node")
        finally:
            store.remove_probe(token)

    # -- running ---------------------------------------------------------------------------------
    def _remote(self) -> Any:
        if self._apply is None:
            self._apply = self.ray.remote(max_retries=self.cfg.retries, retry_exceptions=False)(_apply)
        return self._apply

    def _memory(self, size: int) -> int:
        return max(1, min(self._memory_cap, max(MIN_TASK_MEMORY, size * MEMORY_PER_BYTE)))

    def map(self, fn: Callable[[Any], R], items: Sequence[Any], *, what: str,
            sizes: Sequence[int] | None = None, progress: Progress = QUIET) -> Iterator[tuple[int, R]]:
        ray = self.ray
        remote, fn_ref = self._remote(), ray.put(fn)  # the function shipped once, not per task
        refs = {remote.options(memory=self._memory(sizes[i]) if sizes else None,
                               name=f"finops {what} {i}").remote(fn_ref, item): i for i, item in enumerate(items)}
        pending = list(refs)
        step = progress.start(f"{what} on Ray ({len(items)} task{'s' * (len(items) != 1)})", total=len(items))
        starved_since: float | None = None
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=WAIT_SECONDS)
                if not done:
                    starved_since = self._starved(starved_since, what)
                    continue
                starved_since = None
                for ref in done:
                    yield refs[ref], self._get(ref, what)
                    step.advance()
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        step.finish()

    def _starved(self, since: float | None, what: str) -> float | None:
        if float(self.ray.cluster_resources().get("CPU", 0)) > 0:
            return None
        now = time.monotonic()
        if since is not None and now - since > NO_CPU_GRACE_SECONDS:
            raise EngineError(f"{what}: the Ray cluster at {self.address} has had no node to run tasks on for "
                              f"{NO_CPU_GRACE_SECONDS:.0f}s (its workers are gone); nothing was written — run it "
                              f"again when the cluster is back")
        return since or now

    def _get(self, ref: Any, what: str) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause
            if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                raise cause from None
            raise EngineError(f"{what}: a Ray task failed: {_line(e)}") from None
        except ray.exceptions.RayError as e:
            raise EngineError(f"{what}: a Ray worker was lost and {self.cfg.retries} retr"
                              f"{'y' if self.cfg.retries == 1 else 'ies'} did not get the task done "
                              f"({_line(e)}); nothing was written — run it again") from None

    def close(self) -> None:
        """Disconnect (the cluster keeps running)."""
        if self.ray.is_initialized():
            self.ray.shutdown()


def _answers(address: str, timeout: float) -> None:
    """Refuse an address where nothing listens before Ray spends its own minute finding that out."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port or (10001 if parsed.scheme == "ray" else 6379)
    if not host:
        raise EngineError(f"[engine] address {address!r}: expected \"auto\", host:port or ray://host:port")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise EngineError(f"no Ray cluster answers at {address} ({e.strerror or e}): start it (`ray start --head`) "
                          f"or fix [engine] address") from None


def _refusal(address: str, e: Exception, tries: int) -> Exception:
    """What to raise for a failed ``ray.init``: an EngineError that says why, or ``e`` itself when it is
    not a connection problem (a bug, here or in Ray)."""
    if _session_refused(e):
        return EngineError(f"the Ray Client server at {address} could not start a session for this driver "
                           f"({_line(e)}; {tries} attempt{'s' if tries > 1 else ''}); the head node's logs "
                           f"(ray_client_server*.err) say why")
    if isinstance(e, ConnectionError):
        hint = ("start one with `ray start --head`, or set [engine] address" if address == "auto"
                else "check [engine] address")
        return EngineError(f"no Ray cluster at {address}: {_line(e)}; {hint}")
    if isinstance(e, RuntimeError | ValueError):
        text = _line(e)
        if "version" in text.lower():
            return EngineError(f"the Ray cluster at {address} runs another version: {text}; install the cluster's "
                               f"Ray and Python here (or start the cluster with this machine's)")
        return EngineError(f"cannot connect to the Ray cluster at {address}: {text}")
    return e


def _session_refused(e: Exception) -> bool:
    """The Ray Client server answered but could not start this driver's session: it said so
    (ConnectionAbortedError), or its data channel closed before it could (which of the two the driver sees
    depends on timing)."""
    return isinstance(e, ConnectionAbortedError) or (
        isinstance(e, ConnectionError) and "client has already been disconnected" in str(e))


def _line(e: BaseException) -> str:
    """The line of an error that says what happened: the first, or the last of a server's traceback."""
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not text:
        return type(e).__name__
    return text[-1] if any(line.startswith("Traceback (most recent call last)") for line in text) else text[0]


def _missing(e: BaseException) -> str:
    found = re.search(r"No module named '[^']+'", str(e))
    return found.group(0) if found else _line(e)
