"""AWS price collector: real boto3 clients against the local price server (tests/fakes/aws_prices.py).
Instance specs are also checked against moto's DescribeInstanceTypes.

The expected prices are read straight from the catalog sample the fake serves, tests/data/catalog/aws/vms.csv.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import polars as pl
import pytest

from collectors.aws import prices
from finops import offers
from tests.fakes.aws_prices import CATALOG, AWSPricesFake, az_name, sku_for

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
WHEN = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOT_DEFAULT = {"p5en.48xlarge"}  # in the sample but not in DEFAULT_FAMILIES


def _catalog() -> list[dict[str, str]]:
    with open(CATALOG, newline="") as f:
        return list(csv.DictReader(f))


def expected_on_demand() -> dict[tuple[str, str], float]:
    return {(r["Region"], r["InstanceType"]): float(r["Price"]) for r in _catalog()
            if r["Price"] and r["InstanceType"] not in NOT_DEFAULT}


def expected_spot() -> dict[tuple[str, str, str], float]:
    return {(r["Region"], r["AvailabilityZone"], r["InstanceType"]): float(r["SpotPrice"])
            for r in _catalog() if r["SpotPrice"] and r["InstanceType"] not in NOT_DEFAULT}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and no shared config or profile from the machine."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


pytestmark = pytest.mark.usefixtures("backoffs")  # every test: botocore's backoff, shortened


@pytest.fixture
def fake() -> Iterator[AWSPricesFake]:
    with AWSPricesFake(page_size=4) as server:
        yield server


_SESSION: list[boto3.session.Session] = []


def session() -> boto3.session.Session:
    """One session for the module: its loader caches the EC2 model, which is slow to load."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


def run(fake: AWSPricesFake, regions: tuple[str, ...] = REGIONS, **kw: object) -> pl.DataFrame:
    client = prices.make_client(fake.url, session=session(), config=prices.client_config(3))
    return prices.collect(client, regions, observed_at=WHEN, **kw)


def on_demand(df: pl.DataFrame) -> dict[tuple[str, str], float]:
    rows = df.filter((pl.col("market") == "on_demand") & (pl.col("service") == "compute")).iter_rows(named=True)
    return {(r["region"], r["instance_type"]): r["price_per_hour"] for r in rows}


def spot(df: pl.DataFrame) -> dict[tuple[str, str, str], float]:
    rows = df.filter((pl.col("market") == "spot") & (pl.col("service") == "compute")).iter_rows(named=True)
    return {(r["region"], r["zone"], r["instance_type"]): r["price_per_hour"] for r in rows}


# -- prices ----------------------------------------------------------------------------------------
def test_on_demand_prices_are_the_catalog_prices(fake: AWSPricesFake) -> None:
    df = run(fake)
    assert on_demand(df) == expected_on_demand()
    od = df.filter((pl.col("market") == "on_demand") & (pl.col("service") == "compute"))
    # The Used product, not the capacity reservations beside it (Allocated is priced 0).
    assert all(r["sku"] == sku_for(r["region"], r["instance_type"]) for r in od.iter_rows(named=True))
    assert od["zone"].null_count() == od.height
    assert set(od["source"]) == {"aws:pricing.get_products"}
    assert set(od["interruption_rate"]) == {0.0}


def test_spot_prices_are_the_catalog_prices_per_zone(fake: AWSPricesFake) -> None:
    df = run(fake)
    # Newest per zone: the three-day-old "Linux/UNIX (Amazon VPC)" entries (10% dearer) lose.
    assert spot(df) == expected_spot()
    sp = df.filter((pl.col("market") == "spot") & (pl.col("service") == "compute"))
    assert set(sp["source"]) == {"aws:describe_spot_price_history"}
    assert sp["sku"].null_count() == sp.height
    for r in sp.iter_rows(named=True):
        assert r["interruption_rate"] == offers.interruption_rate("aws", r["instance_type"], "spot")
    asked = fake.calls("DescribeSpotPriceHistory")[0].params
    assert asked["StartTime"].startswith("2026-11-28T12:00:00")
    assert [asked["ProductDescription.1"], asked["ProductDescription.2"]] == ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
    assert "p4d.24xlarge" in {v for k, v in asked.items() if k.startswith("InstanceType.")}


def test_offer_columns(fake: AWSPricesFake) -> None:
    df = run(fake, regions=("us-east-1",))
    assert df.schema == offers.SCHEMA
    assert df["observed_at"].unique().to_list() == [WHEN]
    assert set(df["provider"]) == {"aws"} and set(df["currency"]) == {"USD"} and set(df["region"]) == {"us-east-1"}
    assert df["flag"].null_count() == df.height
    p5 = df.filter(pl.col("instance_type") == "p5.48xlarge").row(0, named=True)
    assert (p5["vcpus"], p5["memory_gb"]) == (192.0, 2048.0)


def test_canonical_accelerators(fake: AWSPricesFake) -> None:
    df = run(fake)
    specs = {r["instance_type"]: (r["accelerator_name"], r["accelerator_count"], r["accelerator_memory_gb"])
             for r in df.iter_rows(named=True)}
    assert specs["p4d.24xlarge"] == ("A100-40GB", 8.0, 40.0)
    assert specs["p4de.24xlarge"] == ("A100-80GB", 8.0, 80.0)
    assert specs["p5.48xlarge"] == ("H100", 8.0, 80.0)
    assert specs["p5.4xlarge"] == ("H100", 1.0, 80.0)
    assert specs["p3.2xlarge"] == ("V100-16GB", 1.0, 16.0)
    assert specs["p3dn.24xlarge"] == ("V100-32GB", 8.0, 32.0)
    assert specs["p6-b200.48xlarge"] == ("B200", 8.0, 180.0)


# -- paging and failures ---------------------------------------------------------------------------
def test_pagination_across_pages() -> None:
    with AWSPricesFake(page_size=100) as whole:
        one_page = run(whole)
    with AWSPricesFake(page_size=2) as paged:
        many_pages = run(paged)
        for action in ("DescribeInstanceTypes", "DescribeSpotPriceHistory", "GetProducts"):
            assert max(r.page for r in paged.calls(action)) >= 2, action
        assert max(r.page for r in paged.calls("DescribeSpotPriceHistory")) >= 10
    assert many_pages.equals(one_page)
    assert on_demand(many_pages) == expected_on_demand() and spot(many_pages) == expected_spot()


def test_throttling_and_503_are_retried_by_botocore(fake: AWSPricesFake, backoffs: list[float]) -> None:
    fake.throttle("DescribeInstanceTypes", 1)
    fake.throttle("DescribeSpotPriceHistory", 2)     # RequestLimitExceeded, HTTP 400, twice: the third try succeeds
    fake.throttle("GetProducts", 1)                  # ThrottlingException, HTTP 400
    fake.unavailable("GetProducts", 1)               # then a 503
    df = run(fake)
    assert on_demand(df) == expected_on_demand() and spot(df) == expected_spot()
    failed = [r for r in fake.requests if r.status != 200]
    assert [(r.action, r.status) for r in failed] == [
        ("DescribeInstanceTypes", 400), ("DescribeSpotPriceHistory", 400), ("DescribeSpotPriceHistory", 400),
        ("GetProducts", 400), ("GetProducts", 503)]
    assert len(backoffs) == 5  # each retry waited botocore's backoff


@pytest.mark.parametrize(("action", "call", "where"), [
    ("DescribeSpotPriceHistory", "ec2.describe_spot_price_history", "region us-east-1"),
    ("DescribeInstanceTypes", "ec2.describe_instance_types", "region us-east-1"),
    ("GetProducts", "pricing.get_products", "us-east-1, instanceType p3.2xlarge"),
])
def test_a_page_failing_after_retries_raises_offer_error(fake: AWSPricesFake, action: str, call: str,
                                                         where: str) -> None:
    fake.page_size = 1
    fake.fail_on_page(action, 2)
    with pytest.raises(offers.OfferError) as err:
        run(fake)
    msg = str(err.value)
    assert f"aws {call} ({where}) failed on page 2 after 3 attempt(s)" in msg
    assert "InternalError" in msg
    assert [r.status for r in fake.calls(action) if r.page == 2] == [500, 500, 500]


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_instance_type_is_kept_and_flagged(fake: AWSPricesFake, caplog: pytest.LogCaptureFixture) -> None:
    fake.hide_spec("p5en.48xlarge")
    with caplog.at_level(logging.WARNING, logger="collectors.aws.prices"):
        df = run(fake, instance_types=["p5en.48xlarge"])
    p5en = df.filter(pl.col("instance_type") == "p5en.48xlarge")
    rows = {(r["market"], r["region"], r["zone"]): r["price_per_hour"] for r in p5en.iter_rows(named=True)}
    catalog = [r for r in _catalog() if r["InstanceType"] == "p5en.48xlarge"]
    assert rows == ({("on_demand", r["Region"], None): float(r["Price"]) for r in catalog}
                    | {("spot", r["Region"], r["AvailabilityZone"]): float(r["SpotPrice"])
                       for r in catalog})
    assert set(p5en["flag"]) == {"unknown instance type"}
    for col in ("accelerator_name", "accelerator_count", "accelerator_memory_gb", "vcpus", "memory_gb"):
        assert p5en[col].null_count() == p5en.height, col
    assert df.filter(pl.col("instance_type") != "p5en.48xlarge")["flag"].null_count() == df.height - p5en.height
    assert "p5en.48xlarge" in caplog.text and "unknown instance type" in caplog.text


def test_zero_and_negative_prices_are_dropped_with_a_warning(fake: AWSPricesFake,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    fake.set_on_demand("us-east-1", "p4d.24xlarge", "0.0000000000")
    fake.set_spot("us-west-2", "us-west-2a", "p5.48xlarge", "-1.5")
    with caplog.at_level(logging.WARNING, logger="collectors.aws.prices"):
        df = run(fake)
    want_od = {k: v for k, v in expected_on_demand().items() if k != ("us-east-1", "p4d.24xlarge")}
    zone_id = next(r["AvailabilityZone"] for r in _catalog()
                   if r["Region"] == "us-west-2" and az_name("us-west-2", r["AvailabilityZone"]) == "us-west-2a")
    want_spot = {k: v for k, v in expected_spot().items() if k != ("us-west-2", zone_id, "p5.48xlarge")}
    assert on_demand(df) == want_od and spot(df) == want_spot
    sku = sku_for("us-east-1", "p4d.24xlarge")
    assert f"aws us-east-1 p4d.24xlarge (sku {sku}) on_demand: price 0.0000000000 is zero or negative" in caplog.text
    assert f"aws us-west-2 {zone_id} p5.48xlarge spot: price -1.5 is zero or negative" in caplog.text


def test_a_product_that_is_not_json_is_an_error() -> None:
    with pytest.raises(offers.OfferError, match=re.escape("pricing.get_products: a PriceList item is not a product")):
        prices.parse_product("{not json")


# -- specs from moto, and the client config --------------------------------------------------------
def test_specs_from_moto_describe_instance_types(s3_server: str) -> None:
    """moto serves DescribeInstanceTypes with GpuInfo and NeuronInfo. Its data lacks the plain p3 types
    (moto 5.2.5) and its spot prices are fixed, so the collector tests serve EC2 from the fake."""
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=s3_server, config=prices.client_config(3))
    specs = prices.instance_specs(ec2, "us-east-1", ("p4d", "p4de", "p5", "g5", "inf2", "trn1"))
    got = {t: (s.accelerator_name, s.accelerator_count, s.accelerator_memory_gb, s.flag) for t, s in specs.items()}
    assert got["p4d.24xlarge"] == ("A100-40GB", 8.0, 40.0, None)
    assert got["p4de.24xlarge"] == ("A100-80GB", 8.0, 80.0, None)
    assert got["p5.48xlarge"] == ("H100", 8.0, 80.0, None)
    assert got["g5.48xlarge"] == ("A10G", 8.0, 24.0, None)
    assert got["inf2.48xlarge"] == ("Inferentia2", 12.0, 32.0, None)
    assert got["trn1.32xlarge"] == ("Trainium", 16.0, 32.0, None)
    assert (specs["p5.48xlarge"].vcpus, specs["p5.48xlarge"].memory_gb) == (192.0, 2048.0)
    assert {t.split(".")[0] for t in specs} == {"p4d", "p4de", "p5", "g5", "inf2", "trn1"}


def test_unknown_accelerator_name_is_flagged_not_guessed() -> None:
    spec = prices.parse_instance_type({"InstanceType": "dl1.24xlarge", "VCpuInfo": {"DefaultVCpus": 96},
                                       "MemoryInfo": {"SizeInMiB": 786432},
                                       "GpuInfo": {"Gpus": [{"Name": "Gaudi HL-205", "Manufacturer": "Habana",
                                                             "Count": 8, "MemoryInfo": {"SizeInMiB": 32768}}]}})
    assert (spec.accelerator_name, spec.accelerator_count, spec.accelerator_memory_gb) == ("Gaudi HL-205", 8.0, 32.0)
    assert (spec.vcpus, spec.memory_gb) == (96.0, 768.0)
    assert spec.flag == "unknown accelerator 'Gaudi HL-205'"


def test_client_config_uses_botocore_standard_retries() -> None:
    cfg = prices.client_config(5)
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 5}
    pricing = prices.make_client(session=boto3.session.Session(), config=cfg).pricing
    assert pricing.meta.region_name == "us-east-1"
    assert pricing.meta.config.retries["mode"] == "standard"


# -- SageMaker -------------------------------------------------------------------------------------
def test_sagemaker_training_and_hosting_prices_are_the_price_list_s(fake: AWSPricesFake) -> None:
    fake.set_sagemaker("us-east-1", "ml.p4d.24xlarge", "Hosting", "38.5")
    df = run(fake)
    served = {k: float(v) for k, v in fake.sagemaker_prices().items()
              if k[2] in ("Training", "Hosting") and k[1] != "ml.m5.xlarge"
              and k[1].removeprefix("ml.").split(".")[0] in prices.DEFAULT_FAMILIES}
    sm = df.filter(pl.col("service").is_in(["sagemaker", "sagemaker-hosting"]) & (pl.col("market") == "on_demand"))
    got = {(r["region"], r["instance_type"], "Training" if r["service"] == "sagemaker" else "Hosting"):
           r["price_per_hour"] for r in sm.iter_rows(named=True)}
    assert got == served and got[("us-east-1", "ml.p4d.24xlarge", "Hosting")] == 38.5
    assert got[("us-east-1", "ml.p4d.24xlarge", "Training")] != 38.5
    assert set(sm["source"]) == {prices.SAGEMAKER_SOURCE}
    # the ml instance has its EC2 twin's hardware; CPU and notebook products are left out
    p4d = sm.filter(pl.col("instance_type") == "ml.p4d.24xlarge").row(0, named=True)
    assert (p4d["accelerator_name"], p4d["accelerator_count"]) == ("A100-40GB", 8.0)
    assert not sm.filter(pl.col("instance_type") == "ml.m5.xlarge").height
    asked = [r.params for r in fake.calls("GetProducts") if r.params.get("ServiceCode") == "AmazonSageMaker"]
    assert {(f["Field"], f["Value"]) for p in asked for f in p["Filters"]} >= {
        ("productFamily", "ML Instance"), ("component", "Training"), ("component", "Hosting")}


def test_sagemaker_spot_training_is_derived_from_the_ec2_spot_ratio(fake: AWSPricesFake) -> None:
    df = run(fake)
    ec2 = df.filter(pl.col("service") == "compute")
    sm = df.filter(pl.col("service") == "sagemaker")
    derived = sm.filter(pl.col("market") == "spot")
    assert derived.height and set(derived["source"]) == {"derived:ec2-spot-ratio"}
    assert df.filter((pl.col("service") == "sagemaker-hosting") & (pl.col("market") == "spot")).is_empty()
    for r in derived.iter_rows(named=True):
        ec2_type = r["instance_type"].removeprefix("ml.")
        mine = ec2.filter((pl.col("region") == r["region"]) & (pl.col("instance_type") == ec2_type))
        ratio = (mine.filter(pl.col("market") == "spot")["price_per_hour"].mean()
                 / mine.filter(pl.col("market") == "on_demand")["price_per_hour"].item())
        train = sm.filter((pl.col("region") == r["region"]) & (pl.col("instance_type") == r["instance_type"])
                          & (pl.col("market") == "on_demand"))["price_per_hour"].item()
        assert r["price_per_hour"] == pytest.approx(train * ratio) and r["zone"] is None
        assert r["interruption_rate"] == offers.interruption_rate("aws", ec2_type, "spot")
