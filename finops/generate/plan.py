"""The plan of one generate() call: periods, row counts, commitments in the window, weight tables."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Context, Decimal
from typing import Any, Literal

import numpy as np

from finops.generate.catalog import (
    _CONTRACTED_MICRO,
    _KIND_W,
    _LIST_MICRO,
    _MICRO,
    _PIDX,
    _PROVIDERS,
    _SKU_BY_NAME,
    _SKU_KIND,
    _SKU_PROV,
    _SKU_SPOT,
    _SKUS,
    KINDS,
    PROVIDER_KEYS,
)
from finops.generate.hashing import _cum
from finops.generate.org import Commitment, Org

Grain = Literal["daily", "hourly"]
_US_PER_HOUR = 3_600_000_000
_EXACT = Context(prec=60)  # Decimal arithmetic on sums of Decimal(38, 15) values, without rounding


@dataclass
class _Active:
    """A commitment placed in the window, with its capacity per period."""

    c: Commitment
    index: int
    start_p: int  # first covered period (may be negative)
    end_p: int  # first period no longer covered
    purchase_p: int | None  # period of the one-time purchase row, if inside the window
    start_us: int
    hourly: Decimal  # Spend: commitment per hour; Usage: commitment price per instance-hour
    instances: int  # Usage: instances reserved
    sku: int | None  # Usage: the reserved SKU
    region: int | None
    list_micro: int = 0
    contracted_micro: int = 0


@dataclass
class _Plan:
    org: Org
    seed: int
    provs: np.ndarray  # selected provider indices
    grain_hours: int
    bounds_us: np.ndarray  # period boundaries, n_periods + 1
    day_of: np.ndarray  # day index of each period
    month_of: np.ndarray  # month index of each period
    months: list[tuple[dt.datetime, dt.datetime]]
    month_hours: np.ndarray
    window_end_us: int
    invoice_ids: dict[tuple[int, int], str | None]
    usage: np.ndarray  # usage rows per period
    cum_end: np.ndarray
    structural: list[list[tuple[Any, ...]]]
    actives: list[_Active]
    anchors: dict[str, np.ndarray]
    tables: dict[str, Any] = field(default_factory=dict)
    cover_limit: int = 0  # resources below this index run in every period and may be covered

    @property
    def n_periods(self) -> int:
        return len(self.bounds_us) - 1


def _window(days: int, end: dt.date | None, grain: Grain) -> tuple[np.ndarray, int]:
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if grain not in ("daily", "hourly"):
        raise ValueError(f"grain must be 'daily' or 'hourly', got {grain!r}")
    end = end or dt.datetime.now(dt.UTC).date()
    end_us = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    step = 24 if grain == "daily" else 1
    n = days * 24 // step
    bounds = end_us - days * 24 * _US_PER_HOUR + np.arange(n + 1, dtype=np.int64) * step * _US_PER_HOUR
    return bounds, step


def _months(bounds: np.ndarray) -> tuple[np.ndarray, list[tuple[dt.datetime, dt.datetime]]]:
    starts = bounds[:-1].astype("datetime64[us]")
    month_num = starts.astype("datetime64[M]").astype(np.int64)
    uniq = np.unique(month_num)
    months = []
    for m in uniq:
        y, mo = divmod(int(m), 12)
        first = dt.datetime(1970 + y, mo + 1, 1, tzinfo=dt.UTC)
        nxt = dt.datetime(first.year + (first.month == 12), first.month % 12 + 1, 1, tzinfo=dt.UTC)
        months.append((first, nxt))
    return np.searchsorted(uniq, month_num), months


def _weights(bounds: np.ndarray, grain_hours: int) -> np.ndarray:
    starts = bounds[:-1]
    days = starts // (24 * _US_PER_HOUR)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    w = np.where(weekday == 5, 0.82, np.where(weekday == 6, 0.80, 1.0))
    n = len(starts)
    w = w * (1.0 + 0.25 * np.arange(n) / max(n - 1, 1))
    if grain_hours == 1:
        hour = (starts // _US_PER_HOUR) % 24
        w = w * (0.9 + 0.2 * np.sin((hour - 9) / 24 * 2 * np.pi) ** 2)
    return w / w.mean()


def _apportion(total: int, w: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``w`` (largest remainder, ties by index)."""
    raw = total * w / w.sum()
    base = np.floor(raw).astype(np.int64)
    rest = total - int(base.sum())
    if rest:
        order = np.lexsort((np.arange(len(w)), -(raw - base)))
        base[order[:rest]] += 1
    return base


def _kind_tables(org: Org, provs: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative weights: team, provider per team, kind per (team, provider), SKU per (provider, kind)."""
    n_teams = len(org.teams)
    team_cum = _cum(np.array([t.weight for t in org.teams]))
    pref = np.array([[t.provider_pref[p] * _PROVIDERS[p].share for p in provs] for t in org.teams])
    prov_cum = _cum(pref)
    kind_w = np.zeros((n_teams, len(_PROVIDERS), len(KINDS)))
    for ti, t in enumerate(org.teams):
        for pi in range(len(_PROVIDERS)):
            for ki, k in enumerate(KINDS):
                if ((_SKU_PROV == pi) & (_SKU_KIND == ki)).any():
                    kind_w[ti, pi, ki] = _KIND_W[k] * t.kind_mult[ki]
    kind_cum = _cum(kind_w)
    width = max(int(((_SKU_PROV == p) & (_SKU_KIND == k)).sum()) for p in range(3) for k in range(len(KINDS)))
    sku_idx = np.zeros((len(_PROVIDERS), len(KINDS), width), dtype=np.int64)
    sku_w = np.zeros((len(_PROVIDERS), len(KINDS), width))
    for pi in range(len(_PROVIDERS)):
        for ki in range(len(KINDS)):
            ids = np.flatnonzero((_SKU_PROV == pi) & (_SKU_KIND == ki))
            sku_idx[pi, ki, :len(ids)] = ids
            sku_w[pi, ki, :len(ids)] = [_SKUS[i].weight for i in ids]
    return {"team_cum": team_cum, "prov_cum": prov_cum, "kind_cum": kind_cum, "sku_idx": sku_idx,
            "sku_cum": _cum(sku_w), "n_projects": np.array([len(t.projects) for t in org.teams]),
            "home": np.array([t.home_region for t in org.teams])}


def _account_tables(org: Org) -> dict[str, np.ndarray]:
    """Account index lookups: AWS/Azure by (team, prod|nonprod), GCP by (team, project), shared per cloud."""
    n_teams = len(org.teams)
    maxp = max(len(t.projects) for t in org.teams)
    env_acct = np.full((len(_PROVIDERS), n_teams, 2), -1, dtype=np.int64)
    proj_acct = np.full((n_teams, maxp), -1, dtype=np.int64)
    shared = np.full(len(_PROVIDERS), -1, dtype=np.int64)
    team_i = {t.name: i for i, t in enumerate(org.teams)}
    for ai, a in enumerate(org.accounts):
        p = _PIDX[a.provider]
        if a.team is None:
            shared[p] = ai
        elif a.provider == "gcp":
            ti = team_i[a.team]
            proj_acct[ti, org.teams[ti].projects.index(a.project)] = ai
        else:
            env_acct[p, team_i[a.team], 0 if a.env == "prod" else 1] = ai
    return {"env_acct": env_acct, "proj_acct": proj_acct, "shared": shared}


def _anchors(org: Org, provs: np.ndarray, actives: list[_Active]) -> dict[str, np.ndarray]:
    """Fixed resources in the first slots, so small runs still show every cloud, kind, market and
    commitment: one on-demand resource per (cloud, kind), one spot GPU and CPU per cloud, two covered
    resources per commitment."""
    rows: list[tuple[int, int, int, int, bool, int]] = []  # prov, kind, sku, region(-1 home), spot, cover
    for p in provs:
        for k in range(len(KINDS)):
            ids = np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k))
            if len(ids):
                rows.append((int(p), k, int(ids[0]), -1, False, -1))
        for k in (KINDS.index("gpu"), KINDS.index("cpu")):
            ids = np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k) & _SKU_SPOT)
            rows.append((int(p), k, int(ids[-1]), -1, True, -1))
    for a in actives:
        p = _PIDX[a.c.provider]
        k = KINDS.index(a.c.kinds[0])
        sku = a.sku if a.sku is not None else int(np.flatnonzero((_SKU_PROV == p) & (_SKU_KIND == k))[0])
        for _ in range(2):
            rows.append((p, k, sku, -1 if a.region is None else a.region, False, a.index))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
    n = len(arr)
    return {"n": np.array(n), "team": np.arange(n) % len(org.teams), "prov": arr[:, 0], "kind": arr[:, 1],
            "sku": arr[:, 2], "region": arr[:, 3], "spot": arr[:, 4].astype(bool), "cover": arr[:, 5]}


def _active_commitments(org: Org, provs: np.ndarray, bounds: np.ndarray, grain_hours: int) -> list[_Active]:
    out: list[_Active] = []
    start_us = int(bounds[0])
    n = len(bounds) - 1
    step_us = grain_hours * _US_PER_HOUR
    days = (int(bounds[-1]) - start_us) // (24 * _US_PER_HOUR)
    for c in org.commitments:
        p = _PIDX[c.provider]
        if p not in provs:
            continue
        if c.starts_in_window:
            c_start = start_us + int(days * 0.3) * 24 * _US_PER_HOUR
        else:
            c_start = start_us - c.days_before * 24 * _US_PER_HOUR
        c_end = c_start + c.term_days * 24 * _US_PER_HOUR
        start_p = (c_start - start_us) // step_us
        end_p = (c_end - start_us) // step_us
        if end_p <= 0 or start_p >= n:
            continue
        sku = _SKU_BY_NAME[(c.provider, c.kinds[0], c.sku)] if c.sku else None
        region = [r[0] for r in _PROVIDERS[p].regions].index(c.region) if c.region else None
        out.append(_Active(c, len(out), int(start_p), int(end_p), int(start_p) if 0 <= start_p < n else None,
                           c_start, Decimal(0), 0, sku, region))
    return out


def _commit_micro(actives: list[_Active], cover: np.ndarray, sku: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Amortised commitment price per unit (micro-dollars) for resources covered by a commitment."""
    disc = np.array([a.c.discount for a in actives] + [0.0])
    lst = _LIST_MICRO[sku, region]
    return np.rint(lst * (1.0 - disc[np.where(cover >= 0, cover, len(actives))])).astype(np.int64)


def _set_sizes(actives: list[_Active], sums: np.ndarray, counts: np.ndarray) -> None:
    for a in actives:
        if a.c.category == "Spend":
            hourly = Decimal(float(sums[a.index]) * (1 + a.c.spare) / _MICRO)
            a.hourly = max(hourly.quantize(Decimal("0.01"), rounding=ROUND_CEILING), Decimal("0.01"))
        else:
            assert a.sku is not None and a.region is not None
            a.instances = max(1, math.ceil(int(counts[a.index]) * (1 + a.c.spare)))
            a.list_micro = int(_LIST_MICRO[a.sku, a.region])
            a.contracted_micro = int(_CONTRACTED_MICRO[a.sku, a.region])
            a.hourly = Decimal(round(a.list_micro * (1.0 - a.c.discount))) / _MICRO


def _structural_specs(plan: _Plan) -> list[list[tuple[Any, ...]]]:
    """Per period, the non-usage rows in priority order: one-time purchases, taxes, recurring fees,
    unused commitment."""
    n = plan.n_periods
    specs: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
    for a in plan.actives:
        if a.c.payment == "upfront" and a.purchase_p is not None:
            specs[a.purchase_p].append(("purchase", a.index))
    last_of_month = np.flatnonzero(np.r_[plan.month_of[1:] != plan.month_of[:-1], True])
    tax_accounts = [i for i, acc in enumerate(plan.org.accounts) if _PIDX[acc.provider] in plan.provs]
    for last in last_of_month:
        specs[last].extend(("tax", ai, int(plan.month_of[last])) for ai in tax_accounts)
    for a in plan.actives:
        lo, hi = max(a.start_p, 0), min(a.end_p, n)
        if a.c.payment == "recurring":
            for p in range(lo, hi):
                specs[p].append(("fee", a.index))
    for a in plan.actives:
        for p in range(max(a.start_p, 0), min(a.end_p, n)):
            specs[p].append(("unused", a.index))
    return specs


def _check_providers(providers: Sequence[str]) -> Sequence[str]:
    if isinstance(providers, str):
        providers = (providers,)
    if not providers:
        raise ValueError("providers must name at least one of aws, gcp, azure")
    bad = [p for p in providers if p not in _PIDX]
    if bad:
        raise ValueError(f"unknown provider(s) {bad}; expected some of {list(PROVIDER_KEYS)}")
    return providers
