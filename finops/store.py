"""The columnar store: partitioned Parquet datasets under one URL (a local folder or ``s3://…``).

Layout: ``<root>/<dataset>/<key>=<value>/…/part-<run>-<n>.parquet`` plus one ``_manifest.json`` per
partition. The manifest is the partition's truth: it lists the partition's files, its row count, cost
sums and the source files (with checksums) it came from. A write stages its files first, then moves
them beside the old ones and switches the manifest in one atomic step (a rename locally, a single PUT
on object storage); only then are the old files removed. A writer killed at any point leaves the
previous manifest, and so the previous data, in place; files no manifest names are ignored by readers
and swept by the next write.

Datasets: ``billing`` (FOCUS rows, partitioned by provider, billing period and billing account;
writes replace partitions), ``prices`` (every price observation, by provider and day; writes append,
history is never rewritten) and ``offers`` (the newest observation of each offer, by provider;
refreshed from ``prices`` on every price write, so the optimizer reads one small frame).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import fsspec
import polars as pl

from finops import providers

MANIFEST = "_manifest.json"
STAGING = "_staging"
CURSORS = "_cursors"
STALE_STAGING_SECONDS = 6 * 3600
# A partitioned sink buffers a row group per open partition: 25k rows keeps a 10M-row ingest under
# 2 GB peak RSS (polars' default: 3.5 GB) at no measurable cost in time.
ROW_GROUP_ROWS = 25_000


@dataclass(frozen=True)
class Dataset:
    """A dataset's partition keys, how to find them, the sums its manifests keep, and whether a write
    replaces or appends to a partition.

    Rows are split by raw columns (``split_by``, cheap per row); ``keys_of`` then turns each distinct
    raw value set into the partition's keys, once per partition rather than once per row.
    """

    name: str
    key_names: tuple[str, ...]
    split_by: tuple[str, ...]
    keys_of: Callable[[Mapping[str, str]], dict[str, str]]
    sums: tuple[str, ...] = ()
    mode: Literal["replace", "append"] = "replace"


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def safe_key(value: str | None) -> str:
    """A partition value that is safe in any path and URL (Azure account ids hold slashes)."""
    if value is None or value == HIVE_NULL:
        return "none"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("_") or "none"


def _billing_keys(raw: Mapping[str, str]) -> dict[str, str]:
    return {
        "provider": providers.slug(raw["ProviderName"]) if raw["ProviderName"] != HIVE_NULL else "unknown",
        "billing_period": raw["BillingPeriodStart"][:7],
        "billing_account": safe_key(raw["BillingAccountId"]),
    }


def _provider_key(raw: Mapping[str, str]) -> dict[str, str]:
    return {"provider": safe_key(raw["provider"])}


def _price_keys(raw: Mapping[str, str]) -> dict[str, str]:
    return {"provider": safe_key(raw["provider"]), "date": raw["observed_at"][:10]}


DATASETS: dict[str, Dataset] = {
    "billing": Dataset("billing", ("provider", "billing_period", "billing_account"),
                       ("ProviderName", "BillingPeriodStart", "BillingAccountId"), _billing_keys,
                       ("BilledCost", "EffectiveCost"), "replace"),
    "prices": Dataset("prices", ("provider", "date"), ("provider", "observed_at"), _price_keys, (), "append"),
    "offers": Dataset("offers", ("provider",), ("provider",), _provider_key, (), "replace"),
}


class StoreError(RuntimeError):
    """A store operation that could not be done; the store is as it was before it."""


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
    """What one partition holds."""

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

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))

    def sum(self, column: str) -> Decimal:
        return Decimal(self.sums.get(column, "0"))


def partition_path(keys: Mapping[str, str]) -> str:
    """``provider=aws/billing_period=2024-09/…``, values percent-encoded as polars writes them."""
    return "/".join(f"{k}={quote(str(v), safe='')}" for k, v in keys.items())


def _parse_partition(rel: str) -> dict[str, str]:
    return dict((unquote(k), unquote(v)) for k, v in (seg.split("=", 1) for seg in rel.split("/") if "=" in seg))


class Store:
    """Partitioned Parquet datasets under ``url`` (local path, ``file://``, ``s3://``, ``gs://``, …).

    ``storage_options`` go to fsspec; ``polars_options`` to polars' cloud reader (for object storage;
    credentials come from each SDK's standard chain, never from here).
    """

    def __init__(self, url: str | Path, storage_options: Mapping[str, Any] | None = None,
                 polars_options: Mapping[str, str] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self.polars_options = dict(polars_options or {}) or None
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    def _dir(self, dataset: str, keys: Mapping[str, str] | None = None) -> str:
        base = f"{self.root}/{dataset}"
        if not keys:
            return base
        return f"{base}/{partition_path({k: keys[k] for k in _dataset(dataset).key_names})}"

    def _url(self, path: str) -> str:
        if self.local:
            return path
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{proto}://{path}"

    # -- reading -------------------------------------------------------------------------------
    def manifests(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None) -> list[Manifest]:
        """Manifests of the dataset's partitions that match ``filters`` (partition key → value(s))."""
        ds = _dataset(dataset)
        wanted = _normalise_filters(ds, filters)
        depth = len(ds.key_names)
        pattern = self._dir(dataset) + "/" + "/".join(["*"] * depth) + "/" + MANIFEST
        paths = [p for p in self.fs.glob(pattern) if f"/{STAGING}/" not in p]
        keep = []
        for p in paths:
            keys = _parse_partition(p[len(self._dir(dataset)) + 1: -len(MANIFEST) - 1])
            if all(keys.get(k) in v for k, v in wanted.items()):
                keep.append(p)
        with ThreadPoolExecutor(max_workers=8) as pool:
            texts = list(pool.map(lambda p: self.fs.cat_file(p).decode(), keep))
        found = [Manifest.from_json(t) for t in texts]
        for m in found:  # JSON keeps keys sorted; give them back in partition order
            m.partition = {k: m.partition[k] for k in ds.key_names}
        return sorted(found, key=lambda m: tuple(m.partition.values()))

    def files(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None) -> list[str]:
        """Data files (URLs) of the matching partitions, as their manifests list them."""
        return self._file_urls(dataset, self.manifests(dataset, filters))

    def _file_urls(self, dataset: str, manifests: Iterable[Manifest]) -> list[str]:
        return [self._url(f"{self._dir(dataset, m.partition)}/{f}") for m in manifests for f in m.files]

    def scan(self, dataset: str, filters: Mapping[str, str | Sequence[str]] | None = None,
             schema: Mapping[str, pl.DataType] | None = None) -> pl.LazyFrame:
        """A LazyFrame over the dataset, reading only the partitions that match ``filters``.

        With no matching partition, an empty frame of ``schema`` (when given).
        """
        manifests = self.manifests(dataset, filters)
        files = self._file_urls(dataset, manifests)
        if not files:
            return pl.LazyFrame(schema=dict(schema or {}))
        return pl.scan_parquet(files, storage_options=self.polars_options, hive_partitioning=False,
                               schema=self._union_schema(dataset, manifests), missing_columns="insert")

    def _union_schema(self, dataset: str, manifests: list[Manifest]) -> pl.Schema:
        # Files differ only in their extension columns; read one footer per distinct column set.
        firsts: dict[tuple[str, ...], str] = {}
        for m in manifests:
            if m.files:
                firsts.setdefault(tuple(m.columns), self._url(f"{self._dir(dataset, m.partition)}/{m.files[0]}"))
        union: dict[str, pl.DataType] = {}
        for f in firsts.values():
            sch = pl.scan_parquet(f, storage_options=self.polars_options, hive_partitioning=False).collect_schema()
            for name, dtype in sch.items():
                union.setdefault(name, dtype)
        return pl.Schema(union)

    # -- writing -------------------------------------------------------------------------------
    def transaction(self, dataset: str) -> Transaction:
        """Stage any number of frames, then commit them together (``with store.transaction(...) as
        tx: tx.stage(...); tx.commit()``). Leaving the block without commit — or by an exception —
        discards everything staged; the store is untouched."""
        return Transaction(self, _dataset(dataset))

    def write(self, dataset: str, frame: pl.LazyFrame | pl.DataFrame, *,
              sources: Iterable[Source] = ()) -> list[Manifest]:
        """Write one frame: the partitions it touches are replaced whole (``billing``) or appended to
        (``prices``), each atomically. Returns the new manifests."""
        with self.transaction(dataset) as tx:
            tx.stage(frame, sources)
            return tx.commit()

    def _staging_dir(self, dataset: str, run_id: str) -> str:
        # Stage beside the data when local (so the commit is a rename), else in a local temp folder.
        if self.local:
            base = Path(self._dir(dataset)) / STAGING
            base.mkdir(parents=True, exist_ok=True)
            self._sweep_staging(base)
            return str(base / run_id)
        return tempfile.mkdtemp(prefix=f"finops-{run_id}-")

    @staticmethod
    def _sweep_staging(base: Path) -> None:
        now = time.time()
        for d in base.iterdir():
            try:
                if now - d.stat().st_mtime > STALE_STAGING_SECONDS:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                pass

    def _stage(self, ds: Dataset, lf: pl.LazyFrame, stage: str) -> dict[str, list[str]]:
        """Sink ``lf`` split by the dataset's raw columns; returns staged files by final partition."""
        written: list[str] = []
        lf.sink_parquet(
            pl.PartitionBy(stage, key=list(ds.split_by), include_key=True),
            mkdir=True, statistics=True, row_group_size=ROW_GROUP_ROWS,
            sinked_paths_callback=lambda a: written.extend(p.path for p in a.paths),
        )
        staged: dict[str, list[str]] = {}
        for path in sorted(written, key=_natural):
            raw = _parse_partition(os.path.relpath(os.path.dirname(path), stage).replace(os.sep, "/"))
            rel = partition_path(ds.keys_of(raw))
            staged.setdefault(rel, []).append(path)
        return staged

    def _stats(self, ds: Dataset, files: Mapping[str, list[str]]) -> dict[str, Stats]:
        """Rows and sums of each staged partition, in one query over all its files."""
        owner = {f: rel for rel, fs in files.items() for f in fs}
        if not owner:
            return {}
        exprs = [pl.len().alias("__rows")] + [pl.col(c).sum().alias(c) for c in ds.sums]
        per_file = (pl.scan_parquet(list(owner), hive_partitioning=False, include_file_paths="__file")
                    .group_by("__file").agg(exprs).collect())
        out = {rel: Stats() for rel in files}
        for row in per_file.iter_rows(named=True):
            out[owner[row.pop("__file")]] += Stats(int(row.pop("__rows")), {k: str(v or 0) for k, v in row.items()})
        return out

    def _commit(self, ds: Dataset, rel: str, files: list[str], stats: Stats,
                sources: list[dict[str, Any]], run_id: str) -> Manifest:
        keys = _parse_partition(rel)
        keys = {k: keys[k] for k in ds.key_names}
        target = self._dir(ds.name, keys)
        old = self._read_manifest(target)
        self.fs.makedirs(target, exist_ok=True)
        names = []
        for i, f in enumerate(files):
            name = f"part-{run_id}-{i:04d}.parquet"
            if self.local:
                os.replace(f, f"{target}/{name}")
            else:
                self.fs.put_file(f, f"{target}/{name}")
            names.append(name)
        rows, sums = stats.rows, dict(stats.sums)
        history = ((old.history + [_history_entry(old)]) if old else [])[-20:]
        if ds.mode == "append" and old:
            names = old.files + names
            rows += old.rows
            sums = {k: str(Decimal(sums[k]) + old.sum(k)) for k in sums}
            sources = old.sources + sources
        columns = pl.scan_parquet(f"{target}/{names[-1]}" if self.local else files[-1],
                                  hive_partitioning=False).collect_schema().names()
        manifest = Manifest(ds.name, keys, names, rows, sums, sources,
                            datetime.now(timezone.utc).isoformat(timespec="seconds"), run_id, history, columns)
        self._write_manifest(target, manifest)
        self._sweep(target, set(names))
        return manifest

    def _read_manifest(self, target: str) -> Manifest | None:
        try:
            return Manifest.from_json(self.fs.cat_file(f"{target}/{MANIFEST}").decode())
        except FileNotFoundError:
            return None

    def _write_manifest(self, target: str, manifest: Manifest) -> None:
        data = manifest.to_json().encode()
        if self.local:
            tmp = f"{target}/.{MANIFEST}.{manifest.run_id}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, f"{target}/{MANIFEST}")
        else:
            self.fs.pipe_file(f"{target}/{MANIFEST}", data)  # a single PUT: atomic on object stores

    def _sweep(self, target: str, keep: set[str]) -> None:
        for p in self.fs.ls(target, detail=False):
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name != MANIFEST and name not in keep:
                self.fs.rm(p, recursive=True)

    # -- cursors -------------------------------------------------------------------------------
    def cursor(self, source: str) -> dict[str, Any] | None:
        """The state a collector saved for ``source`` after its last finished step, if any."""
        try:
            return json.loads(self.fs.cat_file(self._cursor_path(source)).decode())
        except FileNotFoundError:
            return None

    def save_cursor(self, source: str, state: Mapping[str, Any]) -> None:
        """Record a collector's progress for ``source`` (atomically: a rename locally, one PUT remotely)."""
        path = self._cursor_path(source)
        data = json.dumps(dict(state), sort_keys=True, default=str).encode()
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def _cursor_path(self, source: str) -> str:
        return f"{self.root}/{CURSORS}/{safe_key(source)}.json"

    # -- maintenance ---------------------------------------------------------------------------
    def delete(self, dataset: str, filters: Mapping[str, str | Sequence[str]]) -> int:
        """Remove the matching partitions (manifest first, so a crash never leaves half a partition)."""
        n = 0
        for m in self.manifests(dataset, filters):
            target = self._dir(dataset, m.partition)
            self.fs.rm(f"{target}/{MANIFEST}")
            self.fs.rm(target, recursive=True)
            n += 1
        return n


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
        return [_parse_partition(rel) for rel in self.files]


class Transaction:
    """Frames staged for one dataset, committed together partition by partition (see
    :meth:`Store.transaction`)."""

    def __init__(self, store: Store, ds: Dataset) -> None:
        self.store, self.ds = store, ds
        self.run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.dir = store._staging_dir(ds.name, self.run_id)
        self.parts: list[StagedPart] = []
        self.committed: list[Manifest] | None = None
        self._attempts = 0

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def stage(self, frame: pl.LazyFrame | pl.DataFrame, sources: Iterable[Source] = ()) -> StagedPart:
        """Write ``frame`` to the staging area (one streaming pass), split by partition."""
        self._attempts += 1  # a fresh folder per attempt: a failed one may have left files behind
        sub = f"{self.dir}/{self._attempts:05d}"
        files = self.store._stage(self.ds, frame.lazy(), sub)
        part = StagedPart(files, self.store._stats(self.ds, files), list(sources))
        self.parts.append(part)
        return part

    def discard(self, index: int) -> None:
        """Drop a staged part (``-1``: the last one) and its files."""
        part = self.parts.pop(index)
        for files in part.files.values():
            for f in files:
                os.remove(f)

    def commit(self) -> list[Manifest]:
        """Make every staged partition visible, each by one atomic manifest switch."""
        if self.committed is not None:
            raise StoreError("transaction already committed")
        by_rel: dict[str, tuple[list[str], list[dict[str, Any]], list[Stats]]] = {}
        for part in self.parts:
            for rel, files in part.files.items():
                fs_, srcs, stats = by_rel.setdefault(rel, ([], [], []))
                fs_.extend(files)
                srcs.extend(s.__dict__ for s in part.sources if s.__dict__ not in srcs)
                stats.append(part.stats[rel])
        self.committed = [
            self.store._commit(self.ds, rel, files, sum(stats, Stats()), srcs, self.run_id)
            for rel, (files, srcs, stats) in sorted(by_rel.items())
        ]
        return self.committed


def _history_entry(m: Manifest) -> dict[str, Any]:
    return {"run_id": m.run_id, "written_at": m.written_at, "rows": m.rows, "sums": m.sums}


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
        g = groups.setdefault(key, {**dict(zip(by, key)), "rows": 0, "partitions": 0})
        g["rows"] += m.rows
        g["partitions"] += 1
        for col, v in m.sums.items():
            g[col] = str(Decimal(g.get(col, "0")) + Decimal(v))
    if not groups and not by:
        return [{"rows": 0, "partitions": 0}]
    return [groups[k] for k in sorted(groups)]
