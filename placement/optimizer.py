"""The optimizer: inputs in, decisions out, no I/O.

Choose for the whole queue at once where each workload runs, minimising expected cost plus a
priority-weighted penalty for each workload left unplaced, under shared limits (:class:`Resource`):
capacity per (provider, region, accelerator), each team's budget left, hours of unused commitments.
A training job (or a serving workload without ``spread``) runs all its replicas on one offer; a serving
workload with ``spread = N`` splits its replicas over offers on at least N providers.

- :func:`solve` first takes each workload's own cheapest choice; if no shared limit is exceeded by
  that, it is optimal and no solver runs (the fast path for independent queues).
- Otherwise a MILP (``scipy.optimize.milp``, HiGHS) over x[workload, offer], with a time limit; the
  optimality gap is reported. Candidates that can never beat a cheaper one using the same limits are
  dropped first, which keeps the model small without changing the optimum.
- :func:`greedy` (priority first, cheapest fitting offer) is the fallback when the MILP finds nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

EPS = 1e-9


@dataclass(frozen=True)
class Resource:
    """A shared limit: candidate rows ``rows`` use ``use`` (per replica) of it; in all at most ``limit``."""

    name: str
    kind: str  # capacity | budget | commitment
    limit: float
    rows: np.ndarray
    use: np.ndarray


@dataclass
class Decision:
    wid: int
    legs: list[tuple[int, int]] = field(default_factory=list)  # (candidate row, replicas)
    reason: str | None = None

    @property
    def placed(self) -> bool:
        return bool(self.legs)


@dataclass
class Result:
    decisions: dict[int, Decision]
    method: str
    cost: float
    objective: float
    gap: float | None
    seconds: float
    status: str
    variables: int = 0


def resource(name: str, kind: str, limit: float, mask: np.ndarray, use: np.ndarray | float) -> Resource:
    """A :class:`Resource` over the candidate rows where ``mask`` holds."""
    rows = np.flatnonzero(mask)
    if np.ndim(use):
        u = np.broadcast_to(np.asarray(use, dtype=float), mask.shape)[rows]
    else:
        u = np.full(rows.size, float(use))
    return Resource(name, kind, float(limit), rows, u.astype(float))


def penalties(workloads: pl.DataFrame, cands: pl.DataFrame) -> dict[int, float]:
    """Unplaced penalty per workload: priority × (more than any placement could cost), so placing a
    workload always beats leaving it out, and higher priorities win contested limits."""
    total = _max(cands["cost"], 0.0) * _max(workloads["replicas"], 1.0) if cands.height else 0.0
    big = 2.0 * total + 1.0
    return {w: p * big for w, p in zip(workloads["wid"].to_list(), workloads["priority"].to_list(), strict=True)}


def _max(col: pl.Series, default: float) -> float:
    """The largest value of a numeric column as a float; ``default`` when it is empty, all null or 0."""
    top = col.max()
    return float(top) if isinstance(top, int | float) and top else default


# -- entry point -----------------------------------------------------------------------------------
def solve(workloads: pl.DataFrame, cands: pl.DataFrame, resources: Sequence[Resource] = (), *,
          time_limit: float = 10.0, mip_rel_gap: float = 1e-3, force_milp: bool = False) -> Result:
    """Place ``workloads`` (wid, priority, replicas, spread) on ``cands`` (wid, cost per replica,
    provider; row i is candidate i) under ``resources``."""
    t0 = time.perf_counter()
    pen = penalties(workloads, cands)
    if not force_milp:
        own = _own_best(workloads, cands)
        if _fits(own, cands.height, resources):
            return _result(workloads, cands, own, pen, resources, "fast", None, t0, "optimal: no shared limit binds")
    res = _milp(workloads, cands, resources, pen, t0 + time_limit, mip_rel_gap)
    if res is not None:
        legs, gap, status, nvars = res
        out = _result(workloads, cands, legs, pen, resources, "milp", gap, t0, status)
        out.variables = nvars
        return out
    legs = _greedy_legs(workloads, cands, resources)
    return _result(workloads, cands, legs, pen, resources, "greedy", None, t0, "MILP found no solution in time")


def greedy(workloads: pl.DataFrame, cands: pl.DataFrame, resources: Sequence[Resource] = ()) -> Result:
    t0 = time.perf_counter()
    legs = _greedy_legs(workloads, cands, resources)
    return _result(workloads, cands, legs, penalties(workloads, cands), resources, "greedy", None, t0, "heuristic")


# -- each workload alone ---------------------------------------------------------------------------
def _own_best(workloads: pl.DataFrame, cands: pl.DataFrame) -> dict[int, list[tuple[int, int]]]:
    """Each workload's cheapest choice ignoring shared limits (exact, vectorised for single offers)."""
    idx = cands.with_row_index("row").select("row", "wid", "cost", "provider")
    spread = workloads.filter(pl.col("spread") > 1)
    single = workloads.filter(pl.col("spread") <= 1)
    best = (idx.group_by("wid").agg(pl.col("row").get(pl.col("cost").arg_min()))
            .join(single.select("wid", "replicas"), on="wid"))
    legs: dict[int, list[tuple[int, int]]] = {
        w: [(int(r), int(n))]
        for w, r, n in zip(best["wid"].to_list(), best["row"].to_list(), best["replicas"].to_list(), strict=True)
    }
    if spread.height:
        per = (idx.filter(pl.col("wid").is_in(spread["wid"].to_list())).sort("cost", "row")
               .group_by("wid", "provider", maintain_order=True).first())
        by_w: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for w, r, c in zip(per["wid"].to_list(), per["row"].to_list(), per["cost"].to_list(), strict=True):
            by_w[w].append((c, r))
        for w, n, k in spread.select("wid", "replicas", "spread").iter_rows():
            opts = sorted(by_w.get(w, []))
            if len(opts) < k:
                continue
            chosen = [r for _, r in opts[:k]]
            counts = dict.fromkeys(chosen, 1)
            counts[chosen[0]] += n - k  # the rest on the cheapest
            legs[w] = list(counts.items())
    return legs


def _usage(legs: dict[int, list[tuple[int, int]]], n: int) -> np.ndarray:
    reps = np.zeros(n)
    for ls in legs.values():
        for r, k in ls:
            reps[r] += k
    return reps


def _fits(legs: dict[int, list[tuple[int, int]]], n: int, resources: Sequence[Resource]) -> bool:
    reps = _usage(legs, n)
    return all(float(reps[res.rows] @ res.use) <= res.limit + EPS for res in resources)


# -- MILP ------------------------------------------------------------------------------------------
def _prune(workloads: pl.DataFrame, cands: pl.DataFrame, resources: Sequence[Resource]) -> np.ndarray:
    """Rows that may be optimal: per workload, the cheapest of the rows that use the same limits by the
    same amounts (and, for spread workloads, lie on the same provider). Budget use is the cost itself,
    so the cheapest also uses least budget."""
    keys = [""] * cands.height
    for i, res in enumerate(resources):
        if res.kind == "budget":
            continue
        for r, u in zip(res.rows.tolist(), res.use.tolist(), strict=True):
            keys[r] += f"{i}:{u:.9g},"
    spread = set(workloads.filter(pl.col("spread") > 1)["wid"].to_list())
    df = cands.select("wid", "cost", "provider").with_row_index("row").with_columns(pl.Series("key", keys))
    df = df.with_columns(pl.when(pl.col("wid").is_in(list(spread))).then(pl.col("provider")).otherwise(pl.lit(""))
                         .alias("pkey"))
    kept = df.sort("cost", "row").group_by("wid", "key", "pkey", maintain_order=True).first()
    return np.sort(kept["row"].to_numpy())


def _milp(workloads: pl.DataFrame, cands: pl.DataFrame, resources: Sequence[Resource], pen: dict[int, float],
          deadline: float, gap: float) -> tuple[dict[int, list[tuple[int, int]]], float | None, str, int] | None:
    # scipy's solver takes about 0.4 s to import: paid only by runs that need it (most queues don't).
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    keep = _prune(workloads, cands, resources)
    pos = np.full(cands.height, -1)
    pos[keep] = np.arange(keep.size)
    sub = cands[keep]
    wids = workloads["wid"].to_list()
    wpos = {w: i for i, w in enumerate(wids)}
    reps = dict(zip(wids, workloads["replicas"].to_list(), strict=True))
    spreads = dict(zip(wids, workloads["spread"].to_list(), strict=True))
    cw = sub["wid"].to_list()
    mult = np.array([1.0 if spreads[w] > 1 else float(reps[w]) for w in cw])
    n, m = keep.size, len(wids)
    # spread pairs (workload, provider) get a binary "used" variable u
    pairs = sorted({(w, p) for w, p in zip(cw, sub["provider"].to_list(), strict=True) if spreads[w] > 1})
    ppos = {wp: n + m + i for i, wp in enumerate(pairs)}
    nv = n + m + len(pairs)
    c = np.concatenate([sub["cost"].to_numpy() * mult, [pen[w] for w in wids], np.zeros(len(pairs))])
    integrality = np.ones(nv)
    upper = np.concatenate([[1.0 if spreads[w] <= 1 else float(reps[w]) for w in cw],
                            np.ones(m), np.ones(len(pairs))])
    rows, cols, vals, lo, hi = [], [], [], [], []
    # each workload: placed once (or its replicas spread), else unplaced
    for j, w in enumerate(cw):
        rows.append(wpos[w])
        cols.append(j)
        vals.append(1.0)
    for i, w in enumerate(wids):
        full = float(reps[w]) if spreads[w] > 1 else 1.0
        rows.append(i)
        cols.append(n + i)
        vals.append(full)
        lo.append(full)
        hi.append(full)
    k = m
    for res in resources:
        sel = pos[res.rows]
        ok = sel >= 0
        if not ok.any():
            continue
        for j, u in zip(sel[ok].tolist(), res.use[ok].tolist(), strict=True):
            rows.append(k)
            cols.append(j)
            vals.append(u * mult[j])
        lo.append(-np.inf)
        hi.append(res.limit)
        k += 1
    if pairs:
        for j, (w, p) in enumerate(zip(cw, sub["provider"].to_list(), strict=True)):
            if spreads[w] > 1:
                rows.append(k + ppos[(w, p)] - n - m)
                cols.append(j)
                vals.append(-1.0)
        for i, wp in enumerate(pairs):
            rows.append(k + i)
            cols.append(ppos[wp])
            vals.append(1.0)
            lo.append(-np.inf)
            hi.append(0.0)
        k += len(pairs)
        for w in sorted({w for w, _ in pairs}):
            for wp in (x for x in pairs if x[0] == w):
                rows.append(k)
                cols.append(ppos[wp])
                vals.append(1.0)
            rows.append(k)
            cols.append(n + wpos[w])
            vals.append(float(spreads[w]))
            lo.append(float(spreads[w]))
            hi.append(np.inf)
            k += 1
    a = coo_array((vals, (rows, cols)), shape=(k, nv)).tocsr()
    res = milp(c, integrality=integrality, bounds=Bounds(np.zeros(nv), upper),
               constraints=LinearConstraint(a, np.array(lo), np.array(hi)),
               options={"time_limit": max(deadline - time.perf_counter() - 0.4, 0.2), "mip_rel_gap": gap,
                        "disp": False})  # HiGHS may overrun its limit a little
    if res.x is None:
        return None
    x = np.round(res.x[:n]).astype(int)
    legs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for j in np.flatnonzero(x > 0).tolist():
        w = cw[j]
        legs[w].append((int(keep[j]), int(reps[w]) if spreads[w] <= 1 else int(x[j])))
    status = {0: "optimal", 1: "time limit reached"}.get(res.status, res.message)
    return dict(legs), getattr(res, "mip_gap", None), status, nv


# -- greedy ----------------------------------------------------------------------------------------
def _greedy_legs(workloads: pl.DataFrame, cands: pl.DataFrame,
                 resources: Sequence[Resource]) -> dict[int, list[tuple[int, int]]]:
    """Workloads by priority per dollar (the knapsack rule: what the penalties reward), each on its
    cheapest offers that still fit."""
    left = np.array([r.limit for r in resources])
    touch: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i, res in enumerate(resources):
        for r, u in zip(res.rows.tolist(), res.use.tolist(), strict=True):
            touch[r].append((i, u))
    idx = cands.with_row_index("row").select("row", "wid", "cost", "provider").sort("cost", "row")
    by_w: dict[int, list[tuple[int, float, str]]] = defaultdict(list)
    for r, w, cst, p in idx.iter_rows():
        by_w[w].append((r, cst, p))
    order = (workloads.join(idx.group_by("wid").agg(pl.col("cost").min().alias("best")), on="wid", how="left")
             .with_columns((pl.col("priority") / (pl.col("best") * pl.col("replicas") + 1e-9)).alias("density"))
             .sort(["density", "wid"], descending=[True, False], nulls_last=True))
    legs: dict[int, list[tuple[int, int]]] = {}

    def fits(r: int, k: int) -> bool:
        return all(left[i] + EPS >= u * k for i, u in touch.get(r, ()))

    def take(r: int, k: int) -> None:
        for i, u in touch.get(r, ()):
            left[i] -= u * k

    for w, n, s in order.select("wid", "replicas", "spread").iter_rows():
        opts = by_w.get(w, [])
        if s <= 1:
            r = next((r for r, _, _ in opts if fits(r, n)), None)
            if r is not None:
                take(r, n)
                legs[w] = [(r, n)]
            continue
        plan = _spread_plan(opts, n, s, fits, take, touch, left)
        if plan:
            legs[w] = plan
    return legs


def _spread_plan(opts: list[tuple[int, float, str]], n: int, s: int, fits: Callable[[int, int], bool],
                 take: Callable[[int, int], None], touch: dict[int, list[tuple[int, float]]],
                 left: np.ndarray) -> list[tuple[int, int]]:
    saved = left.copy()
    counts: dict[int, int] = defaultdict(int)
    used: set[str] = set()
    for r, _, p in opts:  # one replica on each of the s cheapest providers that fit
        if len(used) == s:
            break
        if p not in used and fits(r, 1):
            take(r, 1)
            counts[r] += 1
            used.add(p)
    if len(used) < s:
        left[:] = saved
        return []
    for _ in range(n - s):  # the rest, one by one, on the cheapest that fits
        row = next((r for r, _, _ in opts if fits(r, 1)), None)
        if row is None:
            left[:] = saved
            return []
        take(row, 1)
        counts[row] += 1
    return list(counts.items())


# -- results and reasons ---------------------------------------------------------------------------
def _result(workloads: pl.DataFrame, cands: pl.DataFrame, legs: dict[int, list[tuple[int, int]]],
            pen: dict[int, float], resources: Sequence[Resource], method: str, gap: float | None,
            t0: float, status: str) -> Result:
    cost_col = cands["cost"].to_numpy() if cands.height else np.zeros(0)
    total = sum(cost_col[r] * k for ls in legs.values() for r, k in ls)
    unplaced = [w for w in workloads["wid"].to_list() if w not in legs]
    reasons = _reasons(unplaced, cands, legs, resources)
    decisions = {w: Decision(w, legs.get(w, []), None if w in legs else reasons[w]) for w in workloads["wid"].to_list()}
    return Result(decisions, method, float(total), float(total + sum(pen[w] for w in unplaced)), gap,
                  time.perf_counter() - t0, status)


def _reasons(unplaced: list[int], cands: pl.DataFrame, legs: dict[int, list[tuple[int, int]]],
             resources: Sequence[Resource]) -> dict[int, str]:
    """The limit that kept each unplaced workload out: for each of its offers the first limit it would
    overrun given what was placed; the most common one names the reason."""
    if not unplaced:
        return {}
    reps = _usage(legs, cands.height)
    left = [res.limit - float(reps[res.rows] @ res.use) for res in resources]
    wid = cands["wid"].to_numpy() if cands.height else np.zeros(0, dtype=np.int64)
    mine = np.isin(wid, np.asarray(unplaced, dtype=wid.dtype))
    blocker = np.full(cands.height, -1)
    for i, res in enumerate(resources):
        sel = mine[res.rows]
        over = res.rows[sel][res.use[sel] > left[i] + EPS]
        blocker[over[blocker[over] < 0]] = i
    rows = np.flatnonzero(mine)
    tally = (pl.DataFrame({"wid": wid[rows], "b": blocker[rows]})
             .group_by("wid").agg(pl.col("b").filter(pl.col("b") >= 0).mode().min().alias("b"), pl.len().alias("n")))
    seen = {w: b for w, b, _ in tally.iter_rows()}
    out = {}
    for w in unplaced:
        if w not in seen:
            out[w] = "no offer fits"
        elif seen[w] is None:
            out[w] = "not worth its priority penalty (or the solver stopped early)"
        else:
            res = resources[seen[w]]
            out[w] = f"{res.kind}: {res.name} has {max(left[seen[w]], 0):,.2f} left of {res.limit:,.2f}"
    return out


def objective(workloads: pl.DataFrame, cands: pl.DataFrame, legs: dict[int, list[tuple[int, int]]]) -> float:
    """The objective of a set of legs (cost plus penalties), for comparing answers."""
    pen = penalties(workloads, cands)
    cost = cands["cost"].to_numpy()
    return float(sum(cost[r] * k for ls in legs.values() for r, k in ls)
                 + sum(p for w, p in pen.items() if w not in legs))


def feasible(workloads: pl.DataFrame, cands: pl.DataFrame, legs: dict[int, list[tuple[int, int]]],
             resources: Sequence[Resource]) -> list[str]:
    """Every broken rule of a set of legs (empty when all hold): wrong workload, replica counts,
    spread, limits."""
    problems = []
    wid = cands["wid"].to_list()
    prov = cands["provider"].to_list()
    info = {w: (n, s) for w, n, s in workloads.select("wid", "replicas", "spread").iter_rows()}
    for w, ls in legs.items():
        n, s = info[w]
        if any(wid[r] != w for r, _ in ls):
            problems.append(f"workload {w} placed on another workload's candidate")
        if sum(k for _, k in ls) != n:
            problems.append(f"workload {w}: {sum(k for _, k in ls)} replicas placed, {n} wanted")
        if s <= 1 and len(ls) != 1:
            problems.append(f"workload {w}: split over {len(ls)} offers without spread")
        if len({prov[r] for r, _ in ls}) < s:
            problems.append(f"workload {w}: on fewer than {s} providers")
    reps = _usage(legs, cands.height)
    for res in resources:
        used = float(reps[res.rows] @ res.use)
        if used > res.limit + 1e-6:
            problems.append(f"{res.kind} {res.name}: {used:.4f} used > {res.limit:.4f}")
    return problems
