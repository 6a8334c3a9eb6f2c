"""Predicted against billed cost, per workload, and the cost corrections it teaches (pure: polars and values).

**Billed cost of a placement** = the sum of ``BilledCost`` over billing rows whose FOCUS ``Tags`` carry
``finops-placement = <placement id>`` (every launch is stamped with it). Only those rows are read: a
cheap literal test on the ``Tags`` text keeps them, they are summed per *distinct* ``Tags`` value, and
only those few distinct values are searched for the placement id (the design's "work on distinct values").
Sums are polars ``Decimal`` sums — exact, so billed equals the sum of the tagged rows to the cent.

**Kubernetes** pods share nodes, and the cloud bills the node: a pod's cost is the node's billed cost ×
the pod's share of the node's accelerators (all of it on a node without accelerators) over the hours
the pod ran (each billed row counts for the part of its charge period that overlaps the pod's run).
:func:`shared_cost` does this from :class:`PodRun` records: which node (its billed ``ResourceId``), how
many of how many accelerators, from when to when — what the dispatcher records of a Kubernetes launch.

**Per workload**: predicted = the ``expected_cost`` of its placements that launched; billed = what the
bill says of them; status ``pending`` (no billing row yet — not zero), ``running`` (rows so far, a launch
still running: not used to learn) or ``billed``.

**Corrections** per (provider, target kind, instance family of the workload's first launch):
factor = Σ billed ÷ Σ predicted over the ``billed`` workloads whose latest launch ran to the end (``done``).
Unclamped here: costing clamps it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import polars as pl

from finops.ledger import Correction, Launch
from finops.placements import Placed, Recorded

PLACEMENT_TAG = "finops-placement"
Status = Literal["billed", "running", "pending"]
_PLACEMENT_RE = r'"finops-placement"\s*:\s*"(\d+)"'
_ACTIVE = ("pending", "running")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PodRun:
    """A Kubernetes launch's pod on one node: what :func:`shared_cost` needs."""

    placement_id: int
    node: str
    """The node's ``ResourceId`` as the bill names it (EKS: the EC2 instance ARN or id; GKE: the instance)."""
    accelerators: float
    """Accelerators the pod requested."""
    node_accelerators: float
    """Accelerators the node has (0: none, the pod is then billed the whole node)."""
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class WorkloadCost:
    """One workload's predicted and billed cost (billed None: pending, nothing billed yet)."""

    workload_id: int
    name: str
    team: str
    target: str
    kind: str
    provider: str
    instance_type: str
    family: str
    placements: tuple[int, ...]
    predicted: Decimal
    billed: Decimal | None
    rows: int
    status: Status
    shared: bool = False
    """Billed (partly) as a share of Kubernetes nodes."""
    predicted_machines: Decimal | None = None
    """The compute and rework part of ``predicted`` (without egress): what a correction compares the bill with,
    as costing applies it to those parts only (None: the whole prediction)."""
    complete: bool = True
    """Its latest launch ran to the end (``done``): only then do predicted and billed cover the same run, and
    it teaches a correction (a preempted run is re-placed; a failed one stopped early)."""

    @property
    def variance(self) -> Decimal | None:
        return None if self.billed is None else self.billed - self.predicted

    @property
    def variance_pct(self) -> float | None:
        v = self.variance
        return None if v is None or not self.predicted else float(v / self.predicted * 100)

    def to_json(self) -> dict[str, Any]:
        money = lambda d: None if d is None else str(d.quantize(CENT))  # noqa: E731
        return {"workload_id": self.workload_id, "name": self.name, "team": self.team, "target": self.target,
                "kind": self.kind, "provider": self.provider, "instance_type": self.instance_type,
                "family": self.family, "placements": list(self.placements), "predicted": money(self.predicted),
                "billed": money(self.billed), "variance": money(self.variance),
                "variance_pct": None if self.variance_pct is None else round(self.variance_pct, 2),
                "rows": self.rows, "status": self.status, "shared": self.shared,
                "complete": self.complete}


@dataclass(frozen=True)
class Reconciliation:
    workloads: list[WorkloadCost]
    corrections: list[Correction]
    tagged_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"workloads": [w.to_json() for w in self.workloads],
                "corrections": [{"provider": c.provider, "target": c.target, "family": c.family,
                                 "predicted": round(c.predicted, 2), "billed": round(c.billed, 2),
                                 "workloads": c.workloads, "factor": round(c.factor, 4)} for c in self.corrections],
                "tagged_rows": self.tagged_rows, "notes": self.notes}


# -- billed cost from tagged rows ------------------------------------------------------------------------
def tagged_cost(billing: pl.LazyFrame, placement_ids: Iterable[int] | None = None) -> pl.DataFrame:
    """``placement_id`` (Int64), ``billed`` (the exact Decimal sum of ``BilledCost``) and ``rows`` per placement,
    from the rows whose ``Tags`` name it (of ``placement_ids`` only, when given)."""
    by_tags = (billing.select("Tags", "BilledCost")
               .filter(pl.col("Tags").str.contains(PLACEMENT_TAG, literal=True))
               .group_by("Tags").agg(pl.col("BilledCost").sum().alias("billed"), pl.len().alias("rows")))
    lf = (by_tags.with_columns(pl.col("Tags").str.extract(_PLACEMENT_RE, 1).cast(pl.Int64, strict=False)
                               .alias("placement_id"))
          .filter(pl.col("placement_id").is_not_null()))
    if placement_ids is not None:
        lf = lf.filter(pl.col("placement_id").is_in(sorted(set(placement_ids))))
    return (lf.group_by("placement_id").agg(pl.col("billed").sum(), pl.col("rows").sum().cast(pl.Int64))
            .sort("placement_id").collect())


def shared_cost(node_rows: pl.DataFrame | pl.LazyFrame, pods: Sequence[PodRun]) -> dict[int, Decimal]:
    """Cost per placement of Kubernetes pods: for each billed row of a pod's node, ``BilledCost`` × the
    fraction of the row's charge period the pod ran × the pod's share of the node's accelerators
    (``node_rows``: ``ResourceId``, ``ChargePeriodStart``, ``ChargePeriodEnd``, ``BilledCost``). Exact
    decimals, rounded to 1e-9 at the end."""
    nodes = sorted({p.node for p in pods})
    if not nodes:
        return {}
    rows = (node_rows.lazy().filter(pl.col("ResourceId").is_in(nodes))
            .select("ResourceId", "ChargePeriodStart", "ChargePeriodEnd", "BilledCost").collect())
    by_node: dict[str, list[tuple[datetime, datetime, Decimal]]] = defaultdict(list)
    for node, t0, t1, cost in rows.iter_rows():
        by_node[node].append((t0, t1, Decimal(cost)))
    out: dict[int, Decimal] = defaultdict(Decimal)
    for p in pods:
        share = _share(p.accelerators, p.node_accelerators)
        for t0, t1, cost in by_node.get(p.node, ()):
            out[p.placement_id] += cost * _overlap(t0, t1, p.start, p.end) * share
    return {k: v.quantize(Decimal("1e-9")) for k, v in out.items()}


def _share(accelerators: float, node_accelerators: float) -> Decimal:
    if node_accelerators <= 0:
        return Decimal(1)
    return min(Decimal(str(accelerators)) / Decimal(str(node_accelerators)), Decimal(1))


def _overlap(t0: datetime, t1: datetime, start: datetime, end: datetime) -> Decimal:
    """The fraction of [t0, t1) inside [start, end)."""
    span = (t1 - t0).total_seconds()
    inside = (min(t1, end) - max(t0, start)).total_seconds()
    if span <= 0:
        return Decimal(1) if start <= t0 < end else Decimal(0)
    return Decimal(str(max(inside, 0.0))) / Decimal(str(span))


# -- per workload ------------------------------------------------------------------------------------------
def reconcile(billing: pl.LazyFrame, launches: Sequence[Launch], placements: Sequence[Recorded], *,
              family: Callable[[str, str], str], pods: Sequence[PodRun] = ()) -> Reconciliation:
    """Predicted against billed cost of every launched workload, and the corrections learnt (see module doc).
    ``family(provider, instance_type)`` names instance families (``finops.learning.family``)."""
    by_workload: dict[int, list[Launch]] = defaultdict(list)
    for x in launches:
        by_workload[x.workload_id].append(x)
    decided = {r.id: r for r in placements if isinstance(r.decision, Placed)}
    launched = {x.placement_id for x in launches if x.placement_id in decided}
    tagged = tagged_cost(billing, launched)
    billed = {int(p): Decimal(b) for p, b in zip(tagged["placement_id"], tagged["billed"], strict=True)}
    rows = {int(p): int(n) for p, n in zip(tagged["placement_id"], tagged["rows"], strict=True)}
    shared = shared_cost(billing, [p for p in pods if p.placement_id in launched])
    for pid, cost in shared.items():
        billed[pid] = billed.get(pid, Decimal(0)) + cost
    found = (_workload(wid, legs, decided, billed, rows, set(shared), family)
             for wid, legs in sorted(by_workload.items()))
    out = [w for w in found if w is not None]
    return Reconciliation(out, corrections(out), tagged_rows=sum(rows.values()))


def _workload(wid: int, legs: Sequence[Launch], decided: Mapping[int, Recorded], billed: Mapping[int, Decimal],
              rows: Mapping[int, int], shared: set[int],
              family: Callable[[str, str], str]) -> WorkloadCost | None:
    pids = tuple(dict.fromkeys(x.placement_id for x in legs if x.placement_id in decided))
    if not pids:
        return None
    first = min(legs, key=lambda x: (x.id, x.leg))
    last = max(legs, key=lambda x: (x.id, x.leg))
    decision = decided[pids[0]].decision
    assert isinstance(decision, Placed)
    predicted = sum((Decimal(str(_placed(decided[p]).expected_cost)) for p in pids), Decimal(0))
    machines = sum((Decimal(str(_placed(decided[p]).compute_cost + _placed(decided[p]).rework_cost)) for p in pids),
                   Decimal(0))
    hits = [p for p in pids if p in billed]
    cost = sum((billed[p] for p in hits), Decimal(0)) if hits else None
    active = any(x.state in _ACTIVE for x in legs)
    status: Status = "pending" if cost is None else "running" if active else "billed"
    return WorkloadCost(workload_id=wid, name=decision.name, team=decision.team, target=first.target,
                        kind=first.kind, provider=first.provider, instance_type=first.instance_type,
                        family=family(first.provider, first.instance_type), placements=pids,
                        predicted=predicted, billed=cost, rows=sum(rows.get(p, 0) for p in pids), status=status,
                        shared=any(p in shared for p in pids), complete=last.state == "done",
                        predicted_machines=machines)


def _placed(r: Recorded) -> Placed:
    assert isinstance(r.decision, Placed)
    return r.decision


def corrections(workloads: Iterable[WorkloadCost]) -> list[Correction]:
    """Σ billed ÷ Σ predicted machine cost (compute + rework: egress moves data and is billed apart) per
    (provider, target kind, family), over billed, complete workloads launched once: a workload preempted
    and launched again is predicted a whole run per launch (each placement costs the full runtime) but
    billed only for the hours each ran, so its ratio says nothing about the price list."""
    sums: dict[tuple[str, str, str], list[Decimal]] = {}
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for w in workloads:
        machines = w.predicted if w.predicted_machines is None else w.predicted_machines
        if w.status != "billed" or not w.complete or w.billed is None or machines <= 0 or len(w.placements) > 1:
            continue
        key = (w.provider, w.kind, w.family)
        s = sums.setdefault(key, [Decimal(0), Decimal(0)])
        s[0] += w.predicted if w.predicted_machines is None else w.predicted_machines
        s[1] += w.billed
        counts[key] += 1
    return [Correction(p, k, f, float(pred), float(bill), counts[(p, k, f)], float(bill / pred))
            for (p, k, f), (pred, bill) in sorted(sums.items())]
