"""The workload queue and its placement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finops.config import Config
from finops.ledger import Ledger, LedgerMissing, QueuedWorkload, Unreadable
from finops.services.progress import QUIET, Progress
from finops.workloads import WorkloadSpec, load

log = logging.getLogger(__name__)


def ledger(cfg: Config, *, read_only: bool = False) -> Ledger:
    """The configured queue and ledger (``read_only``: never created; see :class:`finops.ledger.Ledger`)."""
    if not cfg.ledger.url:
        cfg.check_store(create=False)  # the ledger lives beside a local store: refuse a store that is a file
    return Ledger(cfg.ledger_url(), read_only=read_only)


@dataclass(frozen=True)
class Queued:
    id: int
    spec: WorkloadSpec
    source: str


def add(cfg: Config, files: Sequence[Path]) -> list[Queued]:
    """Queue the workloads in ``files`` (YAML specs): all of them or, on any error, none. Once teams are
    configured, each workload's team must be one of them (aliases applied) and is stored as its name."""
    specs = [(s, str(f)) for f in files for s in load(f, cfg)]
    ids = ledger(cfg).add(specs)
    return [Queued(i, s, src) for i, (s, src) in zip(ids, specs, strict=True)]


@dataclass(frozen=True)
class Listing:
    """The queue as read, without creating or changing anything: the workloads, the rows whose spec no
    longer loads (skipped, each with a note), and notes for the reader (no ledger yet, …)."""

    workloads: list[QueuedWorkload]
    unreadable: list[Unreadable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def listing(cfg: Config, states: Sequence[str] | None = None) -> Listing:
    """Workloads in the queue (in ``states`` only, when given), oldest first; opened read-only, so a
    folder without a ledger gets none (and an empty queue, said so in ``notes``)."""
    try:
        led = ledger(cfg, read_only=True)
    except LedgerMissing as e:
        return Listing([], [], [f"{e}: the queue is empty (`finops queue add FILE` starts one)"])
    good, bad = led.read(states)
    return Listing(good, bad, [u.problem for u in bad])


def workloads(cfg: Config, states: Sequence[str] | None = None) -> list[QueuedWorkload]:
    """Workloads in the queue (in ``states`` only, when given), oldest first. Read-only; what
    :func:`listing` notes (no ledger, rows skipped) is logged as warnings."""
    res = listing(cfg, states)
    for note in res.notes:
        log.warning("note: %s", note)
    return res.workloads


def cancel(cfg: Config, ids: Sequence[int]) -> None:
    """Cancel the workloads ``ids``: all of them or none."""
    ledger(cfg).move(list(ids), "cancelled")


@dataclass(frozen=True)
class Placed:
    run_id: str
    plan: Any
    """:class:`placement.plan.Plan`: the decisions, with their reasons."""
    dry_run: bool


def place(cfg: Config, dry_run: bool = False, progress: Progress = QUIET) -> Placed:
    """Place every queued workload on the cheapest feasible offer, for the whole queue at once; unless
    ``dry_run``, record the decisions with the prices they used."""
    from placement import run

    step = progress.start("placing the queue")
    try:  # a dry run changes nothing: it neither creates nor upgrades a ledger
        led = ledger(cfg, read_only=dry_run)
    except LedgerMissing:
        led = Ledger("sqlite://")  # no ledger here yet: an empty queue, held in memory
    run_id, plan = run.place(cfg, cfg.open_store(), led, dry_run=dry_run)
    step.finish()
    return Placed(run_id, plan, dry_run)


@dataclass(frozen=True)
class Placements:
    """Recorded placement decisions (oldest first) and notes for the reader (no ledger yet, …)."""

    recorded: list[Any]
    """:class:`finops.placements.Recorded`: each decision with its row id, run and time."""
    notes: list[str] = field(default_factory=list)


def placements(cfg: Config, workload: int | None = None, run: str | None = None) -> Placements:
    """The placement decisions ``finops place`` recorded (of one ``workload`` / one ``run`` only, when
    given), read without creating or changing the ledger."""
    try:
        led = ledger(cfg, read_only=True)
    except LedgerMissing as e:
        return Placements([], [f"{e}: nothing was placed here yet (`finops place` records decisions)"])
    found = led.placements(None if workload is None else [workload])
    if run is not None:
        found = [r for r in found if r.run_id == run]
    notes = [] if found else ["no recorded placements" + (f" of workload {workload}" if workload is not None else "")
                              + (f" in run {run}" if run is not None else "")
                              + " (`finops place` records them; `--dry-run` does not)"]
    return Placements(found, notes)
