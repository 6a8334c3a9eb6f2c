"""GCP prices: a real CloudCatalogClient (REST, anonymous) against the local Cloud Billing Catalog fake,
whose SKUs carry prices derived from SkyPilot's GCP catalog (tests/data/catalog/gcp/vms.csv)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from google.api_core import retry as api_retry

from collectors.catalog import GCP_GPU_HOSTS
from collectors.gcp import prices
from finops import offers
from tests.fakes import gcp_catalog as fk
from tests.fakes.gcp_catalog import FakeCloudCatalog, sku_id

CATALOG = Path(__file__).parents[2] / "data" / "catalog" / "gcp" / "vms.csv"
WHEN = datetime(2026, 4, 2, 12, tzinfo=UTC)
REGIONS = ["us-central1", "europe-west4", "us-central2"]
FAST = api_retry.Retry(predicate=prices.is_retryable, initial=0.005, maximum=0.02, multiplier=2.0, timeout=2.0)
GIVE_UP = api_retry.Retry(predicate=prices.is_retryable, initial=0.005, maximum=0.02, multiplier=2.0, timeout=0.3)
IOWA = "running in Iowa"


@pytest.fixture
def fake() -> Iterator[FakeCloudCatalog]:
    with FakeCloudCatalog() as f:
        yield f


@pytest.fixture(scope="module")
def catalog() -> pl.DataFrame:
    return pl.read_csv(CATALOG, infer_schema=False)


def collect(fake: FakeCloudCatalog, regions: list[str] | None = None, **kw: object) -> pl.DataFrame:
    return prices.collect(fake.client(), REGIONS if regions is None else regions, observed_at=WHEN,
                          retry=kw.pop("retry", FAST), **kw)  # type: ignore[arg-type]


def offer(df: pl.DataFrame, region: str, instance_type: str, market: str, service: str = offers.COMPUTE) -> dict:
    rows = df.filter((pl.col("region") == region) & (pl.col("instance_type") == instance_type)
                     & (pl.col("market") == market) & (pl.col("service") == service))
    assert rows.height == 1, (region, instance_type, market, rows)
    return rows.row(0, named=True)


def ids(*descriptions: str) -> str:
    return "+".join(sku_id(d) for d in descriptions)


def catalog_price(cat: pl.DataFrame, region: str, market: str, *, instance_type: str | None = None,
                  accelerator: str | None = None, count: int | None = None) -> float | None:
    """The catalog's price for a VM row (instance_type), a GPU row (accelerator, count) or a TPU row."""
    col = "Price" if market == "on_demand" else "SpotPrice"
    rows = cat.filter(pl.col("Region") == region)
    if instance_type:
        rows = rows.filter(pl.col("InstanceType") == instance_type)
    else:
        rows = rows.filter(pl.col("InstanceType").is_null() & (pl.col("AcceleratorName") == accelerator))
        if count is not None:
            rows = rows.filter(pl.col("AcceleratorCount") == str(count))
    values = {float(v) for v in rows[col].drop_nulls()}
    assert len(values) <= 1, (region, instance_type, accelerator, count, values)
    return values.pop() if values else None


# -- the fake's prices are the catalog's ---------------------------------------------------------------
def _rounds_to(value: Decimal, row: str) -> bool:
    return abs(round(float(value), 5) - float(row)) < 1e-9


def test_fake_unit_prices_reproduce_every_catalog_row(catalog: pl.DataFrame) -> None:
    checked = 0
    for r in catalog.iter_rows(named=True):
        for col, i in (("Price", 0), ("SpotPrice", 1)):
            if r[col] is None:
                continue
            region, name = r["Region"], r["AcceleratorName"]
            if r["InstanceType"]:
                core_ram = fk.CORE_RAM[(region, r["InstanceType"].split("-")[0])]
                core, ram = Decimal(core_ram[2 * i]), Decimal(core_ram[2 * i + 1])
                value = Decimal(r["vCPUs"]) * core + Decimal(r["MemoryGiB"]) * ram
            elif name.startswith("tpu-v4"):
                value = Decimal(fk.TPU_V4[1 + i]) / 4 * offers.tpu_chips(name)
            elif name.startswith("tpu-"):
                version = {"tpu-v5litepod": "v5e"}.get(name.rsplit("-", 1)[0], name.split("-")[1])
                value = Decimal(fk.TPUS[(region, version)][i]) * offers.tpu_chips(name)
            else:
                value = Decimal(fk.GPUS[(region, name)][i]) * int(r["AcceleratorCount"])
            assert _rounds_to(value, r[col]), (r, col, value)
            checked += 1
    assert checked == 2 * catalog.height


def test_machine_table_matches_the_catalog_shapes(catalog: pl.DataFrame) -> None:
    for name, m in prices.MACHINES.items():
        host = name.split("+")[0]
        rows = catalog.filter(pl.col("InstanceType") == host)
        assert rows.height, host
        assert {float(v) for v in rows["vCPUs"]} == {m.vcpus}, name
        assert {float(v) for v in rows["MemoryGiB"]} == {m.memory_gib}, name
        if host in GCP_GPU_HOSTS:  # the GPU count and model collectors.catalog composes with
            gpu, count = GCP_GPU_HOSTS[host]
            assert (offers.canonical_accelerator(gpu), count) == (prices.gpu_canonical(m.gpu or ""), m.gpus), name


# -- parsing and composing -----------------------------------------------------------------------------
def test_parsed_prices_are_exact(fake: FakeCloudCatalog) -> None:
    df = collect(fake)
    a2 = offer(df, "us-central1", "a2-highgpu-1g", "on_demand")
    assert a2["price_per_hour"] == float(12 * Decimal("0.031611") + 85 * Decimal("0.004237") + Decimal("2.933908"))
    assert a2["sku"] == ids(f"A2 Instance Core {IOWA}", f"A2 Instance Ram {IOWA}", f"Nvidia Tesla A100 GPU {IOWA}")
    assert (a2["accelerator_name"], a2["accelerator_count"], a2["accelerator_memory_gb"]) == ("A100-40GB", 1, 40)
    assert (a2["vcpus"], a2["memory_gb"], a2["zone"], a2["currency"]) == (12, 85, None, "USD")
    assert (a2["source"], a2["observed_at"], a2["interruption_rate"], a2["flag"]) == (prices.SOURCE, WHEN, 0, None)

    t4 = offer(df, "us-central1", "n1-standard-8+T4x2", "on_demand")
    assert t4["price_per_hour"] == float(8 * Decimal("0.031611") + 30 * Decimal("0.004237") + 2 * Decimal("0.35"))
    assert t4["sku"] == ids(f"N1 Predefined Instance Core {IOWA}", f"N1 Predefined Instance Ram {IOWA}",
                            f"Nvidia Tesla T4 GPU {IOWA}")
    g2 = offer(df, "europe-west4", "g2-standard-48", "on_demand")
    assert g2["price_per_hour"] == float(48 * Decimal("0.02511063") + 192 * Decimal("0.0033652")
                                         + 4 * Decimal("0.588042"))
    assert (g2["accelerator_name"], g2["accelerator_count"]) == ("L4", 4)

    v5e = offer(df, "us-central1", "tpu-v5litepod-8", "on_demand")
    assert (v5e["price_per_hour"], v5e["accelerator_name"], v5e["accelerator_count"]) == (9.6, "TPU-v5e", 8)
    assert (v5e["sku"], v5e["vcpus"], v5e["accelerator_memory_gb"]) == (sku_id(f"TpuV5e {IOWA}"), None, 16)
    v5p = offer(df, "us-central1", "tpu-v5p-8", "on_demand")  # 8 TensorCores = 4 chips
    assert (v5p["price_per_hour"], v5p["accelerator_count"]) == (float(4 * Decimal("4.2")), 4)
    v4 = offer(df, "us-central2", "tpu-v4-32", "on_demand")  # 16 chips; the SKU prices 4 chips an hour
    assert (v4["price_per_hour"], v4["accelerator_count"]) == (float(Decimal("12.88") / 4 * 16), 16)
    assert v4["sku"] == sku_id("Tpu-v4 Pod Accelerator USA")
    offers.check(df)
    assert df.schema == offers.SCHEMA
    assert df["provider"].unique().to_list() == ["gcp"] and df["zone"].null_count() == df.height


def test_a2_highgpu_8g_is_the_vm_plus_eight_a100_skus(fake: FakeCloudCatalog, catalog: pl.DataFrame) -> None:
    df = collect(fake, ["us-central1"])
    got = offer(df, "us-central1", "a2-highgpu-8g", "on_demand")["price_per_hour"]
    vm = 96 * Decimal("0.031611") + 680 * Decimal("0.004237")  # A2 Instance Core + Ram
    assert got == float(vm + 8 * Decimal("2.933908"))  # + 8 × Nvidia Tesla A100 GPU
    vm_row = catalog_price(catalog, "us-central1", "on_demand", instance_type="a2-highgpu-8g")
    a100_row = catalog_price(catalog, "us-central1", "on_demand", accelerator="A100", count=1)
    assert (vm_row, a100_row) == (5.91582, 2.93391)
    assert got == pytest.approx(vm_row + 8 * a100_row, abs=1e-4)  # the 1-GPU row is rounded to 5 places
    a100x8 = catalog_price(catalog, "us-central1", "on_demand", accelerator="A100", count=8)
    assert abs(got - (vm_row + a100x8)) <= 1e-5 + 1e-12


def test_spot_is_composed_from_preemptible_skus(fake: FakeCloudCatalog, catalog: pl.DataFrame) -> None:
    df = collect(fake)
    spot = offer(df, "us-central1", "a2-highgpu-8g", "spot")
    assert spot["price_per_hour"] == float(96 * Decimal("0.01581") + 680 * Decimal("0.002118") + 8 * Decimal("1.4341"))
    assert spot["sku"] == ids(f"Spot Preemptible A2 Instance Core {IOWA}", f"Spot Preemptible A2 Instance Ram {IOWA}",
                              f"Nvidia Tesla A100 GPU attached to Spot Preemptible VMs {IOWA}")
    expected = (catalog_price(catalog, "us-central1", "spot", instance_type="a2-highgpu-8g")
                + catalog_price(catalog, "us-central1", "spot", accelerator="A100", count=8))
    assert abs(spot["price_per_hour"] - expected) <= 1e-5 + 1e-12
    assert spot["interruption_rate"] == offers.interruption_rate("gcp", "a2-highgpu-8g", "spot") > 0
    # The Cloud TPU service marks its preemptible SKU OnDemand: the description decides.
    v4 = offer(df, "us-central2", "tpu-v4-8", "spot")
    assert (v4["price_per_hour"], v4["sku"]) == (3.686, sku_id("Tpu-v4 Pod Preemptible Accelerator USA"))
    assert offer(df, "us-central2", "tpu-v4-8", "on_demand")["price_per_hour"] == 12.88


@pytest.mark.parametrize("region", REGIONS)
def test_every_offer_matches_the_catalog(fake: FakeCloudCatalog, catalog: pl.DataFrame, region: str) -> None:
    df = collect(fake, [region]).filter(pl.col("service") == offers.COMPUTE)  # Vertex AI: test_vertex_prices.py
    expected: dict[tuple[str, str], float] = {}
    for market in offers.MARKETS:
        for name, m in prices.MACHINES.items():
            host = name.split("+")[0]
            gpu = {"A100 80GB": "A100-80GB", "H100 80GB": "H100"}.get(m.gpu or "", m.gpu)
            vm = catalog_price(catalog, region, market, instance_type=host)
            gpus = catalog_price(catalog, region, market, accelerator=gpu, count=m.gpus)
            if vm is not None and gpus is not None:
                expected[(name, market)] = vm + gpus
        for version in prices.TPU_VERSIONS.values():
            for name, _ in version.slices():
                price = catalog_price(catalog, region, market, accelerator=name)
                if price is not None:
                    expected[(name, market)] = price
    got = {(r["instance_type"], r["market"]): r["price_per_hour"] for r in df.iter_rows(named=True)}
    assert got.keys() == expected.keys()
    for key, price in expected.items():
        # GPU machines add two catalog values rounded to 5 places; TPU slices are one.
        assert abs(got[key] - price) <= 1e-5 + 1e-9, (key, got[key], price)
    assert len(got) == {"us-central2": 12}.get(region, 2 * (len(prices.MACHINES) + 22))


def test_a_clean_catalog_warns_nothing_and_ignores_the_decoys(fake: FakeCloudCatalog,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    used = {s for joined in df["sku"] for s in joined.split("+")}
    assert used.isdisjoint({d["skuId"] for d in fk.decoys()})
    assert sku_id("Tpu-v3 Accelerator USA") not in used  # known, but device/pod pricing is not collected
    assert df.filter(pl.col("flag").is_not_null()).height == 0


# -- paging and retries --------------------------------------------------------------------------------
def test_pagination_reads_every_page() -> None:
    with FakeCloudCatalog(page_size=1000) as one_page:
        whole = collect(one_page)
        assert len(one_page.calls("/skus")) == len(prices.SERVICES)
    seen: list[tuple[str, int]] = []
    with FakeCloudCatalog(page_size=7) as fake:
        def note(message: str) -> None:  # "<service>: <n> SKUs"
            service, count = message.rsplit(": ", 1)
            seen.append((service, int(count.removesuffix(" SKUs"))))

        paged = collect(fake, progress=note)
        calls = fake.calls(f"/services/{fk.COMPUTE_ENGINE}/skus")
    n_skus = len(fk.compute_skus())
    pages = math.ceil(n_skus / 7)
    assert [c.page_token for c in calls] == [""] + [str(p) for p in range(2, pages + 1)]
    assert all(c.status == 200 and c.page_size == prices.PAGE_SIZE for c in calls)
    assert [n for s, n in seen if s == prices.COMPUTE_ENGINE] == [min(7 * p, n_skus) for p in range(1, pages + 1)]
    assert paged.equals(whole)


def test_throttling_and_unavailable_pages_are_retried(fake: FakeCloudCatalog) -> None:
    baseline = collect(fake)
    fake.fail_next(2, 429)
    fake.fail_next(1, 503)
    fake.fail_page(3, 503, times=2)  # mid-way through the pages
    before = len(fake.calls())
    again = collect(fake)
    statuses = [c.status for c in fake.calls()[before:]]
    assert statuses.count(429) == 2 and statuses.count(503) == 3
    assert again.equals(baseline)


def test_a_page_failing_after_retries_raises_and_returns_nothing(fake: FakeCloudCatalog) -> None:
    fake.fail_page(2, 503)
    failed = r"list_skus\(services/6F81-5844-456A, Compute Engine\) failed on page 2"
    with pytest.raises(offers.OfferError, match=failed):
        collect(fake, retry=GIVE_UP)
    assert len([c for c in fake.calls() if c.page_token == "2"]) > 1  # retried before giving up


def test_a_refused_call_is_not_retried(fake: FakeCloudCatalog) -> None:
    fake.fail_next(1, 403, service=fk.CLOUD_TPU)
    with pytest.raises(offers.OfferError, match=r"E000-3F24-B8AA, Cloud TPU\) failed on page 1.*Forbidden"):
        collect(fake)
    assert [c.status for c in fake.calls(fk.CLOUD_TPU)] == [403]


# -- bad input -----------------------------------------------------------------------------------------
def test_a_zero_or_negative_price_is_dropped_with_a_warning(fake: FakeCloudCatalog,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    zero = fake.replace_price(f"Nvidia Tesla T4 GPU {IOWA}", 0)
    negative = fake.replace_price(f"Spot Preemptible G2 Instance Core {IOWA}", "-0.5")
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("gcp us-central1: SKU " + zero) and "price of 0" in m for m in warnings), warnings
    assert any(m.startswith("gcp us-central1: SKU " + negative) and "price of -0.5" in m for m in warnings), warnings
    t4 = df.filter(pl.col("instance_type").str.contains(r"\+T4x"))
    assert t4.filter((pl.col("region") == "us-central1") & (pl.col("market") == "on_demand")).height == 0
    assert t4.filter((pl.col("region") == "us-central1") & (pl.col("market") == "spot")).height == 4
    assert t4.filter(pl.col("region") == "europe-west4").height == 8
    g2 = df.filter(pl.col("instance_type").str.starts_with("g2-") & (pl.col("region") == "us-central1"))
    assert g2["market"].unique().to_list() == ["on_demand"]
    assert (df["price_per_hour"] > 0).all()


def test_an_unknown_gpu_is_warned_about_not_guessed(fake: FakeCloudCatalog, caplog: pytest.LogCaptureFixture) -> None:
    baseline = collect(fake)
    k99 = fk.sku(f"Nvidia Tesla K99 GPU {IOWA}", group="GPU", price="1.5")
    elsewhere = fk.sku("Nvidia Tesla K99 GPU running in Tokyo", group="GPU", regions=["asia-northeast1"], price="1.6")
    fake.add_skus(k99, elsewhere)
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [(f"gcp us-central1: SKU {k99['skuId']} ('Nvidia Tesla K99 GPU {IOWA}') names a GPU we do "
                         "not know ('K99'); not priced")]
    assert df.equals(baseline)


def test_an_unknown_tpu_is_kept_as_a_flagged_chip_hour(fake: FakeCloudCatalog,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    tpu7x = fk.sku("TPU7x running in Americas", group="TPU", regions=["us-central1", "us-east1"], price="12")
    fake.add_skus(tpu7x)
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake, ["us-central1"])
    flagged = df.filter(pl.col("flag").is_not_null())
    assert flagged.height == 1
    row = flagged.row(0, named=True)
    assert (row["instance_type"], row["accelerator_name"], row["accelerator_count"], row["accelerator_memory_gb"],
            row["price_per_hour"], row["market"], row["sku"], row["flag"]) == (
        "tpu-v7x", "TPU-v7x", 1, None, 12.0, "on_demand", tpu7x["skuId"], "unknown accelerator")
    assert any(tpu7x["skuId"] in r.getMessage() and "us-central1" in r.getMessage() for r in caplog.records)


def test_the_fake_lists_the_billing_services_collected(fake: FakeCloudCatalog) -> None:
    services = {s.name: s.display_name for s in fake.client().list_services()}
    assert services == prices.SERVICES == {prices.COMPUTE_ENGINE: "Compute Engine", prices.CLOUD_TPU: "Cloud TPU",
                                           prices.VERTEX_AI: "Vertex AI"}
