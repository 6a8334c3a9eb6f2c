"""Overview: spend by team, provider and service over time; the last complete week against the one before."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx, as_float, money, short, signed
from finops.reports import EmptyWeek
from finops.rollups import day_range
from finops.services import store as store_svc

BASES = {"Amortised (EffectiveCost)": "EffectiveCost", "Billed (BilledCost)": "BilledCost"}


def week_change(ctx: Ctx) -> None:
    """The last complete week's total and change, from the chargeback itself (the same figures)."""
    weeks = [w for w in ctx.rollups.weeks() if w.complete()]
    if not weeks:
        st.metric("Last complete week", "none yet")
        return
    try:
        cb = ctx.rollups.chargeback(weeks[0])
    except EmptyWeek:
        st.metric(f"Week {weeks[0].label}", "no charges")
        return
    rows = cb.summary if ctx.team is None else cb.summary.filter(pl.col("team") == ctx.team)
    total = sum(rows["total"], Decimal(0))
    prev = [p for p in rows["previous_week"] if p is not None]
    delta = None if not prev else signed(total - sum(prev, Decimal(0)))
    st.metric(f"Week {cb.week.label}", short(total, cb.currency), delta, delta_color="inverse",
              help=f"exact: {money(total, cb.currency)}; from the weekly chargeback (`finops report chargeback`), "
                   "against the week before.")


def body(ctx: Ctx) -> None:
    if ui.empty_store(ctx):
        return
    daily = ctx.rollups.daily("team")
    span = day_range(daily.frame)
    assert span is not None
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    with c1:
        lo, hi = ui.date_range(span, "ov_dates")
    with c2:
        basis = BASES[st.radio("Cost basis", list(BASES), key="ov_basis", horizontal=True)]
    alloc = ctx.rollups.allocated(basis)
    known = {t.name for t in ctx.cfg.teams}  # a configured team without charges can be chosen too
    teams = sorted(set(alloc["recipient"].unique().to_list()) | known) if ctx.team is None else [ctx.team]
    with c3:
        chosen = ui.multiselect("Teams", teams, "ov_teams") if ctx.team is None else teams
    with c4:
        provs = ui.multiselect("Providers", sorted(alloc["provider"].unique().to_list()), "ov_providers")
    a = ui.in_range(alloc, lo, hi).filter(pl.col("recipient").is_in(chosen) & pl.col("provider").is_in(provs))
    if a.is_empty():
        st.info(f"No charges for this selection between {lo} and {hi}; the store holds {span[0]} to {span[1]}.")
        return
    a = a.with_columns((pl.col("cents") / 100).alias("cost"))
    metrics(ctx, a, lo, hi)
    by_team = a.group_by("day", "recipient").agg(pl.col("cost").sum()).rename({"recipient": "team"})
    ui.area(by_team, "day", "cost", "team", "Spend by team (shared pools split as the chargeback splits them)",
            ctx.currency)
    left, right = st.columns(2)
    with left:
        by_prov = a.group_by("day", "provider").agg(pl.col("cost").sum())
        ui.area(by_prov, "day", "cost", "provider", "Spend by provider", ctx.currency)
    with right:
        d = ui.in_range(daily.frame, lo, hi).filter(pl.col("ProviderName").is_in(provs))
        if ctx.team is not None or len(chosen) < len(teams):  # a team's services: its direct costs
            d = d.filter(pl.col("owner").is_in(chosen) & pl.col("pool").is_null())
        svc = as_float(d.with_columns(daily.cost(basis).alias("c"))
                       .group_by("day", "ServiceName").agg(pl.col("c").sum().alias("cost")))
        ui.area(ui.top_n(svc, "ServiceName", "cost").group_by("day", "ServiceName").agg(pl.col("cost").sum()),
                "day", "cost", "ServiceName", "Spend by service (top 8)", ctx.currency)
    table(a, ctx)


def metrics(ctx: Ctx, a: pl.DataFrame, lo: object, hi: object) -> None:
    total = float(a["cents"].sum()) / 100
    days = a["day"].n_unique()
    shared = float(a.filter(pl.col("component") != "direct")["cents"].sum()) / 100
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Spend in range", short(total, ctx.currency), help=f"exact: {money(total, ctx.currency)}; {lo} to {hi}")
    m2.metric("Daily average", short(total / max(days, 1), ctx.currency),
              help=f"exact: {money(total / max(days, 1), ctx.currency)}")
    m3.metric("Shared pools", short(shared, ctx.currency), f"{shared / total * 100 if total else 0:.1f}% of spend",
              delta_color="off", delta_arrow="off", help=f"exact: {money(shared, ctx.currency)}")
    with m4:
        week_change(ctx)
    if ctx.team is None:
        info = store_svc.info(ctx.cfg)
        rows = sum(m.rows for m in info.partitions)
        m5.metric("Billing rows in store", f"{rows:,}", f"{len(info.partitions)} partitions", delta_color="off",
                  delta_arrow="off",
                  help="As `finops store info` reports them.")


def table(a: pl.DataFrame, ctx: Ctx) -> None:
    st.subheader("By team")
    direct = pl.col("component") == "direct"
    t = (a.group_by("recipient")
         .agg(pl.col("cost").filter(direct).sum().alias("direct"), pl.col("cost").filter(~direct).sum().alias("shared"),
              pl.col("cost").sum().alias("total"))
         .sort("total", descending=True))
    t = t.with_columns((pl.col("total") / pl.col("total").sum() * 100).alias("share"))
    st.dataframe(t.rename({"recipient": "team"}), hide_index=True, width="stretch", column_config={
        "direct": st.column_config.NumberColumn(f"direct ({ctx.currency})", format="localized"),
        "shared": st.column_config.NumberColumn(f"shared ({ctx.currency})", format="localized"),
        "total": st.column_config.NumberColumn(f"total ({ctx.currency})", format="localized"),
        "share": st.column_config.ProgressColumn("share of spend", format="%.1f%%", min_value=0, max_value=100)})


ui.page("Overview", "Spend by team, provider and service over time, from the daily rollups of the store.", body)
