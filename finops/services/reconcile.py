"""``finops reconcile``: the launched workloads' predicted cost against the bill, and the corrections learnt."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from finops import focus
from finops.config import Config
from finops.ledger import Ledger, LedgerMissing
from finops.reconcile import Reconciliation
from finops.reconcile import reconcile as reconcile_frames


class ReconcileError(ValueError):
    """Nothing to reconcile against: no ledger or no billing store yet."""


# Billing rows are read from one day before the first launch: a bill's hours can start before our clock.
_SLACK = timedelta(days=1)


def reconcile(cfg: Config, *, save: bool = True) -> Reconciliation:
    """Reconcile every launch in the ledger against the billing store; with ``save``, replace the ledger's
    learnt corrections with the ones found (the only write)."""
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
    billing = store.scan("billing", {"provider": providers} if providers else None,
                         schema={c.name: c.dtype for c in focus.COLUMNS})
    if launches:
        since = min(x.submitted_at for x in launches) - _SLACK
        billing = billing.filter(pl.col("ChargePeriodEnd") > since)
    result = reconcile_frames(billing, launches, placements, family=family)
    k8s = sum(1 for x in launches if x.kind == "kubernetes")
    if k8s:
        result.notes.append(f"{k8s} Kubernetes launch(es) reconciled from their tagged rows only: a pod's share of "
                            "its nodes' cost needs the nodes it ran on, which the ledger does not record yet")
    if save:
        Ledger(cfg.ledger_url()).save_corrections(result.corrections)
    return result
