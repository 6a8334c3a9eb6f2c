"""SkyPilot-layout price catalogs: the shipped snapshot (real public prices) read exactly."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from collectors.catalog import SNAPSHOT_DATE, TPU_PLACEHOLDER_PRICE, load_catalog, read_catalog, snapshot_dir
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
    src = (az.filter((pl.col("InstanceType") == "Standard_ND96asr_v4") & (pl.col("Region") == "eastus"))
           .row(0, named=True))
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
    with pytest.raises(offers.OfferError, match=re.escape("no <cloud>/vms.csv catalog")):
        read_catalog(tmp_path)


def test_azure_sizes_are_named_as_the_retail_prices_collector_names_them(catalog: pl.DataFrame) -> None:
    from collectors.azure.prices import VM_SHAPES

    az = catalog.filter(pl.col("provider") == "azure").select("instance_type", "accelerator_name").unique()
    both = az.filter(pl.col("instance_type").is_in(list(VM_SHAPES)))
    assert both.height > 20
    for size, name in both.iter_rows():
        assert name == VM_SHAPES[size].accelerator, size
    assert "H100-NVL" in both["accelerator_name"].to_list()


# -- prices read right (issue 12: items 1, 2, 5, 7 and bad input) ----------------------------------------
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "catalog"
needs_shared = pytest.mark.skipif(not (SHARED / "gcp" / "vms.csv").exists(), reason="../shared/data/catalog absent")


def _gpu_rows(g: pl.DataFrame) -> dict[tuple[str, str, int], tuple[float | None, float | None]]:
    """(GPU, zone, count) → the row's on-demand and spot price for those ``count`` GPUs together."""
    out = {}
    for r in g.filter(pl.col("InstanceType").is_null()).iter_rows(named=True):
        f = [float(v) if v not in (None, "") else None for v in (r["Price"], r["SpotPrice"])]
        out.setdefault((r["AcceleratorName"], r["AvailabilityZone"], int(float(r["AcceleratorCount"]))), (f[0], f[1]))
    return out


@pytest.mark.parametrize("directory", [SNAP, pytest.param(SHARED, marks=needs_shared)], ids=["snapshot", "shared"])
def test_every_gcp_gpu_machine_is_its_vm_plus_the_row_for_its_gpu_count(directory: Path) -> None:
    """A GPU row prices AcceleratorCount GPUs together: B200/H200/H100-MEGA have only an 8-GPU row,
    which must be added once, not eight times (it was: ``prices show --accelerator B200`` said 8×)."""
    from collectors.catalog import GCP_GPU_HOSTS

    g = pl.read_csv(directory / "gcp" / "vms.csv", infer_schema=False)
    gpu = _gpu_rows(g)
    got = read_catalog(directory, observed_at=SNAPSHOT_DATE, providers=["gcp"]).filter(pl.col("flag").is_null())
    by_key = {(r["instance_type"], r["zone"], r["market"]): r["price_per_hour"] for r in got.iter_rows(named=True)}
    checked = set()
    for vm in g.filter(pl.col("InstanceType").is_in(list(GCP_GPU_HOSTS))).iter_rows(named=True):
        name, n = GCP_GPU_HOSTS[vm["InstanceType"]]
        row = gpu.get((name, vm["AvailabilityZone"], n))
        if row is None:
            continue
        for market, vm_price, gpu_price in (("on_demand", vm["Price"], row[0]), ("spot", vm["SpotPrice"], row[1])):
            if vm_price in (None, "") or gpu_price is None:
                continue
            assert by_key[(vm["InstanceType"], vm["AvailabilityZone"], market)] == pytest.approx(
                float(vm_price) + gpu_price, rel=1e-9), (vm["InstanceType"], vm["AvailabilityZone"], market)
            checked.add(vm["InstanceType"])
    assert {"a4-highgpu-8g", "a3-ultragpu-8g", "a3-megagpu-8g", "a2-highgpu-8g"} <= checked
    b200 = got.filter((pl.col("instance_type") == "a4-highgpu-8g") & (pl.col("zone") == "us-central1-b")
                      & (pl.col("market") == "on_demand"))
    assert b200["price_per_hour"].to_list() == [pytest.approx(gpu[("B200", "us-central1-b", 8)][0])]  # VM row is 0.0


@needs_shared
def test_gcp_gpu_machines_unknown_before_are_priced_with_their_gpus() -> None:
    df = read_catalog(SHARED, observed_at=SNAPSHOT_DATE, providers=["gcp"])
    g = pl.read_csv(SHARED / "gcp" / "vms.csv", infer_schema=False)
    gpu = _gpu_rows(g)
    for host, name, canon in (("a3-edgegpu-8g", "H100", "H100"), ("a3-edgegpu-8g-nolssd", "H100", "H100"),
                              ("a3-ultragpu-8g-nolssd", "H200", "H200")):
        vm = g.filter(pl.col("InstanceType") == host).row(0, named=True)
        row = df.filter((pl.col("instance_type") == host) & (pl.col("zone") == vm["AvailabilityZone"])
                        & (pl.col("market") == "on_demand")).row(0, named=True)
        assert (row["accelerator_name"], row["accelerator_count"], row["flag"]) == (canon, 8.0, None)
        assert row["price_per_hour"] == pytest.approx(float(vm["Price"]) + gpu[(name, vm["AvailabilityZone"], 8)][0])


def _catalog_from(tmp_path: Path, provider: str, lines: list[str], source: Path = SNAP) -> Path:
    """A one-cloud catalog made of the header and the given lines of a real catalog file."""
    text = (source / provider / "vms.csv").read_text().splitlines()
    (tmp_path / provider).mkdir(parents=True, exist_ok=True)
    (tmp_path / provider / "vms.csv").write_text("\n".join([text[0], *lines]) + "\n")
    return tmp_path


def _lines(provider: str, *needles: str, source: Path = SNAP) -> list[str]:
    return [ln for ln in (source / provider / "vms.csv").read_text().splitlines() if all(n in ln for n in needles)]


def test_a_gpu_machine_of_a_family_we_do_not_know_is_flagged_not_priced_bare(tmp_path: Path) -> None:
    real = _lines("gcp", "a3-megagpu-8g,", "us-central1-a")[0]
    d = _catalog_from(tmp_path, "gcp", [real.replace("a3-megagpu-8g", "a3-newgpu-8g")])
    row = load_catalog(d, observed_at=SNAPSHOT_DATE).offers.row(0, named=True)
    assert row["flag"] == offers.FLAG_UNKNOWN_INSTANCE_TYPE and row["accelerator_name"] is None


def test_azure_shares_of_a_gpu_keep_their_fraction_and_memory(catalog: pl.DataFrame) -> None:
    """NV4as_v4 is 1/8 of an MI25 (2 GB), not the whole GPU the catalog's row says; NVads A10 v5 are
    exact sixths, thirds and halves of an A10, not the catalog's rounded 0.167 / 0.333."""
    from collectors.azure.prices import VM_SHAPES

    src = raw("azure").filter(pl.col("InstanceType") == "Standard_NV4as_v4")
    assert src["AcceleratorCount"].unique().to_list() == ["1"]  # what the catalog says
    az = catalog.filter(pl.col("provider") == "azure")
    for size in ("Standard_NV4as_v4", "Standard_NV8as_v4", "Standard_NV16as_v4", "Standard_NV6ads_A10_v5",
                 "Standard_NV12ads_A10_v5", "Standard_NV18ads_A10_v5"):
        rows = az.filter(pl.col("instance_type") == size)
        assert rows.height > 0, size
        shape = VM_SHAPES[size]
        assert rows["accelerator_count"].unique().to_list() == [shape.accelerator_count]
        assert rows["accelerator_memory_gb"].unique().to_list() == [shape.accelerator_memory_gb]
        assert rows["flag"].null_count() == rows.height
    nv4 = az.filter(pl.col("instance_type") == "Standard_NV4as_v4").row(0, named=True)
    assert nv4["accelerator_count"] * nv4["accelerator_memory_gb"] == 2.0


def test_a_share_of_a_gpu_without_a_size_entry_is_flagged(tmp_path: Path) -> None:
    real = _lines("azure", "Standard_NV12ads_A10_v5,", ",eastus,")[0]
    d = _catalog_from(tmp_path, "azure", [real.replace("Standard_NV12ads_A10_v5", "Standard_NV9ads_A10_v9")])
    read = load_catalog(d, observed_at=SNAPSHOT_DATE)
    assert set(read.offers["flag"]) == {offers.FLAG_FRACTION}
    assert read.offers["accelerator_count"].to_list()[0] == pytest.approx(0.333)
    assert any(f"{d / 'azure' / 'vms.csv'}:2: {offers.FLAG_FRACTION}" in p for p in read.problems)


def test_bad_rows_are_named_by_file_and_line_and_never_guessed(tmp_path: Path) -> None:
    ok = _lines("aws", "p4d.24xlarge", "use1-az1")[0]
    zero = _lines("aws", "p4d.24xlarge", "use1-az2")[0].replace(",14.105100,", ",0.0,")
    above = _lines("aws", "p4d.24xlarge", "euc1-az2")[0]  # spot 27.433000 > 27.43298 on demand, as shipped
    placeholder = _lines("aws", "p3.8xlarge", "apne2-az1")[0]  # spot 1.6936 = 16.936 / 10, as shipped
    d = _catalog_from(tmp_path, "aws", [ok, zero, above, placeholder])
    read = load_catalog(d, observed_at=SNAPSHOT_DATE)
    path = d / "aws" / "vms.csv"
    assert any(p.startswith(f"{path}:3: spot price of 0") and "dropped" in p for p in read.problems), read.problems
    flags = dict(read.offers.filter(pl.col("market") == "spot").select("zone", "flag").iter_rows())
    assert flags["use1-az1"] is None
    assert flags["euc1-az2"] == offers.FLAG_SPOT_ABOVE_ON_DEMAND
    assert flags[placeholder.split(",")[-2]] == offers.FLAG_SPOT_PLACEHOLDER
    assert (read.offers["price_per_hour"] > 0).all()


def test_a_catalog_takes_its_own_date_never_the_files_mtime(tmp_path: Path) -> None:
    from collectors.catalog import UNDATED

    d = _catalog_from(tmp_path, "gcp", _lines("gcp", "a2-highgpu-8g,", "us-central1-a")
                      + _lines("gcp", ",,,A100,8,", "us-central1-a"))
    _catalog_from(tmp_path, "aws", _lines("aws", "p4d.24xlarge", "use1-az1"))
    (tmp_path / "SOURCES.md").write_text("| path | commit | date |\n| --- | --- | --- |\n"
                                         "| `gcp/vms.csv` | 69b86f0 | 2026-04-02 10:55 -0500 |\n"
                                         "| `aws/vms.csv` | e385a0d | not available |\n")
    read = load_catalog(d)
    assert read.dates["gcp"][0] == datetime(2026, 4, 2, 15, 55, tzinfo=UTC)
    assert read.offers.filter(pl.col("provider") == "gcp")["observed_at"].unique().to_list() == [read.dates["gcp"][0]]
    aws = read.offers.filter(pl.col("provider") == "aws")
    assert read.dates["aws"] == (UNDATED, "undated")
    assert set(aws["flag"]) == {"undated catalog"} and set(aws["observed_at"]) == {UNDATED}
    assert any("aws/vms.csv: the catalog gives no date" in p for p in read.problems)
    given = load_catalog(d, observed_at=SNAPSHOT_DATE)
    assert given.offers["flag"].null_count() == given.offers.height
    assert load_catalog(SNAP).dates["gcp"] == (SNAPSHOT_DATE, "the shipped snapshot's date")


def test_the_test_catalogs_date_themselves_from_their_notes() -> None:
    read = load_catalog(Path(__file__).resolve().parents[1] / "data" / "catalog", providers=["gcp", "azure"])
    day = SNAPSHOT_DATE.date()
    assert {p: d.date() for p, (d, _) in read.dates.items()} == {"gcp": day, "azure": day}


def test_gcp_n1_gpus_ride_every_host_that_may_carry_them(catalog: pl.DataFrame) -> None:
    """A T4 on n1-standard-8 only (it was) loses to dearer offers elsewhere; every N1 size from
    SkyPilot's default host for the GPU count (4 vCPUs and 16 GB for one T4) up to GCP's attach limits
    is an offer, priced as its VM row + the GPU row for that count."""
    from collectors.catalog import GCP_N1_DEFAULT_VCPUS, GCP_N1_LIMITS

    g = raw("gcp")
    zone = "us-central1-a"
    t4 = catalog.filter((pl.col("zone") == zone) & (pl.col("market") == "on_demand")
                        & pl.col("instance_type").str.ends_with("+T4x1"))
    assert {"n1-highmem-4+T4x1", "n1-standard-8+T4x1", "n1-highmem-8+T4x1"} <= set(t4["instance_type"])
    assert "n1-standard-4+T4x1" not in set(t4["instance_type"])  # 15 GB < SkyPilot's 16 GB for one T4
    cheapest = t4.sort("price_per_hour").row(0, named=True)
    vm = g.filter((pl.col("InstanceType") == "n1-highmem-4") & (pl.col("AvailabilityZone") == zone)).row(0, named=True)
    gpu = _gpu_rows(g)[("T4", zone, 1)]
    assert cheapest["instance_type"] == "n1-highmem-4+T4x1"
    assert cheapest["price_per_hour"] == pytest.approx(float(vm["Price"]) + gpu[0])
    for r in catalog.filter(pl.col("instance_type").str.starts_with("n1-") & pl.col("instance_type").str.contains(
            r"\+")).iter_rows(named=True):
        n = int(r["accelerator_count"])
        name = r["instance_type"].split("+")[1].split("x")[0]
        lo, (hi_v, hi_m) = GCP_N1_DEFAULT_VCPUS[name][n], GCP_N1_LIMITS[name][n]
        assert lo <= r["vcpus"] <= hi_v and 4 * lo <= r["memory_gb"] <= hi_m, r["instance_type"]
