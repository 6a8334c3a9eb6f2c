"""``finops reconcile``: the launched workloads' predicted cost against the bill, and the corrections learnt."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from finops import focus
from finops.config import Config
from finops.engine.pieces import over_store
from finops.ledger import Launch, Ledger, LedgerMissing
from finops.reconcile import PodRun, Reconciliation, pod_runs
from finops.reconcile import reconcile as reconcile_frames
from finops.services.engine import engine_for
from finops.services.progress import QUIET, Progress


class ReconcileError(ValueError):
    """Nothing to reconcile against: no ledger or no billing store yet."""


# Billing rows are read from one day before the first launch: a bill's hours can start before our clock.
_SLACK = timedelta(days=1)


def kubernetes_pods(launches: Sequence[Launch], now: datetime | None = None) -> tuple[list[PodRun], list[Launch]]:
    """The pods of the Kubernetes launches on the nodes the dispatcher recorded (``launches.nodes``), and the
    launches with pods on nodes whose bill id is unknown (:func:`finops.reconcile.pod_runs`)."""
    return pod_runs([x for x in launches if x.kind == "kubernetes"], now or datetime.now(UTC))


def node_share_notes(result: Reconciliation, launches: Sequence[Launch], unknown: Sequence[Launch]) -> list[str]:
    """What the report says of Kubernetes workloads: which were billed by node share, which could not be."""
    notes = []
    shared = [w for w in result.workloads if w.shared]
    if shared:
        names = ", ".join(f"{w.workload_id} {w.name}" for w in shared)
        notes.append(f"{len(shared)} Kubernetes workload(s) billed as a share of the nodes they ran on (no row carries "
                     f"their tag; the node's billed cost × the pod's share of its accelerators over the hours it "
                     f"ran): {names}")
    if unknown:
        names = ", ".join(sorted({x.name for x in unknown}))
        notes.append(f"pods of {len(unknown)} Kubernetes launch(es) ran on nodes whose own cost the bill does not "
                     f"give and were not costed by node share (the node could not be read — grant get on nodes —, "
                     f"is not a cloud VM, or is an Azure scale-set instance, billed with the whole scale set): {names}")
    unrecorded = sorted({x.name for x in launches if x.kind == "kubernetes" and not x.nodes})
    if unrecorded:
        notes.append(f"{len(unrecorded)} Kubernetes launch(es) have no recorded nodes (not run yet, or launched "
                     f"before finops recorded nodes): billed from tagged rows only: {', '.join(unrecorded)}")
    return notes


def reconcile(cfg: Config, *, save: bool = True, engine: str | None = None,
              progress: Progress = QUIET) -> Reconciliation:
    """Reconcile every launch in the ledger against the billing store; with ``save``, replace the ledger's
    learnt corrections with the ones found (the only write). The billing rows are read on ``engine``
    (default ``[engine]``): per piece of the store on a cluster, only the partial sums coming back."""
    from finops.learning import family

    try:
        led = Ledger(cfg.ledger_url(), read_only=True)
    except LedgerMissing as e:
        raise ReconcileError(f"{e}: nothing was launched — run finops place and finops dispatch first") from None
    launches, placements = led.launches(), led.placements()
    store = cfg.open_store()
    if not store.files("billing"):
        raise ReconcileError(f"the billing store {store.url} holds no billing yet: ingest the bill first "
                             "(finops ingest <export folder> or finops collect)")
    providers = sorted({x.provider for x in launches})
    since = min(x.submitted_at for x in launches) - _SLACK if launches else None
    pods, unknown = kubernetes_pods(launches)
    with engine_for(cfg, engine) as eng:

        def over(fn: Callable[[pl.LazyFrame], pl.DataFrame]) -> list[pl.DataFrame]:
            return over_store(eng, store, "billing", functools.partial(_since, since, fn),
                              filters={"provider": providers} if providers else None,
                              schema={c.name: c.dtype for c in focus.COLUMNS}, what="reconcile", progress=progress)

        result = reconcile_frames(over, launches, placements, family=family, pods=pods)
    result.notes.extend(node_share_notes(result, launches, unknown))
    if save:
        Ledger(cfg.ledger_url()).save_corrections(result.corrections)
    return result


def _since(since: datetime | None, fn: Callable[[pl.LazyFrame], pl.DataFrame], billing: pl.LazyFrame) -> pl.DataFrame:
    """``fn`` over the rows charged after ``since`` (a launch's bill cannot start before it was submitted)."""
    return fn(billing if since is None else billing.filter(pl.col("ChargePeriodEnd") > since))
