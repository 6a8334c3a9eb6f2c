"""Export files into the billing store, and FOCUS checks of files or of the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collectors import distributed
from collectors.files import IngestResult, expand, load, local_copy, read_raw
from collectors.files import ingest as ingest_files
from finops import focus
from finops.config import Config
from finops.engine import Engine
from finops.engine.pieces import over_store
from finops.services.engine import engine_for
from finops.services.progress import QUIET, Progress
from finops.store import Store


@dataclass(frozen=True)
class Ingested:
    """What ``ingest`` read and wrote, and how long it took."""

    result: IngestResult
    seconds: float
    store: str


def ingest(cfg: Config, paths: Sequence[str], *, provider: str | None = None, replace: bool = False,
           engine: str | None = None, progress: Progress = QUIET) -> Ingested:
    """Ingest FOCUS or native export files (folders: the export files in them) into the billing store: all
    of them or, on any error, none. A partition built from other files is replaced only with ``replace``.
    On a cluster (``engine`` or ``[engine]``: ``ray``), workers map the files and the driver commits."""
    store = cfg.open_store()
    paths = expand(paths)
    with engine_for(cfg, engine) as eng:
        return _ingest(eng, store, paths, provider, replace, progress)


def _ingest(eng: Engine, store: Store, paths: list[str], provider: str | None, replace: bool,
            progress: Progress) -> Ingested:
    t0 = time.perf_counter()
    step = progress.start("ingest", total=len(paths))

    def note(path: str, state: str) -> None:
        step.update(f"{state:<9} {Path(path).name}")
        if state in ("staged", "duplicate"):
            step.advance()

    if eng.rows_per_task is None:
        result = ingest_files(store, paths, provider=provider, progress=note, replace=replace)
    else:
        result = distributed.ingest(eng, store, paths, provider=provider, progress=note, replace=replace)
    step.finish(f"ingested {result.rows:,} rows into {store.url}")
    return Ingested(result, time.perf_counter() - t0, store.url)


@dataclass(frozen=True)
class Validation:
    """FOCUS problems per file (or for the whole store, under its URL)."""

    problems: dict[str, list[focus.Problem]] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, list[focus.Problem]]:
        """Only the files (or the store) with at least one error."""
        return {k: v for k, v in self.problems.items() if any(p.severity == "error" for p in v)}


def validate(cfg: Config, paths: Sequence[str] = (), *, engine: str | None = None,
             progress: Progress = QUIET) -> Validation:
    """FOCUS rules (mandatory nulls, enumerations, periods, currencies) on ``paths`` without ingesting
    them, or on the whole billing store when no path is given (on a cluster: tallied per piece of the
    store by the workers, the problems found from the tallies here)."""
    results: dict[str, list[focus.Problem]] = {}
    if paths:
        for p in expand(paths):
            with local_copy(p) as (local, _):
                results[p] = focus.validate(load(read_raw(local, p), p))
    else:
        store = cfg.open_store()
        with engine_for(cfg, engine) as eng:
            tallies = over_store(eng, store, "billing", focus.tally, schema=focus.empty_frame().schema,
                                 what="validate", progress=progress)
        results[store.url] = focus.problems(tallies)
    return Validation(results)
