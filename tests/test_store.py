"""The Delta Lake store: partitions, manifests from the log, one commit per write, pruning, S3.

Concurrency, time travel, maintenance and migration: tests/test_store_delta.py, test_store_migrate.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops import focus
from finops.store import Store, StoreError, summarise
from tests.conftest import SAMPLE_10, SAMPLE_12, SAMPLE_13


def conformed(path: Path) -> pl.LazyFrame:
    return focus.conform(pl.scan_csv(path, infer_schema=False))


def contents(store: Store) -> pl.DataFrame:
    cols = [c.name for c in focus.COLUMNS]
    return store.scan("billing").select(cols).collect().sort(cols, nulls_last=True)


def test_partitions_by_provider_period_and_account(store: Store) -> None:
    manifests = store.write("billing", conformed(SAMPLE_10))
    parts = {tuple(m.partition.values()): m.rows for m in manifests}
    assert parts == {
        ("aws", "2024-09", "1234567890123"): 942,
        ("azure", "2024-09", "providers_Microsoft.Billing_billingAccounts_8611537"): 51,
        ("oci", "2024-09", "20209880"): 6,
        ("oci", "2024-10", "20209880"): 1,  # billed in October for a September charge: kept as billed
    }


def test_manifest_records_rows_sums_sources_and_time(store: Store, tmp_path: Path) -> None:
    from finops.store import Source

    src = Source.of(str(SAMPLE_12))
    [m] = store.write("billing", conformed(SAMPLE_12).filter(pl.col("BillingAccountId") == "01A2B3-C4D5E6-F70819"),
                      sources=[src])
    df = conformed(SAMPLE_12).filter(pl.col("BillingAccountId") == "01A2B3-C4D5E6-F70819").collect()
    assert m.rows == df.height
    assert m.sum("BilledCost") == df["BilledCost"].sum()
    assert m.sum("EffectiveCost") == df["EffectiveCost"].sum()
    assert m.sources == [src.__dict__]
    assert len(src.sha256) == 64 and src.bytes == SAMPLE_12.stat().st_size
    # the provenance is in the commit itself and in the run's record, which no data read is needed for
    [v] = store.history("billing")
    assert v.run_id == m.run_id and v.rows == m.rows and v.operation == "replace"
    assert v.partitions == [m.partition]
    on_disk = json.loads((Path(store.root) / "billing" / "_finops" / "runs" / f"{m.run_id}.json").read_text())
    [entry] = on_disk["partitions"].values()
    assert entry["rows"] == m.rows and entry["written_at"] == m.written_at and entry["sums"] == m.sums
    assert entry["sources"] == [src.__dict__]


def test_writing_the_same_data_twice_changes_nothing(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))
    once = contents(store)
    files_once = store.files("billing")
    store.write("billing", conformed(SAMPLE_10))
    assert contents(store).equals(once)
    assert len(store.files("billing")) == len(files_once)
    # the replaced files stay for time travel until vacuum removes them
    assert len(list(Path(store.root).rglob("*.parquet"))) == 2 * len(files_once)
    store.vacuum(0, force=True)
    assert len(list(Path(store.root).rglob("*.parquet"))) == len(files_once)
    assert contents(store).equals(once)


def test_a_write_replaces_only_the_partitions_it_touches(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))
    store.write("billing", conformed(SAMPLE_12))
    restated = conformed(SAMPLE_10).filter(pl.col("ProviderName") == "AWS").head(10)
    store.write("billing", restated)
    totals = {m.partition["provider"]: m.rows for m in store.manifests("billing", {"billing_period": "2024-09"})}
    assert totals == {"aws": 10, "azure": 51, "oci": 6}
    assert store.scan("billing", {"provider": "gcp"}).select(pl.len()).collect().item() == 100


def test_scan_prunes_partitions(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))
    store.write("billing", conformed(SAMPLE_13))
    aws_sep = store.files("billing", {"provider": "aws", "billing_period": "2024-09"})
    assert len(aws_sep) == 1 and "provider=aws/billing_period=2024-09" in aws_sep[0]
    df = store.scan("billing", {"provider": ["azure", "oci"]}).collect()
    assert set(df["ProviderName"].unique()) == {"Microsoft", "Oracle"}
    with pytest.raises(StoreError, match="partition keys are provider, billing_period, billing_account"):
        store.scan("billing", {"ServiceName": "x"})


def test_scan_unions_extension_columns(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))  # has x_Id
    store.write("billing", conformed(SAMPLE_13))  # has 1.3's columns as x_
    df = store.scan("billing").collect()
    assert {"x_Id", "x_ContractApplied"} <= set(df.columns)
    assert df.height == 1100
    assert df.filter(pl.col("x_Id").is_not_null()).height == 1000


def test_empty_dataset_scans_as_an_empty_frame(store: Store) -> None:
    df = store.scan("billing", schema=focus.empty_frame().schema).collect()
    assert df.height == 0 and df.columns == [c.name for c in focus.COLUMNS]
    assert summarise(store.manifests("billing"), ()) == [{"rows": 0, "partitions": 0}]


def test_unknown_dataset_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown dataset 'bills'"):
        store.scan("bills")


def test_prices_append(store: Store) -> None:
    from datetime import datetime

    def obs(price: float) -> pl.DataFrame:
        return pl.DataFrame({"provider": ["aws"], "instance_type": ["p4d.24xlarge"], "price": [price],
                             "observed_at": [datetime(2026, 11, 1, 12, tzinfo=UTC)]})

    store.write("prices", obs(32.77))
    store.write("prices", obs(31.10))
    [m] = store.manifests("prices")
    assert m.partition == {"provider": "aws", "date": "2026-11-01"} and m.rows == 2
    assert sorted(store.scan("prices").collect()["price"].to_list()) == [31.10, 32.77]


def test_an_exception_while_staging_leaves_the_store_as_it_was(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_12))
    before = contents(store)
    with pytest.raises(RuntimeError), store.transaction("billing") as tx:
        tx.stage(conformed(SAMPLE_10))
        raise RuntimeError("boom")
    assert contents(store).equals(before)
    assert not any(p for p in (Path(store.root) / "billing" / "_staging").iterdir())
    assert [v.version for v in store.history("billing")] == [0]


def test_summarise_adds_exactly(store: Store) -> None:
    store.write("billing", conformed(SAMPLE_10))
    summary = summarise(store.manifests("billing"), ("provider",))
    by_provider = {r["provider"]: Decimal(r["BilledCost"]) for r in summary}
    df = conformed(SAMPLE_10).collect()
    assert sum(by_provider.values()) == df["BilledCost"].sum()
    assert by_provider["oci"] == df.filter(pl.col("ProviderName") == "Oracle")["BilledCost"].sum()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(6)), take=st.integers(min_value=1, max_value=100))
def test_reingesting_in_any_order_is_idempotent(tmp_path_factory: pytest.TempPathFactory,
                                                 order: list[int], take: int) -> None:
    """Writing the same inputs again, in any order, leaves the same data."""
    store = Store(tmp_path_factory.mktemp("s"))
    inputs = [conformed(p).head(take) for p in (SAMPLE_10, SAMPLE_12, SAMPLE_13)] * 2
    for i in range(3):
        store.write("billing", inputs[i])
    first = contents(store)
    for i in order:
        store.write("billing", inputs[i])
    assert contents(store).equals(first)


# -- a writer killed mid-write ---------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, polars as pl
    from finops import focus
    from finops.store import Store
    base = focus.conform(pl.scan_csv(sys.argv[2], infer_schema=False)).collect()
    big = pl.concat([base] * int(sys.argv[3]))
    Store(sys.argv[1]).write("billing", big.lazy())
""")


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.5, 0.9, 1.4])
def test_a_writer_killed_mid_write_leaves_the_previous_partition(store: Store, delay: float) -> None:
    """SIGKILL a writer once it has begun staging, at several points (staging, placing files, writing
    the provenance record, committing): the table is then the last committed version, whole — every
    partition the old one or the new one, never a mix, never missing. (A subprocess runs the writer:
    exec, not fork, so delta-rs' runtime starts fresh in it.)"""
    store.write("billing", conformed(SAMPLE_10))
    before = contents(store)
    old = {tuple(m.partition.values()): m.rows for m in store.manifests("billing")}
    copies = 1000
    proc = subprocess.Popen([sys.executable, "-c", WRITER, store.root, str(SAMPLE_10), str(copies)],
                            env={**os.environ, "POLARS_MAX_THREADS": "1"})
    staging = Path(store.root) / "billing" / "_staging"
    deadline = time.monotonic() + 60
    while not (staging.exists() and any(staging.iterdir())) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    now = {tuple(m.partition.values()): m.rows for m in store.manifests("billing")}
    assert now.keys() == old.keys()
    for key, rows in now.items():
        assert rows in (old[key], copies * old[key])
        partition = dict(zip(("provider", "billing_period", "billing_account"), key, strict=True))
        assert store.scan("billing", partition).select(pl.len()).collect().item() == rows
    if finished:
        assert all(now[k] == copies * old[k] for k in now)
    elif now == old:
        assert contents(store).equals(before)
    # one commit for the whole write: either every partition is new, or none is
    assert now == old or all(now[k] == copies * old[k] for k in now)
    # and the store still takes writes (no lock or half-commit left behind)
    store.write("billing", conformed(SAMPLE_10))
    assert contents(store).equals(before)


# -- object storage --------------------------------------------------------------------------------
def test_s3_store_against_a_local_server(s3_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.config import parse

    cfg = parse({"store": {"url": f"s3://{s3_bucket}/finops", "endpoint_url": s3_server, "region": "us-east-1"}})
    store = cfg.open_store()
    store.write("billing", conformed(SAMPLE_10))
    store.write("billing", conformed(SAMPLE_10))  # replace: same result
    df = store.scan("billing").collect()
    assert df.height == 1000
    assert df["BilledCost"].sum() == conformed(SAMPLE_10).collect()["BilledCost"].sum()
    assert len(store.files("billing", {"provider": "aws"})) == 1
    assert [m.rows for m in store.manifests("billing")] == [942, 51, 6, 1]
    assert [v.version for v in store.history("billing")] == [0, 1]
    assert store.scan("billing", as_of=0).select(pl.len()).collect().item() == 1000
    import boto3

    def keys() -> list[str]:
        s3 = boto3.client("s3", endpoint_url=s3_server)
        return [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]

    assert sum(k.endswith(".parquet") for k in keys()) == 8  # version 0's files, kept for time travel
    assert any(k.startswith("finops/billing/_delta_log/") for k in keys())
    store.vacuum(0, force=True)
    assert sum(k.endswith(".parquet") for k in keys()) == 4
    assert store.scan("billing").select(pl.len()).collect().item() == 1000
