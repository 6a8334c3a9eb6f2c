"""The Delta Lake store beyond one writer: concurrent writers in real processes, time travel,
history, optimize, vacuum, and a log from a newer Delta writer.

Processes are made with ``multiprocessing``'s ``spawn`` context, never ``fork``: delta-rs' runtime
does not survive ``fork()`` (see tests/store_workers.py, where the children's code lives).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from finops import focus
from finops.store import Store, StoreError
from tests import store_workers
from tests.conftest import SAMPLE_10, SAMPLE_12

SPAWN = mp.get_context("spawn")  # not fork: delta-rs' runtime does not survive fork()
KEYS = ("provider", "billing_period", "billing_account")


def conformed(path: Path) -> pl.LazyFrame:
    return focus.conform(pl.scan_csv(path, infer_schema=False))


def contents(store: Store, **kw: Any) -> pl.DataFrame:
    cols = [c.name for c in focus.COLUMNS]
    return store.scan("billing", **kw).select(cols).collect().sort(cols, nulls_last=True)


def in_processes(calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run ``store_workers.<name>(*args)`` for each call, each in its own spawned process, at once."""
    with ProcessPoolExecutor(len(calls), mp_context=SPAWN) as pool:
        futures = [pool.submit(store_workers.run, *call) for call in calls]
        return [f.result(timeout=300) for f in futures]


def rows_by_partition(store: Store, dataset: str = "billing") -> dict[tuple[str, ...], int]:
    return {tuple(m.partition.values()): m.rows for m in store.manifests(dataset)}


# -- concurrent writers ------------------------------------------------------------------------------
@pytest.mark.parametrize("table_exists", [True, False])
def test_two_appends_to_one_price_partition_held_before_commit_both_land(tmp_path: Path, table_exists: bool) -> None:
    """Both writers stage, then wait at a barrier just before committing, so both commit on the same
    version: delta-rs rebases the second blind append (or, for a new table, the loser of the create
    retries as an append). Both land; nothing is lost."""
    store = Store(tmp_path / "store")
    if table_exists:
        store.write("prices", store_workers.prices("aws", 2, 9.0))
    with SPAWN.Manager() as manager:
        barrier = manager.Barrier(2)
        versions = in_processes([("append_prices", store.url, 1.0, barrier),
                                 ("append_prices", store.url, 2.0, barrier)])
    first = 1 if table_exists else 0
    assert sorted(versions) == [first, first + 1]
    day = store.scan("prices", {"provider": "aws", "date": "2026-11-01"}).collect()
    assert sorted(day["price"].to_list()) == [1.0] * 3 + [2.0] * 3
    assert rows_by_partition(store, "prices")[("aws", "2026-11-01")] == 6


def test_two_ingests_of_different_partitions_both_land(store: Store) -> None:
    with SPAWN.Manager() as manager:
        barrier = manager.Barrier(2)
        rows = in_processes([("ingest", store.url, str(SAMPLE_10), "AWS", 1, barrier),
                             ("ingest", store.url, str(SAMPLE_10), "Oracle", 1, barrier)])
    assert sorted(rows) == [7, 942]
    assert rows_by_partition(store) == {("aws", "2024-09", "1234567890123"): 942, ("oci", "2024-09", "20209880"): 6,
                                        ("oci", "2024-10", "20209880"): 1}
    assert [v.operation for v in store.history("billing")] == ["replace", "replace"]


def test_two_replacements_of_one_partition_serialise(store: Store) -> None:
    """Two writers replace the same partition, racing on the same version: one commits, the other
    conflicts, re-plans on top of it and commits — the partition is then one writer's data, whole
    (never both: that would be a lost replacement)."""
    store.write("billing", conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS"))
    with SPAWN.Manager() as manager:
        barrier = manager.Barrier(2)
        in_processes([("ingest", store.url, str(SAMPLE_10), "AWS", 2, barrier),
                      ("ingest", store.url, str(SAMPLE_10), "AWS", 3, barrier)])
    [(key, rows)] = rows_by_partition(store).items()
    assert rows in (2 * 942, 3 * 942)
    assert store.scan("billing").select(pl.len()).collect().item() == rows
    assert [v.operation for v in store.history("billing")] == ["replace"] * 3
    first = {tuple(m.partition.values()): m.rows for m in store.manifests("billing", as_of=1)}
    assert first[key] in (2 * 942, 3 * 942) and first[key] != rows  # the loser landed second, on top


def test_a_new_partition_replaced_by_two_writers_at_once_is_not_doubled(store: Store) -> None:
    """No live file to remove: only the partition's Delta ``txn`` action makes the two conflict."""
    store.write("billing", conformed(SAMPLE_12))
    with SPAWN.Manager() as manager:
        barrier = manager.Barrier(2)
        in_processes([("ingest", store.url, str(SAMPLE_10), "Oracle", 1, barrier),
                      ("ingest", store.url, str(SAMPLE_10), "Oracle", 1, barrier)])
    oci = {k: v for k, v in rows_by_partition(store).items() if k[0] == "oci"}
    assert oci == {("oci", "2024-09", "20209880"): 6, ("oci", "2024-10", "20209880"): 1}


def test_an_ingest_and_a_price_write_at_once(store: Store) -> None:
    in_processes([("ingest", store.url, str(SAMPLE_10)), ("append_prices", store.url, 3.0)])
    assert sum(rows_by_partition(store).values()) == 1000
    assert rows_by_partition(store, "prices") == {("aws", "2026-11-01"): 3}


def test_a_reader_during_writes_sees_whole_versions(store: Store) -> None:
    """While another process replaces the partitions again and again (one copy, three copies, …),
    every read sees one committed version whole: 1000 or 3000 rows, and the matching total."""
    store.write("billing", conformed(SAMPLE_10))
    one = store.scan("billing").select(pl.col("BilledCost").sum()).collect().item()
    writer = SPAWN.Process(target=store_workers.rewrite_forever, args=(store.url, str(SAMPLE_10), 6))
    writer.start()
    seen = set()
    try:
        while writer.is_alive() or not seen:
            df = store.scan("billing").select(pl.len().alias("n"), pl.col("BilledCost").sum().alias("c")).collect()
            n, total = df.row(0)
            assert n in (1000, 3000)
            assert total == one * (n // 1000)
            seen.add(n)
    finally:
        writer.join(timeout=300)
    assert writer.exitcode == 0
    assert len(store.history("billing")) == 7


def test_two_appends_on_s3_both_land(s3_server: str, s3_bucket: str) -> None:
    """On S3 the commit file is written with a conditional PUT: two writers holding the same version
    (threads here, held at a barrier) both land, one rebased past the other."""
    from finops.config import parse

    cfg = parse({"store": {"url": f"s3://{s3_bucket}/finops", "endpoint_url": s3_server, "region": "us-east-1"}})
    cfg.open_store().write("prices", store_workers.prices("aws", 2, 9.0))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def append(price: float) -> None:
        try:
            cfg.open_store().write("prices", store_workers.prices("aws", 1, price),
                                   before_commit=lambda: barrier.wait(timeout=60))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(p,)) for p in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    store = cfg.open_store()
    assert sorted(store.scan("prices", {"date": "2026-11-01"}).collect()["price"].to_list()) == [1.0] * 3 + [2.0] * 3
    assert [v.version for v in store.history("prices")] == [0, 1, 2]


# -- time travel and history -----------------------------------------------------------------------------
def test_history_and_as_of(store: Store) -> None:
    assert store.history("billing") == []
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.write("billing", conformed(SAMPLE_10))
    first = contents(store)
    first_manifests = store.manifests("billing")
    time.sleep(1.1)  # commit timestamps are in milliseconds; keep the two versions apart
    between = datetime.now(UTC)
    time.sleep(0.05)
    store.write("billing", conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS").head(10))
    h = store.history("billing")
    assert [(v.version, v.operation, v.rows) for v in h] == [(0, "replace", 1000), (1, "replace", 10)]
    assert h[1].partitions == [{"provider": "aws", "billing_period": "2024-09", "billing_account": "1234567890123"}]
    assert h[0].timestamp <= between < h[1].timestamp
    assert store.scan("billing").select(pl.len()).collect().item() == 68
    assert contents(store, as_of=0).equals(first)
    assert contents(store, as_of=between).equals(first)
    assert store.manifests("billing", as_of=0) == first_manifests
    assert len(store.files("billing", {"provider": "aws"}, as_of=0)) == 1
    assert store.scan("billing", as_of=before).collect().height == 0  # before the table existed
    with pytest.raises(StoreError, match="timezone"):
        store.scan("billing", as_of=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(StoreError, match="newest version is 1"):
        store.scan("billing", as_of=5)


def test_chargeback_as_of_reads_the_bill_as_it_stood(tmp_path: Path) -> None:
    """Write, report, re-ingest a restated month, report ``as_of`` the first version: the same
    report as the first, while the plain report shows the restatement."""
    from finops import config, reports
    from finops.generate import generate
    from tests.test_reports import CFG, WEEK

    bill = pl.concat(list(generate(days=35, end=date(2026, 11, 25), seed=3)))
    store = Store(tmp_path / "store")
    store.write("billing", bill)
    cfg = config.parse(CFG)
    first = reports.chargeback(store, cfg, WEEK)
    november = bill.filter(pl.col("BillingPeriodStart").dt.month() == 11)
    restated = november.with_columns(pl.col("EffectiveCost") * 2, pl.col("BilledCost") * 2)
    store.write("billing", restated)
    now = reports.chargeback(store, cfg, WEEK)
    then = reports.chargeback(store, cfg, WEEK, as_of=0)
    assert then.to_json() == first.to_json()
    assert now.to_json() != first.to_json()


# -- maintenance ------------------------------------------------------------------------------------------
def test_optimize_merges_small_files_and_keeps_provenance(store: Store) -> None:
    for hour in range(5):
        store.write("prices", store_workers.prices("aws", 1, float(hour)))
    with store.transaction("billing") as tx:  # two files in each partition
        tx.stage(conformed(SAMPLE_10))
        tx.stage(conformed(SAMPLE_10).head(0))
        tx.stage(conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS").head(5))
        tx.commit()
    prices_before = store.scan("prices").collect().sort("price", "instance_type")
    billing_before = store.manifests("billing")
    assert len(store.files("prices")) == 15  # the sink writes a file per distinct observed_at
    summary = store.optimize("prices")
    assert (summary.partitions, summary.files_before, summary.files_after) == (1, 15, 1)
    assert len(store.files("prices")) == 1
    assert store.scan("prices").collect().sort("price", "instance_type").equals(prices_before)
    assert store.history("prices")[-1].operation == "optimize"
    assert store.scan("prices", as_of=4).collect().height == 15  # older versions still read
    assert store.optimize("prices").version is None  # nothing left to merge
    aws = next(m for m in billing_before if m.partition["provider"] == "aws")
    assert len(aws.files) == 2
    store.optimize("billing")
    after = store.manifests("billing")
    assert [(m.partition, m.rows, m.sums, m.sources, m.written_at) for m in after] == \
        [(m.partition, m.rows, m.sums, m.sources, m.written_at) for m in billing_before]
    assert all(len(m.files) == 1 for m in after)
    df = store.scan("billing", {"provider": "aws"}).collect()
    assert Decimal(str(df["BilledCost"].sum())) == aws.sum("BilledCost")


def test_vacuum_keeps_what_time_travel_needs_and_refuses_a_short_retention(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))
    store.write("billing", conformed(SAMPLE_10))
    with pytest.raises(StoreError, match="below the safe minimum of 24"):
        store.vacuum(1)
    kept = store.vacuum(24)
    assert kept.files == 0 and contents(store, as_of=0).height == 1000
    dry = store.vacuum(0, "billing", force=True, dry_run=True)
    assert dry.files == 4 and len(list(Path(store.root).rglob("*.parquet"))) == 8
    done = store.vacuum(0, "billing", force=True)
    assert done.files == 4 and len(list(Path(store.root).rglob("*.parquet"))) == 4
    assert contents(store).height == 1000


def test_vacuum_sweeps_files_a_killed_writer_placed_but_never_committed(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_12))
    orphan = Path(store.root) / "billing" / "provider=gcp" / "part-20260101T000000-deadbeef-00000.parquet"
    shutil.copy(next(Path(store.root).rglob("*.parquet")), orphan)
    assert store.scan("billing").select(pl.len()).collect().item() == 100  # invisible to readers
    store.vacuum(0, force=True)
    assert not orphan.exists()


# -- a log this deltalake cannot read -----------------------------------------------------------------------
def test_a_log_from_a_newer_delta_writer_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    store.write("billing", conformed(SAMPLE_12))
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy)
    (copy / "billing" / "_delta_log" / f"{1:020d}.json").write_text(json.dumps({"protocol": {
        "minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["quantumCompression"], "writerFeatures": ["quantumCompression"]}}) + "\n")
    newer = Store(copy)
    for action in (lambda: newer.scan("billing"), lambda: newer.manifests("billing"),
                   lambda: newer.write("billing", conformed(SAMPLE_12))):
        with pytest.raises(StoreError, match=r"newer Delta Lake writer than deltalake .* upgrade"):
            action()
