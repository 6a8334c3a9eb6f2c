"""What the pages read: the configuration, the store's cached rollups and who is looking (their team).

Everything comes from :mod:`finops` functions (rollups, reports, services); the dashboard reads the store
and the ledger only, never a cloud API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from finops import config as config_mod
from finops.config import Config
from finops.engine import open_engine
from finops.rollups import Rollups


@dataclass(frozen=True)
class Ctx:
    """One page run's context: the configuration, the rollups of its store, and the team the visitor is
    limited to (None: every team)."""

    cfg: Config
    rollups: Rollups
    team: str | None

    @property
    def currency(self) -> str:
        return self.cfg.reports.currency


@st.cache_resource(show_spinner=False, max_entries=4)
def _rollups(key: str, _cfg: Config) -> Rollups:
    """One :class:`Rollups` per configuration (``key``), kept across reruns and sessions; partitions are
    rolled up on the Ray cluster when ``[engine] kind = "ray"`` (connected once, kept)."""
    cache = Path(_cfg.dashboard.cache_dir).expanduser() if _cfg.dashboard.cache_dir else None
    engine = open_engine(_cfg.engine) if _cfg.engine.kind == "ray" else None
    return Rollups(_cfg.open_store(), _cfg, cache, engine)


def load_config() -> Config:
    return config_mod.load()


def context() -> Ctx | None:
    """The page's context; None (with the reason shown) when the visitor may not see anything yet."""
    cfg = load_config()
    team = visitor_team(cfg)
    if team is False:
        return None
    cfg.check_store(create=False)
    key = cfg.model_dump_json() + str(cfg.source)
    return Ctx(cfg, _rollups(key, cfg), team if isinstance(team, str) else None)


def visitor_team(cfg: Config) -> str | bool | None:
    """The team a signed-in visitor is limited to: None for every team (no login configured, or an admin),
    False when they must sign in first or their account names no team (said so on the page)."""
    d = cfg.dashboard
    if not d.login:
        return None
    if not st.user.get("is_logged_in", False):
        st.info("Sign in to see your team's costs.")
        st.button("Sign in", on_click=st.login, type="primary")
        return False
    values = _claim_values(st.user.get(d.team_claim))
    if any(v in d.admins for v in values):
        return None
    known = {t.name for t in cfg.teams}
    for v in values:
        team = d.claim_teams.get(v) or (v if v in known else None)
        if team:
            return team
    st.warning(f"Your account's {d.team_claim!r} claim names no team; ask an administrator to add it to "
               "[dashboard] claim_teams.")
    st.button("Sign out", on_click=st.logout)
    return False


def _claim_values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def money(v: Any, currency: str) -> str:
    return f"{currency} {float(v or 0):,.2f}"


def short(v: Any, currency: str) -> str:
    """A headline figure that fits a narrow column (``USD 675.4k``); the exact one goes in its help."""
    x = float(v or 0)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{currency} {x / size:,.1f}{unit}"
    return f"{currency} {x:,.2f}"


def signed(v: Any) -> str:
    """A change, sign first (Streamlit draws the arrow from it)."""
    return f"{float(v or 0):+,.2f}"


def as_float(df: pl.DataFrame) -> pl.DataFrame:
    """Decimal columns as floats, for charts and tables (the figures were summed exactly before)."""
    return df.with_columns([pl.col(c).cast(pl.Float64) for c, t in df.schema.items() if isinstance(t, pl.Decimal)])
