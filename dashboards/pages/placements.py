"""Placements: the queue by state, each decision with its reasons, and predicted against billed."""

from __future__ import annotations

from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from dashboards import ui
from dashboards.data import Ctx, money
from finops.ledger import STATES
from finops.placements import Placed
from finops.services import queue as queue_svc


def decisions_frame(recorded: list[Any]) -> pl.DataFrame:
    """The newest decision of each workload, one row each, with its explanation."""
    latest: dict[int, Any] = {}
    for r in recorded:  # oldest first: the last one of a workload wins
        latest[r.decision.workload_id] = r
    rows = []
    for r in latest.values():
        d = r.decision
        row: dict[str, Any] = {"workload": d.workload_id, "name": d.name, "team": d.team, "placed": d.placed,
                               "decided_at": r.decided_at, "baseline_cost": d.baseline_cost}
        if isinstance(d, Placed):
            m, ru = d.main, d.runner_up
            row |= {"provider": m.provider, "region": m.region, "instance_type": m.instance_type,
                    "market": m.market, "accelerators": f"{m.accelerator_name or '-'} x{m.accelerator_count or 0:g}",
                    "price_per_hour": m.price_per_hour, "expected_hours": d.expected_hours,
                    "expected_cost": d.expected_cost, "saving": d.saving,
                    "runner_up": (f"{ru.provider} {ru.region} {ru.instance_type} {ru.market} "
                                  f"(+{ru.expected_cost - d.expected_cost:,.2f})") if ru else None,
                    "why": f"cheapest feasible offer{'' if ru is None else ', ahead of the runner-up'}"}
        else:
            row |= {"why": d.reason}
        rows.append(row)
    schema: dict[str, Any] = {
        "workload": pl.Int64, "name": pl.String, "team": pl.String, "placed": pl.Boolean, "provider": pl.String,
        "region": pl.String, "instance_type": pl.String, "market": pl.String,
              "accelerators": pl.String, "price_per_hour": pl.Float64, "expected_hours": pl.Float64,
              "expected_cost": pl.Float64, "baseline_cost": pl.Float64, "saving": pl.Float64,
              "runner_up": pl.String, "why": pl.String, "decided_at": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def queue(ctx: Ctx) -> None:
    listing = queue_svc.listing(ctx.cfg)
    for note in listing.notes:
        st.info(note)
    ws = [w for w in listing.workloads if ctx.team is None or w.team == ctx.team]
    if not ws:
        if not listing.notes:
            st.info("The queue is empty (`finops queue add FILE` adds workloads).")
        return
    df = pl.DataFrame({"state": [w.state for w in ws], "team": [w.team for w in ws]})
    counts = dict(df.group_by("state").len().iter_rows())
    cols = st.columns(len(STATES))
    for c, s in zip(cols, STATES, strict=True):
        c.metric(s, f"{counts.get(s, 0):,}")
    ui.bar(df.group_by("team", "state").len().sort("team"), "team", "len", "state", "The queue by team and state",
           "workloads", 280)


def decisions(ctx: Ctx) -> pl.DataFrame:
    found = queue_svc.placements(ctx.cfg)
    for note in found.notes:
        st.info(note)
    df = decisions_frame(found.recorded)
    if ctx.team is not None:
        df = df.filter(pl.col("team") == ctx.team)
    if df.is_empty():
        return df
    placed = df.filter(pl.col("placed"))
    m = st.columns(4)
    m[0].metric("Placed", f"{placed.height:,}", f"{df.height - placed.height:,} not placed", delta_color="off",
                delta_arrow="off")
    m[1].metric("Expected cost", money(placed["expected_cost"].sum(), "USD"))
    m[2].metric("Saving against baseline", money(placed["saving"].fill_null(0).sum(), "USD"),
                help="Baseline: the team's home cloud on-demand, as `finops place` reports it.")
    m[3].metric("On spot", f"{placed.filter(pl.col('market') == 'spot').height:,}")
    left, right = st.columns(2)
    with left:
        ui.bar(placed.group_by("provider", "market").agg(pl.col("expected_cost").sum()), "provider", "expected_cost",
               "market", "Expected cost by provider and market", "USD", 300)
    with right:
        why = (df.filter(~pl.col("placed")).with_columns(pl.col("why").str.split(":").list.first().alias("reason"))
               .group_by("reason").len())
        if why.is_empty():
            st.success("Every workload in the queue was placed.")
        else:
            ui.bar(why, "reason", "len", None, "Why workloads were not placed", "workloads", 300)
    st.subheader("Decisions")
    state = st.segmented_control("Show", ["all", "placed", "not placed"], default="all", key="pl_show")
    shown = df if state in (None, "all") else df.filter(pl.col("placed") == (state == "placed"))
    st.dataframe(shown.drop("decided_at"), hide_index=True, width="stretch", column_config={
        "expected_cost": st.column_config.NumberColumn("expected (USD)", format="localized"),
        "baseline_cost": st.column_config.NumberColumn("baseline (USD)", format="localized"),
        "saving": st.column_config.NumberColumn("saving (USD)", format="localized"),
        "price_per_hour": st.column_config.NumberColumn("USD/h", format="%.2f")})
    return df


def explain(df: pl.DataFrame) -> None:
    if df.is_empty():
        return
    with st.expander("Explain one decision", icon=":material/help:"):
        names = {f"{r['workload']}: {r['name']}": r for r in df.iter_rows(named=True)}
        pick = st.selectbox("Workload", list(names), key="pl_pick")
        r = names[str(pick)]
        if r["placed"]:
            st.markdown(f"**{r['name']}** ({r['team']}) runs on **{r['provider']} {r['region']} "
                        f"{r['instance_type']}** ({r['market']}, {r['accelerators']}) at {r['price_per_hour']:,.2f} "
                        f"USD/h for about {r['expected_hours']:,.1f} h: **{r['expected_cost']:,.2f} USD** expected.")
            st.markdown(f"- runner-up: {r['runner_up'] or 'none (no other offer fits)'}\n"
                        f"- baseline: {r['baseline_cost'] if r['baseline_cost'] is not None else 'n/a'}"
                        f" · saving: {r['saving'] if r['saving'] is not None else 'n/a'}")
        else:
            st.markdown(f"**{r['name']}** ({r['team']}) was not placed: {r['why']}")


def predicted_vs_billed(ctx: Ctx) -> None:
    """Each launched workload's predicted cost against what the bill charged for it (read-only: the learnt
    corrections are not saved from here)."""
    st.subheader("Predicted against billed")
    try:
        from finops.services import reconcile as rec_svc
    except ImportError:  # pragma: no cover (reconciliation ships with finops)
        st.info("Predicted against billed needs finops.services.reconcile, which this installation lacks.")
        return
    try:
        result = rec_svc.reconcile(ctx.cfg, save=False)
    except rec_svc.ReconcileError as e:
        st.info(str(e))
        return
    for note in result.notes:
        st.caption(note)
    df = pl.DataFrame([w.to_json() for w in result.workloads], infer_schema_length=None)
    if ctx.team is not None and not df.is_empty():
        df = df.filter(pl.col("team") == ctx.team)
    if df.is_empty():
        st.info("No workload has been launched yet (`finops dispatch`): predictions meet the bill once launches "
                "tagged finops-placement are billed.")
        return
    df = df.with_columns([pl.col(c).cast(pl.Float64) for c in ("predicted", "billed", "variance")])
    billed = df.filter(pl.col("billed").is_not_null())
    m = st.columns(4)
    m[0].metric("Launched workloads", f"{df.height:,}", f"{df.height - billed.height:,} pending", delta_color="off",
                delta_arrow="off")
    m[1].metric("Predicted (billed ones)", money(billed["predicted"].sum(), "USD"))
    m[2].metric("Billed", money(billed["billed"].sum(), "USD"))
    predicted = float(billed["predicted"].sum() or 0)
    var = float(billed["billed"].sum() or 0) - predicted
    m[3].metric("Variance", money(var, "USD"), f"{var / predicted * 100 if predicted else 0:+.1f}%",
                delta_color="inverse")
    if not billed.is_empty():
        fig = px.scatter(billed.to_pandas(), x="predicted", y="billed", color="provider", hover_name="name",
                         title="Predicted against billed, per workload (the diagonal is a perfect prediction)")
        top = float(max(billed["predicted"].max() or 0, billed["billed"].max() or 0))  # type: ignore[arg-type]
        fig.add_shape(type="line", x0=0, y0=0, x1=top, y1=top, line={"dash": "dot", "color": "grey"})
        st.plotly_chart(ui.style(fig, 360), width="stretch")
    st.dataframe(df.drop("placements"), hide_index=True, width="stretch")


def body(ctx: Ctx) -> None:
    queue(ctx)
    df = decisions(ctx)
    explain(df)
    predicted_vs_billed(ctx)


ui.page("Placements", "The workload queue and where the optimizer placed each workload, and why.", body)
