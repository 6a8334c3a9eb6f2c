"""SkyPilot-layout price catalogs: the shipped snapshot (real public prices) read exactly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from collectors.catalog import SNAPSHOT_DATE, TPU_PLACEHOLDER_PRICE, read_catalog, snapshot_dir
from finops import offers

SNAP = snapshot_dir()


@pytest.fixture(scope="module")
def catalog() -> pl.DataFrame:
    return read_catalog(SNAP, observed_at=SNAPSHOT_DATE)


def raw(provider: str) -> pl.DataFrame:
    return pl.read_csv(SNAP / provider / "vms.csv", infer_schema=False)


def price(df: pl.DataFrame, **where: str) -> list[float]:
    return df.filter(*(pl.col(k) == v for k, v in where.items()))["price_per_hour"].to_list()


def test_aws_on_demand_is_regional_and_spot_per_zone(catalog: pl.DataFrame) -> None:
    src = raw("aws").filter((pl.col("InstanceType") == "p4d.24xlarge") & (pl.col("Region") == "us-east-1"))
    assert price(catalog, provider="aws", instance_type="p4d.24xlarge", region="us-east-1", market="on_demand") == [
        float(src["Price"][0])]
    spot = catalog.filter((pl.col("instance_type") == "p4d.24xlarge") & (pl.col("region") == "us-east-1")
                          & (pl.col("market") == "spot")).sort("zone")
    expected = src.filter(pl.col("SpotPrice").is_not_null()).sort("AvailabilityZone")
    assert spot["zone"].to_list() == expected["AvailabilityZone"].to_list()
    assert spot["price_per_hour"].to_list() == [float(v) for v in expected["SpotPrice"]]
    p4d = catalog.filter(pl.col("instance_type") == "p4d.24xlarge").row(0, named=True)
    assert (p4d["accelerator_name"], p4d["accelerator_count"], p4d["accelerator_memory_gb"]) == ("A100-40GB", 8, 40)


def test_gcp_gpu_machines_are_the_vm_plus_its_gpus(catalog: pl.DataFrame) -> None:
    g = raw("gcp")
    zone = "us-central1-a"
    vm = g.filter((pl.col("InstanceType") == "a2-highgpu-8g") & (pl.col("AvailabilityZone") == zone)).row(0, named=True)
    gpu = g.filter(pl.col("InstanceType").is_null() & (pl.col("AcceleratorName") == "A100")
                   & (pl.col("AvailabilityZone") == zone)).row(0, named=True)
    got = catalog.filter((pl.col("instance_type") == "a2-highgpu-8g") & (pl.col("zone") == zone))
    assert price(got, market="on_demand") == pytest.approx([float(vm["Price"]) + 8 * float(gpu["Price"])])
    assert price(got, market="spot") == pytest.approx([float(vm["SpotPrice"]) + 8 * float(gpu["SpotPrice"])])
    assert got["accelerator_name"].unique().to_list() == ["A100-40GB"]
    t4 = catalog.filter(pl.col("instance_type") == "n1-standard-8+T4x1")
    assert t4.height > 0 and t4["accelerator_count"].unique().to_list() == [1.0]


def test_gcp_tpu_slices_count_chips_and_drop_placeholders(catalog: pl.DataFrame) -> None:
    tpu = catalog.filter(pl.col("instance_type") == "tpu-v5litepod-8")
    assert tpu["accelerator_name"].unique().to_list() == ["TPU-v5e"]
    assert tpu["accelerator_count"].unique().to_list() == [8.0]
    assert catalog.filter(pl.col("price_per_hour") == TPU_PLACEHOLDER_PRICE).height == 0
    assert raw("gcp").filter(pl.col("Price") == "700.0").height > 0  # they were in the file


def test_azure_rows_and_no_offer_without_a_price(catalog: pl.DataFrame) -> None:
    az = raw("azure")
    assert catalog.filter((pl.col("provider") == "azure") & (pl.col("market") == "on_demand")).height == \
        az.filter(pl.col("Price").is_not_null()).height
    assert catalog.filter((pl.col("provider") == "azure") & (pl.col("market") == "spot")).height == \
        az.filter(pl.col("SpotPrice").is_not_null()).height
    nd = catalog.filter((pl.col("instance_type") == "Standard_ND96asr_v4") & (pl.col("region") == "eastus")
                        & (pl.col("market") == "on_demand")).row(0, named=True)
    src = az.filter((pl.col("InstanceType") == "Standard_ND96asr_v4") & (pl.col("Region") == "eastus")).row(0, named=True)
    assert nd["price_per_hour"] == float(src["Price"]) and nd["accelerator_name"] == "A100-40GB"


def test_contract_holds_on_every_row(catalog: pl.DataFrame) -> None:
    assert catalog.schema == offers.SCHEMA
    offers.check(catalog)
    assert catalog.filter(pl.struct(list(offers.KEY)).is_duplicated()).height == 0
    spot = catalog.filter(pl.col("market") == "spot")
    assert (spot["interruption_rate"] > 0).all()
    assert (catalog.filter(pl.col("market") == "on_demand")["interruption_rate"] == 0).all()
    assert set(catalog["accelerator_name"].drop_nulls()) <= set(offers.ACCELERATORS)


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(offers.OfferError, match="no <cloud>/vms.csv catalog"):
        read_catalog(tmp_path)


def test_azure_sizes_are_named_as_the_retail_prices_collector_names_them(catalog: pl.DataFrame) -> None:
    from collectors.azure.prices import VM_SHAPES

    az = catalog.filter(pl.col("provider") == "azure").select("instance_type", "accelerator_name").unique()
    both = az.filter(pl.col("instance_type").is_in(list(VM_SHAPES)))
    assert both.height > 20
    for size, name in both.iter_rows():
        assert name == VM_SHAPES[size].accelerator, size
    assert "H100-NVL" in both["accelerator_name"].to_list()
