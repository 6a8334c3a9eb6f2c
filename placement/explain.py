"""Explanations (pure): for each placed workload the chosen offer, the runner-up, the baseline (the
cheapest on-demand offer on the team's home provider) and the saving; for each unplaced one its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from placement.optimizer import Result

OFFER_KEY = ("provider", "region", "instance_type", "market")


def explain(specs: pl.DataFrame, costed: pl.DataFrame, result: Result, home: Mapping[str, str | None],
            reasons: Mapping[int, str], offers: pl.DataFrame) -> list[dict[str, Any]]:
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
    homes = pl.DataFrame({"team": list(home), "home": list(home.values())}, schema={"team": pl.String, "home": pl.String})
    team_home = specs.select("wid", "team").join(homes, on="team", how="inner").select("wid", "home")
    base = (slim.filter(pl.col("market") == "on_demand").join(team_home, on="wid", how="inner")
            .filter(pl.col("provider") == pl.col("home")).group_by("wid").agg(pl.col("cost").min()))
    extra: dict[int, dict[str, Any]] = {w: {"baseline_cost": c * reps[w]} for w, c in base.iter_rows()}
    for r in (cands.filter(pl.col("row").is_in(list(runner_row.values()))).join(details, on="oid", how="left")
              .iter_rows(named=True)):
        w = r["wid"]
        extra.setdefault(w, {})["runner_up"] = {
            **{k: r[k] for k in (*OFFER_KEY, "price_per_hour")}, "expected_cost": r["cost"] * reps[w]}
    needed = sorted({r for ls in chosen_rows.values() for r, _ in ls})
    by_row = {r["row"]: r for r in cands.filter(pl.col("row").is_in(needed)).join(details, on="oid", how="left")
              .iter_rows(named=True)}
    out = []
    for w, name, team, replicas in specs.select("wid", "name", "team", "replicas").iter_rows():
        d = result.decisions.get(w)
        e = extra.get(w, {})
        if d is None or not d.placed:
            out.append({"workload_id": w, "name": name, "team": team, "placed": False,
                        "reason": reasons.get(w) or (d.reason if d else "no offer fits"),
                        "baseline_cost": e.get("baseline_cost"), "runner_up": None})
            continue
        legs = [(by_row[r], k) for r, k in d.legs]
        main, _ = max(legs, key=lambda x: x[1])
        cost, compute, rework, egress = (sum(c[col] * k for c, k in legs) for col in
                                         ("cost", "compute_cost", "rework_cost", "egress_cost"))
        base = e.get("baseline_cost")
        out.append({
            "workload_id": w, "name": name, "team": team, "placed": True,
            **{k: main[k] for k in ("provider", "region", "zone", "instance_type", "market", "accelerator_name",
                                    "accelerator_count", "price_per_hour")},
            "price_observed_at": main["observed_at"], "replicas": replicas,
            "expected_hours": main["expected_hours"], "expected_cost": cost,
            "compute_cost": compute, "rework_cost": rework, "egress_cost": egress,
            "baseline_cost": base, "saving": (base - cost) if base is not None else None,
            "runner_up": e.get("runner_up"),
            "legs": [{"provider": c["provider"], "region": c["region"], "zone": c["zone"],
                      "instance_type": c["instance_type"], "market": c["market"], "replicas": k,
                      "accelerator_name": c["accelerator_name"], "accelerator_count": c["accelerator_count"],
                      "price_per_hour": c["price_per_hour"], "observed_at": str(c["observed_at"]),
                      "pool": c.get("pool")} for c, k in legs],
            "reason": None,
        })
    return out
