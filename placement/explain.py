"""Explanations (pure): for each placed workload the chosen offer, the runner-up, the baseline (the
cheapest on-demand offer on the team's home provider) and the saving; for each unplaced one its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from finops.placements import OFFER_KEY, Decision, Leg, Placed, RunnerUp, Unplaced
from placement.optimizer import Result


def explain(specs: pl.DataFrame, costed: pl.DataFrame, result: Result, home: Mapping[str, str | None],
            reasons: Mapping[int, str], offers: pl.DataFrame) -> list[Decision]:
    """One decision per workload in ``specs``. ``costed`` holds the deadline-feasible candidates the
    optimizer saw (row i = candidate i; ``oid`` the row of ``offers``); ``reasons`` the reasons of
    workloads that never reached it."""
    details = offers.select("oid", "zone", "instance_type", "observed_at")
    # Within a workload every candidate is a distinct offer, so the runner-up is the cheapest other row.
    cands = costed.with_row_index("row")
    chosen_rows = {w: d.legs for w, d in result.decisions.items() if d.placed}
    primary = np.zeros(cands.height, dtype=bool)
    primary[[r for ls in chosen_rows.values() for r, _ in ls]] = True  # the runner-up is none of the legs
    slim = cands.select("row", "wid", "cost", "market", "provider")
    runner = (slim.filter(~pl.Series(primary)).group_by("wid")
              .agg(pl.col("row").get(pl.col("cost").arg_min()).alias("row")))
    runner_row = {w: r for w, r in runner.iter_rows() if w in chosen_rows}
    reps = dict(specs.select("wid", "replicas").iter_rows())
    homes = pl.DataFrame({"team": list(home), "home": list(home.values())},
                         schema={"team": pl.String, "home": pl.String})
    team_home = specs.select("wid", "team").join(homes, on="team", how="inner").select("wid", "home")
    base = (slim.filter(pl.col("market") == "on_demand").join(team_home, on="wid", how="inner")
            .filter(pl.col("provider") == pl.col("home")).group_by("wid").agg(pl.col("cost").min()))
    baseline: dict[int, float] = {w: c * reps[w] for w, c in base.iter_rows()}
    spread = {w: s for w, s in specs.select("wid", "spread").iter_rows() if s > 1 and w in chosen_rows}
    alternatives = _spread_runner_up(slim.filter(~pl.Series(primary)), spread, reps)
    runner_row.update({w: legs[0][0] for w, legs in alternatives.items()})
    for w in spread.keys() - alternatives.keys():
        runner_row.pop(w, None)  # no other way to spread it: no runner-up rather than one that cannot be
    runners = cands.filter(pl.col("row").is_in(list(runner_row.values()))).join(details, on="oid", how="left")
    cost_of = dict(zip(cands["row"].to_list(), cands["cost"].to_list(), strict=True))
    runner_up = {}
    for r in runners.iter_rows(named=True):
        w = r["wid"]
        if runner_row.get(w) != r["row"]:
            continue
        total = (sum(cost_of[row] * k for row, k in alternatives[w]) if w in alternatives
                 else r["cost"] * reps[w])
        runner_up[w] = RunnerUp(**{k: r[k] for k in (*OFFER_KEY, "price_per_hour")}, expected_cost=total)
    needed = sorted({r for ls in chosen_rows.values() for r, _ in ls})
    by_row = {r["row"]: r for r in cands.filter(pl.col("row").is_in(needed)).join(details, on="oid", how="left")
              .iter_rows(named=True)}
    out: list[Decision] = []
    for w, name, team in specs.select("wid", "name", "team").iter_rows():
        d = result.decisions.get(w)
        if d is None or not d.placed:
            out.append(Unplaced(workload_id=w, name=name, team=team, baseline_cost=baseline.get(w),
                                reason=reasons.get(w) or (d.reason if d else None) or "no offer fits"))
            continue
        legs = [(by_row[r], k) for r, k in d.legs]
        cost, compute, rework, egress = (sum(c[col] * k for c, k in legs) for col in
                                         ("cost", "compute_cost", "rework_cost", "egress_cost"))
        main, _ = max(legs, key=lambda x: x[1])
        out.append(Placed(workload_id=w, name=name, team=team, baseline_cost=baseline.get(w),
                          legs=tuple(_leg(c, k) for c, k in legs), expected_hours=main["expected_hours"],
                          expected_cost=cost, compute_cost=compute, rework_cost=rework, egress_cost=egress,
                          runner_up=runner_up.get(w)))
    return out


def _spread_runner_up(others: pl.DataFrame, spread: Mapping[int, int], reps: Mapping[int, int]
                      ) -> dict[int, list[tuple[int, int]]]:
    """For each workload with ``spread = k``, the best placement on rows other than its chosen ones that
    still spreads: one replica on the cheapest row of each of the k cheapest providers left, the rest
    on the cheapest of those (as the optimizer builds a spread placement). Legs, main leg first; a
    workload whose other rows span fewer than k providers has none. A runner-up that put every
    replica on one cloud would look cheaper than the choice while breaking the spec."""
    if not spread:
        return {}
    per = (others.filter(pl.col("wid").is_in(list(spread))).sort("cost", "row")
           .group_by("wid", "provider", maintain_order=True).first())
    out: dict[int, list[tuple[int, int]]] = {}
    for (w,), rows in per.group_by("wid", maintain_order=True):
        wid = int(w)
        k = spread[wid]
        best = rows.sort("cost", "row").head(k)["row"].to_list()
        if len(best) < k:
            continue
        out[wid] = [(best[0], reps[wid] - k + 1)] + [(r, 1) for r in best[1:]]
    return out


def _leg(c: Mapping[str, Any], replicas: int) -> Leg:
    """A chosen candidate row (joined with its offer's zone and observation time) as a leg."""
    return Leg(provider=c["provider"], region=c["region"], zone=c["zone"], instance_type=c["instance_type"],
               market=c["market"], replicas=replicas, accelerator_name=c["accelerator_name"],
               accelerator_count=c["accelerator_count"], price_per_hour=c["price_per_hour"],
               observed_at=c["observed_at"], pool=c.get("pool"), target=c.get("target"),
               interruption_rate=c.get("interruption_rate"))


def cost_notes(costed: pl.DataFrame, result: Result, offers: pl.DataFrame) -> dict[int, str]:
    """For each placed workload whose legs were costed with a learnt correction, the note saying so
    (``cost × 1.07 learnt from 12 billed workloads``; several legs' distinct notes joined by ``; ``)."""
    if "cost_note" not in offers.columns:
        return {}
    rows = {r: w for w, d in result.decisions.items() if d.placed for r, _ in d.legs}
    if not rows:
        return {}
    picked = (costed.with_row_index("row").filter(pl.col("row").is_in(list(rows))).select("row", "oid")
              .join(offers.select("oid", "cost_note"), on="oid", how="left"))
    out: dict[int, list[str]] = {}
    for row, _, note in picked.sort("row").iter_rows():
        if note and note not in out.setdefault(rows[row], []):
            out[rows[row]].append(note)
    return {w: "; ".join(n) for w, n in out.items() if n}
