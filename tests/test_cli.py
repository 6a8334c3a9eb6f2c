"""The command line, run as a user runs it: the installed `finops` entry point in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from finops import offers
from finops.store import Store
from tests.conftest import SAMPLE_10, SAMPLE_12

FINOPS = [str(Path(sys.executable).with_name("finops"))]


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FINOPS_CONFIG"} | {"COLUMNS": "200"}
    proc = subprocess.run(FINOPS + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
                          check=False)  # checked below, with the output in the message
    if check and proc.returncode != 0:
        raise AssertionError(f"finops {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_init_writes_a_valid_example_and_refuses_to_overwrite(tmp_path: Path) -> None:
    run(tmp_path, "init")
    assert "[store]" in (tmp_path / "finops.toml").read_text()
    again = run(tmp_path, "init", check=False)
    assert again.returncode != 0 and "--force" in again.stderr
    run(tmp_path, "init", "--force")


def test_ingest_then_store_info_and_validate(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "ingest", str(SAMPLE_10), str(SAMPLE_12), "--json").stdout)
    assert [f["rows"] for f in res["files"]] == [1000, 100]
    info = json.loads(run(tmp_path, "store", "info", "--json").stdout)
    assert info["store"] == "./finops-data"
    assert sum(p["rows"] for p in info["partitions"]) == 1100
    billed = sum(Decimal(f["BilledCost"]) for f in res["files"])
    assert sum(Decimal(t["BilledCost"]) for t in info["totals"]) == billed
    table = run(tmp_path, "store", "info").stdout
    assert "provider" in table and "1,100" in table
    checked = run(tmp_path, "validate")  # exit 0: the real AWS sample's one problem is only a warning
    assert "warning" in checked.stdout and "Amazon Elastic Compute Cloud" in checked.stdout


def test_bad_input_exits_non_zero_with_the_file_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SAMPLE_12.read_text().replace("USD", "XXX1", 1))
    proc = run(tmp_path, "ingest", str(bad), check=False)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "PricingCurrency" in proc.stderr and "XXX1" in proc.stderr
    assert "Traceback" not in proc.stderr
    info = json.loads(run(tmp_path, "store", "info", "--json").stdout)
    assert info["partitions"] == []


def test_validate_files_without_ingesting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SAMPLE_12.read_text().replace(",Usage,", ",Usage-ish,", 1))
    proc = run(tmp_path, "validate", str(bad), "--json", check=False)
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)[str(bad)]
    assert problems[0]["column"] == "ChargeCategory" and problems[0]["examples"] == ["Usage-ish"]
    assert not (tmp_path / "finops-data" / "billing").exists()


def test_validate_a_clean_store_says_ok(tmp_path: Path) -> None:
    run(tmp_path, "ingest", str(SAMPLE_12))
    assert run(tmp_path, "validate").stdout.startswith("ok ")


def test_config_flag_and_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text(f'[store]\nurl = "{tmp_path / "elsewhere"}"\n')
    run(tmp_path, "--config", str(cfg), "ingest", str(SAMPLE_12))
    assert (tmp_path / "elsewhere" / "billing").is_dir()
    cfg.write_text('[store]\nurll = "x"\n')
    proc = run(tmp_path, "--config", str(cfg), "store", "info", check=False)
    assert proc.returncode == 2 and "store.urll" in proc.stderr and str(cfg) in proc.stderr


def _native_totals(exports: Path) -> dict[str, Decimal]:
    """BilledCost per provider as the native exports themselves state it, read without our mappings:
    CUR 2.0 unblended cost, Azure actual-cost ``Cost``, BigQuery export cost plus its credits."""
    import csv

    import pyarrow.parquet as pq

    aws = sum((Decimal(repr(v)) for f in exports.rglob("*.parquet")
               for v in pq.read_table(f, columns=["line_item_unblended_cost"]).column(0).to_pylist()), Decimal(0))
    azure = gcp = Decimal(0)
    for f in exports.rglob("cost-details-actual_*.csv"):
        with open(f, encoding="utf-8-sig", newline="") as fh:
            azure += sum((Decimal(r["Cost"]) for r in csv.DictReader(fh)), Decimal(0))
    for f in exports.rglob("gcp-billing-export_*.csv"):
        with open(f, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                gcp += Decimal(r["cost"]) + sum((Decimal(str(c["amount"])) for c in json.loads(r["credits"] or "[]")),
                                                Decimal(0))
    return {"aws": aws, "azure": azure, "gcp": gcp}


def test_demo_generates_native_exports_ingests_and_totals(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "demo", "--days", "10", "--teams", "2", "--json").stdout)
    totals = res["totals"]
    assert {t["provider"] for t in totals} == {"aws", "gcp", "azure"}
    exports = tmp_path / "demo-exports"
    assert {p.name for p in exports.iterdir()} == {"aws-cur2", "azure-cost-details", "gcp-bigquery-export"}
    expected = _native_totals(exports)
    for provider, amount in expected.items():
        got = sum(Decimal(t["BilledCost"]) for t in totals if t["provider"] == provider)
        assert amount > 0 and abs(got - amount) < Decimal("0.01"), provider
    again = json.loads(run(tmp_path, "demo", "--days", "10", "--teams", "2", "--json").stdout)
    assert again["totals"] == totals  # deterministic, and re-ingesting replaced rather than added


def test_generate_exact_rows_as_csv(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "generate", "--rows", "5000", "--format", "csv", "--out", "x", "--json").stdout)
    import polars as pl

    assert sum(pl.read_csv(tmp_path / f, infer_schema=False).height for f in res["files"]) == 5000


def test_prices_import_catalog_and_show(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "prices", "import-catalog", "--json").stdout)
    assert {(r["provider"], r["market"]) for r in res["imported"]} == {
        (p, m) for p in ("aws", "gcp", "azure") for m in ("on_demand", "spot")}
    again = json.loads(run(tmp_path, "prices", "import-catalog", "--json").stdout)
    assert again["offers_known"] == res["offers_known"]  # importing twice adds nothing
    shown = json.loads(run(tmp_path, "prices", "show", "--accelerator", "H100", "--count", "8", "--spot",
                           "--limit", "5", "--json").stdout)
    prices = [r["price_per_hour"] for r in shown]
    assert len(shown) == 5 and prices == sorted(prices)
    assert {r["accelerator_name"] for r in shown} == {"H100"} and {r["market"] for r in shown} == {"spot"}
    table = run(tmp_path, "prices", "show", "--accelerator", "A100-80GB", "--provider", "gcp").stdout
    assert "a2-ultragpu" in table and "stale" in table  # the snapshot is months old
    none = run(tmp_path, "prices", "show", "--accelerator", "H100", "--region", "nowhere-1", check=False)
    assert none.returncode == 1 and "no offer matches" in none.stderr


def test_collect_prices_from_the_three_clouds_price_apis(tmp_path: Path) -> None:
    """`finops collect prices` with the real SDK clients against local servers speaking each price API."""
    from tests.fakes.aws_prices import AWSPricesFake
    from tests.fakes.azure_retail import AzureRetailFake, catalog_rows, items_from_catalog
    from tests.fakes.gcp_catalog import FakeCloudCatalog

    with AWSPricesFake() as aws, FakeCloudCatalog() as gcp, AzureRetailFake(items_from_catalog(catalog_rows())) as az:
        (tmp_path / "finops.toml").write_text(
            '[prices.endpoints]\n'
            f'aws = "{aws.url}"\ngcp = "{gcp.url}"\nazure = "{az.url}"\n'
            '[prices.interruption]\naws = { p4d = 0.5 }\n'
            '[providers.aws]\nregions = ["us-east-1"]\n[providers.gcp]\nregions = ["us-central1"]\n'
            '[providers.azure]\nregions = ["eastus"]\n')
        env_aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}
        res = run_env(tmp_path, env_aws, "collect", "prices", "--json")
        collected = {r["provider"]: r for r in json.loads(res.stdout)["collected"]}
        assert set(collected) == {"aws", "gcp", "azure"}
        assert all(r["spot"] > 0 and r["on_demand"] > 0 for r in collected.values())
        shown = json.loads(run(tmp_path, "prices", "show", "--accelerator", "A100", "--spot", "--json",
                               "--limit", "100").stdout)
        assert {r["provider"] for r in shown} == {"aws", "gcp", "azure"}
        p4d = [r for r in shown if r["instance_type"] == "p4d.24xlarge"]
        assert p4d and all(r["interruption_rate"] == pytest.approx(offers.hazard(0.5)) for r in p4d)  # config override
        before = json.loads(run(tmp_path, "store", "info", "--dataset", "prices", "--json").stdout)["partitions"]
        az.fail(page=1, status=503, times=None)
        failed = run_env(tmp_path, env_aws, "collect", "prices", "--provider", "azure", check=False)
        assert failed.returncode == 2 and "azure" in failed.stderr and "eastus" in failed.stderr
        after = json.loads(run(tmp_path, "store", "info", "--dataset", "prices", "--json").stdout)["partitions"]
        assert after == before  # nothing partial recorded


def run_env(cwd: Path, extra: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("FINOPS_CONFIG", "AWS_PROFILE")}
    env = inherited | {"COLUMNS": "200"} | extra
    proc = subprocess.run(FINOPS + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
                          check=False)  # checked below, with the output in the message
    if check and proc.returncode != 0:
        raise AssertionError(f"finops {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_generate_native_exports_ingest_in_one_step(tmp_path: Path) -> None:
    files = json.loads(run(tmp_path, "generate", "--format", "native", "--out", "nat", "--days", "5", "--teams", "2",
                           "--json").stdout)["files"]
    data = [f for f in files if f.endswith((".csv", ".parquet"))]
    assert any("Manifest.json" in f for f in files) and len(data) >= 3
    res = json.loads(run(tmp_path, "ingest", *data, "--json").stdout)
    store = Store(tmp_path / "finops-data")
    assert {m.partition["provider"] for m in store.manifests("billing")} == {"aws", "azure", "gcp"}
    assert sum(m.rows for m in store.manifests("billing")) == sum(f["rows"] for f in res["files"])
