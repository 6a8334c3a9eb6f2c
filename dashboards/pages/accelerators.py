"""Accelerators: GPU hours and TPU chip-hours and their cost by accelerator, provider and team; spot share
and savings against on-demand; commitments paid for and not used."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx, as_float, money, short
from finops.reports import is_tpu
from finops.rollups import day_range


def body(ctx: Ctx) -> None:
    if ui.empty_store(ctx):
        return
    d = ctx.rollups.daily("team")
    span = day_range(d.frame)
    assert span is not None
    c1, c2 = st.columns([2, 3])
    with c1:
        lo, hi = ui.date_range(span, "acc_dates")
    basis = ctx.rollups.cfg.allocation.basis
    f = ui.in_range(d.frame, lo, hi).with_columns(d.cost(basis).alias("cost"))
    known = {t.name for t in ctx.cfg.teams}
    owners = sorted({o for o in f["owner"].unique().to_list() if o} | known) if ctx.team is None else [ctx.team]
    with c2:
        chosen = ui.multiselect("Teams", owners, "acc_teams") if ctx.team is None else owners
    mine = f.filter(pl.col("owner").is_in(chosen) & pl.col("pool").is_null())
    acc = mine.filter(pl.col("accelerator").is_not_null())
    unused = f.filter(pl.col("CommitmentDiscountStatus") == "Unused")
    if acc.is_empty() and unused.is_empty():
        st.info(f"No GPU or TPU usage between {lo} and {hi} for this selection.")
        return
    headline(ctx, acc, unused)
    tpu = is_tpu(pl.col("accelerator"))
    hours = as_float(acc.group_by("accelerator", "ProviderName")
                     .agg(pl.col("accel_hours").sum().alias("hours"), pl.col("cost").sum()))
    left, right = st.columns(2)
    with left:
        ui.bar(hours.sort("hours", descending=True), "accelerator", "hours", "ProviderName",
               "Accelerator hours by provider (GPU hours; TPU chip-hours)", "hours")
    with right:
        by_team = as_float(acc.group_by("owner", "market").agg(pl.col("cost").sum()))
        ui.bar(by_team.rename({"owner": "team"}), "team", "cost", "market", "Accelerator cost by team and market",
               ctx.currency)
    daily = as_float(acc.group_by("day", "market").agg(pl.col("cost").sum()))
    ui.area(daily, "day", "cost", "market", "Accelerator spend per day by market", ctx.currency)
    st.subheader("By accelerator, provider and market")
    table = as_float(acc.group_by("accelerator", "ProviderName", "market")
                     .agg(pl.col("accel_hours").sum().alias("hours"), pl.col("cost").sum(),
                          tpu.first().alias("tpu"))
                     .with_columns((pl.col("cost").cast(pl.Float64) / pl.col("hours")).alias("per_hour"))
                     .sort("cost", descending=True))
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "hours": st.column_config.NumberColumn("hours (TPU: chip-hours)", format="localized"),
        "cost": st.column_config.NumberColumn(f"cost ({ctx.currency})", format="localized"),
        "per_hour": st.column_config.NumberColumn("cost per hour", format="%.2f")})
    st.subheader("Commitments paid for and not used")
    if unused.is_empty():
        st.success("No unused commitment charges in this range.")
    else:
        st.dataframe(as_float(unused.group_by("ProviderName", "ServiceName")
                              .agg(pl.col("cost").sum().alias("unused_cost"), pl.col("day").min().alias("from"),
                                   pl.col("day").max().alias("to"))
                              .sort("unused_cost", descending=True)),
                     hide_index=True, width="stretch")


def headline(ctx: Ctx, acc: pl.DataFrame, unused: pl.DataFrame) -> None:
    tpu = is_tpu(pl.col("accelerator"))
    gpu_h = acc.filter(~tpu)["accel_hours"].sum()
    tpu_h = acc.filter(tpu)["accel_hours"].sum()
    cost = acc["cost"].sum()
    spot = acc.filter(pl.col("market") == "spot")
    spot_cost = spot["cost"].sum()
    savings = (spot["list_cost"].cast(pl.Float64) - spot["effective"].cast(pl.Float64)).sum()
    m = st.columns(5)
    m[0].metric("GPU hours", f"{gpu_h:,.0f}")
    m[1].metric("TPU chip-hours", f"{tpu_h:,.0f}")
    m[2].metric("Accelerator cost", short(cost, ctx.currency), help=f"exact: {money(cost, ctx.currency)}")
    m[3].metric("Spot share", f"{float(spot_cost) / float(cost) * 100 if cost else 0:.1f}%",
                f"saved {money(savings, ctx.currency)} vs on-demand", delta_color="off", delta_arrow="off",
                help="Spot (Dynamic pricing) cost over all accelerator cost; savings are list price minus what "
                     "was paid on spot.")
    m[4].metric("Unused commitments", short(unused["cost"].sum(), ctx.currency),
                help=f"exact: {money(unused['cost'].sum(), ctx.currency)}")


ui.page("Accelerators", "GPU and TPU usage and cost, spot against on-demand, and commitments left idle.", body)
