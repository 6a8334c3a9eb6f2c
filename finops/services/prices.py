"""The price history from catalogs, and the cheapest offers for a request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from finops import offers
from finops.config import Config


@dataclass(frozen=True)
class CatalogImport:
    directory: Path
    dates: dict[str, tuple[datetime, str]]
    """Per cloud: the date its prices were stamped with and where it came from (``given``, the shipped
    snapshot, a SOURCES.md, or ``undated``)."""
    counts: list[dict[str, object]]
    """Observations by provider and market (``provider``, ``market``, ``len``)."""
    rows: int
    offers_known: int
    problems: list[str]
    """Rows dropped or flagged, as ``<file>:<line>: what``."""


def import_catalog(cfg: Config, directory: Path | None = None, observed_at: datetime | None = None) -> CatalogImport:
    """Import price catalogs in SkyPilot's CSV layout (default: the snapshot shipped with finops), stamped
    ``observed_at`` if given, else with each catalog's own date (never a file's modification time)."""
    from collectors.catalog import load_catalog, snapshot_dir

    when = observed_at.replace(tzinfo=observed_at.tzinfo or UTC) if observed_at else None
    read = load_catalog(directory or snapshot_dir(), observed_at=when, interruption=cfg.prices.interruption)
    known = offers.record(cfg.open_store(), read.offers)
    counts = read.offers.group_by("provider", "market").len().sort("provider", "market").rows(named=True)
    return CatalogImport(directory or snapshot_dir(), read.dates, counts, read.offers.height, known, read.problems)


def cheapest(cfg: Config, accelerator: str | None = None, count: float | None = None, spot: bool = False,
             regions: Sequence[str] = (), providers: Sequence[str] = (), limit: int = 15) -> pl.DataFrame:
    """The cheapest offers matching the request, from the latest prices (stale ones marked)."""
    if limit < 0:
        raise offers.OfferError(f"--limit {limit}: expected a count >= 0")
    lf = offers.latest_offers(cfg.open_store(), max_age=timedelta(hours=cfg.prices.max_age_hours),
                              rates=cfg.prices.rates)
    q = offers.Query(accelerator, count, "spot" if spot else "on_demand", tuple(regions), tuple(providers))
    return offers.select(lf, q).head(limit).collect()
