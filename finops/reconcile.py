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
many of how many accelerators, from when to when — what the dispatcher records of a Kubernetes launch
(``launches.nodes``, read by :func:`pod_runs`). Shared nodes carry no per-pod tags, so a placement is
billed by node share only when no row carries its tag (a cluster whose bill splits pods out, such as EKS
split cost allocation, tags them: those rows are the pod's cost, and adding a node share would count it twice).

**Per workload**: predicted = the ``expected_cost`` of its placements that launched; billed = what the
bill says of them; status ``pending`` (no billing row yet — not zero), ``running`` (rows so far, a launch
still running: not used to learn) or ``billed``.

**Corrections** per (provider, target kind, instance family of the workload's first launch):
factor = Σ billed ÷ Σ predicted over the ``billed`` workloads whose latest launch ran to the end (``done``).
Unclamped here: costing clamps it.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    def method(self) -> str | None:
        """How ``billed`` was found: ``tagged`` (rows carrying its placement tag), ``node share`` (a share of
        the Kubernetes nodes it ran on), both (one per launch), or None (pending)."""
        if self.billed is None:
            return None
        if self.shared:
            return "tagged + node share" if self.rows else "node share"
        return "tagged"

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
                "rows": self.rows, "status": self.status, "shared": self.shared, "method": self.method,
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
def tag_sums(billing: pl.LazyFrame) -> pl.DataFrame:
    """``Tags``, ``billed`` and ``rows`` per distinct ``Tags`` value of the rows naming a placement: the
    partial aggregate a piece of the store contributes (merged by summing equal ``Tags``)."""
    return (billing.select("Tags", "BilledCost")
            .filter(pl.col("Tags").str.contains(PLACEMENT_TAG, literal=True))
            .group_by("Tags").agg(pl.col("BilledCost").sum().alias("billed"), pl.len().cast(pl.Int64).alias("rows"))
            .collect())


def tagged_cost(billing: pl.LazyFrame | pl.DataFrame, placement_ids: Iterable[int] | None = None, *,
                summed: bool = False) -> pl.DataFrame:
    """``placement_id`` (Int64), ``billed`` (the exact Decimal sum of ``BilledCost``) and ``rows`` per placement,
    from the rows whose ``Tags`` name it (of ``placement_ids`` only, when given). With ``summed``,
    ``billing`` is already :func:`tag_sums` of the rows."""
    by_tags = billing.lazy() if summed else tag_sums(billing.lazy()).lazy()
    lf = (by_tags.with_columns(pl.col("Tags").str.extract(_PLACEMENT_RE, 1).cast(pl.Int64, strict=False)
                               .alias("placement_id"))
          .filter(pl.col("placement_id").is_not_null()))
    if placement_ids is not None:
        lf = lf.filter(pl.col("placement_id").is_in(sorted(set(placement_ids))))
    return (lf.group_by("placement_id").agg(pl.col("billed").sum(), pl.col("rows").sum().cast(pl.Int64))
            .sort("placement_id").collect())


def node_rows(billing: pl.LazyFrame, nodes: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
    """The billed rows (``ResourceId``, ``ChargePeriodStart``, ``ChargePeriodEnd``, ``BilledCost``) of the
    nodes ``nodes`` (:func:`node_key` s) whose charge period overlaps [``start``, ``end``): all that
    :func:`shared_cost` reads, and what a piece of the store contributes to it (merged by concatenation)."""
    window = (billing.filter(pl.col("ResourceId").is_not_null() & (pl.col("ChargePeriodEnd") > start)
                             & (pl.col("ChargePeriodStart") < end))
              .select("ResourceId", "ChargePeriodStart", "ChargePeriodEnd", "BilledCost"))
    # Keys from the distinct ResourceIds (few), not per row; then only those rows are read.
    ids = (window.select("ResourceId").unique().with_columns(node_key_expr(pl.col("ResourceId")).alias("key"))
           .filter(pl.col("key").is_in(sorted(nodes))).collect())
    return window.filter(pl.col("ResourceId").is_in(sorted(ids["ResourceId"]))).collect()


def pods_window(pods: Sequence[PodRun]) -> tuple[list[str], datetime, datetime]:
    """The nodes and the time span :func:`node_rows` must read for ``pods``."""
    return sorted({node_key(p.node) for p in pods}), min(p.start for p in pods), max(p.end for p in pods)


def shared_cost(billing: pl.DataFrame | pl.LazyFrame, pods: Sequence[PodRun]) -> dict[int, Decimal]:
    """Cost per placement of Kubernetes pods: for each billed row of a pod's node, ``BilledCost`` × the
    fraction of the row's charge period the pod ran × the pod's share of the node's accelerators
    (``billing``: rows with at least ``ResourceId``, ``ChargePeriodStart``, ``ChargePeriodEnd``,
    ``BilledCost``). Exact decimals, rounded to 1e-9 at the end. Only the rows needed are read
    (:func:`node_rows`: :func:`node_key` names a node alike in the pod and the bill); a placement none of
    whose node rows overlaps its run is left out (not billed yet, not zero)."""
    if not pods:
        return {}
    rows = node_rows(billing.lazy(), *pods_window(pods))
    by_node: dict[str, list[tuple[datetime, datetime, Decimal]]] = defaultdict(list)
    for node, t0, t1, cost in rows.iter_rows():
        by_node[node_key(node)].append((t0, t1, Decimal(cost)))
    out: dict[int, Decimal] = defaultdict(Decimal)
    for p in pods:
        share = _share(p.accelerators, p.node_accelerators)
        for t0, t1, cost in by_node.get(node_key(p.node), ()):
            part = _overlap(t0, t1, p.start, p.end)
            if part > 0:
                out[p.placement_id] += cost * part * share
    return {k: v.quantize(Decimal("1e-9")) for k, v in out.items()}


# An EC2 instance ARN (arn:aws:ec2:<region>:<account>:instance/i-…): the bill may name a node so.
_EC2_ARN = r"^arn:aws[a-z-]*:ec2:[^:]*:[^:]*:instance/(i-[0-9a-zA-Z]+)$"
# Azure scale-set ids (lower-cased ARM ids): billed as one scale set, not per node.
_SCALE_SET = "/virtualmachinescalesets/"


def node_key(resource_id: str) -> str:
    """A node's ``ResourceId`` as :func:`shared_cost` matches it: lower case (Azure's exports lower-case ARM
    ids that the API spells in mixed case), an EC2 instance ARN as its instance id (AWS's exports name an
    instance by id; other sources by ARN). :func:`node_key_expr` is the same for a column."""
    m = re.match(_EC2_ARN, resource_id)
    return m.group(1) if m else resource_id.lower()


def node_key_expr(col: pl.Expr) -> pl.Expr:
    return pl.coalesce(col.str.extract(_EC2_ARN, 1), col.str.to_lowercase())


def pod_runs(launches: Iterable[Launch], now: datetime) -> tuple[list[PodRun], list[Launch]]:
    """The pods of ``launches`` recorded on billable nodes (``Launch.nodes``), and the launches with pods
    on nodes whose own cost the bill does not give: the node could not be read, is not a cloud VM, or is an
    instance of an Azure scale set (AKS's default pools), which Azure bills under the scale set for all its
    instances together — a share of that would charge the pod for its neighbours' machines too. A pod still
    running (no end) counts until the launch ended, else until ``now``; a pod never started is skipped."""
    runs, unknown = [], []
    for x in launches:
        for r in x.nodes:
            start = _when(r.get("started_at"))
            if start is None:
                continue
            if not r.get("resource_id") or _SCALE_SET in str(r["resource_id"]).lower():
                if x not in unknown:
                    unknown.append(x)
                continue
            end = _when(r.get("ended_at")) or x.ended_at or now
            runs.append(PodRun(x.placement_id, str(r["resource_id"]), float(r.get("accelerators") or 0),
                               float(r.get("node_accelerators") or 0), start, max(end, start)))
    return runs, unknown


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(str(value))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


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
Over = Callable[[Callable[[pl.LazyFrame], pl.DataFrame]], list[pl.DataFrame]]
"""Runs a per-piece function over the billing rows and returns its partials (one per piece of the
store, or one for all of it): how :func:`reconcile` reads billing held on a cluster."""


def reconcile(billing: pl.LazyFrame | Over, launches: Sequence[Launch], placements: Sequence[Recorded], *,
              family: Callable[[str, str], str], pods: Sequence[PodRun] = ()) -> Reconciliation:
    """Predicted against billed cost of every launched workload, and the corrections learnt (see module doc).
    ``billing``: the rows, or an :data:`Over` that maps a function over them piece by piece.
    ``family(provider, instance_type)`` names instance families (``finops.learning.family``)."""
    over: Over = (lambda fn: [fn(billing)]) if isinstance(billing, pl.LazyFrame) else billing
    by_workload: dict[int, list[Launch]] = defaultdict(list)
    for x in launches:
        by_workload[x.workload_id].append(x)
    decided = {r.id: r for r in placements if isinstance(r.decision, Placed)}
    launched = {x.placement_id for x in launches if x.placement_id in decided}
    sums = [f for f in over(tag_sums) if f.height]
    tagged = tagged_cost(pl.concat(sums, how="vertical_relaxed") if sums else _NO_TAGS, launched, summed=True)
    billed = {int(p): Decimal(b) for p, b in zip(tagged["placement_id"], tagged["billed"], strict=True)}
    rows = {int(p): int(n) for p, n in zip(tagged["placement_id"], tagged["rows"], strict=True)}
    # Node share only where no row carries the placement's tag (see the module doc: never both).
    pods = [p for p in pods if p.placement_id in launched and p.placement_id not in billed]
    shared: dict[int, Decimal] = {}
    if pods:
        found_rows = over(functools.partial(_node_rows, pods_window(pods)))
        shared = shared_cost(pl.concat(found_rows, how="vertical_relaxed"), pods)
    billed.update(shared)
    found = (_workload(wid, legs, decided, billed, rows, set(shared), family)
             for wid, legs in sorted(by_workload.items()))
    out = [w for w in found if w is not None]
    return Reconciliation(out, corrections(out), tagged_rows=sum(rows.values()))


_NO_TAGS = pl.DataFrame(schema={"Tags": pl.String(), "billed": pl.Decimal(38, 10), "rows": pl.Int64()})


def _node_rows(window: tuple[list[str], datetime, datetime], billing: pl.LazyFrame) -> pl.DataFrame:
    return node_rows(billing, *window)


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
