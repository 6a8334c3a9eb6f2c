"""Launching what was placed: ``finops dispatch``, ``finops jobs``, ``finops jobs sync``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finops.config import Config, DryRunTarget, LaunchTarget
from finops.ledger import Launch, Ledger, LedgerMissing, QueuedWorkload
from finops.placements import Leg
from finops.services.progress import QUIET, Progress
from finops.services.queue import ledger as open_ledger


def dry_run_folder(cfg: Config) -> Path:
    """Where the dry_run target records submissions: ``dry-run/`` beside a local store (as the ledger is),
    else ``./finops-dry-run``."""
    url = cfg.store.url
    if "://" not in url or url.startswith("file://"):
        return Path(url.removeprefix("file://")).expanduser() / "dry-run"
    return Path("finops-dry-run")


class Clients:
    """Each target's SDK client, made on first use and kept for the run (a target that is never used
    never needs its SDK)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._made: dict[str, Any] = {}

    def resolved(self, name: str) -> LaunchTarget:
        tcfg = self.cfg.launch.target(name)
        if isinstance(tcfg, DryRunTarget) and tcfg.folder is None:
            tcfg = tcfg.model_copy(update={"folder": str(dry_run_folder(self.cfg))})
        return tcfg

    def __call__(self, name: str) -> Any:
        if name not in self._made:
            from placement import launchers

            tcfg = self.resolved(name)
            self._made[name] = launchers.module(tcfg.kind).make_client(tcfg)
        return self._made[name]


@dataclass(frozen=True)
class Dispatched:
    report: Any
    """:class:`placement.dispatch.DispatchReport`: each workload's outcome, the offers blocked."""
    dry_run: bool
    placement_runs: list[str] = field(default_factory=list)


def dispatch(cfg: Config, *, dry_run: bool = False, place: bool = True, progress: Progress = QUIET) -> Dispatched:
    """Place the queue (unless ``place`` is False), then launch every placed workload on its target;
    after capacity answers, re-place and launch again (``launch.max_rounds``). ``dry_run``: decide and
    build the submissions, record and launch nothing."""
    from placement import dispatch as core
    from placement import run

    runs: list[str] = []
    if dry_run:  # nothing is created, recorded or launched: the placement is decided and shown
        try:
            led = open_ledger(cfg, read_only=True)
        except LedgerMissing:
            led = Ledger("sqlite://")
        decisions = run.place(cfg, cfg.open_store(), led, dry_run=True)[1].decisions if place else []
        return Dispatched(core.DispatchReport(core.preview(cfg, led, decisions), rounds=1), True)
    led = open_ledger(cfg)

    def place_queue() -> None:
        if place:
            step = progress.start("placing the queue")
            run_id, _ = run.place(cfg, cfg.open_store(), led)
            runs.append(run_id)
            step.finish()

    step = progress.start("launching")
    report = core.dispatch(cfg, led, Clients(cfg), place_queue, offered=lambda: listed(cfg))
    step.finish()
    return Dispatched(report, dry_run, runs)


def listed(cfg: Config) -> Callable[[Leg], bool]:
    """Whether a leg's offer (provider, region, instance type, market) is in the latest price list; a
    commitment leg launches on its on-demand offer."""
    from finops import offers

    keys = set(offers.latest_offers(cfg.open_store()).select("provider", "region", "instance_type", "market")
               .unique().collect().iter_rows())

    def offered(leg: Leg) -> bool:
        market = "on_demand" if leg.market == "commitment" else leg.market
        return not keys or (leg.provider, leg.region, leg.instance_type, market) in keys

    return offered


def sync(cfg: Config, *, progress: Progress = QUIET) -> Any:
    """Every live launch's state from its target into the ledger; returns
    :class:`placement.dispatch.SyncReport` (what moved, what could not be asked, orphan jobs)."""
    from placement import dispatch as core

    try:
        led = open_ledger(cfg, read_only=True)
    except LedgerMissing:
        from placement.dispatch import SyncReport

        return SyncReport()
    if led.empty:
        from placement.dispatch import SyncReport

        return SyncReport()
    led = open_ledger(cfg)
    step = progress.start("asking the targets")
    report = core.sync(cfg, led, Clients(cfg))
    step.finish()
    return report


@dataclass(frozen=True)
class JobRow:
    workload: QueuedWorkload
    launches: list[Launch]


@dataclass(frozen=True)
class Jobs:
    rows: list[JobRow]
    notes: list[str] = field(default_factory=list)


def jobs(cfg: Config, states: Sequence[str] | None = None) -> Jobs:
    """Workloads that were launched or are waiting to be (in ``states``, default every state past
    queued), each with its launches, read-only."""
    try:
        led = open_ledger(cfg, read_only=True)
    except LedgerMissing as e:
        return Jobs([], [f"{e}: nothing was launched here yet (`finops dispatch` launches placed work)"])
    wanted = list(states) if states else ["placed", "submitted", "running", "done", "failed", "queued"]
    found, bad = led.read(wanted)
    by_workload: dict[int, list[Launch]] = {}
    for lau in led.launches(workload_ids=[w.id for w in found]):
        by_workload.setdefault(lau.workload_id, []).append(lau)
    rows = [JobRow(w, by_workload.get(w.id, [])) for w in found
            if states or w.state != "queued" or w.id in by_workload]
    return Jobs(rows, [u.problem for u in bad])
