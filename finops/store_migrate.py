"""Convert a store of finops' old layout (per-partition ``_manifest.json`` + Parquet parts) to Delta Lake.

In place and without copying data: the old layout already keeps each partition's files at
``<dataset>/<key>=<value>/…/part-<run>-<n>.parquet``, which is where a Delta table keeps them, so the
migration writes a Delta log whose first commit adds exactly the files the manifests list. Steps, per
dataset:

1. Read every ``_manifest.json``; read the files they list and check that rows and the
   BilledCost/EffectiveCost sums equal the manifest's, to the cent (a store that disagrees with
   itself is not migrated: the error names the partition).
2. Write the provenance records (``_finops/runs/<run>.json``: the manifests' sources, sums,
   written_at, run ids and their earlier-version history) and then one Delta commit (``migrate``).
3. Read the partitions back through the new table and check rows and sums again, to the cent. If
   they differ, the Delta log and records are removed again: the store is as it was.
4. Only then remove the ``_manifest.json`` files (their content now lives in the records).

Nothing before step 4 touches an old file, so an interrupted migration leaves the old store readable
by the old code (before step 2's commit) or a Delta table that a re-run verifies and finishes (after).
Cursors (``_cursors/``) are the same files in both layouts and are left where they are.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl
from deltalake import CommitProperties
from deltalake.transaction import AddAction, create_table_with_add_actions

from finops.store import (
    CURSORS,
    DATASETS,
    OLD_MANIFEST,
    RUN_FILE,
    Dataset,
    Stats,
    Store,
    StoreError,
    _delta_schema,
    account_key,
    new_run_id,
    partition_id,
)

CENT = Decimal("0.01")


class MigrationError(StoreError):
    """The old store could not be converted; it is as it was."""


@dataclass(frozen=True)
class DatasetMigration:
    """One dataset's conversion: partitions, files and rows moved into the Delta log, the checked
    totals (exact decimal strings), and whether it was already Delta."""

    dataset: str
    partitions: int
    files: int
    rows: int
    sums: dict[str, str]
    already_delta: bool = False


@dataclass(frozen=True)
class MigrationResult:
    """What :func:`migrate` did."""

    url: str
    datasets: list[DatasetMigration] = field(default_factory=list)
    cursors: int = 0

    @property
    def migrated(self) -> bool:
        return any(d.partitions and not d.already_delta for d in self.datasets)


@dataclass
class _Old:
    """One old partition: its directory (relative to the dataset), manifest, and checked figures."""

    rel: str
    manifest: dict[str, Any]
    file_rows: dict[str, int] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)


def migrate(url: str, storage_options: Mapping[str, Any] | None = None,
            progress: Callable[[str, str], None] | None = None, *,
            polars_options: Mapping[str, str] | None = None) -> MigrationResult:
    """Convert the store at ``url`` from the old layout to Delta Lake, in place, checking rows and
    cost sums per partition before and after to the cent. Datasets already in Delta are left alone
    (a re-run after an interruption finishes what is left). ``progress(dataset, message)`` is told
    what happens."""
    store = Store(url, storage_options, polars_options)
    note = progress or (lambda _d, _m: None)
    done = []
    for ds in DATASETS.values():
        done.append(_migrate_dataset(store, ds, note))
    cursors = _check_cursors(store)
    return MigrationResult(store.url, done, cursors)


def _migrate_dataset(store: Store, ds: Dataset, note: Callable[[str, str], None]) -> DatasetMigration:
    base = store._dir(ds.name)
    store.fs.invalidate_cache(base)
    paths = _old_manifests(store, ds)
    has_log = store.fs.exists(f"{base}/_delta_log")
    if not paths:
        return DatasetMigration(ds.name, 0, 0, 0, {}, already_delta=has_log)
    olds = [_read_old(store, ds, p) for p in paths]
    note(ds.name, f"checking {len(olds)} partition(s) of the old layout")
    for old in olds:
        _check_old(store, ds, old)
        if ds.name == "billing":
            _rekey(store, ds, old)
    if not has_log:
        note(ds.name, "writing the Delta log")
        runs = _write_records(store, ds, olds)
        try:
            _commit(store, ds, olds)
        except Exception as e:  # noqa: BLE001 - any failure: undo, then one clear error
            store.fs.invalidate_cache(f"{base}/_delta_log")
            if store.fs.exists(f"{base}/_delta_log/{0:020d}.json"):
                # another migration created the log meanwhile: its log and records (the same files as
                # ours) are not ours to remove; the check below verifies the table it wrote
                has_log, runs = True, []
            else:
                _undo(store, ds, runs)
                raise MigrationError(f"{ds.name}: could not write the Delta log: {e}") from None
    else:
        runs = []
    note(ds.name, "checking the Delta table against the old manifests")
    try:
        _check_new(store, ds, olds)
    except MigrationError:
        if not has_log:
            _undo(store, ds, runs)
        raise
    for p in paths:  # verified: the manifests' content now lives in the records and the log
        with contextlib.suppress(FileNotFoundError):  # a concurrent migration may have removed it
            store.fs.rm(p)
    total = sum((o.stats for o in olds), Stats())
    note(ds.name, f"migrated {len(olds)} partition(s), {total.rows:,} rows")
    return DatasetMigration(ds.name, len(olds), sum(len(o.file_rows) for o in olds), total.rows, total.sums,
                            already_delta=has_log)


def _old_manifests(store: Store, ds: Dataset) -> list[str]:
    pattern = f"{store._dir(ds.name)}/" + "/".join(["*"] * len(ds.key_names)) + f"/{OLD_MANIFEST}"
    return sorted(p for p in store.fs.glob(pattern) if "/_staging/" not in p)


def _read_old(store: Store, ds: Dataset, path: str) -> _Old:
    rel = path[len(store._dir(ds.name)) + 1: -len(OLD_MANIFEST) - 1]
    manifest = json.loads(store.fs.cat_file(path).decode())
    manifest["partition"] = {k: manifest["partition"][k] for k in ds.key_names}  # JSON kept keys sorted
    return _Old(rel, manifest)


def _scan_stats(store: Store, ds: Dataset, urls: list[str]) -> tuple[Stats, dict[str, int]]:
    """Rows and exact sums of ``urls`` together, and rows per file."""
    if not urls:
        return Stats(0, dict.fromkeys(ds.sums, "0")), {}
    exprs = [pl.len().alias("__rows")] + [pl.col(c).sum().alias(c) for c in ds.sums]
    per_file = (pl.scan_parquet(urls, storage_options=store.polars_options, hive_partitioning=False,
                                include_file_paths="__file", missing_columns="insert")
                .group_by("__file").agg(exprs).collect())
    total, rows = Stats(0, dict.fromkeys(ds.sums, "0")), {}
    for row in per_file.iter_rows(named=True):
        f, n = row.pop("__file"), int(row.pop("__rows"))
        rows[f] = n
        total += Stats(n, {k: str(v or 0) for k, v in row.items()})
    return total, rows


def _check_old(store: Store, ds: Dataset, old: _Old) -> None:
    """The old partition's files hold what its manifest says, to the cent."""
    m = old.manifest
    urls = [store._url(f"{store._dir(ds.name)}/{old.rel}/{f}") for f in m["files"]]
    missing = [u for u in urls if not store.fs.exists(u)]
    if missing:
        raise MigrationError(f"{ds.name}/{old.rel}: {OLD_MANIFEST} lists {len(missing)} missing file(s), "
                             f"e.g. {missing[0]}; nothing was migrated")
    stats, rows = _scan_stats(store, ds, urls)
    _compare(f"{ds.name}/{old.rel}: files against {OLD_MANIFEST}", ds, Stats(int(m["rows"]), m.get("sums", {})), stats)
    old.stats = stats
    by_name = {u.rsplit("/", 1)[-1]: n for u, n in rows.items()}
    old.file_rows = {f: by_name.get(f, 0) for f in m["files"]}


def _compare(what: str, ds: Dataset, want: Stats, got: Stats) -> None:
    if want.rows != got.rows:
        raise MigrationError(f"{what}: {got.rows} rows, expected {want.rows}; nothing was migrated")
    for c in ds.sums:
        a, b = Decimal(want.sums.get(c, "0")), Decimal(got.sums.get(c, "0"))
        if a.quantize(CENT) != b.quantize(CENT):
            raise MigrationError(f"{what}: {c} sums to {b}, expected {a}; nothing was migrated")


def _entry(old: _Old, run: str, full: bool) -> dict[str, Any]:
    """A record entry: the manifest's provenance on the run of its newest file (``full``), an empty
    one on older runs of an appended partition (their rows come from the log, their sums are in the
    full entry)."""
    m = old.manifest
    base = {"partition": m["partition"], "written_at": m.get("written_at", ""), "run_id": m.get("run_id", run),
            "columns": m.get("columns", [])}
    if full:
        return {**base, "rows": m["rows"], "sums": m.get("sums", {}), "sources": m.get("sources", []),
                "history": m.get("history", [])}
    return {**base, "rows": 0, "sums": {}, "sources": [], "history": []}


def _write_records(store: Store, ds: Dataset, olds: list[_Old]) -> list[str]:
    """Provenance records keyed by the old files' run ids (the link ``manifests`` follows)."""
    records: dict[str, dict[str, Any]] = {}
    for old in olds:
        runs = []
        for f in old.manifest["files"]:
            m = RUN_FILE.search(f)
            if m is None:
                raise MigrationError(f"{ds.name}/{old.rel}/{f}: not a finops part file name; nothing was migrated")
            runs.append(m["run"])
        newest = old.manifest.get("run_id") if old.manifest.get("run_id") in runs else runs[-1]
        pid = partition_id(old.manifest["partition"])
        for run in dict.fromkeys(runs):
            rec = records.setdefault(run, {"run_id": run, "dataset": ds.name, "operation": "migrate",
                                           "written_at": old.manifest.get("written_at", ""), "partitions": {}})
            rec["partitions"][pid] = _entry(old, run, run == newest)
    for rec in records.values():
        store._write_record(ds.name, rec)
    return list(records)


def _rekey(store: Store, ds: Dataset, old: _Old) -> None:
    """An old billing partition under today's partition value: :func:`finops.store.account_key` of the one
    account id its rows hold (the old layout named it ``safe_key`` of the id, which folds ``payer:one`` and
    ``payer/one`` together), so a later ingest of that account replaces it rather than writing beside it.
    A partition whose rows hold several ids (folded together by the old naming) keeps its old value."""
    urls = [store._url(f"{store._dir(ds.name)}/{old.rel}/{f}") for f in old.manifest["files"]]
    if not urls:
        return
    ids = (pl.scan_parquet(urls, storage_options=store.polars_options, hive_partitioning=False)
           .select(pl.col("BillingAccountId").unique()).collect().to_series().to_list())
    if len(ids) == 1:
        old.manifest["partition"] = {**old.manifest["partition"], "billing_account": account_key(ids[0])}


def _commit(store: Store, ds: Dataset, olds: list[_Old]) -> None:
    adds: list[AddAction] = []
    schema: dict[str, pl.DataType] = {}
    for old in olds:
        for f in old.manifest["files"]:
            url = store._url(f"{store._dir(ds.name)}/{old.rel}/{f}")
            info = store.fs.info(url)
            mtime = info.get("mtime") or info.get("LastModified")
            ms = int(float(mtime.timestamp() if hasattr(mtime, "timestamp") else mtime or 0) * 1000)
            adds.append(AddAction(f"{old.rel}/{f}", int(info["size"]), dict(old.manifest["partition"]), ms, True,
                                  json.dumps({"numRecords": old.file_rows[f]})))
        if old.manifest["files"]:
            first = store._url(f"{store._dir(ds.name)}/{old.rel}/{old.manifest['files'][0]}")
            for c, t in pl.scan_parquet(first, storage_options=store.polars_options,
                                        hive_partitioning=False).collect_schema().items():
                schema.setdefault(c, t)
    total = sum((o.stats for o in olds), Stats())
    meta = {"run_id": new_run_id(), "operation": "migrate", "rows": total.rows,
            "partitions": [{"partition": o.manifest["partition"], "rows": o.stats.rows, "sums": o.stats.sums}
                           for o in olds]}
    create_table_with_add_actions(store.table_uri(ds.name), _delta_schema(ds, pl.Schema(schema)), adds, mode="error",
                                  partition_by=list(ds.key_names), name=ds.name,
                                  storage_options=store.delta_options or None,
                                  commit_properties=CommitProperties(custom_metadata={"finops": meta}))


def _check_new(store: Store, ds: Dataset, olds: list[_Old]) -> None:
    """Each partition, read through the Delta table, holds what the old one did, to the cent — in
    its manifest (from the log and records) and in its data."""
    fresh = Store(store.url, store.storage_options, store.polars_options)  # no cached records
    manifests = {partition_id(m.partition): m for m in fresh.manifests(ds.name)}
    for old in olds:
        pid = partition_id(old.manifest["partition"])
        m = manifests.get(pid)
        if m is None:
            raise MigrationError(f"{ds.name}/{old.rel}: missing from the Delta table; the old layout is kept")
        _compare(f"{ds.name}/{old.rel}: Delta manifest", ds, old.stats, Stats(m.rows, m.sums))
        stats, _ = _scan_stats(fresh, ds, fresh.files(ds.name, {k: str(v) for k, v in m.partition.items()}))
        _compare(f"{ds.name}/{old.rel}: Delta data", ds, old.stats, stats)
    if len(manifests) != len(olds):
        raise MigrationError(f"{ds.name}: the Delta table has {len(manifests)} partitions, the old layout "
                             f"{len(olds)}; the old layout is kept")


def _undo(store: Store, ds: Dataset, runs: list[str]) -> None:
    """Remove what the migration wrote: the store is in the old layout again."""
    base = store._dir(ds.name)
    if store.fs.exists(f"{base}/_delta_log"):
        store.fs.rm(f"{base}/_delta_log", recursive=True)
    for run in runs:
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm(store._record_path(ds.name, run))


def _check_cursors(store: Store) -> int:
    """Cursors stay where they are; check they still read."""
    pattern = f"{store.root}/{CURSORS}/*.json"
    paths = store.fs.glob(pattern)
    for p in paths:
        try:
            json.loads(store.fs.cat_file(p).decode())
        except ValueError as e:
            raise MigrationError(f"{p}: cursor does not parse ({e})") from None
    return len(paths)
