"""The columnar store: one Delta Lake table per dataset under one URL (a local folder or ``s3://…``).

Layout::

    <root>/<dataset>/_delta_log/…                     the Delta transaction log: the dataset's truth
    <root>/<dataset>/<key>=<value>/…/part-<run>-<n>.parquet    data files (Parquet)
    <root>/<dataset>/_finops/runs/<run>.json          provenance of one write (see below)
    <root>/<dataset>/_staging/<run>/…                 a local writer's files before they are placed
    <root>/_cursors/<source>.json                     collectors' progress (small JSON files)

Datasets: ``billing`` (FOCUS rows, partitioned by provider, billing period and billing account;
writes replace partitions), ``prices`` (every price observation, by provider and day; writes append,
history is never rewritten) and ``offers`` (the newest observation of each offer, by provider;
replaced on every price write, so the optimizer reads one small frame).

**Writing.** A transaction stages frames with polars' streaming partitioned sink (memory stays flat),
counts rows and sums costs per staged file, places the files at their final paths (a rename locally,
an upload remotely; a placed file no commit names is invisible, and ``vacuum`` removes it), writes the
run's provenance record, then makes everything visible in **one Delta commit**: ``add`` actions for the
new files and, for a replacing dataset, ``remove`` actions for every live file of the partitions it
touches (a partition overwrite). A writer killed at any moment therefore leaves the last committed
version whole. A replacing commit also carries one Delta ``txn`` action per partition
(app id ``finops/<dataset>/<partition>``): two writers replacing the same partition — even a partition
that did not exist yet — then conflict in delta-rs' conflict checker instead of both landing.

**Concurrency.** Commits are optimistic (delta-rs writes ``_delta_log/<version>.json`` only if absent:
an exclusive create locally, a conditional PUT (``If-None-Match``) on S3). Appends to the same partition
both land (delta-rs rebases a blind append). When delta-rs reports a conflict (another writer removed
files this commit read, or replaced a partition this commit replaces), the commit is re-planned on the
newest version and tried again: for a replace that re-runs the partition overwrite on top of the
other writer's, which is the serial order, so no write is lost and no partition holds both. After
``COMMIT_ATTEMPTS`` tries it raises :class:`StoreConflict`. delta-rs' runtime does not survive
``fork()``: processes that use a Store must be started with the ``spawn`` (or ``forkserver``) method.

**Provenance.** Each write's record (``_finops/runs/<run>.json``, also in the commit's ``commitInfo``
under ``finops``) holds, per partition, the source files (path, SHA-256, bytes), the rows, the exact
BilledCost/EffectiveCost sums as decimal strings, written_at, run id and columns. It is written
*before* the commit and describes only that run's own files, so it can never disagree with the data:
:meth:`Store.manifests` starts from the live files of a Delta snapshot (rows from the log's per-file
``numRecords``), finds the runs they belong to by file name, and adds up those runs' records; a record
whose run never committed names no live file and is ignored. No data is scanned. ``optimize`` writes
a record for its compacted files that carries the provenance of the files it merged.

**Time travel.** ``scan``/``manifests``/``files`` take ``as_of`` (a version number or an aware
datetime: the table as it stood then); :meth:`Store.history` lists versions. How far back one can go
is bounded by ``vacuum``'s retention (files) and Delta's log retention (30 days by default).

**Old layout.** Stores written before Delta (``<dataset>/…/_manifest.json`` per partition) raise
:class:`OldLayoutError` on any dataset operation; ``finops store migrate``
(:mod:`finops.store_migrate`) converts them in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import quote, unquote

import deltalake
import fsspec
import polars as pl
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, DeltaProtocolError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from deltalake.transaction import Transaction as AppTransaction

from finops import providers

CURSORS = "_cursors"
FINOPS_DIR = "_finops"  # a leading underscore: Delta readers and vacuum leave it alone
RECORDS = f"{FINOPS_DIR}/runs"
STAGING = "_staging"  # a leading underscore: hidden from Delta readers and vacuum too
OLD_MANIFEST = "_manifest.json"
STALE_STAGING_SECONDS = 6 * 3600
# A partitioned sink buffers a row group per open partition: 25k rows keeps a 10M-row ingest under
# 2 GB peak RSS (polars' default: 3.5 GB) at no measurable cost in time.
ROW_GROUP_ROWS = 25_000
COMMIT_ATTEMPTS = 8
# vacuum deletes files no version within the retention needs, and files no commit names (a crashed
# writer's). A writer places its files before it commits and a reader lists files before it reads
# them, so the retention must outlast the longest write and read: a day is far beyond either.
MIN_RETAIN_HOURS = 24.0
# optimize merges a partition's files when it has several smaller than this.
SMALL_FILE_BYTES = 64 << 20
RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}")
RUN_FILE = re.compile(r"part-(?P<run>\d{8}T\d{6}-[0-9a-f]{8})-\d+\.parquet$")


@dataclass(frozen=True)
class Dataset:
    """A dataset's partition keys, how to find them, the sums its records keep, and whether a write
    replaces or appends to a partition.

    Rows are split by raw columns (``split_by``, cheap per row); ``keys_of`` then turns each distinct
    raw value set into the partition's keys, once per partition rather than once per row. Keys that
    are also data columns (``data_keys``) keep the column's value, so the Delta partition value and
    the column always agree; the others exist only as Delta partition columns and are left out of
    :meth:`Store.scan`.
    """

    name: str
    key_names: tuple[str, ...]
    split_by: tuple[str, ...]
    keys_of: Callable[[Mapping[str, str]], dict[str, str | None]]
    sums: tuple[str, ...] = ()
    mode: Literal["replace", "append"] = "replace"
    data_keys: tuple[str, ...] = ()


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def safe_key(value: str | None) -> str:
    """A partition value that is safe in any path and URL (Azure account ids hold slashes)."""
    if value is None or value == HIVE_NULL:
        return "none"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("_") or "none"


AZURE_STYLE_ID = re.compile(r"/providers(/[A-Za-z0-9.-]+)+")


def account_key(value: str | None) -> str:
    """The partition value of a billing account id: one per id (``safe_key`` alone folds ``payer:one`` and
    ``payer/one`` into one partition, and a write of one would replace the other's rows). An id that is safe
    as it is stays itself; Azure's ``/providers/…`` ids without underscores keep their cleaned name, as before
    (``providers_Microsoft.Billing_…``: no other provider's ids look like that); any other id that cleaning
    changes gets ``~`` and a hash of the exact id appended (``payer_one~3f…``; no id kept as it is holds a
    ``~``). Only the value is exact: the partition's directory is ``safe_key`` of it (:func:`partition_path`)
    and may be shared, which is harmless as every data file's name is unique (run id and number)."""
    key = safe_key(value)
    if value is None or value in (HIVE_NULL, key) or AZURE_STYLE_ID.fullmatch(value):
        return key
    return f"{key}~{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _billing_keys(raw: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "provider": providers.slug(raw["ProviderName"]) if raw["ProviderName"] != HIVE_NULL else "unknown",
        "billing_period": raw["BillingPeriodStart"][:7],
        "billing_account": account_key(raw["BillingAccountId"]),
    }


def _raw(value: str) -> str | None:
    return None if value == HIVE_NULL else value


def _provider_key(raw: Mapping[str, str]) -> dict[str, str | None]:
    return {"provider": _raw(raw["provider"])}


def _price_keys(raw: Mapping[str, str]) -> dict[str, str | None]:
    return {"provider": _raw(raw["provider"]), "date": raw["observed_at"][:10]}


DATASETS: dict[str, Dataset] = {
    "billing": Dataset("billing", ("provider", "billing_period", "billing_account"),
                       ("ProviderName", "BillingPeriodStart", "BillingAccountId"), _billing_keys,
                       ("BilledCost", "EffectiveCost"), "replace"),
    "prices": Dataset("prices", ("provider", "date"), ("provider", "observed_at"), _price_keys, (), "append",
                      ("provider",)),
    "offers": Dataset("offers", ("provider",), ("provider",), _provider_key, (), "replace", ("provider",)),
}


class StoreError(RuntimeError):
    """A store operation that could not be done; the store is as it was before it."""


class StoreConflict(StoreError):
    """Concurrent writers kept winning the race for the same commit; nothing of this write landed."""


class OldLayoutError(StoreError):
    """The store was written by finops before it used Delta Lake."""


@dataclass(frozen=True)
class Source:
    """A source file a partition was built from."""

    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: str, storage_options: Mapping[str, Any] | None = None, name: str | None = None) -> Source:
        """Checksum the file at ``path``; record it as ``name`` (default: ``path``)."""
        fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
        h = hashlib.sha256()
        with fs.open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return cls(path=name or str(path), sha256=h.hexdigest(), bytes=int(fs.size(p)))


@dataclass
class Manifest:
    """What one partition holds (derived from a Delta snapshot and the provenance records)."""

    dataset: str
    partition: dict[str, str]
    files: list[str]
    rows: int
    sums: dict[str, str]
    sources: list[dict[str, Any]]
    written_at: str
    run_id: str
    history: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def sum(self, column: str) -> Decimal:
        return Decimal(self.sums.get(column, "0"))


@dataclass(frozen=True)
class Version:
    """One version of a dataset's table (:meth:`Store.history`)."""

    version: int
    timestamp: datetime
    operation: str
    rows: int | None
    partitions: list[dict[str, str]]
    run_id: str | None


@dataclass(frozen=True)
class OptimizeSummary:
    """What :meth:`Store.optimize` did: partitions whose small files were merged, files before and
    after, and the version it committed (None when there was nothing to do)."""

    dataset: str
    partitions: int
    files_before: int
    files_after: int
    version: int | None


@dataclass(frozen=True)
class VacuumSummary:
    """What :meth:`Store.vacuum` removed, per dataset (file paths relative to the table)."""

    retain_hours: float
    removed: dict[str, list[str]]
    dry_run: bool = False

    @property
    def files(self) -> int:
        return sum(len(v) for v in self.removed.values())


def partition_path(keys: Mapping[str, str | None]) -> str:
    """The directory of a partition: ``provider=aws/billing_period=2024-09/…`` (values made safe)."""
    return "/".join(f"{k}={safe_key(v) if v is not None else 'none'}" for k, v in keys.items())


def partition_id(keys: Mapping[str, str | None]) -> str:
    """A partition's exact name in provenance records and Delta app ids (values percent-encoded)."""
    return "/".join(f"{k}={quote(v, safe='') if v is not None else HIVE_NULL}" for k, v in keys.items())


def _parse_partition(rel: str) -> dict[str, str]:
    return {unquote(k): unquote(v) for k, v in (seg.split("=", 1) for seg in rel.split("/") if "=" in seg)}


class Store:
    """One Delta table per dataset under ``url`` (local path, ``file://``, ``s3://``, ``gs://``, ``az://``).

    ``storage_options`` go to fsspec (placing files, provenance records, cursors); ``polars_options``
    are object_store options (``aws_endpoint_url``, ``aws_region``, …) for polars' reader and
    delta-rs alike. Credentials come from each SDK's standard chain, never from here.
    """

    def __init__(self, url: str | Path, storage_options: Mapping[str, Any] | None = None,
                 polars_options: Mapping[str, str] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self.polars_options = dict(polars_options or {}) or None
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        if self.local:
            self.root = str(Path(self.root).resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
        self.delta_options = _delta_options(protocols[0], self.polars_options or {})
        self._records: dict[tuple[str, str], dict[str, Any] | None] = {}

    # -- paths ---------------------------------------------------------------------------------
    def _dir(self, dataset: str) -> str:
        return f"{self.root}/{dataset}"

    def _url(self, path: str) -> str:
        if self.local:
            return path
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{proto}://{path}"

    def table_uri(self, dataset: str) -> str:
        """The Delta table's URI for ``dataset`` (what delta-rs and other Delta readers open)."""
        return self._url(self._dir(dataset))

    # -- the Delta table -----------------------------------------------------------------------
    def _open(self, dataset: str, version: int | None = None) -> DeltaTable | None:
        """The dataset's table (at ``version``), or None when it does not exist yet."""
        try:
            return DeltaTable(self.table_uri(dataset), version=version,
                              storage_options=self.delta_options or None)
        except TableNotFoundError:
            self._refuse_old_layout(dataset)
            return None
        except (DeltaError, DeltaProtocolError) as e:
            raise _store_error(dataset, self.table_uri(dataset), e) from None

    def _refuse_old_layout(self, dataset: str) -> None:
        if self.is_old_layout(dataset):
            raise OldLayoutError(
                f"{self.url}: the {dataset} dataset is in finops' old layout (per-partition {OLD_MANIFEST}); "
                f"run `finops store migrate` to convert the store to Delta Lake (the data is kept)")

    def is_old_layout(self, dataset: str) -> bool:
        """True when ``dataset`` is stored in the pre-Delta layout (and not yet migrated)."""
        base = self._dir(dataset)
        self.fs.invalidate_cache(base)
        if self.fs.exists(f"{base}/_delta_log") or not self.fs.exists(base):
            return False
        depth = len(_dataset(dataset).key_names)
        return bool(self.fs.glob(f"{base}/" + "/".join(["*"] * depth) + f"/{OLD_MANIFEST}"))

    def _snapshot(self, dataset: str, as_of: int | datetime | None) -> DeltaTable | None:
        """The table as it stood at ``as_of`` (a version or an aware datetime); None if it did not exist."""
        if as_of is None or isinstance(as_of, int):
            if isinstance(as_of, int) and as_of < 0:
                raise StoreError(f"{dataset}: as_of version {as_of}: versions start at 0")
            dt = self._open(dataset)
            if dt is None or as_of is None:
                return dt
            if as_of > dt.version():
                raise StoreError(f"{dataset}: as_of version {as_of}: the newest version is {dt.version()}")
            return self._open(dataset, as_of)
        if as_of.tzinfo is None:
            raise StoreError(f"{dataset}: as_of {as_of.isoformat()}: give a timezone (e.g. UTC)")
        version = self._version_at(dataset, as_of)
        return None if version is None else self._open(dataset, version)

    def _version_at(self, dataset: str, when: datetime) -> int | None:
        """The newest version committed at or before ``when`` (None: the table did not exist yet)."""
        ms = when.timestamp() * 1000
        found = [v.version for v in self.history(dataset) if v.timestamp.timestamp() * 1000 <= ms]
        return max(found) if found else None

    # -- reading -------------------------------------------------------------------------------
    def manifests(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None, *,
                  as_of: int | datetime | None = None) -> list[Manifest]:
        """What each partition matching ``filters`` (partition key → value(s)) holds, from the Delta
        log and the provenance records: no data file is read."""
        ds = _dataset(dataset)
        dt = self._snapshot(dataset, as_of)
        if dt is None:
            return []
        return self._manifests(ds, dt, _normalise_filters(ds, filters))

    def _manifests(self, ds: Dataset, dt: DeltaTable, wanted: Mapping[str, set[str]],
                   exact: set[str] | None = None) -> list[Manifest]:
        live = self._live(ds, dt, wanted)
        if exact is not None:
            live = [f for f in live if f.pid in exact]
        by_pid: dict[str, list[LiveFile]] = {}
        for f in live:
            by_pid.setdefault(f.pid, []).append(f)
        runs = {f.run for f in live if f.run}
        records = self._load_records(ds.name, runs)
        out = [self._manifest(ds, files, records) for files in by_pid.values()]
        return sorted(out, key=lambda m: tuple(str(v) for v in m.partition.values()))

    def _manifest(self, ds: Dataset, files: list[LiveFile], records: Mapping[str, dict[str, Any] | None]) -> Manifest:
        pid, keys = files[0].pid, files[0].keys
        entries = []
        for run in sorted({f.run for f in files if f.run}):
            rec = records.get(run)
            if rec and pid in rec["partitions"]:
                entries.append(rec["partitions"][pid])
        covered = {f.run for f in files if f.run and pid in (records.get(f.run) or {}).get("partitions", {})}
        sums = Stats()
        for e in entries:
            sums += Stats(0, e.get("sums", {}))
        if ds.sums and any(f.run not in covered for f in files):  # written by another Delta writer
            sums = self._sum_files(ds, entries, [f for f in files if f.run not in covered])
        sources: list[dict[str, Any]] = []
        for e in entries:
            sources += [s for s in e.get("sources", []) if s not in sources]
        latest: dict[str, Any] = max(entries, key=lambda e: e.get("written_at", ""), default={})
        columns: list[str] = []
        for e in entries:
            columns += [c for c in e.get("columns", []) if c not in columns]
        history = [h for e in entries for h in e.get("history", [])]
        return Manifest(ds.name, {k: keys[k] or "" for k in ds.key_names}, [f.path for f in files],
                        sum(f.rows for f in files), sums.sums, sources, latest.get("written_at", ""),
                        latest.get("run_id", ""), history, columns)

    def _sum_files(self, ds: Dataset, entries: list[dict[str, Any]], others: list[LiveFile]) -> Stats:
        """Sums when some files carry no finops record: those files are read (rare: foreign writers)."""
        total = Stats(0, dict.fromkeys(ds.sums, "0"))
        for e in entries:
            total += Stats(0, e.get("sums", {}))
        df = pl.scan_parquet([self._url(f"{self._dir(ds.name)}/{f.path}") for f in others],
                             storage_options=self.polars_options, hive_partitioning=False,
                             missing_columns="insert").select(pl.col(c).sum() for c in ds.sums).collect()
        return total + Stats(0, {c: str(df[c][0] or 0) for c in ds.sums})

    def _live(self, ds: Dataset, dt: DeltaTable, wanted: Mapping[str, set[str]]) -> list[LiveFile]:
        """The snapshot's data files whose partition matches ``wanted``."""
        df = pl.DataFrame(dt.get_add_actions(flatten=True))
        if df.height == 0:
            return []
        out = []
        cols = [c for c in ("path", "size_bytes", "num_records") if c in df.columns]
        keycols = [f"partition.{k}" for k in ds.key_names]
        for row in df.select(*cols, *[c for c in keycols if c in df.columns]).iter_rows(named=True):
            keys = {k: row.get(f"partition.{k}") for k in ds.key_names}
            if all(keys[k] in v for k, v in wanted.items()):
                m = RUN_FILE.search(row["path"])
                out.append(LiveFile(row["path"], int(row["size_bytes"]), int(row.get("num_records") or 0),
                                    keys, partition_id(keys), m["run"] if m else None))
        if any(f.rows == 0 and f.size > 0 for f in out):  # files without numRecords: count them
            out = self._count_rows(ds.name, out)
        return out

    def _count_rows(self, dataset: str, files: list[LiveFile]) -> list[LiveFile]:
        out = []
        for f in files:
            if f.rows == 0 and f.size > 0:
                n = pl.scan_parquet(self._url(f"{self._dir(dataset)}/{f.path}"), storage_options=self.polars_options,
                                    hive_partitioning=False).select(pl.len()).collect().item()
                out.append(LiveFile(f.path, f.size, int(n), f.keys, f.pid, f.run))
            else:
                out.append(f)
        return out

    def files(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None, *,
              as_of: int | datetime | None = None) -> list[str]:
        """Data files (URLs) of the matching partitions in the table's version (newest, or ``as_of``)."""
        ds = _dataset(dataset)
        dt = self._snapshot(dataset, as_of)
        if dt is None:
            return []
        live = self._live(ds, dt, _normalise_filters(ds, filters))
        return [self._url(f"{self._dir(dataset)}/{f.path}") for f in live]

    def scan(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None,
             schema: Mapping[str, pl.DataType] | None = None, *,
             as_of: int | datetime | None = None) -> pl.LazyFrame:
        """A LazyFrame over the dataset, reading only the partitions that match ``filters``, as the
        table stands now or stood at ``as_of`` (a version number or an aware datetime).

        The file list is fixed when this returns: the frame reads one committed version whole, however
        many writers commit meanwhile. With no matching partition, an empty frame of ``schema`` (when
        given). Partition keys that are not data columns (billing's three, prices' date) are not in
        the frame; filter on them here.
        """
        ds = _dataset(dataset)
        dt = self._snapshot(dataset, as_of)
        if dt is None:
            return pl.LazyFrame(schema=dict(schema or {}))
        live = self._live(ds, dt, _normalise_filters(ds, filters))
        if not live:
            return pl.LazyFrame(schema=dict(schema or {}))
        return self.scan_files(dataset, [f.path for f in live], _read_schema(ds, dt))

    def live(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None, *,
             as_of: int | datetime | None = None) -> tuple[list[LiveFile], pl.Schema | None]:
        """The matching data files of one snapshot (newest, or ``as_of``) and the schema to read them
        with (None when the table does not exist): what a cluster's tasks are cut from."""
        ds = _dataset(dataset)
        dt = self._snapshot(dataset, as_of)
        if dt is None:
            return [], None
        return self._live(ds, dt, _normalise_filters(ds, filters)), _read_schema(ds, dt)

    def scan_files(self, dataset: str, paths: Sequence[str], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
        """A LazyFrame over some data files of ``dataset`` (paths relative to its table, as
        :meth:`live` gives them) read with ``schema``: a column a file lacks reads as null."""
        urls = [self._url(f"{self._dir(dataset)}/{p}") for p in paths]
        return pl.scan_parquet(urls, storage_options=self.polars_options, hive_partitioning=False,
                               schema=pl.Schema(schema), missing_columns="insert", extra_columns="ignore")

    # -- probes: can another machine see this store? ---------------------------------------------
    def _probe_path(self, token: str) -> str:
        return f"{self.root}/{FINOPS_DIR}/probes/{token}.json"

    def write_probe(self, token: str) -> None:
        """Leave a token in the store for :meth:`read_probe` on another machine to find."""
        self._put_json(self._probe_path(token), {"token": token})

    def read_probe(self, token: str) -> bool:
        """Whether this process sees the token another process left (and can write beside it)."""
        try:
            found = json.loads(self.fs.cat_file(self._probe_path(token)).decode()).get("token") == token
        except FileNotFoundError:
            return False
        self._put_json(self._probe_path(f"{token}-seen"), {"token": token})
        return found

    def remove_probe(self, token: str) -> None:
        """Remove the token (and, on local disk, the probes folder once empty: a check leaves no trace)."""
        for t in (token, f"{token}-seen"):
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.rm(self._probe_path(t))
        if self.local:
            for folder in (Path(self._probe_path(token)).parent, Path(self.root) / FINOPS_DIR):
                with contextlib.suppress(OSError):  # not empty: something else lives there
                    folder.rmdir()

    def history(self, dataset: str) -> list[Version]:
        """The dataset's versions, oldest first: when, what (``replace``, ``append``, ``optimize``,
        ``migrate``, or Delta's own operation name), rows written, partitions touched and run id.
        Versions whose commit files the log has cleaned up (after 30 days by default) are not listed."""
        ds = _dataset(dataset)
        out = []
        for version, info in self._commits(dataset):
            meta = info.get("finops") or {}
            metrics = info.get("operationMetrics") or {}
            rows = meta.get("rows", metrics.get("num_added_rows"))
            out.append(Version(version, datetime.fromtimestamp(info.get("timestamp", 0) / 1000, UTC),
                               meta.get("operation") or info.get("operation", ""),
                               int(rows) if rows is not None else None,
                               [{k: p["partition"].get(k) for k in ds.key_names} for p in meta.get("partitions", [])],
                               meta.get("run_id")))
        return out

    def _commits(self, dataset: str, since: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(version, commitInfo) of the log's commit files from ``since`` on, read directly from the
        store. (Not ``DeltaTable.history()``: its listing hangs against moto's S3 server.)"""
        _dataset(dataset)
        log = f"{self._dir(dataset)}/_delta_log"
        self.fs.invalidate_cache(log)  # s3fs caches listings; the log grows under us
        try:
            names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(log, detail=False)]
        except FileNotFoundError:
            self._refuse_old_layout(dataset)
            return []
        versions = sorted(int(n[:-5]) for n in names if re.fullmatch(r"\d{20}\.json", n) and int(n[:-5]) >= since)

        def info(v: int) -> dict[str, Any]:
            for line in self.fs.cat_file(f"{log}/{v:020d}.json").decode().splitlines():
                if line.startswith('{"commitInfo"'):
                    return json.loads(line)["commitInfo"]
            return {}

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(zip(versions, pool.map(info, versions), strict=True))

    # -- provenance records --------------------------------------------------------------------
    def _record_path(self, dataset: str, run_id: str) -> str:
        return f"{self._dir(dataset)}/{RECORDS}/{run_id}.json"

    def _write_record(self, dataset: str, record: Mapping[str, Any]) -> None:
        self._put_json(self._record_path(dataset, record["run_id"]), record)

    def _load_records(self, dataset: str, runs: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Provenance records of ``runs`` (cached: a record never changes once its run committed)."""
        missing = [r for r in runs if (dataset, r) not in self._records]

        def load(run: str) -> dict[str, Any] | None:
            try:
                return json.loads(self.fs.cat_file(self._record_path(dataset, run)).decode())
            except FileNotFoundError:
                return None

        with ThreadPoolExecutor(max_workers=8) as pool:
            for run, rec in zip(missing, pool.map(load, missing), strict=True):
                self._records[(dataset, run)] = rec
        return {r: self._records[(dataset, r)] for r in runs}

    def _put_json(self, path: str, data: Mapping[str, Any]) -> None:
        """Write a small JSON file atomically (a rename locally, a single PUT remotely)."""
        body = json.dumps(dict(data), sort_keys=True, default=str).encode()
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, body)

    # -- writing -------------------------------------------------------------------------------
    def transaction(self, dataset: str, *, before_commit: Callable[[], None] | None = None) -> Transaction:
        """Stage any number of frames, then commit them together (``with store.transaction(...) as
        tx: tx.stage(...); tx.commit()``): one Delta commit. Leaving the block without commit — or by
        an exception — discards everything staged; the store is untouched.

        ``before_commit`` (for tests) is called once, after the files are placed and just before the
        first commit attempt: a test can hold two writers there to make them race."""
        ds = _dataset(dataset)
        self._refuse_old_layout(dataset)
        return Transaction(self, ds, before_commit)

    def write(self, dataset: str, frame: pl.LazyFrame | pl.DataFrame, *,
              sources: Iterable[Source] = (), before_commit: Callable[[], None] | None = None) -> list[Manifest]:
        """Write one frame in one commit: the partitions it touches are replaced whole (``billing``,
        ``offers``) or appended to (``prices``). Returns the touched partitions' manifests."""
        with self.transaction(dataset, before_commit=before_commit) as tx:
            tx.stage(frame, sources)
            return tx.commit()

    def _staging_dir(self, dataset: str, run_id: str) -> str:
        # Stage beside the data when local (so placing a file is a rename), else in a local temp folder.
        if self.local:
            base = Path(self._dir(dataset)) / STAGING
            base.mkdir(parents=True, exist_ok=True)
            self._sweep_staging(base)
            return str(base / run_id)
        return tempfile.mkdtemp(prefix=f"finops-{run_id}-")

    @staticmethod
    def _sweep_staging(base: Path, older_than: float = STALE_STAGING_SECONDS) -> int:
        now, n = time.time(), 0
        for d in base.iterdir():
            try:
                if now - d.stat().st_mtime > older_than:
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
            except FileNotFoundError:
                pass
        return n

    def _stage(self, ds: Dataset, lf: pl.LazyFrame, stage: str) -> dict[str, list[str]]:
        """Sink ``lf`` split by the dataset's raw columns; returns staged files by partition id."""
        written: list[str] = []
        lf.sink_parquet(
            pl.PartitionBy(stage, key=list(ds.split_by), include_key=True),
            mkdir=True, statistics=True, row_group_size=ROW_GROUP_ROWS,
            sinked_paths_callback=lambda a: written.extend(p.path for p in a.paths),
        )
        staged: dict[str, list[str]] = {}
        for path in sorted(written, key=_natural):
            raw = _parse_partition(os.path.relpath(os.path.dirname(path), stage).replace(os.sep, "/"))
            staged.setdefault(partition_id(ds.keys_of(raw)), []).append(path)
        return staged

    def _stats(self, ds: Dataset, files: Mapping[str, list[str]]) -> tuple[dict[str, Stats], dict[str, int]]:
        """Rows and sums of each staged partition, and rows per file, in one query over all files."""
        owner = {f: rel for rel, fs in files.items() for f in fs}
        if not owner:
            return {}, {}
        exprs = [pl.len().alias("__rows")] + [pl.col(c).sum().alias(c) for c in ds.sums]
        per_file = (pl.scan_parquet(list(owner), hive_partitioning=False, include_file_paths="__file")
                    .group_by("__file").agg(exprs).collect())
        out = {rel: Stats() for rel in files}
        rows: dict[str, int] = {}
        for row in per_file.iter_rows(named=True):
            path, n = row.pop("__file"), int(row.pop("__rows"))
            rows[path] = n
            out[owner[path]] += Stats(n, {k: str(v or 0) for k, v in row.items()})
        return out, rows

    def _place(self, dataset: str, staged: list[tuple[str, int]], run_id: str,
               keys: Mapping[str, Mapping[str, str | None]], first: int = 0) -> list[AddAction]:
        """Move staged files to their final paths in the table; returns their ``add`` actions.

        ``staged``: (local path, rows) per file; ``keys``: partition values by local path; ``first``:
        the number of the first file (writers placing files of one run keep their numbers apart)."""
        now = int(time.time() * 1000)

        def place(item: tuple[int, tuple[str, int]]) -> AddAction:
            i, (local, rows) = item
            rel = f"{partition_path(keys[local])}/part-{run_id}-{first + i:05d}.parquet"
            target = f"{self._dir(dataset)}/{rel}"
            size = os.path.getsize(local)
            if self.local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                os.replace(local, target)
            else:
                self.fs.put_file(local, target)
            return AddAction(rel, size, dict(keys[local]), now, True, json.dumps({"numRecords": rows}))

        with ThreadPoolExecutor(max_workers=1 if self.local else 8) as pool:
            return list(pool.map(place, enumerate(staged)))

    def _landed(self, dataset: str, run_id: str) -> bool:
        """Whether the commit of ``run_id`` is in the log (True when that cannot be told: its placed
        files are then kept, and ``vacuum`` sweeps them if no commit names them)."""
        try:
            return any((info.get("finops") or {}).get("run_id") == run_id for _, info in self._commits(dataset))
        except Exception:  # noqa: BLE001 - keep the files rather than risk deleting committed ones
            return True

    def _unplace(self, dataset: str, adds: Iterable[AddAction]) -> None:
        """Best effort: remove placed files no commit names (``vacuum`` sweeps whatever is left)."""
        for a in adds:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.rm(f"{self._dir(dataset)}/{a.path}")

    def _commit(self, ds: Dataset, adds: list[AddAction], partitions: Mapping[str, Mapping[str, str | None]],
                schema: pl.Schema, meta: dict[str, Any], hook: Callable[[], None] | None,
                removes: Callable[[DeltaTable], list[RemoveAction]] | None = None) -> int:
        """Commit ``adds`` (and, replacing, removes of the touched partitions' live files) as one Delta
        commit, re-planned on the newest version after a conflict. Returns the committed version."""
        last: Exception | None = None
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
            dt = self._open(ds.name)
            if hook is not None:  # once, on the first attempt
                call, hook = hook, None
                call()
            try:
                if dt is None:
                    return self._create(ds, adds, partitions, schema, meta)
                table_schema = self._evolve(ds, dt, schema)
                actions: list[AddAction | RemoveAction] = [*adds]
                txns = []
                if removes is not None:
                    actions += removes(dt)
                elif ds.mode == "replace":
                    actions += self._removes(ds, dt, set(partitions))
                    txns = [_app_txn(dt, ds.name, pid) for pid in sorted(partitions)]
                dt.create_write_transaction(actions, "append", table_schema, partition_by=list(ds.key_names),
                                            commit_properties=CommitProperties(custom_metadata={"finops": meta},
                                                                               app_transactions=txns or None))
                return self._committed_version(ds.name, meta["run_id"], dt.version() + 1)
            except CommitFailedError as e:
                last = e
            except (DeltaError, DeltaProtocolError) as e:
                if dt is None and self._open(ds.name) is not None:  # lost the race to create the table
                    last = e
                    continue
                raise _store_error(ds.name, self.table_uri(ds.name), e) from None
        raise StoreConflict(f"{ds.name}: {COMMIT_ATTEMPTS} commit attempts lost to concurrent writers "
                            f"(last: {str(last).splitlines()[0] if last else '?'}); nothing was written — run it again")

    def _create(self, ds: Dataset, adds: list[AddAction], partitions: Mapping[str, Mapping[str, str | None]],
                schema: pl.Schema, meta: dict[str, Any]) -> int:
        replace = ds.mode == "replace"
        txns = [AppTransaction(_app_id(ds.name, pid), 1) for pid in sorted(partitions)] if replace else None
        create_table_with_add_actions(self.table_uri(ds.name), _delta_schema(ds, schema), adds, mode="error",
                                      partition_by=list(ds.key_names), name=ds.name,
                                      storage_options=self.delta_options or None,
                                      commit_properties=CommitProperties(custom_metadata={"finops": meta},
                                                                         app_transactions=txns))
        return self._committed_version(ds.name, meta["run_id"])

    def _evolve(self, ds: Dataset, dt: DeltaTable, schema: pl.Schema) -> DeltaSchema:
        """The table's schema, first widened by any new (extension) columns in ``schema``."""
        current = _polars_schema(dt)
        clash = [f"{c} ({current[c]} in the table, {t} written)" for c, t in schema.items()
                 if c in current and current[c] != t]
        if clash:
            raise StoreError(f"{ds.name}: column types differ from the stored ones: {', '.join(clash)}")
        new = [c for c in schema if c not in current]
        if new:
            arrow = pl.DataFrame(schema={c: schema[c] for c in new}).to_arrow().schema
            fields = list(DeltaSchema.from_arrow(arrow).fields)
            dt.alter.add_columns(fields)  # nullable: every existing file reads them as null
            dt = self._open(ds.name) or dt
        return dt.schema()

    def _removes(self, ds: Dataset, dt: DeltaTable, pids: set[str]) -> list[RemoveAction]:
        now = int(time.time() * 1000)
        return [RemoveAction(f.path, True, now, f.size, dict(f.keys)) for f in self._live(ds, dt, {}) if f.pid in pids]

    def _committed_version(self, dataset: str, run_id: str, read: int = 0) -> int:
        """The version the commit of ``run_id`` became (a conflict-free rebase may have moved it past
        ``read``, the version it was planned on)."""
        for version, info in reversed(self._commits(dataset, since=read)):
            if (info.get("finops") or {}).get("run_id") == run_id:
                return version
        raise StoreError(f"{dataset}: committed run {run_id} is not in the table's log")

    # -- cursors -------------------------------------------------------------------------------
    def cursor(self, source: str) -> dict[str, Any] | None:
        """The state a collector saved for ``source`` after its last finished step, if any."""
        try:
            return json.loads(self.fs.cat_file(self._cursor_path(source)).decode())
        except FileNotFoundError:
            return None

    def save_cursor(self, source: str, state: Mapping[str, Any]) -> None:
        """Record a collector's progress for ``source`` (atomically: a rename locally, one PUT remotely)."""
        self._put_json(self._cursor_path(source), state)

    def _cursor_path(self, source: str) -> str:
        return f"{self.root}/{CURSORS}/{safe_key(source)}.json"

    # -- maintenance ---------------------------------------------------------------------------
    def optimize(self, dataset: str, *, small_file_bytes: int = SMALL_FILE_BYTES) -> OptimizeSummary:
        """Merge each partition's small files (e.g. many hourly price appends) into one, in one commit
        that changes no data (``dataChange=false``; readers of any version are unaffected).

        The merge is done here rather than by delta-rs' ``optimize.compact()`` so that the merged file
        keeps a run id with a provenance record (the merged runs' sums and sources): ``manifests``
        stays exact without scanning. Losing a race with a writer of the same partitions raises
        :class:`StoreConflict` (nothing changed; run it again)."""
        ds = _dataset(dataset)
        dt = self._open(dataset)
        if dt is None:
            return OptimizeSummary(dataset, 0, 0, 0, None)
        by_pid: dict[str, list[LiveFile]] = {}
        for f in self._live(ds, dt, {}):
            by_pid.setdefault(f.pid, []).append(f)
        todo = {pid: fs for pid, fs in by_pid.items() if sum(f.size < small_file_bytes for f in fs) > 1}
        before = sum(len(fs) for fs in by_pid.values())
        if not todo:
            return OptimizeSummary(dataset, 0, before, before, None)
        run_id = new_run_id()
        read_schema = _read_schema(ds, dt)
        work = tempfile.mkdtemp(prefix=f"finops-optimize-{run_id}-")
        try:
            staged, keys, merged = [], {}, []
            for i, (_pid, fs) in enumerate(sorted(todo.items())):
                small = [f for f in fs if f.size < small_file_bytes]
                # a run's files in a partition are merged together: its record's sums cover them all, so
                # leaving one behind would count those sums twice (once per run holding them)
                runs = {f.run for f in small if f.run}
                small = [f for f in fs if f.size < small_file_bytes or (f.run and f.run in runs)]
                local = f"{work}/{i:05d}.parquet"
                pl.scan_parquet([self._url(f"{self._dir(dataset)}/{f.path}") for f in small],
                                storage_options=self.polars_options, hive_partitioning=False, schema=read_schema,
                                missing_columns="insert").sink_parquet(local, row_group_size=ROW_GROUP_ROWS)
                staged.append((local, sum(f.rows for f in small)))
                keys[local] = small[0].keys
                merged += small
            records = self._load_records(dataset, {f.run for f in merged if f.run})
            record = _merged_record(ds, run_id, merged, records)
            adds = [AddAction(a.path, a.size, a.partition_values, a.modification_time, False, a.stats)
                    for a in self._place(dataset, staged, run_id, keys)]
            self._write_record(dataset, record)
            meta = {"run_id": run_id, "operation": "optimize", "rows": 0,
                    "partitions": [{"partition": p["partition"]} for p in record["partitions"].values()]}
            now = int(time.time() * 1000)
            rms = [RemoveAction(f.path, False, now, f.size, dict(f.keys)) for f in merged]

            def removes(newest: DeltaTable) -> list[RemoveAction]:
                # a writer that replaced a merged file meanwhile wins: committing the merged copy on top
                # of its replacement would bring the replaced rows back
                live = {f.path for f in self._live(ds, newest, {})}
                gone = [f.path for f in merged if f.path not in live]
                if gone:
                    raise StoreConflict(f"{dataset}: optimize: another writer replaced {gone[0]} while it ran; "
                                        f"nothing was changed — run it again")
                return rms

            try:
                version = self._commit(ds, adds, {}, pl.Schema(read_schema), meta, None, removes=removes)
            except StoreError:
                if not self._landed(dataset, run_id):
                    self._unplace(dataset, adds)
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return OptimizeSummary(dataset, len(todo), before, before - len(merged) + len(adds), version)

    def vacuum(self, retain_hours: float, dataset: str | None = None, *, force: bool = False,
               dry_run: bool = False) -> VacuumSummary:
        """Delete data files that no version of the last ``retain_hours`` needs, and files a crashed
        writer placed but never committed, in ``dataset`` (default: all). Time travel then reaches
        back ``retain_hours`` at most.

        Refuses less than ``MIN_RETAIN_HOURS`` unless ``force``: a reader lists a version's files
        before reading them and a writer places its files before committing them, so a shorter
        retention can delete files a running read or write is about to use."""
        if retain_hours < 0:
            raise StoreError("vacuum: retain_hours must be ≥ 0")
        if retain_hours < MIN_RETAIN_HOURS and not force:
            raise StoreError(f"vacuum: --retain-hours {retain_hours:g} is below the safe minimum of "
                             f"{MIN_RETAIN_HOURS:g}: a read or write still running could lose files it is "
                             f"using; pass --force if nothing else uses the store")
        removed: dict[str, list[str]] = {}
        for name in [dataset] if dataset else list(DATASETS):
            _dataset(name)
            dt = self._open(name)
            if dt is None:
                continue
            removed[name] = dt.vacuum(retention_hours=math.ceil(retain_hours), dry_run=dry_run,
                                      enforce_retention_duration=False, full=True)
            if self.local and not dry_run and (Path(self._dir(name)) / STAGING).exists():
                self._sweep_staging(Path(self._dir(name)) / STAGING, max(retain_hours * 3600, 60.0))
        return VacuumSummary(retain_hours, removed, dry_run)


@dataclass(frozen=True)
class LiveFile:
    """A data file of a snapshot: path (relative to the table), bytes, rows, partition, run."""

    path: str
    size: int
    rows: int
    keys: dict[str, str | None]
    pid: str
    run: str | None


@dataclass(frozen=True)
class Stats:
    """Rows and exact sums (as decimal strings) of some files."""

    rows: int = 0
    sums: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: Stats) -> Stats:
        keys = self.sums.keys() | other.sums.keys()
        return Stats(self.rows + other.rows,
                     {k: str(Decimal(self.sums.get(k, "0")) + Decimal(other.sums.get(k, "0"))) for k in sorted(keys)})


@dataclass
class StagedPart:
    """One staged frame: its files and their stats by partition, not yet visible to readers."""

    files: dict[str, list[str]]
    stats: dict[str, Stats]
    sources: list[Source]
    file_rows: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(st.rows for st in self.stats.values())

    @property
    def sums(self) -> dict[str, str]:
        return sum(self.stats.values(), Stats()).sums

    def scan(self) -> pl.LazyFrame:
        paths = [f for fs in self.files.values() for f in fs]
        return pl.scan_parquet(paths, hive_partitioning=False) if paths else pl.LazyFrame()

    @property
    def partitions(self) -> list[dict[str, str]]:
        return [_parse_partition(pid) for pid in self.files]


@dataclass
class PlacedPart(StagedPart):
    """A part another process (a cluster's worker) staged and placed in the table for a driver's run:
    ``files`` are paths relative to the table, ``adds`` their Delta ``add`` actions as plain values
    (path, bytes, partition values, modification time, rows), ``schema`` their columns. Invisible until
    the driver's transaction adopts it and commits."""

    adds: list[tuple[str, int, dict[str, str | None], int, int]] = field(default_factory=list)
    schema: dict[str, pl.DataType] = field(default_factory=dict)

    def scan(self) -> pl.LazyFrame:
        raise StoreError("a placed part is read through the store once committed, not before")

    def actions(self) -> list[AddAction]:
        return [AddAction(p, size, dict(keys), t, True, json.dumps({"numRecords": rows}))
                for p, size, keys, t, rows in self.adds]


class Transaction:
    """Frames staged for one dataset, committed together in one Delta commit (see
    :meth:`Store.transaction`)."""

    def __init__(self, store: Store, ds: Dataset, before_commit: Callable[[], None] | None = None) -> None:
        self.store, self.ds = store, ds
        self.run_id = new_run_id()
        self.dir = store._staging_dir(ds.name, self.run_id)
        self.parts: list[StagedPart] = []
        self.committed: list[Manifest] | None = None
        self.version: int | None = None
        self.before_commit = before_commit
        self._attempts = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def stage(self, frame: pl.LazyFrame | pl.DataFrame, sources: Iterable[Source] = ()) -> StagedPart:
        """Write ``frame`` to the staging area (one streaming pass), split by partition."""
        self._attempts += 1  # a fresh folder per attempt: a failed one may have left files behind
        sub = f"{self.dir}/{self._attempts:05d}"
        files = self.store._stage(self.ds, frame.lazy(), sub)
        stats, rows = self.store._stats(self.ds, files)
        part = StagedPart(files, stats, list(sources), rows)
        self.parts.append(part)
        return part

    def discard(self, index: int) -> None:
        """Drop a staged part (``-1``: the last one) and its files."""
        part = self.parts.pop(index)
        if isinstance(part, PlacedPart):
            self.store._unplace(self.ds.name, part.actions())
            return
        for files in part.files.values():
            for f in files:
                os.remove(f)

    def place(self, run_id: str, first: int) -> PlacedPart:
        """On a cluster's worker: place everything staged here in the table under the driver's
        ``run_id`` (file numbers from ``first``) and return it as one part for the driver to
        :meth:`adopt`. Nothing is visible until the driver commits; files of a run that never commits
        are swept by ``vacuum``."""
        staged = [(f, part.file_rows[f]) for part in self.parts for fs in part.files.values() for f in fs]
        keys = {f: _keys_of_pid(pid) for part in self.parts for pid, fs in part.files.items() for f in fs}
        schema = _staged_schema([f for f, _ in staged]) if staged else pl.Schema()
        adds = self.store._place(self.ds.name, staged, run_id, keys, first)
        by_local = dict(zip([f for f, _ in staged], adds, strict=True))
        placed = PlacedPart({}, {}, [], {}, [], dict(schema))
        for part in self.parts:
            for pid, fs in part.files.items():
                placed.files.setdefault(pid, []).extend(by_local[f].path for f in fs)
                placed.stats[pid] = placed.stats.get(pid, Stats()) + part.stats[pid]
            placed.sources += [s for s in part.sources if s not in placed.sources]
        for f, rows in staged:
            a = by_local[f]
            placed.file_rows[a.path] = rows
            placed.adds.append((a.path, a.size, dict(a.partition_values), a.modification_time, rows))
        self.parts = []
        return placed

    def adopt(self, part: PlacedPart) -> None:
        """Take a part a worker placed for this transaction's run (see :meth:`place`)."""
        if part.adds and not all(RUN_FILE.search(a[0]) and f"part-{self.run_id}-" in a[0] for a in part.adds):
            raise StoreError(f"{self.ds.name}: a placed part of another run cannot join run {self.run_id}")
        self.parts.append(part)

    def commit(self) -> list[Manifest]:
        """Make every staged partition visible in one Delta commit; returns their manifests."""
        if self.committed is not None:
            raise StoreError("transaction already committed")
        ds, store = self.ds, self.store
        local = [p for p in self.parts if not isinstance(p, PlacedPart)]
        placed = [p for p in self.parts if isinstance(p, PlacedPart)]
        staged = [(f, part.file_rows[f]) for part in local for fs in part.files.values() for f in fs]
        if not staged and not any(p.adds for p in placed):
            self.committed = []
            return []
        keys = {f: _keys_of_pid(pid) for part in local for pid, fs in part.files.items() for f in fs}
        partitions = {pid: _keys_of_pid(pid) for part in self.parts for pid in part.files}
        schema = _union_schema(ds.name, [_staged_schema([f for f, _ in staged]), *(p.schema for p in placed)])
        record = self._record(schema)
        adds = [a for p in placed for a in p.actions()]
        try:
            adds = store._place(ds.name, staged, self.run_id, keys) + adds
        except BaseException:
            store._unplace(ds.name, adds)
            raise
        store._write_record(ds.name, record)  # before the commit: a live file always has its record
        meta = {"run_id": self.run_id, "operation": ds.mode, "rows": sum(p.rows for p in self.parts),
                "partitions": [{k: v for k, v in p.items() if k != "columns"} for p in record["partitions"].values()]}
        try:
            self.version = store._commit(ds, adds, partitions, schema, meta, self.before_commit)
        except BaseException:
            if not store._landed(ds.name, self.run_id):  # a failure after the commit landed keeps its files
                store._unplace(ds.name, adds)
            raise
        dt = store._open(ds.name, self.version)
        assert dt is not None
        self.committed = store._manifests(ds, dt, {}, exact=set(partitions))
        return self.committed

    def _record(self, schema: pl.Schema) -> dict[str, Any]:
        """This run's provenance: per partition its rows, exact sums, sources and columns."""
        written_at = datetime.now(UTC).isoformat(timespec="seconds")
        parts: dict[str, dict[str, Any]] = {}
        for part in self.parts:
            for pid in part.files:
                p = parts.setdefault(pid, {"partition": _keys_of_pid(pid), "stats": Stats(), "sources": []})
                p["stats"] += part.stats[pid]
                p["sources"] += [s.__dict__ for s in part.sources if s.__dict__ not in p["sources"]]
        out = {}
        for pid, p in sorted(parts.items()):
            st: Stats = p.pop("stats")
            out[pid] = {**p, "rows": st.rows, "sums": {c: st.sums.get(c, "0") for c in self.ds.sums},
                        "written_at": written_at, "run_id": self.run_id, "columns": list(schema)}
        return {"run_id": self.run_id, "dataset": self.ds.name, "written_at": written_at, "partitions": out}


def new_run_id() -> str:
    """``20261128T101500-1a2b3c4d``: sortable by time, unique across writers."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _keys_of_pid(pid: str) -> dict[str, str | None]:
    return {k: (None if v == HIVE_NULL else v) for k, v in _parse_partition(pid).items()}


def _merged_record(ds: Dataset, run_id: str, merged: list[LiveFile],
                   records: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The record of an optimize run: per partition, the merged runs' provenance added up."""
    parts: dict[str, dict[str, Any]] = {}
    for f in merged:
        entry = (records.get(f.run or "") or {}).get("partitions", {}).get(f.pid)
        zero = Stats(0, dict.fromkeys(ds.sums, "0"))
        p = parts.setdefault(f.pid, {"partition": dict(f.keys), "rows": 0, "stats": zero,
                                     "sources": [], "columns": [], "written_at": "", "run_id": "", "runs": set()})
        p["rows"] += f.rows
        if entry is None or f.run in p["runs"]:
            continue
        p["runs"].add(f.run)
        p["stats"] += Stats(0, entry.get("sums", {}))
        p["sources"] += [s for s in entry.get("sources", []) if s not in p["sources"]]
        p["columns"] += [c for c in entry.get("columns", []) if c not in p["columns"]]
        if entry.get("written_at", "") >= p["written_at"]:
            p["written_at"], p["run_id"] = entry.get("written_at", ""), entry.get("run_id", "")
    out = {}
    for pid, p in parts.items():
        p.pop("runs")
        st = p.pop("stats")
        out[pid] = {**p, "sums": st.sums}
    return {"run_id": run_id, "dataset": ds.name, "operation": "optimize",
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"), "partitions": out}


def _app_id(dataset: str, pid: str) -> str:
    return f"finops/{dataset}/{pid}"


def _app_txn(dt: DeltaTable, dataset: str, pid: str) -> AppTransaction:
    """A ``txn`` action for a replaced partition: concurrent replacers of it conflict on it."""
    app = _app_id(dataset, pid)
    return AppTransaction(app, (dt.transaction_version(app) or 0) + 1)


def _union_schema(dataset: str, schemas: Iterable[Mapping[str, pl.DataType]]) -> pl.Schema:
    """The columns of all parts of a transaction; a column typed differently by two parts is an error."""
    union: dict[str, pl.DataType] = {}
    for schema in schemas:
        for name, dtype in schema.items():
            if union.setdefault(name, dtype) != dtype:
                raise StoreError(f"{dataset}: column {name} is {union[name]} in one part and {dtype} in another")
    return pl.Schema(union)


def _staged_schema(files: list[str]) -> pl.Schema:
    """The union of the staged files' schemas (one footer per file; they are local)."""
    union: dict[str, pl.DataType] = {}
    for f in files:
        for name, dtype in pl.read_parquet_schema(f).items():
            union.setdefault(name, dtype)
    return pl.Schema(union)


def _delta_schema(ds: Dataset, schema: pl.Schema) -> DeltaSchema:
    """The table schema for new files of ``schema``: their columns plus the partition-only keys."""
    cols: dict[str, pl.DataType] = dict(schema)
    for k in ds.key_names:
        cols.setdefault(k, pl.String())
    try:
        return DeltaSchema.from_arrow(pl.DataFrame(schema=cols).to_arrow().schema)
    except Exception as e:  # noqa: BLE001 - e.g. a column of polars' Null type, which Delta cannot hold
        raise StoreError(f"{ds.name}: a column type Delta Lake cannot store: {e}") from None


def _polars_schema(dt: DeltaTable) -> dict[str, pl.DataType]:
    import pyarrow as pa

    return dict(pl.from_arrow(pa.schema(dt.schema().to_arrow()).empty_table()).schema)  # type: ignore[union-attr]


def _read_schema(ds: Dataset, dt: DeltaTable) -> pl.Schema:
    """What ``scan`` returns: the table's columns less the keys that exist only as partition values."""
    return pl.Schema({c: t for c, t in _polars_schema(dt).items()
                      if c not in ds.key_names or c in ds.data_keys})


def _delta_options(protocol: str, options: Mapping[str, str]) -> dict[str, str]:
    """object_store options for delta-rs. On S3, commits use a conditional PUT (``If-None-Match: *``):
    safe with any number of concurrent writers, no lock table needed (delta-rs' default since 0.23,
    set here so it does not depend on that default)."""
    out = dict(options)
    if protocol in ("s3", "s3a"):
        out.setdefault("aws_conditional_put", "etag")
    return out


def _store_error(dataset: str, uri: str, e: Exception) -> StoreError:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, DeltaProtocolError) or re.search(r"[Uu]nsupported|protocol|[Ff]eature", text):
        return StoreError(f"{dataset}: the Delta table at {uri} was written by a newer Delta Lake writer than "
                          f"deltalake {deltalake.__version__} supports ({text}); upgrade finops' deltalake")
    return StoreError(f"{dataset}: {uri}: {text}")


def _natural(path: str) -> tuple[str, int]:
    head, _, tail = path.rpartition("/")
    stem = tail.split(".", 1)[0]
    return (head, int(stem) if stem.isdigit() else 0)


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise StoreError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def _normalise_filters(ds: Dataset, filters: Mapping[str, str | Sequence[str]] | None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for k, v in (filters or {}).items():
        if k not in ds.key_names:
            raise StoreError(f"{ds.name}: cannot filter on {k!r}; partition keys are {', '.join(ds.key_names)}")
        out[k] = {v} if isinstance(v, str) else {str(x) for x in v}
    return out


def summarise(manifests: Iterable[Manifest], by: Sequence[str]) -> list[dict[str, Any]]:
    """Rows and sums from manifests, grouped by partition keys ``by`` (``()`` for one grand total).
    Exact: sums are added as decimals and returned as strings."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for m in manifests:
        key = tuple(m.partition.get(k, "") for k in by)
        g = groups.setdefault(key, {**dict(zip(by, key, strict=True)), "rows": 0, "partitions": 0})
        g["rows"] += m.rows
        g["partitions"] += 1
        for col, v in m.sums.items():
            g[col] = str(Decimal(g.get(col, "0")) + Decimal(v))
    if not groups and not by:
        return [{"rows": 0, "partitions": 0}]
    return [groups[k] for k in sorted(groups)]
