"""Budgets and anomalies on a generated bill in a real store: month-to-date spend checked against the
allocation rules applied row by row, the forecast recomputed by its documented method, and a spike
injected into one team's service found by the robust anomaly check (and nothing found without it)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops import budgets, config
from finops.generate import generate
from finops.store import Store
from tests.test_allocation import reference
from tests.test_reports import CFG

NOW = dt.datetime(2026, 11, 20, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def bill() -> pl.DataFrame:
    return pl.concat(list(generate(days=20, end=dt.date(2026, 11, 20), seed=3)))


def _cfg(tmp: Path) -> config.Config:
    return config.parse({**CFG, "store": {"url": str(tmp / "store")}})


def _store(tmp: Path, frame: pl.DataFrame) -> Store:
    store = Store(tmp / "store")
    store.write("billing", frame)
    return store


def _daily_direct(bill: pl.DataFrame, cfg: config.Config, start: dt.datetime, end: dt.datetime
                  ) -> dict[str, dict[dt.date, float]]:
    out: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for r in bill.filter((pl.col("ChargePeriodStart") >= start) & (pl.col("ChargePeriodStart") < end)).to_dicts():
        owner, pool = reference(r, cfg)
        if pool is None and owner is not None:
            out[owner][r["ChargePeriodStart"].date()] += float(r["EffectiveCost"])
    return out


def test_spend_and_forecast_follow_the_rules_and_the_documented_method(bill: pl.DataFrame, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    store = _store(tmp_path, bill)
    got = {b.team: b for b in budgets.status(cfg, NOW, store=store)}
    daily = _daily_direct(bill, cfg, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), NOW)
    assert set(got) == {t.name for t in cfg.teams}
    days_left = 11.0  # 20 Nov 00:00 → 1 Dec
    for t in cfg.teams:
        b, series = got[t.name], daily.get(t.name, {})
        spent = sum(series.values())
        assert abs(b.spent - Decimal(str(round(spent, 2)))) <= Decimal("0.02"), t.name
        last7 = [series.get(NOW.date() - dt.timedelta(days=k), 0.0) for k in range(1, 8)]
        rate = statistics.median(last7)
        assert abs(float(b.forecast) - (spent + rate * days_left)) <= 0.05, t.name
        assert b.low <= b.forecast <= b.high
        assert b.placed == b.queued == 0  # no ledger: nothing placed or queued
        assert b.share == pytest.approx(float(b.forecast / t.monthly_budget))  # type: ignore[operator]
    assert any(b.spent > 0 for b in got.values())


def test_a_spike_is_an_anomaly_and_the_plain_bill_has_none_there(bill: pl.DataFrame, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    day = dt.datetime(2026, 11, 18, tzinfo=dt.UTC)
    rows = bill.filter(pl.col("ChargePeriodStart") == day).to_dicts()
    teams = {t.name for t in cfg.teams}
    victim = next(r for r in rows if reference(r, cfg)[1] is None and reference(r, cfg)[0] in teams
                  and float(r["EffectiveCost"]) > 1)
    team, service = reference(victim, cfg)[0], victim["ServiceName"]
    plain = budgets.anomalies(cfg, NOW - dt.timedelta(days=1), store=_store(tmp_path / "a", bill),
                              min_amount=1.0)
    assert not [a for a in plain if (a.team, a.service, a.day) == (team, service, day.date())]
    spike: dict[str, Any] = {**victim, "EffectiveCost": Decimal(250000), "BilledCost": Decimal(250000)}
    spiked = pl.concat([bill, pl.DataFrame([spike], schema=bill.schema)])
    found = budgets.anomalies(cfg, NOW - dt.timedelta(days=1), store=_store(tmp_path / "b", spiked), min_amount=1.0)
    hit = [a for a in found if (a.team, a.service, a.day) == (team, service, day.date())]
    assert len(hit) == 1 and hit[0].cost > 250000 - 1 and hit[0].score > 3.5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=30))
def test_mad_is_robust_and_non_negative(xs: list[float]) -> None:
    m = budgets._mad(xs)
    assert m >= 0
    # shifting every value leaves the MAD unchanged (up to rounding)
    assert budgets._mad([x + 1000 for x in xs]) == pytest.approx(m, abs=1e-6 * max(1.0, *xs))
