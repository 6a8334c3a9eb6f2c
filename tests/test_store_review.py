"""Review of the Delta store (issue 10): optimize racing a writer, optimize's provenance, a commit
interrupted after it landed, and a second migration racing the first.

Processes are made with the ``spawn`` context, never ``fork``: delta-rs' runtime does not survive fork()."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from finops import focus
from finops.store import Store, StoreConflict
from tests import store_workers
from tests.conftest import SAMPLE_10

SPAWN = mp.get_context("spawn")  # not fork: delta-rs' runtime does not survive fork()
AWS = ("aws", "2024-09", "1234567890123")


def conformed(path: Path) -> pl.LazyFrame:
    return focus.conform(pl.scan_csv(path, infer_schema=False))


def in_process(*call: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        return pool.submit(store_workers.run, *call).result(timeout=300)


def two_files_in_aws(store: Store) -> None:
    aws = conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS")
    with store.transaction("billing") as tx:
        tx.stage(aws.head(500))
        tx.stage(aws.slice(500))
        tx.commit()


def test_optimize_racing_a_replacement_does_not_bring_the_replaced_rows_back(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process replaces the partition after optimize has merged its files and before optimize
    commits: optimize must not add its merged copy of the replaced rows on top of the replacement."""
    two_files_in_aws(store)
    commit = store._commit

    def replaced_meanwhile(*args: Any, **kw: Any) -> int:
        in_process("ingest", store.url, str(SAMPLE_10), "AWS", 2)  # 1884 rows replace the 942
        return commit(*args, **kw)

    monkeypatch.setattr(store, "_commit", replaced_meanwhile)
    with pytest.raises(StoreConflict):
        store.optimize("billing")
    monkeypatch.undo()
    [m] = store.manifests("billing")
    assert m.rows == 2 * 942
    assert store.scan("billing").select(pl.len()).collect().item() == 2 * 942
    assert store.history("billing")[-1].operation == "replace"


def test_optimize_merging_part_of_a_runs_files_keeps_the_sums_exact(store: Store) -> None:
    """One run wrote a big and a small file to a partition, and another run a small one; optimize merges
    the two small ones. The manifest's sums must still be the data's (not the first run's sums twice)."""
    aws = conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS")
    with store.transaction("billing") as tx:
        tx.stage(pl.concat([aws] * 20))
        tx.stage(aws.head(3))
        tx.commit()
    files = sorted((Path(store.root) / "billing").rglob("*.parquet"), key=lambda p: p.stat().st_size)
    threshold = files[0].stat().st_size + 1  # the head(3) file is small, the 20 copies are not
    assert files[-1].stat().st_size > threshold
    summary = store.optimize("billing", small_file_bytes=threshold)  # one small file: nothing to merge yet
    assert summary.version is None
    store._records.clear()
    with store.transaction("billing") as tx:  # now a second small file of the same run in the partition
        tx.stage(pl.concat([aws] * 20))
        tx.stage(aws.head(3))
        tx.stage(aws.head(2))
        tx.commit()
    store.optimize("billing", small_file_bytes=threshold)
    [m] = Store(store.url).manifests("billing")
    df = store.scan("billing").select(pl.len(), pl.col("BilledCost").sum()).collect()
    assert m.rows == df.item(0, 0)
    assert m.sum("BilledCost") == Decimal(str(df.item(0, 1)))


def test_a_failure_after_the_commit_landed_keeps_the_committed_files(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit is in the log, then something fails (the listing that finds the version loses its
    connection, a post-commit checkpoint fails, Ctrl-C): the files the log names must stay."""
    def lost_connection(*_a: Any, **_k: Any) -> int:
        raise OSError("connection reset while listing _delta_log")

    monkeypatch.setattr(store, "_committed_version", lost_connection)
    with pytest.raises(OSError, match="connection reset"):
        store.write("billing", conformed(SAMPLE_10))
    monkeypatch.undo()
    fresh = Store(store.url)
    assert [v.operation for v in fresh.history("billing")] == ["replace"]
    assert fresh.scan("billing").select(pl.len()).collect().item() == 1000


def migrate_store(url: str) -> bool:
    from finops.store_migrate import migrate

    return migrate(url).migrated


def test_a_second_migration_racing_the_first_does_not_undo_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``finops store migrate`` run twice at once: the one that loses the race to create the Delta log
    must not remove the winner's log and records (the store would then look empty)."""
    from finops import store_migrate
    from tests.test_store_migrate import write_old_layout

    root = tmp_path / "old"
    write_old_layout(root, "billing", conformed(SAMPLE_10))
    commit = store_migrate._commit

    def other_migration_first(*args: Any) -> None:
        with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
            assert pool.submit(migrate_store, str(root)).result(timeout=300)
        commit(*args)

    monkeypatch.setattr(store_migrate, "_commit", other_migration_first)
    with contextlib.suppress(store_migrate.MigrationError):  # refusing is fine; undoing the other's work is not
        store_migrate.migrate(str(root))
    monkeypatch.undo()
    store = Store(root)
    assert [v.operation for v in store.history("billing")] == ["migrate"]
    assert sum(m.rows for m in store.manifests("billing")) == 1000
    assert store.scan("billing").select(pl.len()).collect().item() == 1000
