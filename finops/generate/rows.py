"""generate(): plan the window, then stream usage and structural rows in batches of a fixed size."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import localcontext

import numpy as np
import polars as pl

from finops import focus
from finops.generate.catalog import _PIDX, _PROVIDERS, PROVIDER_KEYS
from finops.generate.hashing import _Rand
from finops.generate.org import Org, make_org
from finops.generate.plan import (
    _EXACT,
    _US_PER_HOUR,
    Grain,
    _account_tables,
    _active_commitments,
    _anchors,
    _apportion,
    _check_providers,
    _commit_micro,
    _kind_tables,
    _months,
    _Plan,
    _set_sizes,
    _structural_specs,
    _weights,
    _window,
)
from finops.generate.resources import _attrs
from finops.generate.structural import _Ledger, _structural_rows
from finops.generate.tables import _build_tables
from finops.generate.usage import _usage_chunk

_CHUNK_CELLS = 1 << 17  # usage rows generated at a time (fixed, so output never depends on batch_rows)
_SCHEMA = {c.name: c.dtype for c in focus.COLUMNS}


# ---------------------------------------------------------------------------------------------------
# The plan: built from the catalogue and the org, then its tables and commitment sizes.
# ---------------------------------------------------------------------------------------------------


def _plan(org: Org, rows: int | None, days: int, end: dt.date | None, grain: Grain,
          providers: Sequence[str], seed: int) -> _Plan:
    provs = np.array(sorted({_PIDX[p] for p in _check_providers(providers)}), dtype=np.int64)
    bounds, grain_hours = _window(days, end, grain)
    month_of, months = _months(bounds)
    actives = _active_commitments(org, provs, bounds, grain_hours)
    window_end = int(bounds[-1])
    # One invoice per provider and month. The month still open gets its provisional invoice id
    # (FOCUS allows ids generated before the invoice is issued); a mix of null and set ids in one
    # file fails focus-validator, whose InvoiceId null rules have no condition.
    invoice_ids: dict[tuple[int, int], str | None] = {}
    for mi, (m_start, _) in enumerate(months):
        for p in provs:
            rnd = _Rand(seed, f"invoice:{p}:{m_start:%Y-%m}")
            invoice_ids[(int(p), mi)] = f"G0{rnd.digits(8)}" if p == _PIDX["azure"] else rnd.digits(10)
    plan = _Plan(org, seed, provs, grain_hours, bounds, (bounds[:-1] - bounds[0]) // (24 * _US_PER_HOUR),
                 month_of, months, np.array([(e - s).total_seconds() / 3600 for s, e in months]), window_end,
                 invoice_ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], actives, {})
    plan.tables.update(_kind_tables(org, provs))
    plan.tables.update(_account_tables(org))
    plan.anchors = _anchors(org, provs, actives)
    specs = _structural_specs(plan)
    n_struct = np.array([len(s) for s in specs], dtype=np.int64)
    w = _weights(bounds, grain_hours)
    if rows is None:
        share = sum(_PROVIDERS[p].share for p in provs)
        base = max(len(org.teams) * 60 * share, int(plan.anchors["n"]) + 10)
        usage = np.maximum(np.rint(base * w).astype(np.int64), 1)
        keep = n_struct
    else:
        if rows < 0:
            raise ValueError(f"rows must be non-negative, got {rows}")
        total = _apportion(rows, w)
        keep = np.where(total >= 2 * n_struct, n_struct, total // 2)
        usage = total - keep
    plan.structural = [s[:k] for s, k in zip(specs, keep, strict=True)]
    plan.usage = usage
    plan.cum_end = np.cumsum(usage)
    plan.cover_limit = int(usage.min(initial=0))
    _build_tables(plan)
    _size_commitments(plan, int(usage.max(initial=0)))
    return plan


def _size_commitments(plan: _Plan, pool: int) -> None:
    """Set each commitment's size from the resources it covers in the pool, plus its spare share."""
    sums = np.zeros(len(plan.actives), dtype=np.float64)
    counts = np.zeros(len(plan.actives), dtype=np.int64)
    block = 1 << 20
    for lo in range(0, pool, block):
        a = _attrs(plan, np.arange(lo, min(pool, lo + block)))
        m = a["cover"] >= 0
        cm = _commit_micro(plan.actives, a["cover"][m], a["sku"][m], a["region"][m])
        sums += np.bincount(a["cover"][m], weights=cm, minlength=len(plan.actives))
        counts += np.bincount(a["cover"][m], minlength=len(plan.actives))
    with localcontext(_EXACT):
        _set_sizes(plan.actives, sums, counts)


# ---------------------------------------------------------------------------------------------------
# The stream of rows.
# ---------------------------------------------------------------------------------------------------


def _rebatch(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Re-cut a stream of frames into frames of exactly ``size`` rows (the last may be shorter)."""
    buf: list[pl.DataFrame] = []
    held = 0
    for f in frames:
        if f.height == 0:
            continue
        buf.append(f)
        held += f.height
        if held >= size:
            whole = pl.concat(buf, rechunk=False)
            start = 0
            while held - start >= size:
                yield whole.slice(start, size)  # zero-copy: a batch may hold several chunks
                start += size
            rest = whole.slice(start)
            buf, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(buf, rechunk=False)


def _stream(plan: _Plan) -> Iterator[pl.DataFrame]:
    ledger = _Ledger()
    total = int(plan.cum_end[-1]) if plan.n_periods else 0
    done = 0
    for c0 in range(0, total, _CHUNK_CELLS):
        c1 = min(total, c0 + _CHUNK_CELLS)
        frame, helper = _usage_chunk(plan, c0, c1)
        ledger.add_usage(frame, helper)
        yield frame
        upto = int(np.searchsorted(plan.cum_end, c1, side="right"))
        if c1 == total:
            upto = plan.n_periods
        rows = [row for q in range(done, upto) for row in _structural_rows(plan, q, ledger)]
        done = upto
        if rows:
            yield pl.DataFrame(rows, schema=_SCHEMA)
    if done < plan.n_periods:
        rows = [row for q in range(done, plan.n_periods) for row in _structural_rows(plan, q, ledger)]
        if rows:
            yield pl.DataFrame(rows, schema=_SCHEMA)


def generate(*, rows: int | None = None, days: int = 90, end: dt.date | None = None, teams: int = 6,
             seed: int = 0, grain: Grain = "daily", providers: Sequence[str] = PROVIDER_KEYS,
             batch_rows: int = 250_000) -> Iterator[pl.DataFrame]:
    """Yield conformed FOCUS 1.2 frames of synthetic billing data, ``batch_rows`` rows each (the last
    may be shorter).

    ``days`` days ending at ``end`` (exclusive; default today, UTC), at daily or hourly grain, for
    ``teams`` teams on the chosen ``providers``. With ``rows=None`` the row count follows from the
    number of resources (about 60 per team, more on busy days); with ``rows=N`` exactly N rows are
    spread over the window. Same arguments, same output; the concatenated output does not depend on
    ``batch_rows``. Memory stays bounded by the batch size, whatever ``rows`` is.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    org = make_org(teams, seed)
    plan = _plan(org, rows, days, end, grain, providers, seed)  # bad arguments raise here, not on next()
    return _rebatch(_stream(plan), batch_rows)
