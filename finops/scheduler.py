"""The scheduler service: every step on a timetable, one leader, a run log, metrics.

APScheduler 3 (``BackgroundScheduler``) keeps the jobs in its SQLAlchemy job store in the ledger's
database (table ``apscheduler_jobs``, APScheduler's own; the ledger's schema checks ignore it). Each job is
added with ``max_instances=1``, ``coalesce=True`` and a misfire grace. Only the process that holds the
lease (:mod:`finops.leader`) runs the APScheduler scheduler; the others wait and take over when the
lease expires. Every run is logged in ``scheduler_runs``; a run a killed leader left behind is marked
``interrupted`` and its job run once more by the next leader. A job that raises is logged and the
others keep running; SIGTERM lets the running job finish, then stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finops import leader
from finops.config import Config, JobTrigger
from finops.ledger import Ledger

log = logging.getLogger("finops.scheduler")


@dataclass(frozen=True)
class JobOutcome:
    """What a run did: counts to log (rows, workloads, alerts, …) and a note."""

    counts: dict[str, int | float] = field(default_factory=dict)
    note: str = ""


def _prices(cfg: Config) -> JobOutcome:
    from finops.services import collect

    r = collect.collect_prices(cfg)
    if r.failed and not r.collected:
        raise RuntimeError("; ".join(r.failed))
    counts: dict[str, int | float] = {"offers": sum(x.observations for x in r.collected), "failed": len(r.failed)}
    return JobOutcome(counts, "; ".join(r.failed))


def _billing(cfg: Config) -> JobOutcome:
    from finops.services import collect

    r = collect.collect_billing(cfg)
    if r.failed and not r.collected:
        raise RuntimeError("; ".join(r.failed))
    return JobOutcome({"months": len(r.collected), "rows": sum(m.rows for m in r.collected),
                       "failed": len(r.failed)}, "; ".join(r.failed))


def _place(cfg: Config) -> JobOutcome:
    from finops.services import queue, reoptimise

    moved = reoptimise.reoptimise(cfg)  # placed work whose prices moved goes back to the queue first
    placed = queue.place(cfg)
    decisions = getattr(placed.plan, "decisions", [])
    return JobOutcome({"decisions": len(decisions), "placed": sum(1 for d in decisions if d.placed),
                       "replaced": len(moved.requeued)})


def _dispatch(cfg: Config) -> JobOutcome:
    from finops.services import launch

    launch.dispatch(cfg, place=False)
    return JobOutcome()


def _sync(cfg: Config) -> JobOutcome:
    from finops.services import launch

    launch.sync(cfg)
    return JobOutcome()


def _reconcile(cfg: Config) -> JobOutcome:
    from finops.services import reconcile

    reconcile.reconcile(cfg)
    return JobOutcome()


def _budget(cfg: Config) -> JobOutcome:
    from finops.services import alerts

    sent = alerts.check(cfg)
    return JobOutcome({"alerts": len(sent)})


def _chargeback(cfg: Config) -> JobOutcome:
    from finops.services import chargeback

    send = cfg.reports.email is not None or cfg.reports.webhook is not None
    r = chargeback.chargeback(cfg, send=send)
    return JobOutcome({"files": len(r.files), "sent": len(r.sent)})


def _maintenance(cfg: Config) -> JobOutcome:
    from finops.services import store

    done = store.optimize(cfg)
    return JobOutcome({"datasets": len(done)})


JOBS: dict[str, Callable[[Config], JobOutcome]] = {
    "prices": _prices,
    "billing": _billing,
    "place": _place,
    "dispatch": _dispatch,
    "sync": _sync,
    "reconcile": _reconcile,
    "budget": _budget,
    "chargeback": _chargeback,
    "maintenance": _maintenance,
}
"""Job name → step; the default triggers are ``finops.config.SCHEDULER_DEFAULTS`` (same names)."""


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trigger(t: JobTrigger) -> Any:
    """The APScheduler trigger of a configured job (cron in UTC)."""
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
    from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

    if t.cron is not None:
        return CronTrigger.from_crontab(t.cron, timezone="UTC")
    return IntervalTrigger(seconds=t.seconds or 60, timezone="UTC")


class Runner:
    """Runs jobs for one process: logs each run in the ledger and the metrics; a job that raises is
    logged and does not stop the others."""

    def __init__(self, cfg: Config, led: Ledger, holder: str, metrics: Any = None) -> None:
        self.cfg, self.led, self.holder, self.metrics = cfg, led, holder, metrics
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.leading = threading.Event()

    def run(self, name: str) -> JobOutcome | None:
        """Run job ``name`` once (None: refused — not the leader, or already running here)."""
        with self.lock:
            if name in self.running:
                log.warning("job %s: still running, this run is skipped", name)
                return None
            self.running.add(name)
        try:
            return self._run(name)
        finally:
            with self.lock:
                self.running.discard(name)

    def _run(self, name: str) -> JobOutcome | None:
        rid = leader.start(self.led, name, self.holder)
        t0 = time.perf_counter()
        try:
            out = JOBS[name](self.cfg)
        except Exception as e:  # noqa: BLE001 — a failing job is logged; the others keep running
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            leader.end(self.led, rid, "failed", error=f"{type(e).__name__}: {msg}")
            log.error("job %s failed after %.2fs: %s", name, time.perf_counter() - t0, msg)
            if self.metrics:
                self.metrics.failed(name, time.perf_counter() - t0)
            return None
        leader.end(self.led, rid, "ok", dict(out.counts), out.note or None)
        log.info("job %s ok in %.2fs %s %s", name, time.perf_counter() - t0, out.counts, out.note)
        if self.metrics:
            self.metrics.ok(name, time.perf_counter() - t0)
        return out


def _fire(name: str) -> None:
    """APScheduler's job function (a module-level name, so the SQL job store can store it)."""
    r = _CURRENT.get("runner")
    if r is None or not r.leading.is_set():
        log.info("job %s: not the leader, skipped", name)
        return
    r.run(name)


_CURRENT: dict[str, Runner] = {}
"""The runner of this process (the job store keeps names, not objects)."""


def build(cfg: Config, led: Ledger) -> Any:
    """A BackgroundScheduler with every enabled job in the SQL job store in the ledger's database."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
    from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

    sc = cfg.scheduler
    sched = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=led.engine)},
        executors={"default": {"type": "threadpool", "max_workers": 4}},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": int(sc.misfire_grace_seconds)},
        timezone="UTC")
    return sched


def sync_jobs(sched: Any, cfg: Config) -> None:
    """The job store's jobs = the configured ones (added or replaced; others removed)."""
    triggers = {n: t for n, t in cfg.scheduler.triggers().items() if t.enabled}
    for job in sched.get_jobs():
        if job.id not in triggers:
            job.remove()
    for name, t in triggers.items():
        sched.add_job(_fire, trigger(t), args=[name], id=name, name=name, replace_existing=True)


def serve(cfg: Config, stop: threading.Event, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the scheduler until ``stop`` is set: lead when the lease is free (renewing it every third of
    its time), stand by otherwise; the ledger lost mid-run is retried with backoff."""
    from finops import scheduler_metrics

    led = _open(cfg, stop)
    if led is None:
        return
    holder = holder_id()
    metrics = scheduler_metrics.Metrics(cfg, led)
    runner = Runner(cfg, led, holder, metrics)
    _CURRENT["runner"] = runner
    url = metrics.start(runner)
    if on_ready:
        on_ready(url)
    sched = None
    wait = cfg.scheduler.lease_seconds / 3
    backoff = 1.0
    try:
        while not stop.is_set():
            try:
                lead = leader.acquire(led, holder, cfg.scheduler.lease_seconds)
                backoff = 1.0
            except Exception as e:  # noqa: BLE001 — the ledger went away: retry with backoff
                log.error("ledger %s unreachable: %s; retrying in %.0fs", led.where, e, backoff)
                lead = False
                runner.leading.clear()
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if lead and sched is None:
                runner.leading.set()
                log.info("%s is the leader", holder)
                sched = build(cfg, led)
                sync_jobs(sched, cfg)
                sched.start()
                for name in leader.interrupted(led, holder):  # killed mid-run: run once more
                    if name in JOBS:
                        log.info("job %s was interrupted; running it again", name)
                        sched.add_job(_fire, args=[name], id=f"{name}-rerun", replace_existing=True)
            elif not lead and sched is not None:
                log.warning("%s lost the lease; standing by", holder)
                runner.leading.clear()
                sched.shutdown(wait=True)
                sched = None
            metrics.leading(lead)
            stop.wait(wait)
    finally:
        runner.leading.clear()
        if sched is not None:
            sched.shutdown(wait=True)  # the running job finishes first
            leader.release(led, holder)
        metrics.stop()
        _CURRENT.pop("runner", None)


def _open(cfg: Config, stop: threading.Event) -> Ledger | None:
    """The ledger, retried with backoff while it cannot be reached (a configuration error is raised)."""
    from finops.ledger import LedgerError

    backoff = 1.0
    while not stop.is_set():
        try:
            return Ledger(cfg.ledger_url())
        except LedgerError as e:
            if "cannot use the ledger" not in str(e):
                raise
            log.error("%s; retrying in %.0fs", e, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)
    return None
