"""Ingest of export files as tasks of an engine (a Ray cluster): workers map the files to FOCUS and
place the data files in the store; the driver checks what they return and commits it all in one
Delta commit.

The same functions as the in-process ingest (:mod:`collectors.files`) run on the workers, file by
file; a FOCUS Parquet file of more than ``rows_per_task`` rows is cut into tasks at row-group
boundaries. Native exports read as a set (CUR manifests and the like) are staged on the driver, as
in-process. A worker killed mid-task is retried by the engine: its half-placed files belong to no
commit (``vacuum`` sweeps them) and only the retry's result is adopted, so nothing is counted twice.
Any error — in a file, or a task lost for good — unplaces what the finished tasks placed and commits
nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq

from collectors import formats
from collectors.files import (
    FileResult,
    IngestError,
    IngestResult,
    check_provider,
    expand,
    local_copy,
    read_raw,
    refuse_replacing_other_sources,
    stage_file,
    stage_together,
)
from finops import providers
from finops.engine.base import Engine
from finops.engine.pieces import StoreSpec, spec_of
from finops.store import PlacedPart, Store

FILES_PER_TASK = 100_000  # file numbers reserved per task attempt within the run


@dataclass(frozen=True)
class FileTask:
    """One task: a file, or rows ``[offset, offset + length)`` of a FOCUS Parquet file."""

    url: str
    bytes: int
    rows: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        if self.rows is None:
            return self.url
        start, length = self.rows
        return f"{self.url} [rows {start + 1:,}–{start + length:,}]"


@dataclass(frozen=True)
class TaskResult:
    """What a worker did with a task: staged and placed it, or left it to the driver (``together``)."""

    task: FileTask
    file: FileResult | None = None
    part: PlacedPart | None = None
    together: bool = False


def plan(urls: Sequence[str], storage_options: Mapping[str, Any] | None, rows_per_task: int) -> list[FileTask]:
    """One task per file, and per ~``rows_per_task`` rows (whole row groups) of a large FOCUS Parquet file."""
    tasks: list[FileTask] = []
    for url in urls:
        fs, p = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if not fs.exists(p):
            raise IngestError(f"{url}: no such file")
        size = int(fs.size(p) or 0)
        meta = _parquet_meta(fs, p)
        native = meta is not None and formats.detect(meta.schema.to_arrow_schema().names) is not None
        if meta is None or meta.num_rows <= rows_per_task or native:
            tasks.append(FileTask(url, size))
            continue
        start = length = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if length and length + n > rows_per_task:
                tasks.append(FileTask(url, size * length // meta.num_rows, (start, length)))
                start, length = start + length, 0
            length += n
        tasks.append(FileTask(url, size * length // meta.num_rows, (start, length)))
    return tasks


def _parquet_meta(fs: fsspec.AbstractFileSystem, path: str) -> pq.FileMetaData | None:
    try:
        with fs.open(path, "rb") as f:
            if f.read(4) != b"PAR1":
                return None
            f.seek(0)
            return pq.ParquetFile(f).metadata
    except (OSError, ValueError):
        return None  # not Parquet, or unreadable: the task says what is wrong with it


def stage_task(spec: StoreSpec, run_id: str, provider: str | None, storage_options: Mapping[str, Any] | None,
               item: tuple[int, FileTask]) -> TaskResult:
    """On a worker: read, map, validate and place one task's rows for run ``run_id``."""
    index, task = item
    store = spec.open()
    with store.transaction("billing") as tx:
        with local_copy(task.url, storage_options) as (local, pending):
            raw = read_raw(local, task.url)
            native = formats.detect(raw.collect_schema().names())
            if native is not None and native.together is not None:  # read as a set, on the driver
                check_provider(native.provider, provider, task.url)
                return TaskResult(task, together=True)
            staged = stage_file(tx, local, raw, native, task.name, pending, provider, task.rows)
        first = (index * 1000 + secrets.randbelow(1000)) * FILES_PER_TASK  # a retry never reuses a name
        part = tx.place(run_id, first)
    return TaskResult(task, staged, part)


def ingest(engine: Engine, store: Store, urls: Sequence[str | Path], *, provider: str | None = None,
           storage_options: Mapping[str, Any] | None = None,
           progress: Callable[[str, str], None] | None = None, replace: bool = False) -> IngestResult:
    """:func:`collectors.files.ingest` with the files' work done by ``engine``'s tasks: the same
    result, all or nothing, in one commit."""
    known = (*providers.clouds(), *providers.OTHER_NAMES)
    if provider is not None and provider not in known:
        raise IngestError(f"--provider {provider!r}: expected one of {', '.join(known)}")
    note = progress or (lambda _p, _s: None)
    given = {_absolute(u): u for u in expand(urls, storage_options)}  # workers get absolute paths
    files = list(given)
    tasks = plan(files, storage_options, engine.rows_per_task or 1 << 62)
    engine.check_store(store)
    result = IngestResult()
    with store.transaction("billing") as tx:
        fn = functools.partial(stage_task, spec_of(store), tx.run_id, provider, storage_options)
        done = _run(engine, store, fn, tasks, lambda url, state: note(given[url], state))
        together: dict[str, tuple[formats.NativeFormat, list[str]]] = {}
        seen: set[str] = set()
        for url, results in _by_file(files, done).items():
            if results[0].together:
                native = _detect_on_driver(url, storage_options)
                together.setdefault(native.name, (native, []))[1].append(url)
                continue
            file = _merge(given[url], results)
            if file.source.sha256 in seen:  # same bytes as an earlier file of this run
                for r in results:
                    assert r.part is not None
                    tx.adopt(r.part)
                    tx.discard(-1)
                result.skipped.append(given[url])
                note(given[url], "duplicate")
                continue
            seen.add(file.source.sha256)
            for r in results:
                assert r.part is not None
                tx.adopt(r.part)
            result.files.append(file)
        for native, group in together.values():
            result.files += stage_together(tx, native, group, storage_options)
            for url in group:
                note(given[url], "staged")
        if not replace:
            refuse_replacing_other_sources(store, tx)
        result.manifests = tx.commit()
    for f in result.files:
        note(f.path, "committed")
    return result


def _run(engine: Engine, store: Store, fn: Callable[[tuple[int, FileTask]], TaskResult], tasks: list[FileTask],
         note: Callable[[str, str], None]) -> list[TaskResult]:
    """Every task's result in task order; on any failure, what finished tasks placed is removed."""
    done: dict[int, TaskResult] = {}
    left = {t.url: 0 for t in tasks}
    for t in tasks:
        left[t.url] += 1
    try:
        for i, r in engine.map(fn, list(enumerate(tasks)), what="ingest", sizes=[t.bytes for t in tasks]):
            done[i] = r
            left[r.task.url] -= 1
            if not left[r.task.url] and not r.together:
                note(r.task.url, "staged")
    except BaseException:
        for r in done.values():
            if r.part is not None:
                store._unplace("billing", r.part.actions())
        raise
    return [done[i] for i in range(len(tasks))]


def _by_file(urls: Sequence[str], done: Sequence[TaskResult]) -> dict[str, list[TaskResult]]:
    out: dict[str, list[TaskResult]] = {u: [] for u in urls}
    for r in done:
        out[r.task.url].append(r)
    return out


def _merge(url: str, results: Sequence[TaskResult]) -> FileResult:
    """One file's result from its tasks' (rows and sums added up)."""
    files = [r.file for r in results if r.file is not None]
    if len(files) == 1:
        return dataclasses.replace(files[0], path=url)
    sums: dict[str, Decimal] = {}
    for f in files:
        for k, v in f.sums.items():
            sums[k] = sums.get(k, Decimal(0)) + v
    warnings = list(dict.fromkeys(w for f in files for w in f.warnings))
    return FileResult(url, sum(f.rows for f in files), sums, files[0].source, warnings)


def _detect_on_driver(url: str, storage_options: Mapping[str, Any] | None) -> formats.NativeFormat:
    with local_copy(url, storage_options) as (local, _):
        native = formats.detect(read_raw(local, url).collect_schema().names())
    if native is None:  # a worker said otherwise: the file changed under us
        raise IngestError(f"{url}: changed while being ingested; run it again")
    return native


def _absolute(url: str) -> str:
    """Local paths made absolute: a worker does not share the driver's working folder."""
    return url if "://" in url else str(Path(url).resolve())

