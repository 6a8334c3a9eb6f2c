"""`finops collect billing` end to end: the real command, configured with three sources — a CUR 2.0
export in S3 (moto's server), Azure cost-details files in a folder, a BigQuery export table (our fake
of the BigQuery API) — all built from the same generated billing data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import polars as pl
import pytest

from finops.generate import generate
from finops.generate.native_aws import write_cur2
from finops.generate.native_azure import write_cost_details
from finops.generate.native_gcp import write_bigquery_export
from finops.store import Store
from tests.fakes.bigquery import FakeBigQuery, rows_from_flat_csv
from tests.fakes.gcp_billing import FakeCloudBilling
from tests.test_cli import run_env

TABLE = "billing-admin.billing_export.gcp_billing_export_v1_TEST"


@pytest.fixture(scope="module")
def billing() -> pl.DataFrame:
    """Two months of generated billing ending today: the months a first run collects."""
    return pl.concat(list(generate(days=40, teams=2, seed=3)), how="vertical_relaxed")


@pytest.fixture
def bigquery(billing: pl.DataFrame, tmp_path: Path) -> Iterator[FakeBigQuery]:
    rows = [r for f in write_bigquery_export(billing, tmp_path / "bq") for r in rows_from_flat_csv(f)]
    with FakeBigQuery(table=TABLE, rows=rows, page_size=500) as fake:
        yield fake


def _upload_cur(billing: pl.DataFrame, s3_server: str, bucket: str, tmp: Path) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    for path in write_cur2(billing, tmp, bucket=bucket, prefix="cur", export="cur2"):
        s3.upload_file(str(path), bucket, path.relative_to(tmp).as_posix())
    return f"s3://{bucket}/cur/cur2"


def _config(tmp: Path, s3_server: str, cur: str, azure: Path, bq: FakeBigQuery, extra: str = "") -> Path:
    cfg = tmp / "finops.toml"
    cfg.write_text(f"""
[store]
url = "{tmp / 'store'}"

[[providers.aws.billing]]
kind = "cur"
location = "{cur}"
endpoint_url = "{s3_server}"
{extra}
[[providers.azure.billing]]
kind = "cost-details"
location = "{azure}"

[[providers.gcp.billing]]
kind = "bigquery-export"
location = "{bq.table}"
endpoint_url = "{bq.url}"
""")
    return cfg


def _state(store: Store) -> list[tuple]:
    return [(tuple(m.partition.values()), m.rows, tuple(sorted(m.sums.items()))) for m in store.manifests("billing")]


def test_collect_billing_from_all_three_clouds(billing: pl.DataFrame, bigquery: FakeBigQuery, s3_server: str,
                                               s3_bucket: str, tmp_path: Path) -> None:
    cur = _upload_cur(billing, s3_server, s3_bucket, tmp_path / "cur")
    azure = tmp_path / "azure"
    write_cost_details(billing, azure)
    cfg = _config(tmp_path, s3_server, cur, azure, bigquery)

    res = json.loads(run_env(tmp_path, {}, "-c", str(cfg), "collect", "billing", "--json").stdout)
    assert res["failed"] == []
    months = {f"{d:%Y-%m}" for d in billing["BillingPeriodStart"].unique().to_list()}
    assert {(r["provider"], r["month"]) for r in res["collected"] if r["rows"]} == {
        (p, m) for p in ("aws", "azure", "gcp") for m in months}
    # every provider's bill arrives whole, to the cent
    store = Store(tmp_path / "store")
    got = store.scan("billing").group_by("ProviderName").agg(pl.col("BilledCost").sum()).collect()
    want = billing.group_by("ProviderName").agg(pl.col("BilledCost").sum())
    joined = got.join(want, on="ProviderName", suffix="_generated")
    assert joined.height == 3
    for row in joined.iter_rows(named=True):
        assert abs(row["BilledCost"] - row["BilledCost_generated"]) < Decimal("0.01"), row["ProviderName"]
    # a second run re-reads the previous and current month and changes nothing
    before = _state(store)
    again = json.loads(run_env(tmp_path, {}, "-c", str(cfg), "collect", "billing", "--json").stdout)
    assert again["failed"] == [] and _state(store) == before
    # --provider narrows the run
    only = json.loads(run_env(tmp_path, {}, "-c", str(cfg), "collect", "billing", "--provider", "gcp",
                              "--json").stdout)
    assert {r["provider"] for r in only["collected"]} == {"gcp"}


def test_a_failing_source_is_named_and_the_others_still_land(billing: pl.DataFrame, bigquery: FakeBigQuery,
                                                             s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    azure = tmp_path / "azure"
    write_cost_details(billing, azure)
    cfg = _config(tmp_path, s3_server, f"s3://{s3_bucket}/no-such-prefix", azure, bigquery)
    proc = run_env(tmp_path, {}, "-c", str(cfg), "collect", "billing", "--json", check=False)
    assert proc.returncode == 2
    res = json.loads(proc.stdout)
    assert len(res["failed"]) == 1 and "no-such-prefix" in res["failed"][0]
    assert {r["provider"] for r in res["collected"]} == {"azure", "gcp"}
    store = Store(tmp_path / "store")
    assert {m.partition["provider"] for m in store.manifests("billing")} == {"azure", "gcp"}


def test_collect_billing_needs_sources_and_checks_kinds(tmp_path: Path) -> None:
    proc = run_env(tmp_path, {}, "collect", "billing", check=False)
    assert proc.returncode == 2 and "no billing sources configured" in proc.stderr
    cfg = tmp_path / "finops.toml"
    cfg.write_text(f'[store]\nurl = "{tmp_path / "s"}"\n[[providers.gcp.billing]]\nkind = "cur"\nlocation = "s3://b/p"\n')
    proc = run_env(tmp_path, {}, "-c", str(cfg), "collect", "billing", check=False)
    assert proc.returncode == 2 and "cannot be of kind 'cur'" in proc.stderr


def test_since_is_validated(tmp_path: Path) -> None:
    proc = run_env(tmp_path, {}, "collect", "billing", "--since", "last tuesday", check=False)
    assert proc.returncode == 2 and "--since" in proc.stderr


def test_accounts_lists_gcp_billing_accounts_and_projects(tmp_path: Path) -> None:
    with FakeCloudBilling() as fake:
        listed = json.loads(run_env(tmp_path, {}, "accounts", "--endpoint", fake.url, "--json").stdout)
        assert listed and all(a["open"] for a in listed)
        want = {a["name"].split("/", 1)[1]: a for a in fake.accounts if a.get("open")}
        assert {a["billing_account"] for a in listed} == set(want)
        for a in listed:
            assert a["name"] == want[a["billing_account"]]["displayName"]
            assert a["projects"] == fake.projects.get(a["billing_account"], [])
        fake.expire_credentials()
        proc = run_env(tmp_path, {}, "accounts", "--endpoint", fake.url, check=False)
        assert proc.returncode == 2 and "refused the credential" in proc.stderr
