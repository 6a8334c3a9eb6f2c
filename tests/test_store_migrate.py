"""Migrating a store of finops' old layout (per-partition ``_manifest.json``) to Delta Lake.

``write_old_layout`` writes that layout exactly as finops/store.py did before Delta (its staging
and manifest logic, trimmed to what a fresh write does), so the test needs no old code around.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl
import pytest

from finops import focus
from finops.store import DATASETS, OldLayoutError, Store, account_key
from finops.store_migrate import MigrationError, migrate
from tests import store_workers
from tests.conftest import SAMPLE_10, SAMPLE_12


def write_old_layout(root: Path, dataset: str, frame: pl.LazyFrame | pl.DataFrame, sources: list[dict] = ()) -> None:
    """One write in the old layout: ``<dataset>/<k>=<v>/…/part-<run>-<n>.parquet`` + ``_manifest.json``
    (files, rows, exact sums, sources, written_at, run_id, history, columns); an append adds to the
    partition's manifest as the old code did."""
    ds = DATASETS[dataset]
    run = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    stage = root / dataset / "_staging" / run
    written: list[str] = []
    frame.lazy().sink_parquet(pl.PartitionBy(str(stage), key=list(ds.split_by), include_key=True), mkdir=True,
                              sinked_paths_callback=lambda a: written.extend(p.path for p in a.paths))
    by_rel: dict[str, list[str]] = {}
    for path in sorted(written):
        raw = {unquote(k): unquote(v) for k, v in (s.split("=", 1) for s in
                                                   os.path.relpath(os.path.dirname(path), stage).split(os.sep))}
        keys = {k: v if k == "billing_account" else (v or "none") for k, v in ds.keys_of(raw).items()}
        by_rel.setdefault("/".join(f"{k}={quote(str(v), safe='')}" for k, v in keys.items()), []).append(path)
    for rel, files in by_rel.items():
        target = root / dataset / rel
        target.mkdir(parents=True, exist_ok=True)
        names = []
        for i, f in enumerate(files):
            names.append(f"part-{run}-{i:04d}.parquet")
            os.replace(f, target / names[-1])
        df = pl.read_parquet([target / n for n in names])
        sums = {c: str(df[c].sum()) for c in ds.sums}
        old = json.loads((target / "_manifest.json").read_text()) if (target / "_manifest.json").exists() else None
        rows, history = df.height, []
        if old and ds.mode == "append":
            names, rows = old["files"] + names, old["rows"] + rows
            history = old["history"] + [{k: old[k] for k in ("run_id", "written_at", "rows", "sums")}]
        partition = {k: unquote(v) for k, v in (s.split("=", 1) for s in rel.split("/"))}
        manifest = {"dataset": dataset, "partition": partition,
                    "files": names, "rows": rows, "sums": sums, "sources": list(sources),
                    "written_at": datetime.now(UTC).isoformat(timespec="seconds"), "run_id": run,
                    "history": history, "columns": df.columns}
        (target / "_manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    shutil.rmtree(stage)


def conformed(path: Path) -> pl.LazyFrame:
    return focus.conform(pl.scan_csv(path, infer_schema=False))


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    src = {"path": str(SAMPLE_10), "sha256": "ab" * 32, "bytes": SAMPLE_10.stat().st_size}
    write_old_layout(root, "billing", conformed(SAMPLE_10), [src])
    write_old_layout(root, "billing", conformed(SAMPLE_12))
    write_old_layout(root, "prices", store_workers.prices("aws", 1, 1.0))
    write_old_layout(root, "prices", store_workers.prices("aws", 1, 2.0))
    (root / "_cursors").mkdir()
    (root / "_cursors" / "aws-cur.json").write_text(json.dumps({"period": "2026-10-01"}))
    return root


def old_manifests(root: Path, dataset: str) -> dict[tuple[str, ...], dict]:
    out = {}
    for p in (root / dataset).rglob("_manifest.json"):
        m = json.loads(p.read_text())
        out[tuple(m["partition"][k] for k in DATASETS[dataset].key_names)] = m
    return out


def test_any_operation_on_the_old_layout_names_the_migration(old_store: Path) -> None:
    store = Store(old_store)
    for action in (lambda: store.scan("billing"), lambda: store.manifests("billing"), lambda: store.files("prices"),
                   lambda: store.write("billing", conformed(SAMPLE_12)), lambda: store.history("billing"),
                   lambda: store.optimize("prices")):
        with pytest.raises(OldLayoutError, match="run `finops store migrate`"):
            action()


def test_migrate_converts_in_place_and_keeps_provenance_and_cursors(old_store: Path) -> None:
    before = {ds: old_manifests(old_store, ds) for ds in ("billing", "prices")}
    old_rows = pl.concat([pl.read_parquet(p) for p in (old_store / "billing").rglob("*.parquet")],
                         how="diagonal_relaxed").select(
        [c.name for c in focus.COLUMNS]).sort([c.name for c in focus.COLUMNS], nulls_last=True)
    messages: list[str] = []
    result = migrate(str(old_store), progress=lambda d, m: messages.append(f"{d}: {m}"))
    assert result.migrated and result.cursors == 1
    billing = next(d for d in result.datasets if d.dataset == "billing")
    assert (billing.partitions, billing.rows) == (6, 1100)
    assert any("migrated 6 partition(s)" in m for m in messages)

    store = Store(old_store)
    for ds in ("billing", "prices"):
        after = {tuple(m.partition.values()): m for m in store.manifests(ds)}
        assert after.keys() == before[ds].keys()
        for key, old in before[ds].items():
            new = after[key]
            assert new.rows == old["rows"]
            assert {k: Decimal(v) for k, v in new.sums.items()} == {k: Decimal(v) for k, v in old["sums"].items()}
            assert (new.sources, new.written_at, new.run_id) == (old["sources"], old["written_at"], old["run_id"])
            assert new.history == old["history"]
    assert before["billing"][("aws", "2024-09", "1234567890123")]["sources"][0]["sha256"] == "ab" * 32
    cols = [c.name for c in focus.COLUMNS]
    assert store.scan("billing").select(cols).collect().sort(cols, nulls_last=True).equals(old_rows)
    assert store.scan("prices").collect().height == 6
    assert store.cursor("aws-cur") == {"period": "2026-10-01"}
    assert [v.operation for v in store.history("billing")] == ["migrate"]
    assert not list(old_store.rglob("_manifest.json"))
    # and it is an ordinary Delta store now: a restated month replaces its partition
    store.write("billing", conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS").head(3))
    assert store.manifests("billing", {"provider": "aws"})[0].rows == 3
    assert migrate(str(old_store)).migrated is False  # nothing left to do


def test_a_store_that_disagrees_with_its_manifests_is_not_migrated(old_store: Path) -> None:
    path = next(p for p in (old_store / "billing").rglob("_manifest.json") if "provider=oci" in str(p))
    m = json.loads(path.read_text())
    m["sums"]["BilledCost"] = str(Decimal(m["sums"]["BilledCost"]) + Decimal("0.01"))
    path.write_text(json.dumps(m))
    with pytest.raises(MigrationError, match=r"provider=oci.*BilledCost sums to .*nothing was migrated"):
        migrate(str(old_store))
    assert not (old_store / "billing" / "_delta_log").exists()
    assert len(list((old_store / "billing").rglob("_manifest.json"))) == 6


def test_migrated_partitions_take_todays_account_names(tmp_path: Path) -> None:
    # The old layout named `payer:one` payer_one; today's name is exact (payer_one~<hash>). Migrated, the
    # partition must carry today's name, or the next ingest of the same account would write beside it.
    root = tmp_path / "old"
    frame = conformed(SAMPLE_12).with_columns(pl.lit("payer:one").alias("BillingAccountId"))
    write_old_layout(root, "billing", frame)
    migrate(str(root))
    store = Store(root)
    before = store.manifests("billing")
    assert [m.partition["billing_account"] for m in before] == [account_key("payer:one")]
    store.write("billing", frame)  # the same month again, as an ingest would write it
    after = store.manifests("billing")
    assert len(after) == 1 and after[0].rows == before[0].rows == 100
