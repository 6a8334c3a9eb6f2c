"""The ``finops`` command line (typer + rich): parses arguments, calls :mod:`finops.services`, prints what
they return. Every command that prints a table also takes ``--json``.

Errors a user can cause are shown in one place, :func:`main`: one line naming what to fix and exit status 2
(``--debug`` shows the traceback). Services are imported inside the commands that use them, so a command
pays only for its own imports (polars, the SDKs and the solver take seconds to load).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from finops import config as config_mod
from finops import providers

if TYPE_CHECKING:
    from finops.services.progress import Step

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  pretty_exceptions_enable=False,
                  help="finops: multi-cloud cost engine for ML work. Collect billing into FOCUS, "
                       "place workloads, allocate spend.")
store_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain the billing and price store.")
app.add_typer(store_app, name="store")
collect_app = typer.Typer(no_args_is_help=True, help="Collect from the clouds' APIs into the store.")
app.add_typer(collect_app, name="collect")
prices_app = typer.Typer(no_args_is_help=True, help="Spot and on-demand GPU/TPU prices, kept as history.")
app.add_typer(prices_app, name="prices")
queue_app = typer.Typer(no_args_is_help=True, help="The workload queue: add specs, list, cancel.")
app.add_typer(queue_app, name="queue")
report_app = typer.Typer(no_args_is_help=True, help="Chargeback reports that reconcile to the bill.")
app.add_typer(report_app, name="report")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="Where the heavy work runs: local (this process) or ray (the cluster of \\[engine] "
    "address). Default: \\[engine] kind, local.")]


class _Options:
    config_path: Path | None = None
    debug: bool = False


OPTIONS = _Options()


def _config() -> config_mod.Config:
    return config_mod.load(OPTIONS.config_path)


@app.callback()
def _main(config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file (default: "
                            "$FINOPS_CONFIG, else ./finops.toml, else built-in defaults).")] = None,
          debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error and the cloud SDKs' "
                                              "own log messages.")] = False) -> None:
    OPTIONS.config_path, OPTIONS.debug = config, debug
    _logging(debug)


# The clouds' SDKs log their own account of a failure (azure-identity's multi-line credential report,
# botocore's retries) before we say it in one line: shown with --debug only.
SDK_LOGGERS = ("azure", "google", "botocore", "boto3", "urllib3", "s3fs", "gcsfs", "adlfs", "httpx")


def _logging(debug: bool) -> None:
    """Our warnings as one line each on stderr; the SDKs' only with ``--debug``."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s")
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.CRITICAL)


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can cause (bad input, configuration, options, a failed call to a cloud): shown as
    one line, exit status 2."""
    from collectors.billing import CollectError
    from collectors.files import IngestError
    from finops import allocation, delivery, focus, offers, reports, workloads
    from finops.engine import EngineError
    from finops.ledger import LedgerError
    from finops.periods import PeriodError
    from finops.services.chargeback import ReportOptionError
    from finops.services.collect import ChoiceError
    from finops.services.dashboard import DashboardError
    from finops.services.demo import GenerateError
    from finops.services.reconcile import ReconcileError
    from finops.store import StoreError
    from placement.candidates import PlacementError

    return (config_mod.ConfigError, IngestError, StoreError, focus.FocusError, offers.OfferError, CollectError,
            LedgerError, workloads.SpecError, PlacementError, reports.ReportError, allocation.AllocationError,
            delivery.DeliveryError, PeriodError, ReportOptionError, ChoiceError, GenerateError,
            DashboardError, ReconcileError, EngineError)


def main() -> None:
    """The ``finops`` entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:
        if OPTIONS.debug or not isinstance(e, user_errors()):
            raise
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _money(v: Decimal | str, places: int = 2) -> str:
    return f"{Decimal(v):,.{places}f}"


def _emit_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


class _Bars:
    """:class:`finops.services.progress.Progress` drawn with rich: bars on stderr, gone when done
    (``keep``: each finished step stays as a line)."""

    def __init__(self, keep: bool = False) -> None:
        columns = ((SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) if keep else
                   (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn()))
        # Bars that vanish are drawn only on a terminal: in a pipe or a log they would leave blank lines.
        self.rich = Progress(*columns, console=err, transient=not keep, disable=not keep and not err.is_terminal)

    def __enter__(self) -> Self:
        self.rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rich.stop()

    def start(self, description: str, total: int | None = None) -> Step:
        return _Bar(self.rich, self.rich.add_task(description, total=total))


class _Bar:
    def __init__(self, rich: Progress, task: Any) -> None:
        self.rich, self.task = rich, task

    def update(self, description: str) -> None:
        self.rich.update(self.task, description=description)

    def advance(self, n: int = 1) -> None:
        self.rich.advance(self.task, n)

    def finish(self, description: str | None = None) -> None:
        total = self.rich.tasks[self.task].total or 1
        self.rich.update(self.task, total=total, completed=total, description=description)


def _table(title: str, columns: list[str], rows: list[list[str]], right: set[str] | None = None) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right" if c in (right or set()) else "left")
    for r in rows:
        table.add_row(*r)
    return table


# -- init ------------------------------------------------------------------------------------------
@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the example.")] = Path(config_mod.DEFAULT_FILE),
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a commented example configuration, and an example queue (jobs.yaml) beside it if there is none."""
    from finops.services import setup as svc

    try:
        res = svc.init(path, force=force)
    except svc.SetupError as e:
        _fail(str(e))
        return
    for p in res.written:
        err.print(f"wrote {p}")
    for p in res.kept:
        err.print(f"kept {p} (it exists)")


# -- ingest and validate ---------------------------------------------------------------------------
@app.command()
def ingest(paths: Annotated[list[str], typer.Argument(
               help="FOCUS or native export files (CSV, CSV.gz, Parquet; local or s3://), or folders of them.")],
           provider: Annotated[str | None, typer.Option(
               help=f"Expect rows of this provider only ({providers.expected()}).")] = None,
           replace: Annotated[bool, typer.Option(
               "--replace", help="Replace partitions that hold rows from other files (default: refuse).")] = False,
           engine: EngineOpt = None, as_json: JsonOpt = False) -> None:
    """Ingest FOCUS exports into the billing store. All files or none: one bad file writes nothing."""
    from finops.services import ingest as svc

    with _Bars() as bars:
        done = svc.ingest(_config(), paths, provider=provider, replace=replace, engine=engine, progress=bars)
    res = done.result
    if as_json:
        _emit_json({"files": [{"file": f.path, "rows": f.rows, "BilledCost": str(f.sums["BilledCost"]),
                               "EffectiveCost": str(f.sums["EffectiveCost"]), "sha256": f.source.sha256,
                               "warnings": f.warnings} for f in res.files],
                    "skipped_duplicates": res.skipped, "seconds": round(done.seconds, 3),
                    "partitions": [m.partition for m in res.manifests]})
        return
    out.print(_table(f"Ingested {res.rows:,} rows in {done.seconds:.1f}s into {len(res.manifests)} partition(s)",
                     ["file", "rows", "BilledCost", "EffectiveCost"],
                     [[f.path, f"{f.rows:,}", _money(f.sums["BilledCost"]), _money(f.sums["EffectiveCost"])]
                      for f in res.files], {"rows", "BilledCost", "EffectiveCost"}))
    for s in res.skipped:
        err.print(f"[yellow]skipped[/] {s}: same content as a file already in this run")
    for f in res.files:
        for w in f.warnings:
            err.print(f"[yellow]warning[/] {f.path}: {w}", highlight=False)


@app.command()
def validate(paths: Annotated[list[str] | None, typer.Argument(help="Files to check without ingesting; "
                              "default: the whole billing store.")] = None,
             engine: EngineOpt = None, as_json: JsonOpt = False) -> None:
    """Check FOCUS rules (mandatory nulls, enumerations, periods, currencies) on files or the store."""
    from finops.services import ingest as svc

    with _Bars() as bars:
        checked = svc.validate(_config(), paths or [], engine=engine, progress=bars)
    if as_json:
        _emit_json({k: [p.__dict__ for p in v] for k, v in checked.problems.items()})
    else:
        for name, problems in checked.problems.items():
            if not problems:
                out.print(f"[green]ok[/] {name}")
                continue
            out.print(_table(f"{name}: {len(problems)} problem(s)", ["severity", "column", "rule", "rows", "examples"],
                             [[p.severity, p.column, p.rule, f"{p.rows:,}", ", ".join(p.examples)] for p in problems]))
    if checked.failed:
        raise typer.Exit(1)


# -- store -----------------------------------------------------------------------------------------
@store_app.command("info")
def store_info(dataset: Annotated[str, typer.Option(help="billing, prices or offers")] = "billing",
               as_json: JsonOpt = False) -> None:
    """Partitions, rows and cost totals, from the store's own records (no data scan)."""
    from finops.services import store as svc

    info = svc.info(_config(), dataset)
    if as_json:
        _emit_json({"store": info.store, "dataset": dataset,
                    "partitions": [{**m.partition, "rows": m.rows, **m.sums, "files": len(m.files),
                                    "written_at": m.written_at, "sources": m.sources} for m in info.partitions],
                    "totals": info.totals(("provider",))})
        return
    if not info.partitions:
        err.print(f"{info.store}: dataset {dataset!r} is empty. Try `finops demo` or `finops ingest FILE`.")
        return
    first = info.partitions[0]
    keys, sums = list(first.partition), list(first.sums)
    rows = [[*m.partition.values(), f"{m.rows:,}", *(_money(v) for v in m.sums.values()),
             m.written_at[:16].replace("T", " ")] for m in info.partitions]
    table = _table(f"{info.store} — {dataset}: {len(info.partitions)} partition(s)",
                   [k.removeprefix("billing_") for k in keys] + ["rows", *sums, "written"], rows,
                   {"rows", *sums, "written"})
    total = info.totals()[0]
    table.add_section()
    table.add_row(*(["total"] + [""] * (len(keys) - 1)), f"{total['rows']:,}", *(_money(total[k]) for k in sums), "")
    out.print(table)


@store_app.command("history")
def store_history(dataset: Annotated[str, typer.Option(help="billing, prices or offers")] = "billing",
                  as_json: JsonOpt = False) -> None:
    """The dataset's versions: when, what, rows and partitions (name one with `--as-of`)."""
    from finops.services import store as svc

    versions = svc.history(_config(), dataset)
    if as_json:
        _emit_json([asdict(v) for v in versions])
        return
    out.print(_table(f"{dataset}: {len(versions)} version(s)", ["version", "time (UTC)", "operation", "rows",
                                                                 "partitions", "run"],
                     [[str(v.version), f"{v.timestamp:%Y-%m-%d %H:%M:%S}", v.operation,
                       "" if v.rows is None else f"{v.rows:,}", str(len(v.partitions)), v.run_id or ""]
                      for v in versions], {"version", "rows", "partitions"}))


@store_app.command("optimize")
def store_optimize(dataset: Annotated[list[str] | None, typer.Option(help="Only this dataset (repeatable; "
                                                                   "default: all).")] = None,
                   as_json: JsonOpt = False) -> None:
    """Merge small files (e.g. hourly price appends) partition by partition; data and history unchanged."""
    from finops.services import store as svc

    with _Bars() as bars:
        done = svc.optimize(_config(), dataset or [], progress=bars)
    if as_json:
        _emit_json([asdict(d) for d in done])
        return
    out.print(_table("Store optimized", ["dataset", "partitions merged", "files before", "files after", "version"],
                     [[d.dataset, str(d.partitions), str(d.files_before), str(d.files_after),
                       "" if d.version is None else str(d.version)] for d in done],
                     {"partitions merged", "files before", "files after", "version"}))


@store_app.command("vacuum")
def store_vacuum(retain_hours: Annotated[float, typer.Option("--retain-hours", help="Keep every file a version "
                                                             "of the last N hours needs (time travel reaches "
                                                             "back that far; at least 24 without --force).")] = 168,
                 dataset: Annotated[str | None, typer.Option(help="Only this dataset (default: all).")] = None,
                 force: Annotated[bool, typer.Option("--force", help="Allow less than 24 hours: only when "
                                                     "nothing else reads or writes the store.")] = False,
                 dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
                 as_json: JsonOpt = False) -> None:
    """Delete data files no version of the last --retain-hours needs, and files a crashed writer left."""
    from finops.services import store as svc

    res = svc.vacuum(_config(), retain_hours, dataset, force=force, dry_run=dry_run)
    if as_json:
        _emit_json({"retain_hours": res.retain_hours, "dry_run": res.dry_run, "removed": res.removed})
        return
    verb = "would remove" if res.dry_run else "removed"
    for name, files in res.removed.items():
        err.print(f"{name}: {verb} {len(files)} file(s)")


@store_app.command("migrate")
def store_migrate(as_json: JsonOpt = False) -> None:
    """Convert a store written by finops before Delta Lake (per-partition _manifest.json) in place, checking
    rows and cost totals per partition before and after, to the cent."""
    from finops.services import store as svc

    with _Bars() as bars:
        res = svc.migrate(_config(), progress=bars)
    if as_json:
        _emit_json(asdict(res))
        return
    out.print(_table(f"Migrated {res.url}", ["dataset", "partitions", "files", "rows", "BilledCost", "note"],
                     [[d.dataset, str(d.partitions), str(d.files), f"{d.rows:,}",
                       _money(d.sums["BilledCost"]) if "BilledCost" in d.sums else "",
                       "already Delta" if d.already_delta else ""] for d in res.datasets],
                     {"partitions", "files", "rows", "BilledCost"}))


# -- collection ------------------------------------------------------------------------------------
@collect_app.command("prices")
def collect_prices(
        provider: Annotated[list[str] | None, typer.Option(help=f"{providers.expected()} (repeatable; default: "
                            "the providers in finops.toml, else all three).")] = None,
        region: Annotated[list[str] | None, typer.Option(help="Only these regions (repeatable; default: "
                          "each provider's regions in finops.toml, else a few GPU regions).")] = None,
        as_json: JsonOpt = False) -> None:
    """Collect current spot and on-demand GPU/TPU prices from AWS, GCP and Azure into the price history."""
    from finops.services import collect as svc

    with _Bars() as bars:
        res = svc.collect_prices(_config(), provider or [], region or [], progress=bars)
    cols = ["provider", "observations", "spot", "on_demand", "flagged", "offers_known", "seconds"]
    if as_json:
        _emit_json({"collected": [asdict(r) for r in res.collected], "failed": res.failed})
    else:
        out.print(_table("Prices collected", cols, [[str(getattr(r, c)) for c in cols] for r in res.collected],
                         set(cols[1:])))
    for f in res.failed:
        err.print(f"[bold red]error:[/] {escape(f)} (nothing recorded for it; the history is unchanged)",
                  highlight=False)
    if res.failed:
        raise typer.Exit(2)


@collect_app.command("billing")
def collect_billing(
        provider: Annotated[list[str] | None, typer.Option(help=f"{providers.expected()} (repeatable; default: every "
                            "provider in finops.toml with billing sources).")] = None,
        since: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m"], help="Re-read from this "
                         "month on (default: after each source's cursor; the previous and current month "
                         "always).")] = None,
        as_json: JsonOpt = False) -> None:
    """Collect billing data from the sources in finops.toml (CUR, Cost Explorer, BigQuery export, Cost
    Management) into the store, month by month; each finished month is kept even if a later one fails."""
    from finops.services import collect as svc

    with _Bars() as bars:
        res = svc.collect_billing(_config(), provider or [], since.date() if since else None, progress=bars)
    if as_json:
        _emit_json({"collected": [asdict(r) for r in res.collected], "failed": res.failed})
    else:
        out.print(_table("Billing collected", ["provider", "source", "month", "rows", "billed_cost", "effective_cost"],
                         [[r.provider, r.source, r.month, f"{r.rows:,}", _money(r.billed_cost),
                           _money(r.effective_cost)]
                          for r in res.collected], {"rows", "billed_cost", "effective_cost"}))
    for f in res.failed:
        err.print(f"[bold red]error:[/] {escape(f)} (months before it are kept; the next run resumes there)",
                  highlight=False)
    if res.failed:
        raise typer.Exit(2)


@app.command()
def accounts(endpoint: Annotated[str | None, typer.Option(help="Cloud Billing API root other than Google's "
                                                              "(a proxy or local emulator).")] = None,
             include_closed: Annotated[bool, typer.Option(help="Also list closed billing accounts.")] = False,
             as_json: JsonOpt = False) -> None:
    """Discover the GCP billing accounts the credentials can see, and their projects (Cloud Billing API),
    to fill \\[providers.gcp] in finops.toml."""
    from finops.services import collect as svc

    found = svc.gcp_accounts(endpoint, include_closed)
    if as_json:
        _emit_json([asdict(a) for a in found])
        return
    out.print(_table("GCP billing accounts", ["billing_account", "name", "open", "currency", "projects"],
                     [[a.billing_account, a.name, "yes" if a.open else "no", a.currency or "", ", ".join(a.projects)]
                      for a in found]))


# -- prices ----------------------------------------------------------------------------------------
@prices_app.command("import-catalog")
def prices_import_catalog(
        directory: Annotated[Path | None, typer.Argument(help="Folder with <cloud>/vms.csv in SkyPilot's layout "
                             "(default: the snapshot shipped with finops).")] = None,
        observed_at: Annotated[datetime | None, typer.Option(help="When the prices were observed (default: the "
                               "catalog's own date — the snapshot's, or a SOURCES.md's; a catalog without one is "
                               "imported flagged 'undated' and never placed on).")] = None,
        as_json: JsonOpt = False) -> None:
    """Import price catalogs in SkyPilot's CSV layout into the price history."""
    from finops.services import prices as svc

    res = svc.import_catalog(_config(), directory, observed_at)
    dates = {p: {"observed_at": d.isoformat(), "from": src} for p, (d, src) in res.dates.items()}
    if as_json:
        _emit_json({"imported": res.counts, "offers_known": res.offers_known, "directory": str(res.directory),
                    "dates": dates, "problems": res.problems})
        return
    out.print(_table(f"Imported {res.rows:,} price observations from {res.directory}",
                     ["provider", "market", "offers", "prices of"],
                     [[str(r["provider"]), str(r["market"]), f"{r['len']:,}",
                       _dated(res.dates.get(str(r["provider"])))] for r in res.counts], {"offers"}))
    for problem in res.problems[:20]:
        err.print(f"[yellow]warning[/] {escape(problem)}", highlight=False)
    if len(res.problems) > 20:
        err.print(f"[yellow]warning[/] … and {len(res.problems) - 20:,} more (`--json` lists them all)")


def _dated(when: tuple[datetime, str] | None) -> str:
    if when is None:
        return ""
    day, source = when
    return "undated (flagged)" if source == "undated" else f"{day:%Y-%m-%d} ({source})"


@prices_app.command("show")
def prices_show(
        accelerator: Annotated[str | None, typer.Option(help="e.g. A100, A100-80GB, H100, L4, TPU-v5e")] = None,
        count: Annotated[float | None, typer.Option(help="Accelerators per machine.")] = None,
        spot: Annotated[bool, typer.Option("--spot/--on-demand", help="Spot or on-demand offers.")] = False,
        region: Annotated[list[str] | None, typer.Option(help="Only these regions (repeatable).")] = None,
        provider: Annotated[list[str] | None, typer.Option(help="Only these providers (repeatable).")] = None,
        limit: int = 15,
        as_json: JsonOpt = False) -> None:
    """The cheapest offers for an accelerator request, from the latest prices."""
    import polars as pl

    from finops.services import prices as svc

    rows = svc.cheapest(_config(), accelerator, count, spot, region or [], provider or [], limit)
    if as_json:
        _emit_json(rows.with_columns(pl.col("observed_at").dt.to_string()).to_dicts())
        return
    if rows.is_empty():
        err.print("no offer matches; import prices first (`finops prices import-catalog`) or widen the query")
        raise typer.Exit(1)
    body = []
    for r in rows.iter_rows(named=True):
        acc = f"{r['accelerator_name']} x{r['accelerator_count']:g}" if r["accelerator_name"] else "-"
        note = ", ".join(x for x in ("stale" if r["stale"] else None, r["flag"]) if x)
        body.append([r["provider"], r["region"], r["zone"] or "", r["instance_type"], acc, f"{r['vcpus'] or 0:g}",
                     f"{r['memory_gb'] or 0:g}", f"{r['price_per_hour']:.4f}",
                     r["observed_at"].strftime("%Y-%m-%d %H:%M"), note])
    title = f"Cheapest {'spot' if spot else 'on-demand'} offers" + (f" for {accelerator}" if accelerator else "")
    out.print(_table(title
                     + (f" x{count:g}" if count else ""),
                     ["provider", "region", "zone", "instance type", "accelerators", "vCPUs", "memory GB", "$/hour",
                      "observed", "note"], body, {"vCPUs", "memory GB", "$/hour"}))


# -- report ----------------------------------------------------------------------------------------
@report_app.command("chargeback")
def report_chargeback(
        week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W47 (default: the last complete "
                        "week, UTC).")] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="Comma-separated: csv, xlsx, html "
                       "(default: \\[reports] formats).")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the report (default: "
                           "\\[reports] out).")] = None,
        by: Annotated[str, typer.Option(help="team or project")] = "team",
        as_of: Annotated[str | None, typer.Option("--as-of", help="The bill as it stood at a store version "
                         "(a number, see `finops store history`) or a time (2026-11-30T06:00:00Z): reproduces a "
                         "report exactly as it was sent.")] = None,
        send: Annotated[bool, typer.Option("--send", help="Also e-mail it and post it to the webhook "
                        "configured under \\[reports].")] = False,
        engine: EngineOpt = None, as_json: JsonOpt = False) -> None:
    """Weekly chargeback per team (or project): direct, shared, total, week over week, month to date against
    budget, top services, GPU hours, spot savings, and a reconciliation to the bill per provider."""
    from finops.periods import Week
    from finops.services import chargeback as svc

    cfg = _config()
    formats = [f.strip() for f in fmt.split(",") if f.strip()] if fmt else list(cfg.reports.formats)
    svc.check_options(cfg, formats, by, send)
    wk = Week.parse(week) if week else None
    with _Bars() as bars:
        res = svc.chargeback(cfg, wk, by=cast("svc.Dimension", by), formats=formats, out=out_dir, send=send,
                             as_of=_as_of(as_of), engine=engine, progress=bars)
    cb = res.chargeback
    for w in cb.warnings:
        err.print(f"[yellow]warning[/] {escape(w)}", highlight=False)
    if as_json:
        _emit_json({**cb.to_json(), "files": [str(p) for p in res.files], "sent": res.sent})
        return
    _print_chargeback(cb)
    err.print(f"wrote {len(res.files)} file(s) to {res.files[0].parent}" if res.files else "nothing written")
    for s in res.sent:
        err.print(f"sent: {s}")


def _as_of(text: str | None) -> int | datetime | None:
    """``--as-of``: a store version (digits) or an ISO time (UTC unless it says otherwise)."""
    from datetime import UTC

    if text is None:
        return None
    if text.strip().isdecimal():  # not isdigit: int() refuses digits such as ² that isdigit() accepts
        return int(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a store version (a number) or a time such as "
                                 "2026-11-30T06:00:00Z", param_hint="--as-of") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _print_chargeback(cb: Any) -> None:
    dim = cb.dimension
    cols = (dim, "direct", "shared", "total", "previous_week", "change_pct", "month_to_date", "budget_used_pct",
            "spot_savings", "gpu_hours", "tpu_chip_hours")
    rows = [["" if r[c] is None else (_money(r[c]) if isinstance(r[c], Decimal) else
                                     (f"{r[c]:,.1f}" if isinstance(r[c], float) else str(r[c]))) for c in cols]
            for r in cb.summary.iter_rows(named=True)]
    out.print(_table(f"Chargeback {cb.week.label} by {dim} ({cb.basis}, {cb.currency})",
                     [c.replace("_", " ") for c in cols], rows, {c.replace("_", " ") for c in cols[1:]}))
    out.print(_table("Reconciliation: the sum over teams against the store's total for the week",
                     ["provider", "rows", "store total", "allocated", "difference"],
                     [[r["provider"], f"{r['rows']:,}", _money(r["store_total"]), _money(r["allocated"]),
                       _money(r["difference"])] for r in cb.reconciliation.iter_rows(named=True)],
                     {"rows", "store total", "allocated", "difference"}))


# -- queue and place ------------------------------------------------------------------------------
@queue_app.command("add")
def queue_add(files: Annotated[list[Path], typer.Argument(
                  help="YAML workload specs (one, a list, or workloads: [...]).")],
              as_json: JsonOpt = False) -> None:
    """Queue the workloads in FILES: all of them or, on any error, none."""
    from finops.services import queue as svc

    queued = svc.add(_config(), files)
    if as_json:
        _emit_json({"queued": [{"id": q.id, "name": q.spec.name, "team": q.spec.team, "source": q.source}
                               for q in queued]})
        return
    err.print(f"queued {len(queued)} workload(s): ids {queued[0].id}–{queued[-1].id}" if queued else "nothing to queue")


@queue_app.command("list")
def queue_list(state: Annotated[list[str] | None, typer.Option(help="Only these states (repeatable).")] = None,
               as_json: JsonOpt = False) -> None:
    """Workloads in the queue and their state."""
    from finops.services import queue as svc

    listed = svc.listing(_config(), state)
    for note in listed.notes:
        err.print(f"[yellow]note[/] {escape(note)}", highlight=False)
    rows = listed.workloads
    data = [{"id": w.id, "name": w.name, "team": w.team, "kind": w.kind, "priority": w.priority, "state": w.state,
             "accelerators": (f"{'/'.join(w.spec.accelerators.names())} x{w.spec.accelerators.count:g}"
                              if w.spec.accelerators else "cpu"),
             "source": w.source, "created_at": w.created_at.isoformat()} for w in rows]
    if as_json:
        _emit_json(data)
        return
    cols = ["id", "name", "team", "kind", "priority", "state", "accelerators"]
    out.print(_table(f"Queue: {len(rows)} workload(s)", cols, [[str(r[c]) for c in cols] for r in data],
                     {"id", "priority"}))


@queue_app.command("cancel")
def queue_cancel(ids: Annotated[list[int], typer.Argument(help="Workload ids.")]) -> None:
    """Cancel workloads (all the given ids or none)."""
    from finops.services import queue as svc

    svc.cancel(_config(), ids)
    err.print(f"cancelled {', '.join(map(str, ids))}")


@app.command()
def place(dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print, record nothing.")] = False,
          as_json: JsonOpt = False) -> None:
    """Place every queued workload on the cheapest feasible offer, for the whole queue at once
    (capacity, team budgets, commitments, deadlines, residency); record the decisions with their prices."""
    from finops.services import queue as svc

    with _Bars() as bars:
        res = svc.place(_config(), dry_run=dry_run, progress=bars)
    _print_plan(res.run_id, res.plan, dry_run, as_json)


def _price_age(s: dict[str, Any]) -> str | None:
    """How old the prices behind a plan were: said every time, so months-old prices never look fresh."""
    if not s.get("prices_observed"):
        return None
    oldest, newest = (datetime.fromisoformat(t) for t in s["prices_observed"])
    hours = s["price_age_hours"]
    age = f"{hours:,.0f} hours" if hours < 72 else f"{hours / 24:,.0f} days"
    return f"prices observed {oldest:%Y-%m-%d %H:%M} – {newest:%Y-%m-%d %H:%M} UTC: up to {age} old"


def _print_plan(run_id: str, plan: Any, dry_run: bool, as_json: bool) -> None:
    from rich.markup import escape

    from finops.placements import Placed
    from placement.plan import summary

    s = summary(plan)
    if as_json:
        _emit_json({"run_id": run_id, "dry_run": dry_run, "summary": s,
                    "decisions": [d.to_json() | ({"note": plan.notes[d.workload_id]}
                                                 if d.workload_id in getattr(plan, "notes", {}) else {})
                                  for d in plan.decisions]})
        return
    table = Table(title=f"Placement {'(dry run) ' if dry_run else ''}{run_id}: {s['placed']} placed, "
                        f"{s['unplaced']} unplaced, expected ${s['expected_cost']:,.2f} ({s['method']}: {s['status']})",
                  caption=_price_age(s))
    for c in ("workload", "team", "where", "market", "$/hour", "expected $", "saving $", "runner-up / reason"):
        table.add_column(c, justify="right" if "$" in c else "left")
    for d in plan.decisions:
        if not isinstance(d, Placed):
            table.add_row(escape(d.name), escape(d.team), "[red]unplaced[/]", "", "", "", "", escape(d.reason))
            continue
        where = " + ".join(f"{leg.provider} {leg.region} {leg.instance_type}"
                           + (f" x{leg.replicas}" if leg.replicas > 1 else "")
                           + (f" on {leg.target}" if leg.target else "") for leg in d.legs)
        ru = d.runner_up
        runner = f"{ru.provider} {ru.region} {ru.instance_type} ${ru.expected_cost:,.2f}" if ru else ""
        runner += f" ({plan.notes[d.workload_id]})" if d.workload_id in getattr(plan, "notes", {}) else ""
        saving = "" if d.saving is None else f"{d.saving:,.2f}"
        table.add_row(escape(d.name), escape(d.team), where, d.main.market, f"{d.main.price_per_hour:.4f}",
                      f"{d.expected_cost:,.2f}", saving, runner)
    out.print(table)
    if not dry_run:
        err.print(f"recorded run {run_id} in the ledger")


@app.command()
def placements(workload: Annotated[int | None, typer.Option(help="Only this workload id.")] = None,
               run: Annotated[str | None, typer.Option(help="Only this run id (as `finops place` prints it).")] = None,
               as_json: JsonOpt = False) -> None:
    """The placement decisions `finops place` recorded: where each workload went, at what price and expected
    cost (or why it was left out), by run, oldest first."""
    from finops.placements import Placed
    from finops.services import queue as svc

    res = svc.placements(_config(), workload, run)
    if as_json:
        _emit_json([{"id": r.id, "run_id": r.run_id, "decided_at": r.decided_at.isoformat(), **r.decision.to_json()}
                    for r in res.recorded])
    else:
        table = _table(f"Recorded placements: {len(res.recorded)}",
                       ["id", "run", "decided (UTC)", "workload", "team", "where", "market", "$/hour", "expected $",
                        "reason"], [], {"id", "$/hour", "expected $"})
        for r in res.recorded:
            d = r.decision
            head = [str(r.id), r.run_id, f"{r.decided_at:%Y-%m-%d %H:%M}", f"{d.workload_id} {escape(d.name)}",
                    escape(d.team)]
            if isinstance(d, Placed):
                where = " + ".join(f"{leg.provider} {leg.region} {leg.instance_type}"
                                   + (f" x{leg.replicas}" if leg.replicas > 1 else "") for leg in d.legs)
                table.add_row(*head, where, d.main.market, f"{d.main.price_per_hour:.4f}", f"{d.expected_cost:,.2f}",
                              "")
            else:
                table.add_row(*head, "[red]unplaced[/]", "", "", "", escape(d.reason))
        if res.recorded:
            out.print(table)
    for note in res.notes:
        err.print(escape(note), highlight=False)


# -- launch ----------------------------------------------------------------------------------------
@app.command()
def dispatch(dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and show the submissions; record "
                                                   "and launch nothing.")] = False,
             place: Annotated[bool, typer.Option("--place/--no-place", help="Place the queue first.")] = True,
             as_json: JsonOpt = False) -> None:
    """Place the queue, then launch every placed workload on its target, tagged finops-team /
    finops-workload / finops-placement. A capacity or quota answer blocks that offer for a while and
    re-places the workload; any other answer fails it with the provider's message."""
    from finops.services import launch as svc

    with _Bars() as bars:
        res = svc.dispatch(_config(), dry_run=dry_run, place=place, progress=bars)
    rep = res.report
    if as_json:
        _emit_json({"dry_run": dry_run, "rounds": rep.rounds, "placement_runs": res.placement_runs,
                    "launched": [{"workload_id": x.workload_id, "name": x.name, "team": x.team,
                                  "outcome": x.outcome, "target": x.target, "external_ids": list(x.external_ids),
                                  "message": x.message,
                                  "submissions": [asdict(s) for s in x.submissions]} for x in rep.launched],
                    "blocked": [asdict(b) for b in rep.blocked]})
    else:
        messages = {x.message for x in rep.launched}
        shared = messages.pop() if len(messages) == 1 else None  # said once below, not on every row
        rows = [[f"{x.workload_id} {escape(x.name)}", escape(x.team), x.target, _outcome(x.outcome),
                 escape(", ".join(x.external_ids) or _submission(x)),
                 *([] if len(messages) == 0 else [escape(x.message or "")])] for x in rep.launched]
        if rows:
            counts = ", ".join(f"{rep.count(o)} {o}" for o in ("submitted", "adopted", "requeued", "failed",
                                                                 "not launched", "skipped", "would submit")
                               if rep.count(o))
            out.print(_table(f"Dispatch{' (dry run)' if dry_run else ''}: {counts}",
                             ["workload", "team", "target", "outcome", "job",
                              *([] if len(messages) == 0 else ["message"])], rows))
            if shared:
                err.print(escape(shared), highlight=False)
        else:
            err.print("nothing to launch: no workload is placed (`finops queue add`, then `finops dispatch`)")
        for b in rep.blocked:
            err.print(f"blocked until {b.until:%Y-%m-%d %H:%M} UTC: {b.provider} {b.region} {b.instance_type} "
                      f"{b.market} on {b.target} ({escape(b.reason)})", highlight=False)
    if rep.count("not launched"):
        raise typer.Exit(2)


def _outcome(o: str) -> str:
    colour = {"submitted": "green", "adopted": "green", "requeued": "yellow", "failed": "red",
              "not launched": "red"}.get(o)
    return f"[{colour}]{o}[/]" if colour else o


def _submission(x: Any) -> str:
    return "; ".join(f"{s.name}: {s.instance_type} x{s.replicas} {s.market} in {s.provider} {s.region}"
                     for s in x.submissions)


jobs_app = typer.Typer(help="Launched workloads: their jobs on each target, kept in step with `jobs sync`.")
app.add_typer(jobs_app, name="jobs")


@jobs_app.callback(invoke_without_command=True)
def jobs_list(ctx: typer.Context,
              state: Annotated[list[str] | None, typer.Option(help="Only these states (repeatable).")] = None,
              as_json: JsonOpt = False) -> None:
    """The ledger's launched workloads (placed and later), each with its jobs, newest state first."""
    if ctx.invoked_subcommand is not None:
        return
    from finops.services import launch as svc

    res = svc.jobs(_config(), state)
    if as_json:
        _emit_json([{"workload_id": r.workload.id, "name": r.workload.name, "team": r.workload.team,
                     "state": r.workload.state, "attempt": r.workload.attempt, "last_error": r.workload.last_error,
                     "launches": [asdict(x) for x in r.launches]} for r in res.rows])
    else:
        rows = []
        for r in res.rows:
            w, last = r.workload, (r.launches[-1] if r.launches else None)
            rows.append([f"{w.id} {escape(w.name)}", escape(w.team), w.state, str(w.attempt),
                         last.target if last else "", escape(last.external_id) if last else "",
                         f"{last.provider} {last.region} {last.instance_type} {last.market}" if last else "",
                         str(sum(x.preemptions for x in r.launches)), escape(w.last_error or "")[:100]])
        if rows:
            out.print(_table(f"Jobs: {len(rows)}", ["workload", "team", "state", "attempt", "target", "job",
                                                     "where", "preemptions", "last error"], rows,
                             {"attempt", "preemptions"}))
        elif not res.notes:
            err.print("no launched workloads (`finops dispatch` launches placed work)")
    for note in res.notes:
        err.print(escape(note), highlight=False)


@jobs_app.command("sync")
def jobs_sync(as_json: JsonOpt = False) -> None:
    """Ask each target for its jobs' states and move the workloads: running, done, failed, preempted (back
    in the queue, counted, and learnt from); report jobs carrying our tags the ledger does not know."""
    from finops.services import launch as svc

    with _Bars() as bars:
        rep = svc.sync(_config(), progress=bars)
    if as_json:
        _emit_json({"synced": [{"workload_id": s.launch.workload_id, "job": s.launch.external_id,
                                "target": s.launch.target, "was": s.launch.state, "state": s.state,
                                "workload_state": s.workload_state, "message": s.message} for s in rep.synced],
                    "errors": rep.errors,
                    "orphans": [{"target": t, "job": j.external_id, "name": j.name, "tags": dict(j.tags)}
                                for t, j in rep.orphans]})
    else:
        changed = [s for s in rep.synced if s.state != s.launch.state]
        rows = [[f"{s.launch.workload_id}", escape(s.launch.name), s.launch.target, f"{s.launch.state} → {s.state}",
                 s.workload_state or "", escape(s.message or "")] for s in changed]
        if rows:
            out.print(_table(f"Synced {len(rep.synced)} live job(s): {len(changed)} changed",
                             ["workload", "job", "target", "job state", "workload", "message"], rows))
        else:
            err.print(f"synced {len(rep.synced)} live job(s): none changed state")
        for t, j in rep.orphans:
            err.print(f"[yellow]orphan:[/] {escape(j.name)} ({escape(j.external_id)}) on {t} carries our tags "
                      f"(placement {escape(j.tags.get('finops-placement', '?'))}) but the ledger has no launch "
                      "of it: left running; stop it on the provider if it is not wanted", highlight=False)
        for e in rep.errors:
            err.print(f"[red]could not sync:[/] {escape(e)}", highlight=False)
    if rep.errors:
        raise typer.Exit(2)


@app.command()
def reconcile(no_save: Annotated[bool, typer.Option("--no-save", help="Show only; keep the corrections "
                                                     "learnt before.")] = False,
              engine: EngineOpt = None, as_json: JsonOpt = False) -> None:
    """Predicted against billed cost of every launched workload (billed: the rows carrying its
    finops-placement tag), and the cost correction learnt per provider, target and instance family."""
    from finops.services import reconcile as svc

    with _Bars() as bars:
        res = svc.reconcile(_config(), save=not no_save, engine=engine, progress=bars)
    if as_json:
        _emit_json(res.to_json())
        return
    _print_reconciliation(res)


def _print_reconciliation(res: Any, top: int | None = None) -> None:
    """The reconciliation as tables (``top``: only the workloads billed most, and a total line)."""
    rows = []
    shown = res.workloads if top is None else sorted(res.workloads, key=lambda w: -(w.billed or 0))[:top]
    for w in shown:
        billed = "—" if w.billed is None else _money(w.billed) + (" *" if w.shared else "")
        pct = "" if w.variance_pct is None else f"{w.variance_pct:+.1f}%"
        rows.append([f"{w.workload_id} {escape(w.name)}", escape(w.team), escape(w.target), _money(w.predicted),
                     billed, pct, w.status])
    title = (f"Reconciliation: {len(res.workloads)} launched workload(s), {res.tagged_rows:,} tagged billing rows"
             + (f" (the {len(shown)} billed most)" if top is not None and len(shown) < len(res.workloads) else ""))
    out.print(_table(title, ["workload", "team", "target", "predicted $", "billed $", "variance", "status"],
                     rows, {"predicted $", "billed $", "variance"}))
    done = [w for w in res.workloads if w.billed is not None and w.complete]
    if top is not None and done:
        predicted, billed = sum(w.predicted for w in done), sum(w.billed for w in done)
        out.print(f"{len(done)} completed workloads: predicted ${_money(predicted)}, billed ${_money(billed)} "
                  f"({(billed - predicted) / predicted * 100 if predicted else 0:+.1f}%)", highlight=False)
    if any(w.shared for w in res.workloads):
        out.print("* a share of the Kubernetes nodes' cost: the pod's share of each node's accelerators over "
                  "the hours it ran")
    corr = [[c.provider, c.target, escape(c.family), f"{c.predicted:,.2f}", f"{c.billed:,.2f}", str(c.workloads),
             f"{c.factor:.3f}"] for c in res.corrections]
    if not corr:
        out.print("No corrections learnt yet: they come from workloads whose launches have ended and been billed.")
    else:
        out.print(_table("Corrections learnt (billed ÷ predicted; costing applies them, clamped)",
                         ["provider", "target", "family", "predicted $", "billed $", "workloads", "factor"], corr,
                         {"predicted $", "billed $", "workloads", "factor"}))
    for n in res.notes:
        err.print(f"[yellow]note:[/] {escape(n)}", highlight=False)


# -- generate and demo -----------------------------------------------------------------------------
@app.command()
def generate(out_dir: Annotated[Path, typer.Option("--out", help="Folder for the export files.")] = Path("exports"),
             rows: Annotated[int | None, typer.Option(help="Exact row count (default: follows from days).")] = None,
             days: int = 90, teams: int = 6, seed: int = 0,
             grain: Annotated[str, typer.Option(help="daily or hourly")] = "daily",
             fmt: Annotated[str, typer.Option("--format", help="parquet, csv or csv.gz; or native: each cloud's "
                            "own export (AWS CUR 2.0 Parquet, Azure cost-details CSV, BigQuery export "
                            "CSV)")] = "parquet",
             as_json: JsonOpt = False) -> None:
    """Generate realistic billing exports of a multi-cloud ML organisation (deterministic from --seed)."""
    from finops.services import demo as svc

    with _Bars() as bars:
        paths = svc.generate(out_dir, rows=rows, days=days, teams=teams, seed=seed, grain=grain, fmt=fmt,
                             progress=bars)
    if as_json:
        _emit_json({"files": [str(p) for p in paths]})
    else:
        err.print(f"wrote {len(paths)} file(s) under {out_dir}")


@app.command()
def demo(days: int = 90, teams: int = 6, seed: int = 0,
         work: Annotated[Path, typer.Option(help="Folder for generated exports.")] = Path("demo-exports"),
         once: Annotated[bool, typer.Option("--once", help="Stop after the pass (--json implies it); else the "
                                            "scheduler and the dashboard keep running until Ctrl-C.")] = False,
         as_json: JsonOpt = False) -> None:
    """End to end on generated data: native billing exports for 90 days, 6 teams, three clouds → ingest
    (mapped to FOCUS) → totals; the shipped price catalog → price history → cheapest offers; generated
    workloads → placement; last week's chargeback."""
    from finops.services import demo as svc

    with _Bars(keep=True) as bars:
        res = svc.demo(_config(), days=days, teams=teams, seed=seed, work=work, progress=bars)
    if as_json:
        _emit_json({"store": res.store, "totals": res.totals, "offers": res.offers_known,
                    "chargeback": [str(p) for p in res.report], "placement": res.placement,
                    "cheapest_a100x8_spot": res.cheapest,
                    "launch": None if res.loop is None else {
                        "days": res.loop.days, "launched": res.loop.launched, "preempted": res.loop.preempted,
                        "relaunched": res.loop.requeued, "states": res.loop.states,
                        "billed_rows": res.loop.billed_rows, "reconciliation": res.loop.reconciliation.to_json()},
                    "config": str(res.config) if res.config else res.config_source})
        return
    out.print(_table(f"Billing in {res.store} by provider and month",
                     ["provider", "month", "rows", "BilledCost", "EffectiveCost"],
                     [[r["provider"], r["billing_period"], f"{r['rows']:,}", _money(r["BilledCost"]),
                       _money(r["EffectiveCost"])] for r in res.totals], {"rows", "BilledCost", "EffectiveCost"}))
    for r in res.cheapest:
        out.print(f"cheapest 8x A100 spot: {r['provider']} {r['region']} {r['instance_type']} "
                  f"${r['price_per_hour']:.2f}/h", highlight=False)
    if res.report:
        out.print(f"last week's chargeback: {res.report[0].parent}/", highlight=False)
    if res.config is not None:
        again = ("finops report chargeback" if res.config == Path(config_mod.DEFAULT_FILE)
                 else f"finops -c {res.config} report chargeback")
        out.print(f"its rules (the generated teams, accounts and shared pool) are in {res.config}: "
                  f"`{again}` reproduces it", highlight=False)
    elif res.report:
        out.print(f"allocated by the teams in {res.config_source}: `finops report chargeback` reproduces it",
                  highlight=False)
    if res.loop is not None:
        lp = res.loop
        out.print(f"launched {lp.launched} workloads on the simulated cloud; over {lp.days} simulated days "
                  f"{lp.preempted} spot preemptions put work back in the queue ({lp.requeued} relaunched); "
                  + ", ".join(f"{n} {s}" for s, n in sorted(lp.states.items())), highlight=False)
        _print_reconciliation(lp.reconciliation, top=10)
    err.print("next: `finops store info`, `finops validate`, `finops jobs`, `finops reconcile`, "
              "`finops prices show --accelerator H100 --count 8`")
    if not once:
        from finops.services import scheduler as sched_svc

        after = config_mod.load(res.config) if res.config is not None else _config()  # the rules it wrote
        sched_svc.serve_after_demo(after, lambda line: out.print(line, highlight=False))


# -- dashboard ------------------------------------------------------------------------------------
@app.command()
def dashboard(host: Annotated[str, typer.Option(help="Address to listen on (anything but loopback needs "
                                                "[dashboard] login).")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501) -> None:
    """Serve the Streamlit dashboard: spend by team, the weekly chargeback, accelerators, placements, budgets
    and prices, read from the store and the ledger. Runs until Ctrl-C."""
    from finops.services import dashboard as svc

    handle = svc.start(_config(), host, port)
    try:
        for note in handle.notes:
            err.print(escape(note), highlight=False)
        out.print(f"dashboard: {handle.url}  (Ctrl-C stops it)", highlight=False)
        code = handle.wait()
    finally:
        handle.stop()
    if code:
        _fail(f"the dashboard stopped with status {code}")



# -- scheduler ------------------------------------------------------------------------------------
scheduler_app = typer.Typer(no_args_is_help=True, help="The scheduler: every step on a timetable, one leader.")
app.add_typer(scheduler_app, name="scheduler")


@scheduler_app.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground until Ctrl-C or SIGTERM (the running job finishes first)."""
    import logging

    from finops.services import scheduler as svc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    svc.run(_config(), on_ready=lambda url: err.print(f"scheduler metrics: {url}/metrics, health: {url}/healthz",
                                                      highlight=False))


@scheduler_app.command("status")
def scheduler_status(as_json: JsonOpt = False) -> None:
    """Each job's trigger, next run and last outcome, and who leads."""
    from finops.services import scheduler as svc

    res = svc.status(_config())
    if as_json:
        _emit_json({"leader": res.leader, "leader_live": res.leader_live, "notes": res.notes,
                    "jobs": [asdict(j) for j in res.jobs]})
        return
    out.print(f"leader: {escape(res.leader or '(none)')}" + ("" if res.leader_live else " (lease expired)"),
              highlight=False)
    out.print(_table("Scheduler jobs", ["job", "trigger", "enabled", "next run", "last", "started", "error"],
                     [[j.name, j.trigger, "yes" if j.enabled else "no", f"{j.next_run:%Y-%m-%d %H:%M}" if j.next_run
                       else "", j.last_outcome or "", f"{j.last_started:%Y-%m-%d %H:%M:%S}" if j.last_started else "",
                       escape(j.last_error or "")[:80]] for j in res.jobs]))
    for n in res.notes:
        err.print(escape(n), highlight=False)


@scheduler_app.command("run-once")
def scheduler_run_once(job: Annotated[str, typer.Argument(help="The job to run now.")]) -> None:
    """Run one job now, in this process, logged in the run log."""
    from finops.services import scheduler as svc

    res = svc.run_once(_config(), job)
    err.print(f"job {job}: ok {res.counts} {res.note}".rstrip(), highlight=False)

if __name__ == "__main__":  # pragma: no cover
    main()
