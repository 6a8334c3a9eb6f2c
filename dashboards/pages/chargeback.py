"""Chargeback: the weekly report of :func:`finops.reports.chargeback`, to drill into and download."""

from __future__ import annotations

import io
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path

import plotly.express as px
import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx, as_float, money, signed
from finops import allocation as alloc
from finops import report_outputs
from finops.periods import Week
from finops.reports import Chargeback, EmptyWeek, billing_periods


def downloads(cb: Chargeback) -> None:
    """CSV (one file per view, zipped) and XLSX, written by :mod:`finops.report_outputs`."""
    with tempfile.TemporaryDirectory() as tmp:
        csvs = report_outputs.write_csv(cb, Path(tmp))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in csvs:
                z.write(p, p.name)
        xlsx = report_outputs.write_xlsx(cb, Path(tmp) / "report.xlsx").read_bytes()
    c1, c2 = st.columns(2)
    c1.download_button("Download CSV (zip)", buf.getvalue(), f"chargeback-{cb.week.label}-csv.zip",
                       "application/zip", icon=":material/download:")
    c2.download_button("Download XLSX", xlsx, f"chargeback-{cb.week.label}.xlsx",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", icon=":material/download:")


def headline(cb: Chargeback, rows: pl.DataFrame, dim: str) -> None:
    total = sum(rows["total"], Decimal(0))
    prev = [p for p in rows["previous_week"] if p is not None]
    unalloc = sum(rows.filter(pl.col(dim) == alloc.UNALLOCATED)["total"], Decimal(0))
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(f"Total {cb.week.label}", money(total, cb.currency),
              None if not prev else signed(total - sum(prev, Decimal(0))), delta_color="inverse",
              help="Against the week before.")
    m2.metric("Shared pools", money(sum(rows["shared"], Decimal(0)), cb.currency))
    m3.metric("Unallocated", money(unalloc, cb.currency))
    m4.metric("Reconciled to the bill", "to the cent" if cb.reconciled else "NO",
              f"basis {cb.basis}", delta_color="off", delta_arrow="off")


def treemap(ctx: Ctx, cb: Chargeback, dim: str) -> None:
    """Direct costs team → provider → account → service (shared pools as their own tiles), from the daily
    rollup of the week (the same rows and rules the report reads)."""
    d = ctx.rollups.daily(dim)  # type: ignore[arg-type]
    f = d.frame.filter(pl.col("day").is_between(cb.week.start.date(), cb.week.end.date(), closed="left"))
    f = f.with_columns(d.cost(cb.basis).alias("cost"),
                       pl.coalesce(pl.concat_str(pl.lit("shared: "), pl.col("pool")), pl.col("owner")).alias(dim))
    if ctx.team:
        f = f.filter(pl.col(dim) == ctx.team)
    g = as_float(f.group_by(dim, "ProviderName", pl.col("SubAccountName").fill_null("(none)"),
                            pl.col("ServiceName").fill_null("(none)"))
                 .agg(pl.col("cost").sum())).filter(pl.col("cost") > 0)
    if g.is_empty():
        st.info("No positive charges to draw for this week.")
        return
    fig = px.treemap(g.to_pandas(), path=[px.Constant("all"), dim, "ProviderName", "SubAccountName", "ServiceName"],
                     values="cost", title="Where the week's money went (click to drill down)")
    fig.update_traces(root_color="#f4f4f4", hovertemplate="%{label}<br>%{value:,.2f}<extra></extra>")
    st.plotly_chart(ui.style(fig, 480, legend=False), width="stretch")


def resources(ctx: Ctx, cb: Chargeback, dim: str) -> None:
    """The biggest resources of one team's service in the week (read from the store on demand)."""
    rows = cb.services if ctx.team is None else cb.services.filter(pl.col(dim) == ctx.team)
    if rows.is_empty():
        st.info("No direct service costs this week.")
        return
    c1, c2 = st.columns(2)
    who = c1.selectbox(dim.capitalize(), sorted(rows[dim].unique().to_list()), key="cb_res_team")
    service = c2.selectbox("Service", rows.filter(pl.col(dim) == who)["service"].to_list(), key="cb_res_service")
    top = top_resources(ctx, cb.week, dim, str(who), str(service))
    st.dataframe(as_float(top), hide_index=True, width="stretch",
                 column_config={"cost": st.column_config.NumberColumn(f"cost ({cb.currency})", format="localized")})


def top_resources(ctx: Ctx, week: Week, dim: str, who: str, service: str, n: int = 25) -> pl.DataFrame:
    rules = alloc.rules_from_config(ctx.cfg, dim)  # type: ignore[arg-type]
    lf = ctx.rollups.store.scan("billing", {"billing_period": billing_periods(week.start, week.end)})
    ts = pl.col("ChargePeriodStart")
    keys = sorted({*rules.columns, "ResourceId", "ResourceName", "ServiceName", "RegionId"})
    g = (lf.filter((ts >= week.start) & (ts < week.end) & (pl.col("ServiceName") == service))
         .group_by(keys).agg(pl.col(rules.basis).sum().alias("cost")))
    res = alloc.resolve(g, rules).filter((pl.col("owner") == who) & pl.col("pool").is_null()).collect()
    return (res.group_by(pl.coalesce("ResourceName", "ResourceId").alias("resource"), "ProviderName",
                         "SubAccountId", "RegionId").agg(pl.col("cost").sum())
            .sort("cost", descending=True).head(n))


def body(ctx: Ctx) -> None:
    if ui.empty_store(ctx):
        return
    weeks = ctx.rollups.weeks()
    done = [w for w in weeks if w.complete()]
    c1, c2 = st.columns([3, 2])
    week = c1.selectbox("Week", weeks, index=weeks.index(done[0]) if done else 0, key="cb_week",
                        format_func=lambda w: f"{w.label} ({w.start:%d %b} – {w.end:%d %b %Y})")
    dim = c2.radio("By", ["team", "project"], key="cb_dim", horizontal=True) or "team"
    try:
        cb = ctx.rollups.chargeback(week, dim)  # type: ignore[arg-type]
    except EmptyWeek as e:
        st.info(str(e))
        return
    for w in cb.warnings:
        st.warning(w)
    scoped = ctx.team is not None
    rows = cb.summary.filter(pl.col(dim) == ctx.team) if scoped else cb.summary
    headline(cb, rows, dim)
    treemap(ctx, cb, dim)
    st.subheader(f"By {dim}")
    st.dataframe(as_float(rows), hide_index=True, width="stretch", column_config={
        "budget_used_pct": st.column_config.ProgressColumn("budget used", format="%.0f%%", min_value=0, max_value=100),
        "spot_share_pct": st.column_config.NumberColumn("spot share", format="%.1f%%")})
    tabs = st.tabs(["Shared pools", "Providers", "Top services", "Reconciliation", "Resources"])
    with tabs[0]:
        shared = cb.shared.filter(pl.col(dim) == ctx.team) if scoped else cb.shared
        if shared.is_empty():
            st.info("No shared pools this week (configure them under [allocation] shared).")
        else:
            ui.bar(as_float(shared.group_by("pool", dim).agg(pl.col("amount").sum())), "pool", "amount", dim,
                   "What each pool cost and what each got", cb.currency, 300)
            st.dataframe(as_float(shared), hide_index=True, width="stretch")
    with tabs[1]:
        st.dataframe(as_float(cb.providers.filter(pl.col(dim) == ctx.team) if scoped else cb.providers),
                     hide_index=True, width="stretch")
    with tabs[2]:
        st.dataframe(as_float(cb.services.filter(pl.col(dim) == ctx.team) if scoped else cb.services),
                     hide_index=True, width="stretch")
    with tabs[3]:
        if scoped:
            st.info("The reconciliation covers every team; ask a FinOps administrator for it.")
        else:
            st.caption("Per provider: the store's own total for the week beside the sum over "
                       f"{dim}s (rounded to the cent); a difference other than 0.00 would be a bug.")
            st.dataframe(as_float(cb.reconciliation), hide_index=True, width="stretch")
    with tabs[4]:
        resources(ctx, cb, dim)
    if not scoped:
        downloads(cb)


ui.page("Chargeback", "The weekly chargeback (`finops report chargeback`): who spent what, the shared pools, "
        "and the reconciliation to the bill.", body)
