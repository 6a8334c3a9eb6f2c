"""Shared page furniture: the error boundary, filters and chart styling."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards.data import Ctx, context

log = logging.getLogger("finops.dashboard")
PALETTE = px.colors.qualitative.Safe + px.colors.qualitative.Pastel


def friendly(e: BaseException) -> str | None:
    """One sentence for an error a user can cause (bad data, configuration, an unreachable ledger); None for
    anything else."""
    from finops.config import ConfigError
    from finops.engine import EngineError
    from finops.ledger import LedgerError
    from finops.offers import OfferError
    from finops.reports import ReportError
    from finops.store import OldLayoutError, StoreError

    if isinstance(e, OldLayoutError):
        return ("The store was written by an older finops (before Delta Lake): run `finops store migrate` "
                "to convert it, then reload this page.")
    if isinstance(e, (StoreError, ConfigError, LedgerError, OfferError, ReportError, EngineError)):
        return str(e)
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover (sqlalchemy comes with the ledger)
        return None
    if isinstance(e, SQLAlchemyError):
        return f"The ledger cannot be reached ({type(e).__name__}); check [ledger] url and that its database is up."
    return None


def page(title: str, caption: str, body: Callable[[Ctx], None]) -> None:
    """Run one page: title, the visitor's context, then ``body`` behind the error boundary: an error a user
    can cause becomes a warning on this page (the other pages keep working), never a traceback."""
    st.title(title)
    st.caption(caption)
    try:
        ctx = context()
        if ctx is None:
            return
        if ctx.team:
            st.caption(f"Showing team **{ctx.team}** only.")
        body(ctx)
    except Exception as e:  # the page's error boundary: a message on this page, never a traceback
        said = friendly(e)
        if said is None:
            log.exception("dashboard page %s failed", title)
            st.error(f"This page could not be drawn: {type(e).__name__}: {e}")
        else:
            st.warning(said)


def empty_store(ctx: Ctx) -> bool:
    """True (with a note) when the store holds no billing data."""
    if ctx.rollups.billing().empty:
        st.info("The store holds no billing data yet. Load some with `finops collect billing`, `finops ingest "
                "FILES` or try `finops demo`.")
        return True
    return False


def date_range(span: tuple[date, date], key: str, default_days: int = 30) -> tuple[date, date]:
    """A date range picker over the data's span (default: its last ``default_days`` days)."""
    first, last = span
    start = max(first, last - timedelta(days=default_days - 1))
    got = st.date_input("Dates", value=(start, last), key=key, format="YYYY-MM-DD")
    if isinstance(got, (tuple, list)):
        if len(got) == 2:
            return got[0], got[1]
        if len(got) == 1:
            return got[0], got[0]
        return start, last
    return got, got


def in_range(df: pl.DataFrame, lo: date, hi: date) -> pl.DataFrame:
    return df.filter(pl.col("day").is_between(lo, hi))


def top_n(df: pl.DataFrame, column: str, value: str, n: int = 8, other: str = "other") -> pl.DataFrame:
    """``df`` with ``column`` values outside the ``n`` largest by ``value`` folded into ``other``."""
    keep = (df.group_by(column).agg(pl.col(value).sum()).sort(value, descending=True).head(n)[column].to_list())
    return df.with_columns(pl.when(pl.col(column).is_in(keep)).then(pl.col(column)).otherwise(pl.lit(other))
                           .alias(column))


def style(fig: go.Figure, height: int = 340, legend: bool = True) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=legend,
                      legend={"orientation": "h", "y": -0.18, "title": None}, hovermode="x unified",
                      colorway=PALETTE)
    return fig


def area(df: pl.DataFrame, x: str, y: str, color: str, title: str, currency: str) -> None:
    """A stacked area chart of ``y`` by ``color`` over ``x``."""
    if df.is_empty():
        st.info(f"{title}: nothing to show for this selection.")
        return
    pdf = df.sort(x).to_pandas()
    fig = px.area(pdf, x=x, y=y, color=color, title=title, labels={y: currency, x: ""})
    st.plotly_chart(style(fig), width="stretch")


def bar(df: pl.DataFrame, x: str, y: str, color: str | None, title: str, label: str, height: int = 340,
        orientation: str = "v") -> None:
    if df.is_empty():
        st.info(f"{title}: nothing to show for this selection.")
        return
    fig = px.bar(df.to_pandas(), x=x, y=y, color=color, title=title, labels={y: label, x: ""},
                 orientation=orientation)
    fig.update_layout(hovermode="closest")
    st.plotly_chart(style(fig, height), width="stretch")


def multiselect(label: str, options: Sequence[str], key: str) -> list[str]:
    """A filter: nothing chosen means all."""
    chosen = st.multiselect(label, list(options), key=key, placeholder="all")
    return chosen or list(options)
