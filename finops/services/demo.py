"""Generated data and the end-to-end demo: native exports → ingest → prices → queue → place → chargeback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from finops import config as config_mod
from finops import offers, providers
from finops.config import Config
from finops.services.progress import QUIET, Progress

Grain = Literal["daily", "hourly"]
FORMATS = ("parquet", "csv", "csv.gz", "native")


class GenerateError(ValueError):
    """Generator options that cannot be used."""


def generate(out: Path, *, rows: int | None = None, days: int = 90, teams: int = 6, seed: int = 0,
             grain: str = "daily", fmt: str = "parquet", progress: Progress = QUIET) -> list[Path]:
    """Write realistic billing exports of a multi-cloud ML organisation under ``out`` (deterministic from
    ``seed``): FOCUS files, or with ``fmt="native"`` each cloud's own export layout."""
    from finops.generate import write_exports
    from finops.generate.exports import ExportFormat
    from finops.generate.native import write_native_exports

    if grain not in ("daily", "hourly"):
        raise GenerateError(f"--grain {grain!r}: expected daily or hourly")
    if fmt not in FORMATS:
        raise GenerateError(f"--format {fmt!r}: expected {', '.join(FORMATS)}")
    if rows is not None and rows < 0:
        raise GenerateError(f"--rows {rows}: expected a count >= 0")
    step = progress.start(f"generating into {out}")
    if fmt == "native":
        found = write_native_exports(out, rows=rows, days=days, teams=teams, seed=seed, grain=grain)
        paths = sorted(p for ps in found.values() for p in ps)
    else:
        export_fmt: ExportFormat = "csv" if fmt == "csv" else "csv.gz" if fmt == "csv.gz" else "parquet"
        paths = write_exports(out, rows=rows, days=days, teams=teams, seed=seed, grain=grain, fmt=export_fmt)
    step.finish(f"wrote {len(paths)} file(s) under {out}")
    return paths


@dataclass(frozen=True)
class DemoResult:
    store: str
    rows: int
    totals: list[dict[str, Any]]
    """Rows and cost sums by provider and billing period."""
    offers_known: int
    snapshot: datetime
    placement: dict[str, Any]
    """:func:`placement.plan.summary` of the demo's placement run."""
    cheapest: list[dict[str, Any]]
    """The three cheapest 8× A100 spot offers."""
    report: list[Path]


def demo(cfg: Config, *, days: int = 90, teams: int = 6, seed: int = 0, work: Path = Path("demo-exports"),
         progress: Progress = QUIET) -> DemoResult:
    """End to end on generated data: native billing exports for ``days`` days and ``teams`` teams on three
    clouds → ingest (mapped to FOCUS) → the shipped price catalog → queue and place generated workloads →
    last week's chargeback."""
    from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir
    from collectors.files import ingest
    from finops.generate.native import write_native_exports
    from finops.store import summarise
    from placement import run as placement_run
    from placement.plan import summary as plan_summary

    store = cfg.open_store()
    step = progress.start(f"generating {days} days for {teams} teams")
    written = write_native_exports(work, days=days, teams=teams, seed=seed)
    paths = [p for files in written.values() for p in files if p.suffix in (".parquet", ".csv")]
    step.finish(f"generated native exports in {work} (AWS CUR 2.0 Parquet, Azure cost details CSV, BigQuery "
                f"export CSV): {len(paths)} files")
    step = progress.start("ingesting", total=len(paths))
    result = ingest(store, paths, progress=lambda _p, s: step.advance() if s == "staged" else None)
    step.finish(f"ingested {result.rows:,} rows into {store.url}")
    step = progress.start("importing the price catalog snapshot")
    known = offers.record(store, read_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE,
                                              interruption=cfg.prices.interruption))
    step.finish(f"{known:,} GPU/TPU offers known (catalog snapshot of {SNAPSHOT_DATE:%Y-%m-%d})")
    step = progress.start("queueing 200 generated workloads and placing them")
    placed = plan_summary(placement_run.demo(cfg, store, seed=seed, teams=teams)[1])
    age = placed.get("price_age_hours")
    stale = f" on prices {age / 24:,.0f} days old (the shipped snapshot)" if age else ""
    step.finish(f"placed {placed['placed']} of {placed['workloads']} queued workloads, expected "
                f"${placed['expected_cost']:,.0f}{stale} (`finops queue list`, `finops place`)")
    cheapest = offers.select(offers.latest_offers(store), offers.Query("A100", 8, "spot")).head(3).collect()
    return DemoResult(store.url, result.rows, summarise(store.manifests("billing"), ("provider", "billing_period")),
                      known, SNAPSHOT_DATE, placed,
                      cheapest.select("provider", "region", "instance_type", "price_per_hour").to_dicts(),
                      demo_report(cfg, teams=teams, seed=seed))


def demo_report(cfg: Config, teams: int | None = None, seed: int = 0) -> list[Path]:
    """Last week's chargeback written under ``[reports] out`` (nothing if there is no data that week).
    Without teams in the configuration, the generated organisation's teams, accounts and shared platform
    accounts stand in for them."""
    from finops import report_outputs, reports
    from finops.generate import make_org
    from finops.periods import Week

    if teams is not None and not cfg.teams:
        cfg = demo_rules(cfg, make_org(teams, seed))
    try:
        cb = reports.chargeback(cfg.open_store(), cfg, Week.last_complete())
    except reports.ReportError:
        return []
    return report_outputs.write(cb, Path(cfg.reports.out), cfg.reports.formats)


def demo_rules(cfg: Config, org: Any) -> Config:
    """``cfg`` with the generated organisation's teams, accounts (each with its team and project) and its
    shared platform accounts as one pool."""
    accounts = {p: config_mod.ProviderConfig(accounts=[
        config_mod.Account(id=a.sub_account_id, name=a.sub_account_name, team=a.team, project=a.project)
        for a in org.accounts_of(p)]) for p in providers.clouds()}
    shared = config_mod.SharedPool(name="shared platform", accounts=[a.sub_account_id for a in org.accounts
                                                                      if a.team is None])
    return cfg.model_copy(update={"teams": [config_mod.Team(name=t.name) for t in org.teams], "providers": accounts,
                                  "allocation": cfg.allocation.model_copy(update={"shared": [shared]})})
