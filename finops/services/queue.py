"""The workload queue and its placement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finops.config import Config
from finops.ledger import Ledger, QueuedWorkload
from finops.services.progress import QUIET, Progress
from finops.workloads import WorkloadSpec, load


def ledger(cfg: Config) -> Ledger:
    """The configured queue and ledger."""
    return Ledger(cfg.ledger_url())


@dataclass(frozen=True)
class Queued:
    id: int
    spec: WorkloadSpec
    source: str


def add(cfg: Config, files: Sequence[Path]) -> list[Queued]:
    """Queue the workloads in ``files`` (YAML specs): all of them or, on any error, none."""
    specs = [(s, str(f)) for f in files for s in load(f)]
    ids = ledger(cfg).add(specs)
    return [Queued(i, s, src) for i, (s, src) in zip(ids, specs, strict=True)]


def workloads(cfg: Config, states: Sequence[str] | None = None) -> list[QueuedWorkload]:
    """Workloads in the queue (in ``states`` only, when given), oldest first."""
    return ledger(cfg).list(states)


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
    run_id, plan = run.place(cfg, cfg.open_store(), ledger(cfg), dry_run=dry_run)
    step.finish()
    return Placed(run_id, plan, dry_run)
