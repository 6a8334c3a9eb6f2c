"""The optimizer against brute force on small random instances, and its invariants (hypothesis)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import optimizer
from placement.optimizer import Resource, feasible, greedy, objective, resource, solve

PROVIDERS = ("aws", "gcp", "azure")
GROUPS = ("g0", "g1")
TEAMS = ("t0", "t1")


def build(spec: dict) -> tuple[pl.DataFrame, pl.DataFrame, list[Resource]]:
    """Frames and resources from a drawn instance."""
    wl = pl.DataFrame(spec["workloads"], schema={"wid": pl.Int64, "priority": pl.Int64, "replicas": pl.Int64,
                                                 "spread": pl.Int64, "team": pl.String})
    cands = pl.DataFrame(spec["cands"], schema={"wid": pl.Int64, "cost": pl.Float64, "provider": pl.String,
                                                "group": pl.String, "units": pl.Float64})
    team = cands.join(wl.select("wid", "team"), on="wid", how="left", maintain_order="left")["team"]
    res = []
    for g, lim in spec["capacity"].items():
        res.append(resource(g, "capacity", lim, (cands["group"] == g).to_numpy(), cands["units"].to_numpy()))
    for t, lim in spec["budgets"].items():
        res.append(resource(t, "budget", lim, (team == t).to_numpy(), cands["cost"].to_numpy()))
    return wl.drop("team"), cands, res


@st.composite
def instances(draw: st.DrawFn, max_workloads: int = 4, max_cands: int = 3) -> dict:
    n = draw(st.integers(1, max_workloads))
    workloads, cands = [], []
    for w in range(n):
        replicas = draw(st.integers(1, 3))
        spread = draw(st.integers(1, min(2, replicas)))
        workloads.append({"wid": w, "priority": draw(st.integers(1, 9)), "replicas": replicas, "spread": spread,
                          "team": draw(st.sampled_from(TEAMS))})
        for _ in range(draw(st.integers(0, max_cands))):
            cands.append({"wid": w, "cost": float(draw(st.integers(1, 60))),
                          "provider": draw(st.sampled_from(PROVIDERS)), "group": draw(st.sampled_from(GROUPS)),
                          "units": float(draw(st.sampled_from([1, 2, 4])))})
    capacity = {g: float(draw(st.integers(0, 10))) for g in draw(st.sets(st.sampled_from(GROUPS)))}
    budgets = {t: float(draw(st.integers(0, 200))) for t in draw(st.sets(st.sampled_from(TEAMS)))}
    return {"workloads": workloads, "cands": cands, "capacity": capacity, "budgets": budgets}


def _compositions(total: int, rows: list[int]) -> Iterator[list[tuple[int, int]]]:
    """Every way to put ``total`` replicas on ``rows``."""
    for counts in itertools.product(range(total + 1), repeat=len(rows)):
        if sum(counts) == total:
            yield [(r, k) for r, k in zip(rows, counts, strict=True) if k]


def brute_force(wl: pl.DataFrame, cands: pl.DataFrame, res: list[Resource]) -> float:
    rows_of: dict[int, list[int]] = {w: [] for w in wl["wid"].to_list()}
    for r, w in enumerate(cands["wid"].to_list()):
        rows_of[w].append(r)
    options = []
    for w, n, s in wl.select("wid", "replicas", "spread").iter_rows():
        opts: list[list[tuple[int, int]] | None] = [None]
        opts += [[(r, n)] for r in rows_of[w]] if s <= 1 else list(_compositions(n, rows_of[w]))
        options.append((w, opts))
    best = np.inf
    for combo in itertools.product(*(o for _, o in options)):
        legs = {w: ls for (w, _), ls in zip(options, combo, strict=True) if ls}
        if not feasible(wl, cands, legs, res):
            best = min(best, objective(wl, cands, legs))
    return best


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_milp_equals_brute_force(inst: dict) -> None:
    wl, cands, res = build(inst)
    got = solve(wl, cands, res, force_milp=True, mip_rel_gap=0.0, time_limit=20)
    assert got.method == "milp"
    legs = {w: d.legs for w, d in got.decisions.items() if d.placed}
    assert feasible(wl, cands, legs, res) == []
    assert got.objective == pytest.approx(brute_force(wl, cands, res), rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_workloads=6, max_cands=4))
def test_no_placement_breaks_a_limit_and_unplaced_have_reasons(inst: dict) -> None:
    wl, cands, res = build(inst)
    for result in (solve(wl, cands, res), greedy(wl, cands, res)):
        legs = {w: d.legs for w, d in result.decisions.items() if d.placed}
        assert feasible(wl, cands, legs, res) == []  # capacity and budgets never exceeded, spread held
        for w, d in result.decisions.items():
            if not d.placed:
                assert d.reason
                if w not in set(cands["wid"].to_list()):
                    assert d.reason == "no offer fits"


@settings(max_examples=80, deadline=None)
@given(instances(max_workloads=1, max_cands=4))
def test_single_job_path_never_passes_over_a_cheaper_feasible_offer(inst: dict) -> None:
    inst["workloads"][0]["spread"] = 1
    wl, cands, res = build(inst)
    n = wl["replicas"][0]
    fits = [r for r in range(cands.height)
            if not feasible(wl, cands, {0: [(r, n)]}, res)]
    for result in (solve(wl, cands, res), greedy(wl, cands, res)):
        d = result.decisions[0]
        if not fits:
            assert not d.placed and d.reason
            continue
        assert d.placed
        chosen = d.legs[0][0]
        assert cands["cost"][chosen] == min(cands["cost"][r] for r in fits)


def test_fast_path_runs_no_solver_when_nothing_binds() -> None:
    wl, cands, res = build({"workloads": [{"wid": 0, "priority": 5, "replicas": 1, "spread": 1, "team": "t0"}],
                            "cands": [{"wid": 0, "cost": 5.0, "provider": "aws", "group": "g0", "units": 1.0},
                                      {"wid": 0, "cost": 3.0, "provider": "gcp", "group": "g1", "units": 1.0}],
                            "capacity": {"g1": 4.0}, "budgets": {"t0": 100.0}})
    r = solve(wl, cands, res)
    assert r.method == "fast" and r.decisions[0].legs == [(1, 1)]


def test_capacity_contest_goes_to_the_higher_priority_and_names_the_reason() -> None:
    wl, cands, res = build({
        "workloads": [{"wid": 0, "priority": 2, "replicas": 1, "spread": 1, "team": "t0"},
                      {"wid": 1, "priority": 9, "replicas": 1, "spread": 1, "team": "t0"}],
        "cands": [{"wid": 0, "cost": 1.0, "provider": "aws", "group": "g0", "units": 4.0},
                  {"wid": 1, "cost": 50.0, "provider": "aws", "group": "g0", "units": 4.0}],
        "capacity": {"g0": 4.0}, "budgets": {}})
    r = solve(wl, cands, res)
    assert r.method == "milp"
    assert r.decisions[1].placed and not r.decisions[0].placed
    assert r.decisions[0].reason.startswith("capacity: g0")


def test_budget_reason() -> None:
    wl, cands, res = build({
        "workloads": [{"wid": 0, "priority": 5, "replicas": 1, "spread": 1, "team": "t1"}],
        "cands": [{"wid": 0, "cost": 80.0, "provider": "aws", "group": "g0", "units": 1.0}],
        "capacity": {}, "budgets": {"t1": 50.0}})
    d = solve(wl, cands, res).decisions[0]
    assert not d.placed and d.reason.startswith("budget: t1 has 50.00 left")


def test_spread_uses_enough_providers() -> None:
    wl, cands, res = build({
        "workloads": [{"wid": 0, "priority": 5, "replicas": 3, "spread": 2, "team": "t0"}],
        "cands": [{"wid": 0, "cost": 1.0, "provider": "aws", "group": "g0", "units": 1.0},
                  {"wid": 0, "cost": 2.0, "provider": "aws", "group": "g0", "units": 1.0},
                  {"wid": 0, "cost": 7.0, "provider": "gcp", "group": "g1", "units": 1.0}],
        "capacity": {}, "budgets": {}})
    for r in (solve(wl, cands, res), solve(wl, cands, res, force_milp=True)):
        assert sorted(r.decisions[0].legs) == [(0, 2), (2, 1)]
        assert r.cost == pytest.approx(9.0)


def test_penalty_exceeds_any_placement() -> None:
    wl, cands, _ = build({"workloads": [{"wid": 0, "priority": 1, "replicas": 3, "spread": 1, "team": "t0"}],
                          "cands": [{"wid": 0, "cost": 10.0, "provider": "aws", "group": "g0", "units": 1.0}],
                          "capacity": {}, "budgets": {}})
    assert optimizer.penalties(wl, cands)[0] > 30.0
