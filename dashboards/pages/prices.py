"""Prices: spot and on-demand history per accelerator and region, and the cheapest offers now."""

from __future__ import annotations

from datetime import date

import plotly.express as px
import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx
from finops.services import prices as prices_svc


def body(ctx: Ctx) -> None:
    hist = ctx.rollups.prices_daily()
    if hist.is_empty():
        st.info("No GPU/TPU prices in the store yet: `finops prices import-catalog` or `finops collect prices` "
                "records them.")
        return
    accs = (hist.group_by("accelerator_name").agg(pl.col("observations").sum())
            .sort("observations", descending=True)["accelerator_name"].to_list())
    c1, c2, c3 = st.columns([2, 2, 3])
    preferred = next((i for a in ("H100", "A100-80GB", "A100-40GB", "L4") for i, x in enumerate(accs) if x == a), 0)
    acc = c1.selectbox("Accelerator", accs, index=preferred, key="pr_acc") or accs[0]
    counts = sorted(hist.filter(pl.col("accelerator_name") == acc)["accelerator_count"].unique().drop_nulls().to_list())
    count = c2.selectbox("Per instance", counts, index=counts.index(8.0) if 8.0 in counts else 0, key="pr_count",
                         format_func=lambda c: f"{c:g}x")
    h = hist.filter((pl.col("accelerator_name") == acc) & (pl.col("accelerator_count") == count))
    regions = (h.group_by("provider", "region").agg(pl.col("min_price").min())
               .sort("min_price").with_columns(pl.concat_str("provider", pl.lit(" "), "region").alias("where")))
    with c3:
        where = st.multiselect("Regions (default: the 8 cheapest)", regions["where"].to_list(), key="pr_regions",
                               placeholder="the 8 cheapest")
    where = where or regions["where"].head(8).to_list()
    h = (h.with_columns(pl.concat_str("provider", pl.lit(" "), "region").alias("where"))
         .filter(pl.col("where").is_in(where)))
    headline(ctx, str(acc), float(count or 1), h)
    if h.is_empty():
        st.info("No observations for this selection.")
    else:
        days = h["day"].n_unique()
        fig = px.line(h.sort("day").to_pandas(), x="day", y="min_price", color="where", line_dash="market",
                      markers=days < 20, title=f"{acc} x{count:g}: price per hour, per day (lowest observed)",
                      labels={"min_price": "per hour", "day": ""})
        st.plotly_chart(ui.style(fig, 380), width="stretch")
        if days < 2:
            st.caption("One day of observations so far: history builds up as prices are collected.")
    st.subheader("Cheapest offers now")
    spot = st.toggle("Spot", value=True, key="pr_spot")
    best = prices_svc.cheapest(ctx.cfg, str(acc), float(count or 1), spot=spot, limit=15)
    if best.is_empty():
        st.info(f"No {'spot' if spot else 'on-demand'} offer for {acc} x{count:g}.")
        return
    keep = [c for c in ("provider", "region", "zone", "instance_type", "accelerator_name", "accelerator_count",
                        "market", "price_per_hour", "interruption_rate", "observed_at", "stale") if c in best.columns]
    st.dataframe(best.select(keep), hide_index=True, width="stretch", column_config={
        "price_per_hour": st.column_config.NumberColumn("USD/h", format="%.3f"),
        "interruption_rate": st.column_config.NumberColumn("interruptions/month", format="%.1f%%")})


def headline(ctx: Ctx, acc: str, count: float, h: pl.DataFrame) -> None:
    m = st.columns(4)
    newest = h["day"].max() if not h.is_empty() else None
    now = h.filter(pl.col("day") == newest) if newest is not None else h
    for col, market in zip(m[:2], ("spot", "on_demand"), strict=True):
        p = now.filter(pl.col("market") == market)["min_price"].min()
        col.metric(f"Cheapest {market.replace('_', '-')} ({acc} x{count:g})",
                   f"{float(p):,.2f}/h" if isinstance(p, (int, float)) else "none")
    spot = now.filter(pl.col("market") == "spot")["min_price"].min()
    od = now.filter(pl.col("market") == "on_demand")["min_price"].min()
    m[2].metric("Spot discount", "n/a" if not (spot and od) else f"{(1 - float(spot) / float(od)) * 100:.0f}%")  # type: ignore[arg-type]
    m[3].metric("Newest observation", newest.isoformat() if isinstance(newest, date) else "none")


ui.page("Prices", "GPU and TPU prices as observed over time (every observation is kept), and the cheapest "
        "offers now.", body)
