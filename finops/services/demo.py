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
MAX_ROWS = 10_000_000_000  # past this the generator's row arithmetic overflows (and no disk holds it)


class GenerateError(ValueError):
    """Generator options that cannot be used."""


def _check_scale(days: int, teams: int) -> None:
    for name, n in (("--days", days), ("--teams", teams)):
        if n < 1:
            raise GenerateError(f"{name} {n}: expected a count >= 1")


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
    if rows is not None and not 0 <= rows <= MAX_ROWS:
        raise GenerateError(f"--rows {rows}: expected a count from 0 to {MAX_ROWS:,}")
    _check_scale(days, teams)
    step = progress.start(f"generating into {out}")
    try:
        if fmt == "native":
            found = write_native_exports(out, rows=rows, days=days, teams=teams, seed=seed, grain=grain)
            paths = sorted(p for ps in found.values() for p in ps)
        else:
            export_fmt: ExportFormat = "csv" if fmt == "csv" else "csv.gz" if fmt == "csv.gz" else "parquet"
            paths = write_exports(out, rows=rows, days=days, teams=teams, seed=seed, grain=grain, fmt=export_fmt)
    except OSError as e:
        raise GenerateError(f"{out}: cannot write the exports there: {e.strerror or e}") from None
    step.finish(f"wrote {len(paths)} file(s) under {out}")
    return paths


SIMULATED = "simulated"
"""The demo's launch target: a local simulated cloud (``placement/launchers/simulator.py``)."""


@dataclass(frozen=True)
class LaunchLoop:
    """What the demo's launches did on the simulated cloud over ``days`` simulated days."""

    days: int
    launched: int
    preempted: int
    requeued: int
    states: dict[str, int]
    billed_rows: int
    reconciliation: Any
    """:class:`finops.reconcile.Reconciliation`: predicted against billed per workload, corrections learnt."""


def with_simulator(cfg: Config) -> Config:
    """``cfg`` launching on the simulated cloud only (the demo never launches on a real target): its state
    beside a local store, one real minute a simulated hour (the demo advances its clock explicitly)."""
    from finops.config import SimulatorTarget
    from finops.services.launch import dry_run_folder

    sim = SimulatorTarget(state=str((dry_run_folder(cfg).parent / "simulator").resolve()), speed=60.0)
    launch = cfg.launch.model_copy(update={"targets": {**cfg.launch.targets, SIMULATED: sim}, "default": [SIMULATED]})
    teams = [t.model_copy(update={"launch_targets": []}) for t in cfg.teams]
    return cfg.model_copy(update={"launch": launch, "teams": teams})


def launch_loop(cfg: Config, store: Any, *, days: int = 14, keep: bool = True,
                progress: Progress = QUIET) -> LaunchLoop:
    """Dispatch what is placed to the simulated cloud, then day by day: advance its clock, sync the jobs'
    states (preempted spot runs go back to the queue and are placed and launched again), until nothing
    runs or ``days`` pass; then ingest the bill it wrote (tagged with each launch) and reconcile it.
    Unless ``keep``, what still runs (serving) is stopped first."""
    from collectors.files import ingest
    from finops.services import launch, reconcile
    from placement.launchers import simulator

    target = cfg.launch.target(SIMULATED)
    assert isinstance(target, simulator.SimulatorTarget)
    step = progress.start("launching the placed workloads on the simulated cloud")
    first = launch.dispatch(cfg, place=False).report
    launched = first.count("submitted") + first.count("adopted")
    step.finish(f"launched {launched} workloads on the simulated cloud (tagged finops-team, finops-workload, "
                "finops-placement)")
    step = progress.start("running them (simulated days)", total=days)
    preempted = requeued = day = 0
    while day < days:
        day += 1
        simulator.advance(target, 24.0)
        synced = launch.sync(cfg)
        preempted += synced.count("preempted")
        if any(s.workload_state == "queued" for s in synced.synced):
            again = launch.dispatch(cfg).report  # re-placed (resuming from checkpoints) and launched again
            requeued += again.count("submitted")
        step.advance()
        if not store_live(cfg):
            break
    states = launch_states(cfg)
    step.finish(f"{day} simulated days: {preempted} spot preemptions, {requeued} relaunched; "
                + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    step = progress.start("ingesting the simulated cloud's bill")
    files = [f for f in simulator.export_billing(target) if f.suffix in (".parquet", ".csv")]  # not manifests
    rows = ingest(store, [str(f) for f in files], replace=True).rows if files else 0
    step.finish(f"ingested {rows:,} billed rows carrying the launch tags")
    if not keep:
        stopped = stop_simulated(cfg)
        step = progress.start("stopping")
        step.finish(f"stopped the {stopped} simulated jobs still running: finops.toml does not name the "
                    "simulated cloud, so later commands could not follow them")
    step = progress.start("reconciling predicted against billed")
    rec = reconcile.reconcile(cfg)
    step.finish(f"reconciled {sum(1 for w in rec.workloads if w.billed is not None)} workloads; "
                f"{len(rec.corrections)} corrections learnt")
    return LaunchLoop(day, launched, preempted, requeued, states, rows, rec)


def daily_jobs(cfg: Config, progress: Progress = QUIET) -> None:
    """The scheduler's jobs the pass has not already done, once, logged in its run log like scheduled runs
    (collection needs credentials: the generated bill and the catalog stand in for it)."""
    from finops.services import scheduler

    step = progress.start("the scheduler's budget check and store maintenance, once")
    done = []
    for job in ("budget", "maintenance"):
        try:
            out = scheduler.run_once(cfg, job)
            done.append(f"{job}: " + (", ".join(f"{v:,} {k}" for k, v in out.counts.items()) or "ok"))
        except config_mod.ConfigError as e:
            done.append(f"{job}: {e}")
    step.finish("scheduler jobs run once: " + "; ".join(done) + " (`finops scheduler status`)")


def stop_simulated(cfg: Config) -> int:
    """Cancel every live launch on the simulated cloud, on the simulator and in the ledger; how many."""
    from finops.services.queue import ledger
    from placement.launchers import simulator

    led, target = ledger(cfg), cfg.launch.target(SIMULATED)
    assert isinstance(target, simulator.SimulatorTarget)
    client = simulator.make_client(target)
    live = [x for x in led.launches(["pending", "running"]) if x.target == SIMULATED]
    for x in live:
        simulator.cancel(client, target, x.external_id)
        state = led.get(x.workload_id).state
        led.update_launch(x, "cancelled", message="stopped by finops demo",
                          move=(state, "cancelled") if state in ("submitted", "running") else None)
    return len(live)


def store_live(cfg: Config) -> bool:
    """Whether any launch is still pending or running (serving runs until stopped: it does not count)."""
    from finops.services.launch import jobs

    return any(r.workload.state in ("submitted", "running") and r.workload.kind == "train" for r in jobs(cfg).rows)


def launch_states(cfg: Config) -> dict[str, int]:
    from finops.services.launch import jobs

    out: dict[str, int] = {}
    for r in jobs(cfg).rows:
        out[r.workload.state] = out.get(r.workload.state, 0) + 1
    return out


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
    loop: LaunchLoop | None = None
    """The launch loop on the simulated cloud: launched, run, billed, reconciled."""
    config: Path | None = None
    """The configuration file the demo wrote with the rules its chargeback used (the generated
    organisation's teams, accounts and shared pool), so ``finops report chargeback`` (with ``-c``
    this file, unless it is ``./finops.toml``) reproduces the report. None when the demo used the
    loaded configuration's own teams (``config_source``)."""
    config_source: str | None = None
    """The configuration file the demo ran with, if any."""


def demo(cfg: Config, *, days: int = 90, teams: int = 6, seed: int = 0, work: Path = Path("demo-exports"),
         progress: Progress = QUIET) -> DemoResult:
    """End to end on generated data: native billing exports for ``days`` days and ``teams`` teams on three
    clouds → ingest (mapped to FOCUS) → the shipped price catalog → queue and place generated workloads →
    last week's chargeback."""
    from collectors.catalog import SNAPSHOT_DATE, load_catalog, snapshot_dir
    from collectors.files import ingest
    from finops.generate.native import write_native_exports
    from finops.store import summarise
    from placement import run as placement_run
    from placement.plan import summary as plan_summary

    _check_scale(days, teams)
    # Refused before any work is done. Teams of the user's own are used as they are; a file the demo wrote
    # is rewritten for this run's organisation.
    own_rules = bool(cfg.teams) and not (cfg.source and _written_by_demo(Path(cfg.source)))
    target = None if own_rules else demo_config_path(cfg)
    store = cfg.open_store()
    step = progress.start(f"generating {days} days for {teams} teams")
    try:
        written = write_native_exports(work, days=days, teams=teams, seed=seed)
    except OSError as e:
        raise GenerateError(f"{work}: cannot write the demo's exports there: {e.strerror or e}") from None
    paths = [p for files in written.values() for p in files if p.suffix in (".parquet", ".csv")]
    step.finish(f"generated native exports in {work} (AWS CUR 2.0 Parquet, Azure cost details CSV, BigQuery "
                f"export CSV): {len(paths)} files")
    step = progress.start("ingesting", total=len(paths))
    # The demo's generated bill replaces what it touches (e.g. `finops generate`'s exports of the same
    # generated organisation, or an earlier demo's).
    result = ingest(store, paths, progress=lambda _p, s: step.advance() if s == "staged" else None, replace=True)
    step.finish(f"ingested {result.rows:,} rows into {store.url}")
    step = progress.start("importing the price catalog snapshot")
    catalog = load_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE, interruption=cfg.prices.interruption)
    known = offers.record(store, catalog.offers)
    flagged = (f"; {len(catalog.problems):,} rows flagged and left out of placement "
               "(`finops prices import-catalog` lists them)" if catalog.problems else "")
    step.finish(f"{known:,} GPU/TPU offers known (catalog snapshot of {SNAPSHOT_DATE:%Y-%m-%d}{flagged})")
    cfg = with_simulator(cfg)
    stop_simulated(cfg)  # a demo run again re-plans its own workloads: what an earlier run launched stops
    step = progress.start("queueing 200 generated workloads and placing them")
    placed = plan_summary(placement_run.demo(cfg, store, seed=seed, teams=teams)[1])
    age = placed.get("price_age_hours")
    stale = f" on prices {age / 24:,.0f} days old (the shipped snapshot)" if age else ""
    step.finish(f"placed {placed['placed']} of {placed['workloads']} queued workloads, expected "
                f"${placed['expected_cost']:,.0f}{stale} (`finops queue list`, `finops place`)")
    from finops.generate import make_org

    loop_cfg = placement_run.demo_config(cfg, [t.name for t in make_org(teams, seed).teams])
    loop = launch_loop(loop_cfg, store, keep=target is not None, progress=progress)
    daily_jobs(loop_cfg, progress)
    cheapest = offers.select(offers.latest_offers(store), offers.Query("A100", 8, "spot")).head(3).collect()
    report_cfg = cfg
    if target is not None:
        report_cfg = demo_rules(cfg, make_org(teams, seed))
        write_config(report_cfg, target)
    # The generated organisation's bill, by provider and month; the simulated cloud's is the loop's own.
    from finops.store import account_key
    from placement.launchers.simulator import ACCOUNTS

    simulated = {account_key(a) for a, _ in ACCOUNTS.values()}
    bill = [m for m in store.manifests("billing") if m.partition.get("billing_account") not in simulated]
    return DemoResult(store.url, result.rows, summarise(bill, ("provider", "billing_period")),
                      known, SNAPSHOT_DATE, placed,
                      cheapest.select("provider", "region", "instance_type", "price_per_hour").to_dicts(),
                      demo_report(report_cfg), loop, target, cfg.source)


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
    try:
        return report_outputs.write(cb, Path(cfg.reports.out), cfg.reports.formats)
    except OSError as e:
        raise GenerateError(f"{cfg.reports.out}: cannot write the report files there: {e.strerror or e}; "
                            "point [reports] out elsewhere") from None


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


DEMO_CONFIG = "finops-demo.toml"
DEMO_HEADER = "# Written by `finops demo`"
"""The first line of a configuration the demo wrote: the demo rewrites such a file, and no other."""


def demo_config_path(cfg: Config, cwd: Path | None = None) -> Path:
    """Where the demo writes the configuration its chargeback uses: ``./finops.toml`` when no
    configuration file is in use and none exists; the file in use if the demo wrote it; else
    ``./finops-demo.toml`` — never over a file the
    demo did not write (its first line says so): that is refused before the demo starts."""
    here = cwd or Path()
    default, demo_file = here / config_mod.DEFAULT_FILE, here / DEMO_CONFIG
    if cfg.source and _written_by_demo(Path(cfg.source)):
        return Path(cfg.source)
    if cfg.source is None and not default.exists():
        return default
    if not demo_file.exists() or _written_by_demo(demo_file):
        return demo_file
    raise GenerateError(f"{demo_file} exists and was not written by `finops demo`: move it away, or list "
                        "[[teams]] in the configuration for the demo's chargeback to use")


def _written_by_demo(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.readline().decode("utf-8", "replace").startswith(DEMO_HEADER)
    except OSError:
        return False


def write_config(cfg: Config, path: Path) -> None:
    """Write ``cfg`` as TOML to ``path`` (through a temporary file, so a reader never sees half of it),
    and check that it loads back as the same configuration."""
    text = (f"{DEMO_HEADER} with the rules of its chargeback: the generated organisation's teams,\n"
            "# accounts and shared platform accounts. `finops demo` rewrites this file while the line above\n"
            "# is here; delete that line to keep your own edits.\n\n" + to_toml(config_dump(cfg)))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if config_mod.load(tmp).model_dump() != cfg.model_dump():  # pragma: no cover - a serializer bug
            raise GenerateError(f"{path}: the configuration written does not load back as the one used")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GenerateError(f"{path}: cannot write the demo's configuration: {e.strerror or e}") from None


def config_dump(cfg: Config) -> dict[str, Any]:
    """``cfg`` as plain data: only what differs from the defaults (so the defaults stay the code's)."""
    data = cfg.model_dump(exclude_defaults=True, exclude_none=True)
    for name, target in cfg.launch.targets.items():  # the discriminator, though a default, names the kind
        data.setdefault("launch", {}).setdefault("targets", {}).setdefault(name, {})["kind"] = target.kind
    return data


# -- a small TOML writer (tomli-w is not a dependency): enough for a Config's plain data ---------------
def to_toml(data: dict[str, Any]) -> str:
    """TOML for plain data: strings, booleans, integers, floats, Decimals (as numbers), lists and
    string-keyed mappings. A mapping of scalars (and lists of scalars) is written inline, a list of them
    one per line; any other mapping — and every one at the top — is a ``[table]``, any other list of
    mappings an ``[[array of tables]]``."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], d: dict[str, Any], *, array: bool = False) -> None:
    inline = {k: v for k, v in d.items() if not (isinstance(v, dict) and (not path or not _flat(v)))
              and not (isinstance(v, list) and any(isinstance(x, dict) and not _flat(x) for x in v))}
    if path and (array or inline or len(inline) == len(d)):
        header = ".".join(_key(p) for p in path)
        lines += ["", f"[[{header}]]" if array else f"[{header}]"]
    for k, v in inline.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines += [f"{_key(k)} = [", *(f"  {_value(x)}," for x in v), "]"]
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in d.items():
        if k in inline:
            continue
        if isinstance(v, dict):
            _table(lines, (*path, str(k)), v)
        else:
            for item in v:
                _table(lines, (*path, str(k)), item, array=True)


def _flat(d: dict[str, Any]) -> bool:
    """Only scalars and lists of scalars: written inline."""
    return all(not isinstance(v, dict | list) or (isinstance(v, list) and not any(isinstance(x, dict | list)
                                                                                    for x in v))
               for v in d.values())


def _key(k: Any) -> str:
    k = str(k)
    return k if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k) else _string(k)


def _string(s: str) -> str:
    import json

    # JSON's escapes are TOML's (\uXXXX included); TOML also forbids a raw DEL.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    import math
    from decimal import Decimal

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")) if not math.isfinite(v) else repr(v)
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError(f"{v}: not a finite number")
        return format(v, "f")  # an integer or a plain decimal; Config reads it back exactly
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
