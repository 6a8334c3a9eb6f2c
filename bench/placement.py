"""Placement benchmark on the full three-cloud catalogs.

    python bench/placement.py [--catalog ../shared/data/catalog] [--independent 10000] [--shared 1000]

(a) ``independent``: generated workloads (mixed requests: 8-GPU training, fine-tuning, TPU, serving
    with spread, datasets, deadlines, EU residency) with no shared limit: the fast path.
(b) ``shared``: generated workloads whose teams' budgets are set to half of what their unconstrained
    placement would cost, and whose busiest (provider, region, accelerator) groups are capped at half
    their unconstrained use: the MILP, under its 10 s limit, against the proven optimum (no time limit,
    zero gap) and against the greedy heuristic.

Prints JSON lines: figure + inputs. Prepare = offers → usable offers (zone collapse, jurisdictions);
plan = specs → candidates → costs → optimizer → explanations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

# A script's folder comes first on sys.path, and this file's name shadows the placement package: drop the folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import polars as pl  # noqa: E402

from collectors.catalog import read_catalog  # noqa: E402
from finops.generate.workloads import DEFAULT_TEAMS, workloads  # noqa: E402
from finops.placements import Decision, Placed  # noqa: E402
from placement import candidates, optimizer  # noqa: E402
from placement.plan import Limits, plan, problem, summary  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog"
HOME = dict(zip(DEFAULT_TEAMS, ["aws", "gcp", "azure", "aws", "gcp", "azure"], strict=True))


def emit(**kw: object) -> None:
    print(json.dumps(kw, default=str), flush=True)


def independent(offers: pl.DataFrame, n: int, seed: int) -> None:
    specs = list(enumerate(workloads(n, seed=seed)))
    plan(specs[:50], offers, home=HOME)  # warm up polars' thread pool and caches
    t0 = time.perf_counter()
    p = plan(specs, offers, home=HOME)
    secs = time.perf_counter() - t0
    s = summary(p)
    emit(bench="placement.independent", workloads=n, offers=offers.height, candidates=p.candidates,
         seconds=round(secs, 3), ms_per_workload=round(1000 * secs / n, 4), method=s["method"],
         placed=s["placed"], unplaced=s["unplaced"], expected_cost=round(s["expected_cost"], 2),
         saving_vs_home_on_demand=round(s["saving_vs_home_on_demand"], 2), stages=s["seconds"], seed=seed)


def broken(decisions: list[Decision], limits: Limits) -> list[str]:
    """Limits the explained decisions overrun (checked on the decisions, not the solver's variables)."""
    out = []
    placed = [d for d in decisions if isinstance(d, Placed)]
    for prov, reg, acc, cap in limits.capacity:
        used = sum((leg.accelerator_count or 0) * leg.replicas for d in placed for leg in d.legs
                   if (leg.provider, leg.region, leg.accelerator_name) == (prov, reg, acc))
        if used > cap + 1e-6:
            out.append(f"capacity {prov}/{reg}/{acc}: {used} > {cap}")
    for team, left in limits.budgets.items():
        spent = sum(d.expected_cost for d in placed if d.team == team)
        if spent > left + 1e-6:
            out.append(f"budget {team}: {spent:.2f} > {left:.2f}")
    return out


def shared(offers: pl.DataFrame, n: int, seed: int, time_limit: float) -> None:
    specs = list(enumerate(workloads(n, seed=seed)))
    free = plan(specs, offers, home=HOME)
    team_cost: dict[str, float] = defaultdict(float)
    groups: dict[tuple[str, str, str], float] = defaultdict(float)
    for d in free.decisions:
        if isinstance(d, Placed):
            team_cost[d.team] += d.expected_cost
            for leg in d.legs:
                if leg.accelerator_name:
                    groups[(leg.provider, leg.region, leg.accelerator_name)] += \
                        (leg.accelerator_count or 0) * leg.replicas
    busiest = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    limits = Limits(capacity=[(p, r, a, float(int(used / 2))) for (p, r, a), used in busiest],
                    budgets={t: c / 2 for t, c in team_cost.items()})
    t0 = time.perf_counter()
    p = plan(specs, offers, limits, home=HOME, time_limit=time_limit, mip_rel_gap=1e-3, force_milp=True)
    secs = time.perf_counter() - t0
    # The same problem solved to proven optimality, and greedily, for comparison.
    pb = problem(specs, offers, limits)
    work, ok, res = pb.workloads, pb.candidates, pb.resources
    t1 = time.perf_counter()
    best = optimizer.solve(work, ok, res, time_limit=600, mip_rel_gap=0.0, force_milp=True)
    best_secs = time.perf_counter() - t1
    gr = optimizer.greedy(work, ok, res)
    rel = (p.result.objective - best.objective) / best.objective if best.objective else 0.0
    emit(bench="placement.shared", workloads=n, offers=offers.height, candidates=p.candidates,
         variables=p.result.variables, capacity_limits=len(limits.capacity), budgets=len(limits.budgets),
         seconds=round(secs, 3), ms_per_workload=round(1000 * secs / n, 3), method=p.result.method,
         status=p.result.status, solver_gap=p.result.gap, placed=sum(d.placed for d in p.decisions),
         expected_cost=round(p.result.cost, 2), objective=round(p.result.objective, 2),
         optimum_objective=round(best.objective, 2), optimum_cost=round(best.cost, 2), optimum_status=best.status,
         optimum_placed=sum(d.placed for d in best.decisions.values()),
         optimum_seconds=round(best_secs, 2), from_optimum=round(rel, 8),
         cost_from_optimum=round((p.result.cost - best.cost) / best.cost, 6) if best.cost else 0.0,
         greedy_objective=round(gr.objective, 2),
         greedy_from_optimum=round((gr.objective - best.objective) / best.objective, 6),
         violations=len(broken(p.decisions, limits)),
         unconstrained_cost=round(sum(team_cost.values()), 2), stages=summary(p)["seconds"], seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", type=Path, default=SHARED)
    ap.add_argument("--independent", type=int, default=10_000)
    ap.add_argument("--shared", type=int, default=1_000)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.perf_counter()
    raw = read_catalog(a.catalog)
    t1 = time.perf_counter()
    offers = candidates.prepare_offers(raw)
    t2 = time.perf_counter()
    emit(bench="placement.offers", catalog=str(a.catalog), rows=raw.height, usable=offers.height,
         read_seconds=round(t1 - t0, 3), prepare_seconds=round(t2 - t1, 3))
    if a.independent:
        independent(offers, a.independent, a.seed)
    if a.shared:
        shared(offers, a.shared, a.seed, a.time_limit)


if __name__ == "__main__":
    main()
