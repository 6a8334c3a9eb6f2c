"""Store-wide work cut into pieces: which files each task reads, and how the partial aggregates the
tasks return are merged back into the one answer a single query would give.

A piece is a set of live data files of one snapshot (never part of a file), about
``rows_per_task`` rows: a partition's files together when they fit, a big partition's files split
across pieces, small partitions gathered. Partial aggregates are group-by sums; merging them is
another group-by sum over the same keys, which is exact for decimals and integers whatever the cut.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from finops.services.progress import QUIET, Progress

if TYPE_CHECKING:
    from finops.engine.base import Engine
    from finops.store import LiveFile, Store

T = TypeVar("T")


@dataclass(frozen=True)
class StoreSpec:
    """What a worker needs to open the same store (no client objects: they do not travel)."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    polars_options: dict[str, str] = field(default_factory=dict)

    def open(self) -> Store:
        from finops.store import Store

        return Store(self.url, self.storage_options, self.polars_options or None)


def spec_of(store: Store) -> StoreSpec:
    # A local store by its absolute path: a worker's working folder is not the driver's.
    return StoreSpec(store.root if store.local else store.url, dict(store.storage_options),
                     dict(store.polars_options or {}))


@dataclass(frozen=True)
class Piece:
    """Files (relative to the dataset's table) one task reads, with their rows and bytes."""

    paths: tuple[str, ...]
    rows: int
    bytes: int


def cut(files: Sequence[LiveFile], rows_per_task: int) -> list[Piece]:
    """Pieces of about ``rows_per_task`` rows, a partition's files kept together where they fit."""
    by_partition: dict[str, list[LiveFile]] = {}
    for f in files:
        by_partition.setdefault(f.pid, []).append(f)
    pieces: list[Piece] = []
    current: list[LiveFile] = []

    def flush() -> None:
        if current:
            pieces.append(Piece(tuple(f.path for f in current), sum(f.rows for f in current),
                                sum(f.size for f in current)))
            current.clear()

    for pid in sorted(by_partition):
        group = by_partition[pid]
        if sum(f.rows for f in current) + sum(f.rows for f in group) > rows_per_task:
            flush()
        for f in group:
            if current and sum(g.rows for g in current) + f.rows > rows_per_task:
                flush()
            current.append(f)
    flush()
    return pieces


def _run_piece(fn: Callable[[pl.LazyFrame], T], spec: StoreSpec, dataset: str,
               schema: Mapping[str, pl.DataType], piece: Piece) -> T:
    """On a worker: ``fn`` over the piece's files, read as the driver's snapshot describes them."""
    return fn(spec.open().scan_files(dataset, piece.paths, schema))


def over_store(engine: Engine, store: Store, dataset: str, fn: Callable[[pl.LazyFrame], T], *,
               filters: Mapping[str, str | Sequence[str]] | None = None, as_of: int | datetime | None = None,
               schema: Mapping[str, pl.DataType] | None = None, what: str = "aggregate",
               progress: Progress = QUIET) -> list[T]:
    """``fn`` over the matching rows of one snapshot of ``dataset``: over the whole scan at once
    (an engine with no ``rows_per_task``), or over each piece as a task. The results are partials
    for the caller to merge (:func:`combine`); with no matching file, ``fn`` sees an empty frame."""
    if engine.rows_per_task is None:
        return [fn(store.scan(dataset, filters, schema, as_of=as_of))]
    files, read_schema = store.live(dataset, filters, as_of=as_of)
    if not files or read_schema is None:
        return [fn(store.scan(dataset, filters, schema, as_of=as_of))]
    return run_pieces(engine, store, dataset, fn, cut(files, engine.rows_per_task), read_schema,
                      what=what, progress=progress)


def run_pieces(engine: Engine, store: Store, dataset: str, fn: Callable[[pl.LazyFrame], T],
               pieces: Sequence[Piece], schema: Mapping[str, pl.DataType], *, what: str,
               progress: Progress = QUIET) -> list[T]:
    """``fn`` over each piece of ``dataset`` (read with ``schema``) as a task of ``engine``, after
    checking that the engine's workers see the store; the results in the order of ``pieces``."""
    engine.check_store(store)
    task = functools.partial(_run_piece, fn, spec_of(store), dataset, dict(schema))
    out = dict(engine.map(task, pieces, what=what, sizes=[p.bytes for p in pieces], progress=progress))
    return [out[i] for i in range(len(pieces))]


def _sum_keeping_null(c: str) -> pl.Expr:
    # A column that is null in every partial (a measure a segment does not carry) stays null, as the
    # single query left it, rather than becoming 0.
    return pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).otherwise(None).alias(c)


def combine(frames: Sequence[pl.DataFrame], values: Sequence[str]) -> pl.DataFrame:
    """Partial aggregates merged: rows with equal keys (every column not in ``values``, nulls equal)
    summed. The same frame whether the partials came from one query or from any cut of the rows."""
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    merged = pl.concat(frames, how="diagonal_relaxed")
    keys = [c for c in merged.columns if c not in values]
    if not keys:
        return merged.select(_sum_keeping_null(c) for c in merged.columns if c in values)
    sums = [_sum_keeping_null(c) for c in merged.columns if c in values]
    return merged.group_by(keys, maintain_order=False).agg(sums).select(merged.columns)
