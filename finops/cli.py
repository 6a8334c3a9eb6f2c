"""The ``finops`` command line (typer + rich). Every command that prints a table also takes ``--json``."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops import config as config_mod
from finops import focus, offers
from finops.store import Manifest, Store, StoreError, summarise

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="finops: multi-cloud cost engine for ML work. Collect billing into FOCUS, "
                       "place workloads, allocate spend.")
store_app = typer.Typer(no_args_is_help=True, help="Inspect the billing and price store.")
app.add_typer(store_app, name="store")
collect_app = typer.Typer(no_args_is_help=True, help="Collect from the clouds' APIs into the store.")
app.add_typer(collect_app, name="collect")
prices_app = typer.Typer(no_args_is_help=True, help="Spot and on-demand GPU/TPU prices, kept as history.")
app.add_typer(prices_app, name="prices")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


@dataclass
class State:
    config_path: Path | None = None

    def config(self) -> config_mod.Config:
        return config_mod.load(self.config_path)

    def store(self) -> Store:
        return self.config().open_store()


@app.callback()
def main(ctx: typer.Context,
         config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: "
                           "$FINOPS_CONFIG, else ./finops.toml, else built-in defaults).")] = None) -> None:
    ctx.obj = State(config)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn: Any) -> Any:
    """Report our own errors as one clear message and a non-zero exit, not a traceback."""
    from functools import wraps

    from collectors.files import IngestError

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (config_mod.ConfigError, IngestError, StoreError, focus.FocusError, offers.OfferError) as e:
            _fail(str(e))
    return wrapper


def _money(v: Decimal | str, places: int = 2) -> str:
    return f"{Decimal(v):,.{places}f}"


def _emit_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# -- init ------------------------------------------------------------------------------------------
@app.command()
@_guard
def init(path: Annotated[Path, typer.Argument(help="Where to write the example.")] = Path(config_mod.DEFAULT_FILE),
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a commented example configuration."""
    if path.exists() and not force:
        _fail(f"{path} exists; pass --force to overwrite it")
    path.write_text(config_mod.EXAMPLE)
    config_mod.load(path)  # the example must always be valid
    err.print(f"wrote {path}")


# -- ingest ----------------------------------------------------------------------------------------
@app.command()
@_guard
def ingest(ctx: typer.Context,
           paths: Annotated[list[str], typer.Argument(help="FOCUS export files (CSV, CSV.gz, Parquet; local or s3://).")],
           provider: Annotated[Optional[str], typer.Option(help="Expect rows of this provider only (aws, gcp, azure).")] = None,
           as_json: JsonOpt = False) -> None:
    """Ingest FOCUS exports into the billing store. All files or none: one bad file writes nothing."""
    from collectors.files import ingest as run_ingest

    store = ctx.obj.store()
    t0 = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("ingest", total=len(paths))

        def note(path: str, state: str) -> None:
            progress.update(task, description=f"{state:<9} {Path(path).name}")
            if state in ("staged", "duplicate"):
                progress.advance(task)

        result = run_ingest(store, paths, provider=provider, progress=note)
    secs = time.perf_counter() - t0
    rows = [{"file": f.path, "rows": f.rows, "BilledCost": str(f.sums["BilledCost"]),
             "EffectiveCost": str(f.sums["EffectiveCost"]), "sha256": f.source.sha256, "warnings": f.warnings}
            for f in result.files]
    if as_json:
        _emit_json({"files": rows, "skipped_duplicates": result.skipped, "seconds": round(secs, 3),
                    "partitions": [m.partition for m in result.manifests]})
        return
    table = Table(title=f"Ingested {result.rows:,} rows in {secs:.1f}s into {len(result.manifests)} partition(s)")
    for col in ("file", "rows", "BilledCost", "EffectiveCost"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in rows:
        table.add_row(r["file"], f"{r['rows']:,}", _money(r["BilledCost"]), _money(r["EffectiveCost"]))
    out.print(table)
    for s in result.skipped:
        err.print(f"[yellow]skipped[/] {s}: same content as a file already in this run")
    for f in result.files:
        for w in f.warnings:
            err.print(f"[yellow]warning[/] {f.path}: {w}", highlight=False)


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


# -- store -----------------------------------------------------------------------------------------
@store_app.command("info")
@_guard
def store_info(ctx: typer.Context,
               dataset: Annotated[str, typer.Option(help="billing, prices or offers")] = "billing",
               as_json: JsonOpt = False) -> None:
    """Partitions, rows and cost totals, read from the partition manifests (no data scan)."""
    store = ctx.obj.store()
    manifests = store.manifests(dataset)
    if as_json:
        _emit_json({"store": store.url, "dataset": dataset,
                    "partitions": [_manifest_row(m) for m in manifests],
                    "totals": summarise(manifests, ("provider",))})
        return
    if not manifests:
        err.print(f"{store.url}: dataset {dataset!r} is empty. Try `finops demo` or `finops ingest FILE`.")
        return
    keys = list(manifests[0].partition)
    table = Table(title=f"{store.url} — {dataset}: {len(manifests)} partition(s)")
    for k in keys + ["rows", *manifests[0].sums, "written"]:
        table.add_column(k.removeprefix("billing_"), justify="right" if k not in keys else "left")
    for m in manifests:
        table.add_row(*m.partition.values(), f"{m.rows:,}", *(_money(v) for v in m.sums.values()),
                      m.written_at[:16].replace("T", " "))
    total = summarise(manifests, ())[0]
    table.add_section()
    table.add_row(*(["total"] + [""] * (len(keys) - 1)), f"{total['rows']:,}",
                  *(_money(total[k]) for k in manifests[0].sums), "")
    out.print(table)


def _manifest_row(m: Manifest) -> dict[str, Any]:
    return {**m.partition, "rows": m.rows, **m.sums, "files": len(m.files), "written_at": m.written_at,
            "sources": m.sources}


# -- prices ----------------------------------------------------------------------------------------
@collect_app.command("prices")
@_guard
def collect_prices(
        ctx: typer.Context,
        provider: Annotated[Optional[list[str]], typer.Option(help="aws, gcp or azure (repeatable; default: "
                            "the providers in finops.toml, else all three).")] = None,
        region: Annotated[Optional[list[str]], typer.Option(help="Only these regions (repeatable; default: "
                          "each provider's regions in finops.toml, else a few GPU regions).")] = None,
        as_json: JsonOpt = False) -> None:
    """Collect current spot and on-demand GPU/TPU prices from AWS, GCP and Azure into the price history."""
    from collectors import prices as price_collectors

    cfg = ctx.obj.config()
    store = cfg.open_store()
    chosen = provider or [p for p, c in cfg.providers.items() if c.enabled] or list(price_collectors.COLLECTORS)
    unknown = [p for p in chosen if p not in price_collectors.COLLECTORS]
    if unknown:
        _fail(f"--provider {', '.join(unknown)}: expected aws, gcp or azure")
    summary, failures = [], []
    with _progress() as progress:
        task = progress.add_task("prices", total=len(chosen))
        for p in chosen:
            regions = region or (cfg.providers[p].regions if p in cfg.providers else [])
            t0 = time.perf_counter()
            note = lambda msg, p=p: progress.update(task, description=f"{p}: {msg}")  # noqa: E731
            try:
                df = price_collectors.collect(p, regions, endpoint=cfg.prices.endpoints.get(p), progress=note)
                df = offers.with_interruption(df, cfg.prices.interruption)
                known = offers.record(store, df)
            except offers.OfferError as e:
                failures.append(f"{p}: {e}")
            else:
                summary.append({"provider": p, "observations": df.height, "spot": int((df["market"] == "spot").sum()),
                                "on_demand": int((df["market"] == "on_demand").sum()), "offers_known": known,
                                "flagged": int(df["flag"].is_not_null().sum()),
                                "seconds": round(time.perf_counter() - t0, 2)})
            progress.advance(task)
    if as_json:
        _emit_json({"collected": summary, "failed": failures})
    else:
        table = Table(title="Prices collected")
        for c in ("provider", "observations", "spot", "on_demand", "flagged", "offers_known", "seconds"):
            table.add_column(c, justify="left" if c == "provider" else "right")
        for r in summary:
            table.add_row(*(str(r[c]) for c in ("provider", "observations", "spot", "on_demand", "flagged",
                                                "offers_known", "seconds")))
        out.print(table)
    for f in failures:
        err.print(f"[bold red]error:[/] {f} (nothing recorded for it; the history is unchanged)", highlight=False)
    if failures:
        raise typer.Exit(2)


@prices_app.command("import-catalog")
@_guard
def prices_import_catalog(
        ctx: typer.Context,
        directory: Annotated[Optional[Path], typer.Argument(help="Folder with <cloud>/vms.csv in SkyPilot's layout "
                             "(default: the snapshot shipped with finops).")] = None,
        observed_at: Annotated[Optional[datetime], typer.Option(help="When the prices were observed (default: "
                               "the snapshot's date, or each file's modification time).")] = None,
        as_json: JsonOpt = False) -> None:
    """Import price catalogs in SkyPilot's CSV layout into the price history."""
    from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir

    cfg = ctx.obj.config()
    when = observed_at.replace(tzinfo=observed_at.tzinfo or timezone.utc) if observed_at else None
    if directory is None:
        directory, when = snapshot_dir(), when or SNAPSHOT_DATE
    df = read_catalog(directory, observed_at=when, interruption=cfg.prices.interruption)
    known = offers.record(cfg.open_store(), df)
    counts = df.group_by("provider", "market").len().sort("provider", "market").rows(named=True)
    if as_json:
        _emit_json({"imported": counts, "offers_known": known, "directory": str(directory)})
        return
    table = Table(title=f"Imported {df.height:,} price observations from {directory}")
    for c in ("provider", "market", "offers"):
        table.add_column(c, justify="right" if c == "offers" else "left")
    for r in counts:
        table.add_row(r["provider"], r["market"], f"{r['len']:,}")
    out.print(table)


@prices_app.command("show")
@_guard
def prices_show(
        ctx: typer.Context,
        accelerator: Annotated[Optional[str], typer.Option(help="e.g. A100, A100-80GB, H100, L4, TPU-v5e")] = None,
        count: Annotated[Optional[float], typer.Option(help="Accelerators per machine.")] = None,
        spot: Annotated[bool, typer.Option("--spot/--on-demand", help="Spot or on-demand offers.")] = False,
        region: Annotated[Optional[list[str]], typer.Option(help="Only these regions (repeatable).")] = None,
        provider: Annotated[Optional[list[str]], typer.Option(help="Only these providers (repeatable).")] = None,
        limit: int = 15,
        as_json: JsonOpt = False) -> None:
    """The cheapest offers for an accelerator request, from the latest prices."""
    cfg = ctx.obj.config()
    lf = offers.latest_offers(cfg.open_store(), max_age=timedelta(hours=cfg.prices.max_age_hours),
                              rates=cfg.prices.rates)
    q = offers.Query(accelerator, count, "spot" if spot else "on_demand", tuple(region or ()), tuple(provider or ()))
    rows = offers.select(lf, q).head(limit).collect()
    if as_json:
        _emit_json(rows.with_columns(pl.col("observed_at").dt.to_string()).to_dicts())
        return
    if rows.is_empty():
        err.print("no offer matches; import prices first (`finops prices import-catalog`) or widen the query")
        raise typer.Exit(1)
    table = Table(title=f"Cheapest {'spot' if spot else 'on-demand'} offers"
                        + (f" for {accelerator}" if accelerator else "") + (f" x{count:g}" if count else ""))
    for c in ("provider", "region", "zone", "instance type", "accelerators", "vCPUs", "memory GB", "$/hour",
              "observed", "note"):
        table.add_column(c, justify="right" if c in ("vCPUs", "memory GB", "$/hour") else "left")
    for r in rows.iter_rows(named=True):
        acc = f"{r['accelerator_name']} x{r['accelerator_count']:g}" if r["accelerator_name"] else "-"
        note = ", ".join(x for x in ("stale" if r["stale"] else None, r["flag"]) if x)
        table.add_row(r["provider"], r["region"], r["zone"] or "", r["instance_type"], acc,
                      f"{r['vcpus'] or 0:g}", f"{r['memory_gb'] or 0:g}", f"{r['price_per_hour']:.4f}",
                      r["observed_at"].strftime("%Y-%m-%d %H:%M"), note)
    out.print(table)


# -- validate --------------------------------------------------------------------------------------
@app.command()
@_guard
def validate(ctx: typer.Context,
             paths: Annotated[Optional[list[str]], typer.Argument(help="Files to check without ingesting; "
                              "default: the whole billing store.")] = None,
             as_json: JsonOpt = False) -> None:
    """Check FOCUS rules (mandatory nulls, enumerations, periods, currencies) on files or the store."""
    from collectors.files import load, local_copy, read_raw

    results: dict[str, list[focus.Problem]] = {}
    if paths:
        for p in paths:
            with local_copy(p) as (local, _):
                results[p] = focus.validate(load(read_raw(local, p), p))
    else:
        store = ctx.obj.store()
        results[store.url] = focus.validate(store.scan("billing", schema=focus.empty_frame().schema))
    bad = {k: v for k, v in results.items() if any(p.severity == "error" for p in v)}
    if as_json:
        _emit_json({k: [p.__dict__ for p in v] for k, v in results.items()})
    else:
        for name, problems in results.items():
            if not problems:
                out.print(f"[green]ok[/] {name}")
                continue
            table = Table(title=f"{name}: {len(problems)} problem(s)")
            for c in ("severity", "column", "rule", "rows", "examples"):
                table.add_column(c)
            for p in problems:
                table.add_row(p.severity, p.column, p.rule, f"{p.rows:,}", ", ".join(p.examples))
            out.print(table)
    if bad:
        raise typer.Exit(1)


# -- generate and demo -----------------------------------------------------------------------------
@app.command()
@_guard
def generate(out_dir: Annotated[Path, typer.Option("--out", help="Folder for the export files.")] = Path("exports"),
             rows: Annotated[Optional[int], typer.Option(help="Exact row count (default: follows from days).")] = None,
             days: int = 90, teams: int = 6, seed: int = 0,
             grain: Annotated[str, typer.Option(help="daily or hourly")] = "daily",
             fmt: Annotated[str, typer.Option("--format", help="parquet, csv or csv.gz")] = "parquet",
             as_json: JsonOpt = False) -> None:
    """Generate realistic FOCUS exports of a multi-cloud ML organisation (deterministic from --seed)."""
    from finops.generate import write_exports

    if grain not in ("daily", "hourly"):
        _fail(f"--grain {grain!r}: expected daily or hourly")
    if fmt not in ("parquet", "csv", "csv.gz"):
        _fail(f"--format {fmt!r}: expected parquet, csv or csv.gz")
    if rows is not None and rows < 0:
        _fail(f"--rows {rows}: expected a count >= 0")

    with _progress() as progress:
        progress.add_task(f"generating into {out_dir}", total=None)
        paths = write_exports(out_dir, fmt=fmt, rows=rows, days=days, teams=teams, seed=seed, grain=grain)
    if as_json:
        _emit_json({"files": [str(p) for p in paths]})
    else:
        err.print(f"wrote {len(paths)} file(s) under {out_dir}")


@app.command()
@_guard
def demo(ctx: typer.Context,
         days: int = 90, teams: int = 6, seed: int = 0,
         work: Annotated[Path, typer.Option(help="Folder for generated exports.")] = Path("demo-exports"),
         as_json: JsonOpt = False) -> None:
    """End to end on generated data: FOCUS exports for 90 days, 6 teams, three clouds → ingest → totals;
    the shipped price catalog → price history → cheapest offers."""
    from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir
    from collectors.files import ingest as run_ingest
    from finops.generate import write_exports

    store = ctx.obj.store()
    steps = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err)
    with steps:
        t = steps.add_task(f"generating {days} days for {teams} teams", total=None)
        paths = write_exports(work, fmt="parquet", days=days, teams=teams, seed=seed)
        steps.update(t, description=f"generated {len(paths)} export files in {work}", total=1, completed=1)
        t = steps.add_task("ingesting", total=len(paths))
        result = run_ingest(store, paths, progress=lambda p, s: steps.advance(t) if s == "staged" else None)
        steps.update(t, description=f"ingested {result.rows:,} rows into {store.url}")
        t = steps.add_task("importing the price catalog snapshot", total=None)
        known = offers.record(store, read_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE,
                                                   interruption=ctx.obj.config().prices.interruption))
        steps.update(t, description=f"{known:,} GPU/TPU offers known (catalog snapshot of {SNAPSHOT_DATE:%Y-%m-%d})",
                     total=1, completed=1)
    totals = summarise(store.manifests("billing"), ("provider", "billing_period"))
    cheapest = offers.select(offers.latest_offers(store), offers.Query("A100", 8, "spot")).head(3).collect()
    if as_json:
        _emit_json({"store": store.url, "totals": totals, "offers": known,
                    "cheapest_a100x8_spot": cheapest.select("provider", "region", "instance_type",
                                                            "price_per_hour").to_dicts()})
        return
    table = Table(title=f"Billing in {store.url} by provider and month")
    for c in ("provider", "month", "rows", "BilledCost", "EffectiveCost"):
        table.add_column(c, justify="right" if c in ("rows", "BilledCost", "EffectiveCost") else "left")
    for r in totals:
        table.add_row(r["provider"], r["billing_period"], f"{r['rows']:,}", _money(r["BilledCost"]),
                      _money(r["EffectiveCost"]))
    out.print(table)
    for r in cheapest.iter_rows(named=True):
        out.print(f"cheapest 8x A100 spot: {r['provider']} {r['region']} {r['instance_type']} "
                  f"${r['price_per_hour']:.2f}/h", highlight=False)
    err.print("next: `finops store info`, `finops validate`, `finops prices show --accelerator H100 --count 8`")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
