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
from rich.markup import escape
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
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
        err.print(f"[bold red]error:[/] {escape(f)} (nothing recorded for it; the history is unchanged)", highlight=False)
    if failures:
        raise typer.Exit(2)


@collect_app.command("billing")
@_guard
def collect_billing(
        ctx: typer.Context,
        provider: Annotated[Optional[list[str]], typer.Option(help="aws, gcp or azure (repeatable; default: every "
                            "provider in finops.toml with billing sources).")] = None,
        since: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d", "%Y-%m"], help="Re-read from this "
                         "month on (default: after each source's cursor; the previous and current month always).")] = None,
        as_json: JsonOpt = False) -> None:
    """Collect billing data from the sources in finops.toml (CUR, Cost Explorer, BigQuery export, Cost
    Management) into the store, month by month; each finished month is kept even if a later one fails."""
    from collectors import billing, sources
    from collectors.files import IngestError

    cfg = ctx.obj.config()
    store = cfg.open_store()
    chosen = provider or [p for p, c in cfg.providers.items() if c.enabled and c.billing]
    unknown = [p for p in chosen if p not in ("aws", "gcp", "azure")]
    if unknown:
        _fail(f"--provider {', '.join(unknown)}: expected aws, gcp or azure")
    todo = [(p, s) for p in chosen if p in cfg.providers for s in cfg.providers[p].billing]
    if not todo:
        _fail("no billing sources configured: add [[providers.<aws|gcp|azure>.billing]] to finops.toml "
              "(see `finops init`), or ingest exported files with `finops ingest`")
    summary, failures = [], []
    with _progress() as progress:
        task = progress.add_task("billing", total=len(todo))
        for p, src in todo:
            note = lambda c, state, p=p: progress.update(  # noqa: E731
                task, description=f"{p} {c.source} {c.period:%Y-%m}: {state}")
            try:
                chunks = sources.chunks(p, src, cfg, store, since.date() if since else None)
                for r in billing.run(store, chunks, note):
                    summary.append({"provider": p, "source": r.source, "month": f"{r.period:%Y-%m}", "rows": r.rows,
                                    "billed_cost": str(r.sums.get("BilledCost", 0)),
                                    "effective_cost": str(r.sums.get("EffectiveCost", 0))})
            except (billing.CollectError, IngestError) as e:
                failures.append(str(e))
            progress.advance(task)
    if as_json:
        _emit_json({"collected": summary, "failed": failures})
    else:
        table = Table(title="Billing collected")
        for c in ("provider", "source", "month", "rows", "billed_cost", "effective_cost"):
            table.add_column(c, justify="right" if c in ("rows", "billed_cost", "effective_cost") else "left")
        for r in summary:
            table.add_row(r["provider"], r["source"], r["month"], f"{r['rows']:,}", _money(r["billed_cost"]),
                          _money(r["effective_cost"]))
        out.print(table)
    for f in failures:
        err.print(f"[bold red]error:[/] {escape(f)} (months before it are kept; the next run resumes there)", highlight=False)
    if failures:
        raise typer.Exit(2)


@app.command()
@_guard
def accounts(endpoint: Annotated[Optional[str], typer.Option(help="Cloud Billing API root other than Google's "
                                                              "(a proxy or local emulator).")] = None,
             include_closed: Annotated[bool, typer.Option(help="Also list closed billing accounts.")] = False,
             as_json: JsonOpt = False) -> None:
    """Discover the GCP billing accounts the credentials can see, and their projects (Cloud Billing API),
    to fill [providers.gcp] in finops.toml."""
    from collectors.billing import CollectError
    from collectors.gcp import accounts as gcp_accounts

    try:
        found = gcp_accounts.discover(gcp_accounts.make_client(endpoint), include_closed=include_closed)
    except CollectError as e:
        _fail(str(e))
    rows = [{"billing_account": a.id, "name": a.display_name, "open": a.open, "currency": a.currency,
             "projects": [p.project_id for p in a.projects]} for a in found]
    if as_json:
        _emit_json(rows)
        return
    table = Table(title="GCP billing accounts")
    for c in ("billing_account", "name", "open", "currency", "projects"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["billing_account"], r["name"], "yes" if r["open"] else "no", r["currency"] or "",
                      ", ".join(r["projects"]))
    out.print(table)


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


# -- report ----------------------------------------------------------------------------------------
report_app = typer.Typer(no_args_is_help=True, help="Chargeback reports that reconcile to the bill.")
app.add_typer(report_app, name="report")


@report_app.command("chargeback")
@_guard
def report_chargeback(
        ctx: typer.Context,
        week: Annotated[Optional[str], typer.Option(help="ISO week, e.g. 2026-W47 (default: the last complete "
                        "week, UTC).")] = None,
        fmt: Annotated[Optional[str], typer.Option("--format", help="Comma-separated: csv, xlsx, html "
                       "(default: \\[reports] formats).")] = None,
        out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for the report (default: "
                           "\\[reports] out).")] = None,
        by: Annotated[str, typer.Option(help="team or project")] = "team",
        send: Annotated[bool, typer.Option("--send", help="Also e-mail it and post it to the webhook "
                        "configured under \\[reports].")] = False,
        as_json: JsonOpt = False) -> None:
    """Weekly chargeback per team (or project): direct, shared, total, week over week, month to date against
    budget, top services, GPU hours, spot savings, and a reconciliation to the bill per provider."""

    from finops import allocation, delivery, report_outputs, reports

    cfg = ctx.obj.config()
    formats = [f.strip() for f in fmt.split(",") if f.strip()] if fmt else list(cfg.reports.formats)
    if by not in ("team", "project"):
        _fail(f"--by {by!r}: expected team or project")
    if any(f not in report_outputs.FORMATS for f in formats):
        _fail(f"--format {','.join(formats)}: expected any of {', '.join(report_outputs.FORMATS)}")
    if send and cfg.reports.email is None and cfg.reports.webhook is None:
        _fail("--send: configure [reports.email] and/or [reports.webhook] in finops.toml")
    try:
        wk = reports.Week.parse(week) if week else reports.Week.last_complete()
        with _progress() as progress:
            progress.add_task(f"chargeback {wk.label}", total=None)
            cb = reports.chargeback(cfg.open_store(), cfg, wk, by)  # type: ignore[arg-type]
            paths = report_outputs.write(cb, out_dir or Path(cfg.reports.out), formats)
        sent = _send_report(cfg, cb, paths) if send else []
    except (reports.ReportError, allocation.AllocationError, delivery.DeliveryError, ValueError) as e:
        _fail(str(e))
        return
    for w in cb.warnings:
        err.print(f"[yellow]warning[/] {escape(w)}", highlight=False)
    if as_json:
        _emit_json({**cb.to_json(), "files": [str(p) for p in paths], "sent": sent})
        return
    _print_chargeback(cb)
    err.print(f"wrote {len(paths)} file(s) to {paths[0].parent}" if paths else "nothing written")
    for s in sent:
        err.print(f"sent: {s}")


def _send_report(cfg: config_mod.Config, cb: Any, paths: list[Path]) -> list[str]:
    from finops import delivery, report_outputs

    rep = cfg.reports
    sent = []
    if rep.email is not None:
        files = [p for p in paths if p.suffix in (".xlsx", ".csv")]
        delivery.send_email(cb, rep.email, files, html=report_outputs.render_html(cb))
        sent.append(f"e-mail to {', '.join(rep.email.to)}")
    if rep.webhook is not None:
        delivery.post_webhook(cb, rep.webhook)
        sent.append("webhook")
    return sent


def _print_chargeback(cb: Any) -> None:
    dim = cb.dimension
    table = Table(title=f"Chargeback {cb.week.label} by {dim} ({cb.basis}, {cb.currency})")
    cols = (dim, "direct", "shared", "total", "previous_week", "change_pct", "month_to_date", "budget_used_pct",
            "spot_savings", "gpu_hours")
    for c in cols:
        table.add_column(c.replace("_", " "), justify="left" if c == dim else "right")
    for r in cb.summary.iter_rows(named=True):
        table.add_row(*("" if r[c] is None else (_money(r[c]) if isinstance(r[c], Decimal) else
                                                  (f"{r[c]:,.1f}" if isinstance(r[c], float) else str(r[c])))
                        for c in cols))
    out.print(table)
    rec = Table(title="Reconciliation: the sum over teams against the store's total for the week")
    for c in ("provider", "rows", "store total", "allocated", "difference"):
        rec.add_column(c, justify="left" if c == "provider" else "right")
    for r in cb.reconciliation.iter_rows(named=True):
        rec.add_row(r["provider"], f"{r['rows']:,}", _money(r["store_total"]), _money(r["allocated"]),
                    _money(r["difference"]))
    out.print(rec)


def demo_report(cfg: config_mod.Config, store: Store, teams: int | None = None, seed: int = 0) -> list[Path]:
    """`finops demo`: last week's chargeback written under [reports] out (empty if there is no data).
    Without teams in the configuration, the generated organisation's teams, accounts and shared
    platform accounts stand in for them."""
    from finops import report_outputs, reports
    from finops.generate import make_org

    if teams is not None and not cfg.teams:
        cfg = _demo_rules(cfg, make_org(teams, seed))
    try:
        cb = reports.chargeback(store, cfg, reports.Week.last_complete())
    except reports.ReportError:
        return []
    return report_outputs.write(cb, Path(cfg.reports.out), cfg.reports.formats)


def _demo_rules(cfg: config_mod.Config, org: Any) -> config_mod.Config:
    providers = {p: config_mod.ProviderConfig(accounts=[
        config_mod.Account(id=a.sub_account_id, name=a.sub_account_name, team=a.team, project=a.project)
        for a in org.accounts_of(p)]) for p in ("aws", "gcp", "azure")}
    shared = config_mod.SharedPool(name="shared platform", accounts=[a.sub_account_id for a in org.accounts
                                                                      if a.team is None])
    return cfg.model_copy(update={"teams": [config_mod.Team(name=t.name) for t in org.teams], "providers": providers,
                                  "allocation": cfg.allocation.model_copy(update={"shared": [shared]})})


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


# -- queue and place ------------------------------------------------------------------------------
queue_app = typer.Typer(no_args_is_help=True, help="The workload queue: add specs, list, cancel.")
app.add_typer(queue_app, name="queue")


def _place_guard(fn: Any) -> Any:
    """Spec, queue and placement errors as one clear message and exit 2 (nothing changed)."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from finops.ledger import LedgerError
        from finops.workloads import SpecError
        from placement.candidates import PlacementError

        try:
            return fn(*args, **kwargs)
        except (SpecError, LedgerError, PlacementError) as e:
            _fail(str(e))
    return wrapper


def _ledger(ctx: typer.Context) -> Any:
    from finops.ledger import Ledger

    return Ledger(ctx.obj.config().ledger_url())


@queue_app.command("add")
@_guard
@_place_guard
def queue_add(ctx: typer.Context,
              files: Annotated[list[Path], typer.Argument(help="YAML workload specs (one, a list, or workloads: [...]).")],
              as_json: JsonOpt = False) -> None:
    """Queue the workloads in FILES: all of them or, on any error, none."""
    from finops.workloads import load

    specs = [(s, str(f)) for f in files for s in load(f)]
    ids = _ledger(ctx).add(specs)
    if as_json:
        _emit_json({"queued": [{"id": i, "name": s.name, "team": s.team, "source": src}
                               for i, (s, src) in zip(ids, specs)]})
        return
    err.print(f"queued {len(ids)} workload(s): ids {ids[0]}–{ids[-1]}" if ids else "nothing to queue")


@queue_app.command("list")
@_guard
@_place_guard
def queue_list(ctx: typer.Context,
               state: Annotated[Optional[list[str]], typer.Option(help="Only these states (repeatable).")] = None,
               as_json: JsonOpt = False) -> None:
    """Workloads in the queue and their state."""
    rows = _ledger(ctx).list(state)
    data = [{"id": w.id, "name": w.name, "team": w.team, "kind": w.kind, "priority": w.priority, "state": w.state,
             "accelerators": (f"{'/'.join(w.spec.accelerators.names())} x{w.spec.accelerators.count:g}"
                              if w.spec.accelerators else "cpu"),
             "source": w.source, "created_at": w.created_at.isoformat()} for w in rows]
    if as_json:
        _emit_json(data)
        return
    table = Table(title=f"Queue: {len(rows)} workload(s)")
    for c in ("id", "name", "team", "kind", "priority", "state", "accelerators"):
        table.add_column(c, justify="right" if c in ("id", "priority") else "left")
    for r in data:
        table.add_row(*(str(r[c]) for c in ("id", "name", "team", "kind", "priority", "state", "accelerators")))
    out.print(table)


@queue_app.command("cancel")
@_guard
@_place_guard
def queue_cancel(ctx: typer.Context, ids: Annotated[list[int], typer.Argument(help="Workload ids.")]) -> None:
    """Cancel workloads (all the given ids or none)."""
    _ledger(ctx).move(ids, "cancelled")
    err.print(f"cancelled {', '.join(map(str, ids))}")


@app.command()
@_guard
@_place_guard
def place(ctx: typer.Context,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print, record nothing.")] = False,
          as_json: JsonOpt = False) -> None:
    """Place every queued workload on the cheapest feasible offer, for the whole queue at once
    (capacity, team budgets, commitments, deadlines, residency); record the decisions with their prices."""
    from placement import run

    cfg = ctx.obj.config()
    with _progress() as progress:
        progress.add_task("placing the queue", total=None)
        run_id, plan = run.place(cfg, cfg.open_store(), _ledger(ctx), dry_run=dry_run)
    _print_plan(run_id, plan, dry_run, as_json)


def _print_plan(run_id: str, plan: Any, dry_run: bool, as_json: bool) -> None:
    from placement.plan import summary

    s = summary(plan)
    if as_json:
        _emit_json({"run_id": run_id, "dry_run": dry_run, "summary": s, "decisions": plan.decisions})
        return
    table = Table(title=f"Placement {'(dry run) ' if dry_run else ''}{run_id}: {s['placed']} placed, "
                        f"{s['unplaced']} unplaced, expected ${s['expected_cost']:,.2f} ({s['method']}: {s['status']})")
    for c in ("workload", "team", "where", "market", "$/hour", "expected $", "saving $", "runner-up / reason"):
        table.add_column(c, justify="right" if "$" in c else "left")
    for d in plan.decisions:
        if not d["placed"]:
            table.add_row(d["name"], d["team"], "[red]unplaced[/]", "", "", "", "", d["reason"])
            continue
        where = " + ".join(f"{leg['provider']} {leg['region']} {leg['instance_type']}"
                           + (f" x{leg['replicas']}" if leg["replicas"] > 1 else "") for leg in d["legs"])
        ru = d.get("runner_up")
        runner = f"{ru['provider']} {ru['region']} {ru['instance_type']} ${ru['expected_cost']:,.2f}" if ru else ""
        saving = "" if d.get("saving") is None else f"{d['saving']:,.2f}"
        table.add_row(d["name"], d["team"], where, d["market"], f"{d['price_per_hour']:.4f}",
                      f"{d['expected_cost']:,.2f}", saving, runner)
    out.print(table)
    if not dry_run:
        err.print(f"recorded run {run_id} in the ledger")


# -- generate and demo -----------------------------------------------------------------------------
@app.command()
@_guard
def generate(out_dir: Annotated[Path, typer.Option("--out", help="Folder for the export files.")] = Path("exports"),
             rows: Annotated[Optional[int], typer.Option(help="Exact row count (default: follows from days).")] = None,
             days: int = 90, teams: int = 6, seed: int = 0,
             grain: Annotated[str, typer.Option(help="daily or hourly")] = "daily",
             fmt: Annotated[str, typer.Option("--format", help="parquet, csv or csv.gz; or native: each cloud's "
                            "own export (AWS CUR 2.0 Parquet, Azure cost-details CSV, BigQuery export CSV)")] = "parquet",
             as_json: JsonOpt = False) -> None:
    """Generate realistic billing exports of a multi-cloud ML organisation (deterministic from --seed)."""
    from finops.generate import write_exports
    from finops.generate.native import write_native_exports

    if grain not in ("daily", "hourly"):
        _fail(f"--grain {grain!r}: expected daily or hourly")
    if fmt not in ("parquet", "csv", "csv.gz", "native"):
        _fail(f"--format {fmt!r}: expected parquet, csv, csv.gz or native")
    if rows is not None and rows < 0:
        _fail(f"--rows {rows}: expected a count >= 0")

    with _progress() as progress:
        progress.add_task(f"generating into {out_dir}", total=None)
        kwargs = {"rows": rows, "days": days, "teams": teams, "seed": seed, "grain": grain}
        if fmt == "native":
            paths = sorted(p for ps in write_native_exports(out_dir, **kwargs).values() for p in ps)
        else:
            paths = write_exports(out_dir, fmt=fmt, **kwargs)
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
    """End to end on generated data: native billing exports for 90 days, 6 teams, three clouds → ingest
    (mapped to FOCUS) → totals;
    the shipped price catalog → price history → cheapest offers."""
    from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir
    from collectors.files import ingest as run_ingest
    from finops.generate.native import write_native_exports

    store = ctx.obj.store()
    steps = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err)
    with steps:
        t = steps.add_task(f"generating {days} days for {teams} teams", total=None)
        written = write_native_exports(work, days=days, teams=teams, seed=seed)
        paths = [p for files in written.values() for p in files if p.suffix in (".parquet", ".csv")]
        steps.update(t, description=f"generated native exports in {work} (AWS CUR 2.0 Parquet, Azure cost "
                     f"details CSV, BigQuery export CSV): {len(paths)} files", total=1, completed=1)
        t = steps.add_task("ingesting", total=len(paths))
        result = run_ingest(store, paths, progress=lambda p, s: steps.advance(t) if s == "staged" else None)
        steps.update(t, description=f"ingested {result.rows:,} rows into {store.url}")
        t = steps.add_task("importing the price catalog snapshot", total=None)
        known = offers.record(store, read_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE,
                                                   interruption=ctx.obj.config().prices.interruption))
        steps.update(t, description=f"{known:,} GPU/TPU offers known (catalog snapshot of {SNAPSHOT_DATE:%Y-%m-%d})",
                     total=1, completed=1)
        t = steps.add_task("queueing 200 generated workloads and placing them", total=None)
        from placement import run as placement_run
        from placement.plan import summary as plan_summary
        placed = plan_summary(placement_run.demo(ctx.obj.config(), store, seed=seed, teams=teams)[1])
        steps.update(t, description=f"placed {placed['placed']} of {placed['workloads']} queued workloads, expected "
                                    f"${placed['expected_cost']:,.0f} (`finops queue list`, `finops place`)",
                     total=1, completed=1)
    totals = summarise(store.manifests("billing"), ("provider", "billing_period"))
    cheapest = offers.select(offers.latest_offers(store), offers.Query("A100", 8, "spot")).head(3).collect()
    report = demo_report(ctx.obj.config(), store, teams=teams, seed=seed)
    if as_json:
        _emit_json({"store": store.url, "totals": totals, "offers": known, "chargeback": [str(p) for p in report],
                    "placement": placed,
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
    if report:
        out.print(f"last week's chargeback: {report[0].parent}/ (`finops report chargeback` for others)",
                  highlight=False)
    err.print("next: `finops store info`, `finops validate`, `finops prices show --accelerator H100 --count 8`")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
