"""The scheduler's use cases: run it, ask how it stands, run one job now."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finops import leader
from finops.config import Config, ConfigError
from finops.ledger import LedgerMissing


@dataclass(frozen=True)
class JobStatus:
    name: str
    trigger: str
    enabled: bool
    next_run: datetime | None
    last_outcome: str | None
    last_started: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class SchedulerStatus:
    jobs: list[JobStatus]
    leader: str | None
    leader_live: bool
    notes: list[str] = field(default_factory=list)


def _check_job(name: str) -> None:
    from finops.scheduler import JOBS

    if name not in JOBS:
        raise ConfigError(f"unknown job {name!r}: expected one of {', '.join(JOBS)}")


def run(cfg: Config, *, stop: threading.Event | None = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM / SIGINT (or ``stop``): the running job
    finishes, then it exits."""
    from finops import scheduler

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    scheduler.serve(cfg, stop, on_ready=on_ready)


def run_once(cfg: Config, job: str) -> Any:
    """Run ``job`` now, in this process, logged in the run log like a scheduled run; its outcome (None if it
    failed: the error is in the run log and raised again as a sentence)."""
    from finops import scheduler
    from finops.services.queue import ledger

    _check_job(job)
    led = ledger(cfg)
    runner = scheduler.Runner(cfg, led, scheduler.holder_id() + ":once")
    out = runner.run(job)
    if out is None:
        last = leader.runs(led, job, limit=1)
        raise ConfigError(f"job {job} failed: {last[0].error if last else 'see the log'}")
    return out


def status(cfg: Config) -> SchedulerStatus:
    """Each job's trigger, next run (from the job store), last outcome; who leads."""
    from finops.services.queue import ledger

    try:
        led = ledger(cfg, read_only=True)
    except LedgerMissing as e:
        led, notes = None, [f"{e}: the scheduler has not run here yet"]
    else:
        notes = []
    nxt = _next_runs(led) if led is not None else {}
    last: dict[str, leader.Run] = {}
    if led is not None:
        for run_ in reversed(leader.runs(led)):
            last[run_.job] = run_
    jobs = []
    for name, t in cfg.scheduler.triggers().items():
        r = last.get(name)
        jobs.append(JobStatus(name, f"cron {t.cron}" if t.cron else f"every {t.seconds:g}s", t.enabled,
                              nxt.get(name), r.outcome if r is not None else None,
                              r.started_at if r is not None else None, r.error if r is not None else None))
    lead = leader.leader(led) if led is not None else None
    return SchedulerStatus(jobs, lead.holder if lead else None, bool(lead and lead.live), notes)


def _next_runs(led: Any) -> dict[str, datetime]:
    from sqlalchemy import inspect

    if led.empty or not inspect(led.engine).has_table("apscheduler_jobs"):
        return {}
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]

    store = SQLAlchemyJobStore(engine=led.engine)
    try:
        return {j.id: j.next_run_time for j in store.get_all_jobs() if j.next_run_time is not None}
    except Exception:  # noqa: BLE001 — a job stored by another finops version: status still shows the rest
        return {}


CLOUD_JOBS = ("prices", "billing")
"""The jobs that call the clouds' APIs: off in the demo, which runs on generated data and the shipped catalog."""


def without_cloud_jobs(cfg: Config) -> Config:
    """``cfg`` with the :data:`CLOUD_JOBS` disabled (their other settings kept)."""
    triggers = cfg.scheduler.triggers()
    jobs = {**cfg.scheduler.jobs, **{n: triggers[n].model_copy(update={"enabled": False}) for n in CLOUD_JOBS}}
    return cfg.model_copy(update={"scheduler": cfg.scheduler.model_copy(update={"jobs": jobs})})


def serve_after_demo(cfg: Config, show: Callable[[str], None]) -> None:
    """After ``finops demo``'s pass: the scheduler (and the dashboard) in the foreground, their URLs
    shown, until Ctrl-C or SIGTERM."""
    import importlib.util

    stop = threading.Event()
    dash = None
    if importlib.util.find_spec("finops.services.dashboard") is not None:
        from finops.services import dashboard

        try:
            dash = dashboard.start(cfg)
            show(f"dashboard: {dash.url}")
        except (dashboard.DashboardError, OSError) as e:
            show(f"dashboard not started: {e}")
    show(f"scheduler: the {' and '.join(CLOUD_JOBS)} jobs are off in the demo (they call the clouds' APIs with "
         "credentials it does not have); `finops scheduler run` runs every job")
    try:
        run(without_cloud_jobs(cfg), stop=stop,
            on_ready=lambda url: show(f"scheduler: {url}/metrics, {url}/healthz (Ctrl-C stops)"))
    finally:
        if dash is not None:
            dash.stop()
