"""Budgets: each team's month burning down against its monthly budget, and the month-end forecast (with
its band, placed and queued work included) from :func:`finops.budgets.status` where it is available."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx, money


def _get(obj: Any, *names: str) -> Any:
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def forecasts(ctx: Ctx, month: date) -> dict[str, Any] | None:
    """Per team, :func:`finops.budgets.status` of the current month (forecast with its band, placed and
    queued work); None for another month, or when that module is not there."""
    now = datetime.now(UTC)
    if (month.year, month.month) != (now.year, now.month):
        return None
    try:
        from finops import budgets
    except ImportError:  # pragma: no cover (budgets ship with finops)
        return None
    return {str(_get(b, "team", "name")): b for b in budgets.status(ctx.cfg, now, ctx.rollups.store)}


def burn(ctx: Ctx, month: date) -> pl.DataFrame:
    """Spend per team and day of ``month`` (shared pools split as the chargeback splits them), cumulative."""
    a = ctx.rollups.allocated(ctx.cfg.allocation.basis)
    days = calendar.monthrange(month.year, month.month)[1]
    end = date(month.year, month.month, days)
    a = a.filter(pl.col("day").is_between(month, end))
    g = a.group_by("recipient", "day").agg((pl.col("cents").sum() / 100).alias("spent")).sort("day")
    return (g.with_columns(pl.col("spent").cum_sum().over("recipient").alias("cumulative"))
            .rename({"recipient": "team"}))


def body(ctx: Ctx) -> None:
    if ui.empty_store(ctx):
        return
    last = ctx.rollups.daily("team").frame["day"].max()
    assert isinstance(last, date)
    months = sorted({date(d.year, d.month, 1) for d in ctx.rollups.daily("team").frame["day"].unique()}, reverse=True)
    month = st.selectbox("Month", months, key="bu_month", format_func=lambda m: f"{m:%B %Y}")
    budgets = {t.name: t for t in ctx.cfg.teams if t.monthly_budget is not None}
    b = burn(ctx, month)
    if ctx.team is not None:
        b = b.filter(pl.col("team") == ctx.team)
    spent = dict(b.group_by("team").agg(pl.col("spent").sum()).iter_rows())
    fc = forecasts(ctx, month)
    teams = sorted(set(spent) | set(budgets)) if ctx.team is None else [ctx.team]
    if not budgets:
        st.info("No monthly budgets configured: add `monthly_budget` to each team under [[teams]] in finops.toml. "
                "Spend to date is shown below.")
    over = [t for t in teams if t in budgets and spent.get(t, 0) > float(budgets[t].monthly_budget or 0)]
    m = st.columns(3)
    total_budget = sum(float(budgets[t].monthly_budget or 0) for t in teams if t in budgets)
    m[0].metric(f"Spent in {month:%B}", money(sum(spent.get(t, 0) for t in teams), ctx.currency))
    m[1].metric("Budgeted", money(total_budget, ctx.currency))
    m[2].metric("Teams over budget", f"{len(over)}", ", ".join(over) or None, delta_color="inverse",
                delta_arrow="off")
    chart(b, budgets, month, teams, fc or {})
    table(ctx, teams, spent, budgets, fc)
    if fc is None:
        st.caption("The month-end forecast (placed and queued work included) is shown for the current month.")


def chart(b: pl.DataFrame, budgets: dict[str, Any], month: date, teams: list[str], fc: dict[str, Any]) -> None:
    days = calendar.monthrange(month.year, month.month)[1]
    end = date(month.year, month.month, days)
    fig = go.Figure()
    for i, t in enumerate(teams):
        rows = b.filter(pl.col("team") == t)
        color = ui.PALETTE[i % len(ui.PALETTE)]
        if t in budgets:
            cap = float(budgets[t].monthly_budget)
            fig.add_scatter(x=rows["day"].to_list(), y=[cap - v for v in rows["cumulative"].to_list()], name=t,
                            mode="lines", line={"color": color})
            fig.add_scatter(x=[month, end], y=[cap, 0], name=f"{t} (even pace)", mode="lines",
                            line={"color": color, "dash": "dot", "width": 1}, showlegend=False)
            f = fc.get(t)
            if f is not None and rows.height:  # month-end forecast (placed and queued work included), its band
                left = cap - float(f.forecast)
                fig.add_scatter(x=[rows["day"][-1], end], y=[cap - float(rows["cumulative"][-1]), left],
                                name=f"{t} forecast", mode="lines+markers", showlegend=False,
                                line={"color": color, "dash": "dash", "width": 1},
                                error_y={"type": "data", "symmetric": False,
                                         "array": [0, float(f.forecast) - float(f.low)],
                                         "arrayminus": [0, float(f.high) - float(f.forecast)]})
        elif not rows.is_empty():
            fig.add_scatter(x=rows["day"].to_list(), y=rows["cumulative"].to_list(), name=f"{t} (no budget: spent)",
                            mode="lines", line={"color": color, "dash": "dash"})
    fig.update_layout(title="Budget left through the month (dotted: an even pace to zero; dashed: the "
                            "month-end forecast with its band)")
    st.plotly_chart(ui.style(fig, 400), width="stretch")


def table(ctx: Ctx, teams: list[str], spent: dict[str, float], budgets: dict[str, Any],
          fc: dict[str, Any] | None) -> None:
    rows = []
    for t in teams:
        budget = float(budgets[t].monthly_budget) if t in budgets else None
        row: dict[str, Any] = {"team": t, "budget": budget, "spent": spent.get(t, 0.0),
                               "used": None if not budget else spent.get(t, 0.0) / budget * 100}
        f = (fc or {}).get(t)
        if f is not None:
            row |= {"placed": _float(_get(f, "placed")), "queued": _float(_get(f, "queued")),
                    "forecast": _float(_get(f, "forecast", "forecast_month_end")),
                    "low": _float(_get(f, "low", "forecast_low")), "high": _float(_get(f, "high", "forecast_high"))}
        rows.append(row)
    st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "budget": st.column_config.NumberColumn(f"budget ({ctx.currency})", format="localized"),
        "spent": st.column_config.NumberColumn(f"spent ({ctx.currency})", format="localized"),
        "used": st.column_config.ProgressColumn("used", format="%.0f%%", min_value=0, max_value=100),
        **{c: st.column_config.NumberColumn(f"{c} ({ctx.currency})", format="localized")
           for c in ("placed", "queued", "forecast", "low", "high")}})


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


ui.page("Budgets", "Each team's month against its budget.", body)
