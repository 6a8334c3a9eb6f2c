"""The placement pipeline (pure): specs and offers → candidates → costs → shared limits → optimizer →
explained decisions. :mod:`placement.run` feeds it from the store, the ledger and the config."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from finops.placements import Decision, placed
from finops.workloads import WorkloadSpec
from placement import candidates as cand_mod
from placement import costing, explain, optimizer


@dataclass(frozen=True)
class Limits:
    """What is left to share: capacity (provider, region, accelerator patterns → accelerators left),
    budgets (team → money left; a team absent is unlimited), commitment pools (pool, provider, region,
    instance_type, hours)."""

    capacity: Sequence[tuple[str, str, str, float]] = ()
    budgets: Mapping[str, float] = field(default_factory=dict)
    pools: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"pool": pl.String, "provider": pl.String, "region": pl.String, "instance_type": pl.String,
                "hours": pl.Float64}))


@dataclass
class Plan:
    """The decisions (one per workload, in queue order), the optimizer's result, the number of
    candidates it saw and the seconds each stage took; when it was planned and the observation times of
    the prices it could use (oldest, newest), so a plan always says how old its prices were."""

    decisions: list[Decision]
    result: optimizer.Result
    candidates: int
    seconds: dict[str, float]
    now: datetime | None = None
    offers_observed: tuple[datetime, datetime] | None = None
    notes: dict[int, str] = field(default_factory=dict)
    """Per workload id, how its cost was adjusted by what was learnt (``cost × 1.07 learnt from …``)."""


@dataclass(frozen=True)
class Problem:
    """What the optimizer sees: workloads still placeable, their deadline-feasible candidates (row i is
    candidate i), the shared limits as resources; plus the reasons of workloads already out."""

    specs: pl.DataFrame
    workloads: pl.DataFrame
    candidates: pl.DataFrame
    resources: list[optimizer.Resource]
    reasons: dict[int, str]
    offers: pl.DataFrame


def problem(specs: Sequence[tuple[int, WorkloadSpec]], offers: pl.DataFrame, limits: Limits = Limits(), *,
            now: datetime | None = None, restart_hours: float = 1 / 6,
            egress: costing.EgressRates | None = None, targets: Mapping[int, Sequence[str]] | None = None) -> Problem:
    """Candidates, costs and limits for ``specs`` (id, spec) on ``offers`` (from
    :func:`placement.candidates.prepare_offers`); ``targets``: the launch targets each workload may use
    (absent: any the offers carry)."""
    now = now or datetime.now(UTC)
    sf = cand_mod.spec_frame(specs, now, targets)
    rates = costing.egress_table(sf, offers, egress or costing.EgressRates())
    vm = pl.col("service") == "compute" if "service" in offers.columns else pl.lit(True)
    pooled = (offers.filter((pl.col("market") == "on_demand") & vm)
              .join(limits.pools.select("provider", "region", "instance_type"),
                    on=["provider", "region", "instance_type"])
              ["oid"].to_list())
    cands = costing.cost(cand_mod.candidates(sf, offers, pooled), rates, restart_hours=restart_hours).collect()
    cands = costing.with_commitments(cands, limits.pools, offers)
    reasons = _early_reasons(sf, cands, offers)
    early = list(reasons)
    usable = pl.col("deadline_ok") & ~pl.col("wid").is_in(early)
    ok = cands if not early and cands["deadline_ok"].all() else cands.filter(usable)
    work = sf.filter(~pl.col("wid").is_in(early)).select("wid", "priority", "replicas", "spread")
    return Problem(sf, work, ok, build_resources(ok, sf, limits), reasons, offers)


def plan(specs: Sequence[tuple[int, WorkloadSpec]], offers: pl.DataFrame, limits: Limits = Limits(), *,
         home: Mapping[str, str | None] | None = None, now: datetime | None = None,
         restart_hours: float = 1 / 6, egress: costing.EgressRates | None = None,
         time_limit: float = 10.0, mip_rel_gap: float = 1e-3, force_milp: bool = False,
         targets: Mapping[int, Sequence[str]] | None = None) -> Plan:
    """Decide every workload in ``specs`` (id, spec) on ``offers`` under ``limits``; ``time_limit``
    bounds the whole run (the solver gets what is left of it); ``targets``: the launch targets each
    workload id may use (absent: any the offers carry)."""
    import time

    t0 = time.perf_counter()
    pb = problem(specs, offers, limits, now=now, restart_hours=restart_hours, egress=egress, targets=targets)
    t1 = time.perf_counter()
    budget = max(time_limit - (t1 - t0) - 0.1 - 1e-6 * pb.candidates.height, 0.5)  # leave time to explain
    result = optimizer.solve(pb.workloads, pb.candidates, pb.resources, time_limit=budget,
                             mip_rel_gap=mip_rel_gap, force_milp=force_milp)
    t2 = time.perf_counter()
    decisions = explain.explain(pb.specs, pb.candidates, result, home or {}, pb.reasons, pb.offers)
    t3 = time.perf_counter()
    seen = offers["observed_at"].drop_nulls() if "observed_at" in offers.columns else pl.Series([])
    return Plan(decisions, result, pb.candidates.height,
                {"candidates": t1 - t0, "optimize": t2 - t1, "explain": t3 - t2}, now or datetime.now(UTC),
                (seen.min(), seen.max()) if seen.len() else None,  # type: ignore[arg-type]
                explain.cost_notes(pb.candidates, result, pb.offers))


def _early_reasons(sf: pl.DataFrame, cands: pl.DataFrame, offers: pl.DataFrame) -> dict[int, str]:
    """Workloads that cannot be placed whatever the others do: no offer fits, or none meets the deadline."""
    per = (cands.group_by("wid")
           .agg(pl.col("deadline_ok").any().alias("in_time"), pl.col("expected_hours").min().alias("fastest")))
    spread = sf.filter(pl.col("spread") > 1)["wid"].to_list()
    provs = (cands.filter(pl.col("wid").is_in(spread) & pl.col("deadline_ok")).group_by("wid")
             .agg(pl.col("provider").n_unique().alias("providers")))
    per = (sf.select("wid", "spread", "deadline_hours").join(per, on="wid", how="left")
           .join(provs, on="wid", how="left").with_columns(pl.col("providers").fill_null(0)))
    bad = per.filter(pl.col("in_time").is_null() | ~pl.col("in_time")
                     | ((pl.col("spread") > 1) & (pl.col("providers") < pl.col("spread"))))
    out: dict[int, str] = {}
    for w, k, left, in_time, fastest, n in bad.iter_rows():
        if in_time is None:
            out[w] = cand_mod.diagnose(sf.filter(pl.col("wid") == w), offers)
        elif not in_time:
            out[w] = (f"deadline: the fastest fitting offer needs {fastest:,.1f} h expected, "
                      f"{max(left, 0):,.1f} h left before the deadline")
        else:
            out[w] = f"no offer fits: spread {k} needs {k} providers, fitting offers are on {n}"
    return out


def build_resources(cands: pl.DataFrame, sf: pl.DataFrame, limits: Limits) -> list[optimizer.Resource]:
    """The shared limits as optimizer resources over the rows of ``cands``."""
    out: list[optimizer.Resource] = []
    if cands.is_empty():
        return out
    acc = cands["accelerator_name"].fill_null(cand_mod.CPU)
    count = cands["accelerator_count"].fill_null(0.0).to_numpy()
    prov, reg = cands["provider"], cands["region"]
    not_pool = cands["pool"].is_null().to_numpy()
    for p, r, a, left in limits.capacity:
        mask = _match(prov, p) & _match(reg, r) & _match(acc, a) & not_pool
        out.append(optimizer.resource(f"{p}/{r}/{a}", "capacity", left, mask, count))
    teams = cands.select("wid").join(sf.select("wid", "team"), on="wid", how="left", maintain_order="left")["team"]
    cost = cands["cost"].to_numpy()
    for team, left in limits.budgets.items():
        mask = (teams == team).to_numpy()
        if mask.any():
            out.append(optimizer.resource(f"team {team}", "budget", left, mask, cost))
    hours = cands["expected_hours"].to_numpy()
    pools = cands["pool"]
    for pool, left in zip(limits.pools["pool"].to_list(), limits.pools["hours"].to_list(), strict=True):
        mask = (pools == pool).fill_null(False).to_numpy()
        if mask.any():
            out.append(optimizer.resource(f"commitment {pool}", "commitment", left, mask, hours))
    return out


def _match(col: pl.Series, pattern: str) -> np.ndarray:
    if pattern == "*":
        return np.ones(col.len(), dtype=bool)
    if any(ch in pattern for ch in "*?["):
        distinct = [v for v in col.unique().to_list() if v is not None and fnmatch.fnmatchcase(v, pattern)]
        return col.is_in(distinct).fill_null(False).to_numpy()
    return (col == pattern).fill_null(False).to_numpy()


def summary(p: Plan) -> dict[str, Any]:
    """Counts, expected cost and saving of the placed workloads, and how the optimizer did."""
    done = placed(p.decisions)
    savings = [d.saving for d in done if d.saving is not None]
    return {"workloads": len(p.decisions), "placed": len(done), "unplaced": len(p.decisions) - len(done),
            "expected_cost": float(np.sum([d.expected_cost for d in done])) if done else 0.0,
            "saving_vs_home_on_demand": float(np.sum(savings)) if savings else 0.0,
            "method": p.result.method, "status": p.result.status, "gap": p.result.gap,
            "candidates": p.candidates, "seconds": {k: round(v, 4) for k, v in p.seconds.items()},
            **price_age(p)}


def price_age(p: Plan) -> dict[str, Any]:
    """How old the prices were: ``prices_observed`` (oldest and newest observation, ISO 8601) and
    ``price_age_hours`` (hours from the oldest to planning) over the prices of the placed legs, or over
    every offer the plan could use when nothing was placed; None for both without any price."""
    used = [leg.observed_at for d in placed(p.decisions) for leg in d.legs if leg.observed_at is not None]
    span = (min(used), max(used)) if used else p.offers_observed
    if span is None:
        return {"prices_observed": None, "price_age_hours": None}
    now = p.now or datetime.now(UTC)
    return {"prices_observed": [t.isoformat() for t in span],
            "price_age_hours": round((now - span[0]).total_seconds() / 3600, 1)}
