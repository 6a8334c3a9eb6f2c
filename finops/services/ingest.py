"""Export files into the billing store, and FOCUS checks of files or of the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collectors.files import IngestResult, expand, load, local_copy, read_raw
from collectors.files import ingest as ingest_files
from finops import focus
from finops.config import Config
from finops.services.progress import QUIET, Progress


@dataclass(frozen=True)
class Ingested:
    """What ``ingest`` read and wrote, and how long it took."""

    result: IngestResult
    seconds: float
    store: str


def ingest(cfg: Config, paths: Sequence[str], *, provider: str | None = None, replace: bool = False,
           progress: Progress = QUIET) -> Ingested:
    """Ingest FOCUS or native export files (folders: the export files in them) into the billing store: all
    of them or, on any error, none. A partition built from other files is replaced only with ``replace``."""
    store = cfg.open_store()
    paths = expand(paths)
    t0 = time.perf_counter()
    step = progress.start("ingest", total=len(paths))

    def note(path: str, state: str) -> None:
        step.update(f"{state:<9} {Path(path).name}")
        if state in ("staged", "duplicate"):
            step.advance()

    result = ingest_files(store, paths, provider=provider, progress=note, replace=replace)
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


def validate(cfg: Config, paths: Sequence[str] = ()) -> Validation:
    """FOCUS rules (mandatory nulls, enumerations, periods, currencies) on ``paths`` without ingesting
    them, or on the whole billing store when no path is given."""
    results: dict[str, list[focus.Problem]] = {}
    if paths:
        for p in expand(paths):
            with local_copy(p) as (local, _):
                results[p] = focus.validate(load(read_raw(local, p), p))
    else:
        store = cfg.open_store()
        results[store.url] = focus.validate(store.scan("billing", schema=focus.empty_frame().schema))
    return Validation(results)
