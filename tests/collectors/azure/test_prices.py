"""collectors.azure.prices against a local Retail Prices API serving real catalog prices."""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import polars as pl
import pytest

from collectors.azure import prices
from finops import offers, retry
from tests.fakes.azure_retail import AzureRetailFake, catalog_rows, items_from_catalog, make_item

REGIONS = ["eastus", "westeurope", "westus3"]
WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FAST = prices.RetryPolicy(attempts=4, backoff=0.0, max_wait=0.0)
ZERO_SKU, ZERO_REGION = "Standard_ND96isr_H200_v5", "eastus"  # no catalog row there: the zero is its only price


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return catalog_rows()


@pytest.fixture(scope="module")
def gpu_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if prices.is_gpu_size(r["InstanceType"])]


@pytest.fixture(scope="module")
def items(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [*items_from_catalog(rows), make_item(ZERO_SKU, ZERO_REGION, 0.0)]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with prices.make_client(timeout=5.0, connect_retries=0) as client:
        yield client


def _collect(http: httpx.Client, fake: AzureRetailFake, regions: list[str] = REGIONS, **kw: Any) -> pl.DataFrame:
    kw.setdefault("retry", FAST)
    return prices.collect(http, regions, base_url=fake.url, observed_at=WHEN, **kw)


def _by_key(df: pl.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["region"], r["instance_type"], r["market"]): r for r in df.iter_rows(named=True)}


def _skips(fake: AzureRetailFake) -> list[int]:
    return [int(p.split("$skip=")[1]) if "$skip=" in p else 0 for _, p in fake.requests]


# -- prices ----------------------------------------------------------------------------------------
def test_prices_are_the_catalog_prices_exactly(http, items, gpu_rows) -> None:
    with AzureRetailFake(items, page_size=100) as fake:
        df = _collect(http, fake)
    got = _by_key(df)
    assert df.height == 2 * len(gpu_rows) == len(got)  # one on-demand and one spot offer per (size, region)
    for r in gpu_rows:
        assert got[(r["Region"], r["InstanceType"], "on_demand")]["price_per_hour"] == float(r["Price"])
        assert got[(r["Region"], r["InstanceType"], "spot")]["price_per_hour"] == float(r["SpotPrice"])
    sample = got[("eastus", "Standard_NC24ads_A100_v4", "on_demand")]
    assert sample["price_per_hour"] == 3.673
    assert got[("eastus", "Standard_NC24ads_A100_v4", "spot")]["price_per_hour"] == 0.67877
    linux = make_item("Standard_NC24ads_A100_v4", "eastus", 3.673)
    assert sample["sku"] == linux["meterId"]
    assert df["provider"].unique().to_list() == ["azure"]
    assert df["source"].unique().to_list() == ["azure:retail-prices"]
    assert df["currency"].unique().to_list() == ["USD"]
    assert df["zone"].null_count() == df.height
    assert df["observed_at"].unique().to_list() == [WHEN]
    assert df.schema == offers.SCHEMA


def test_shapes_and_interruption_rates(http, items) -> None:
    with AzureRetailFake(items) as fake:
        got = _by_key(_collect(http, fake, ["eastus"]))
    a100 = got[("eastus", "Standard_NC24ads_A100_v4", "on_demand")]
    assert (a100["accelerator_name"], a100["accelerator_count"], a100["accelerator_memory_gb"],
            a100["vcpus"], a100["memory_gb"]) == ("A100-80GB", 1, 80, 24, 220)
    assert got[("eastus", "Standard_ND96amsr_A100_v4", "spot")]["accelerator_name"] == "A100-80GB"
    assert got[("eastus", "Standard_ND96asr_v4", "spot")]["accelerator_name"] == "A100-40GB"
    assert got[("eastus", "Standard_ND96isr_H100_v5", "spot")]["accelerator_count"] == 8
    assert got[("eastus", "Standard_NC40ads_H100_v5", "on_demand")]["accelerator_memory_gb"] == 94  # H100 NVL
    assert got[("eastus", "Standard_NC4as_T4_v3", "on_demand")]["accelerator_name"] == "T4"
    assert got[("eastus", "Standard_NC6s_v3", "on_demand")]["accelerator_name"] == "V100-16GB"
    nv6 = got[("eastus", "Standard_NV6ads_A10_v5", "on_demand")]
    assert (nv6["accelerator_name"], nv6["accelerator_count"]) == ("A10", 1 / 6)
    assert got[("eastus", "Standard_NC4as_T4_v3", "on_demand")]["interruption_rate"] == 0.0
    assert got[("eastus", "Standard_NC4as_T4_v3", "spot")]["interruption_rate"] == pytest.approx(
        offers.interruption_rate("azure", "Standard_NC4as_T4_v3", "spot"))
    assert all(r["flag"] is None for k, r in got.items() if k[1] in prices.VM_SHAPES)


def test_interruption_overrides(http, items) -> None:
    with AzureRetailFake(items) as fake:
        got = _by_key(_collect(http, fake, ["eastus"], interruption={"azure": {"NCas_T4_v3": 0.073}}))
    assert got[("eastus", "Standard_NC4as_T4_v3", "spot")]["interruption_rate"] == pytest.approx(offers.hazard(0.073))
    assert got[("eastus", "Standard_ND40rs_v2", "spot")]["interruption_rate"] == pytest.approx(
        offers.interruption_rate("azure", "Standard_ND40rs_v2", "spot"))


# -- what is skipped -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "price_type", "market"), [
    ("linux", "Consumption", "on_demand"), ("spot", "Consumption", "spot"),
    ("windows", "Consumption", None), ("windows_spot", "Consumption", None),
    ("low_priority", "Consumption", None), ("linux", "DevTestConsumption", None),
    ("linux", "Reservation", None),
])
def test_market_of(kind: str, price_type: str, market: str | None) -> None:
    item = make_item("Standard_NC4as_T4_v3", "eastus", 1.0, kind=kind, price_type=price_type)
    assert prices.market_of(item) == market


def test_windows_low_priority_devtest_and_reservations_skipped_even_when_served(http, items, gpu_rows) -> None:
    # The server ignores priceType here, so DevTestConsumption and Reservation items arrive too.
    with AzureRetailFake(items, page_size=300) as plain:
        expected = _collect(http, plain)
    with AzureRetailFake(items, page_size=300, ignore_filters={"priceType"}) as loose:
        got = _collect(http, loose)
        served = {i["type"] for page in prices.iter_pages(http, "eastus", base_url=loose.url) for i in page}
    assert served == {"Consumption", "DevTestConsumption", "Reservation"}
    assert got.equals(expected)
    assert got.height == 2 * len(gpu_rows)


def test_cpu_and_fpga_sizes_ignored(http, items) -> None:
    with AzureRetailFake(items) as fake:
        df = _collect(http, fake)
    assert df.filter(pl.col("instance_type").is_in(["Standard_D4s_v5", "Standard_NP10s"])).is_empty()


def test_primary_meter_region_wins_over_duplicates() -> None:
    primary = make_item("Standard_NC4as_T4_v3", "eastus", 0.526)
    other = make_item("Standard_NC4as_T4_v3", "eastus", 0.6, primary=False)
    for order in ([primary, other], [other, primary]):
        (row,) = prices.region_offers(order, WHEN)
        assert (row["price_per_hour"], row["sku"]) == (0.526, primary["meterId"])


# -- pagination ------------------------------------------------------------------------------------
def test_pagination_follows_next_page_link(http, items, gpu_rows) -> None:
    served = [i for i in items if i["armRegionName"] == "westus3" and i["type"] == "Consumption"]
    with AzureRetailFake(items, page_size=7) as fake:
        df = _collect(http, fake, ["westus3"])
    pages = math.ceil(len(served) / 7)
    assert pages > 10
    assert _skips(fake) == [7 * k for k in range(pages)]
    assert df.height == 2 * sum(1 for r in gpu_rows if r["Region"] == "westus3")


def test_next_page_link_followed_as_given(http, items) -> None:
    # The first server hands out links to the second: a collector rebuilding links from its
    # base_url would ask the first server for page 2 and never reach the second.
    with AzureRetailFake(items, page_size=25) as second, \
            AzureRetailFake(items, page_size=25, link_base=second.url) as first:
        df = _collect(http, first, ["eastus"])
        assert _skips(first) == [0]
        assert _skips(second)[0] == 25 and len(second.requests) > 3
        with AzureRetailFake(items, page_size=10_000) as whole:
            assert df.equals(_collect(http, whole, ["eastus"]))


def test_progress_reports_pages_and_regions(http, items) -> None:
    seen: list[tuple[str, str]] = []
    with AzureRetailFake(items, page_size=200) as fake:
        _collect(http, fake, ["eastus", "westus3", "eastus"],
                 progress=lambda m: seen.append(tuple(m.split(": ", 1))))  # type: ignore[arg-type]
    assert seen[0] == ("eastus", "page 1")
    assert [s for s in seen if s[1] == "done"] == [("eastus", "done"), ("westus3", "done")]


# -- throttling and failures -----------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 503])
def test_retry_on_throttling_succeeds(http, items, status: int) -> None:
    with AzureRetailFake(items, page_size=50) as clean:
        expected = _collect(http, clean, ["eastus"])
    with AzureRetailFake(items, page_size=50) as fake:
        fake.fail(page=2, status=status, times=3, retry_after="0" if status == 429 else None)
        got = _collect(http, fake, ["eastus"])
        assert _skips(fake)[:5] == [0, 50, 50, 50, 50]
    assert got.equals(expected)


def test_retry_after_is_honoured(http, items) -> None:
    waits: list[float] = []
    policy = prices.RetryPolicy(attempts=3, backoff=0.5, max_wait=60)
    with AzureRetailFake(items, page_size=10_000) as fake:
        fake.fail(page=1, status=429, times=1, retry_after="7")
        prices.collect(http, ["eastus"], base_url=fake.url, retry=policy, sleep=waits.append)
        fake.fail(page=1, status=503, times=2, retry_after=None)
        prices.collect(http, ["eastus"], base_url=fake.url, retry=policy, sleep=waits.append)
    assert waits == [7.0, 0.5, 1.0]


def test_retry_after_as_an_http_date_is_honoured(http, items) -> None:
    waits: list[float] = []
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with AzureRetailFake(items, page_size=10_000) as fake:
        fake.fail(page=1, status=429, times=1, retry_after=later)
        prices.collect(http, ["eastus"], base_url=fake.url, retry=prices.RetryPolicy(attempts=2, max_wait=60),
                       sleep=waits.append)
    assert len(waits) == 1 and 25 <= waits[0] <= 30


def test_permanent_failure_raises_offer_error_naming_region_and_url(http, items) -> None:
    with AzureRetailFake(items, page_size=50) as fake:
        fake.fail(page=3, status=503, times=None)
        with pytest.raises(offers.OfferError) as err:
            _collect(http, fake, ["eastus", "westeurope"])
        assert _skips(fake) == [0, 50, 100, 100, 100, 100]  # 4 attempts at page 3, then no more
    msg = str(err.value)
    assert "azure eastus" in msg and "HTTP 503" in msg
    assert f"{fake.url}/api/retail/prices?" in msg and "$skip=100" in msg


def test_failure_in_a_later_region_returns_nothing(http, items) -> None:
    class FailWestus3(AzureRetailFake):
        def _answer(self, host: str, path: str) -> tuple[int, Any, dict[str, str]]:
            if "westus3" in path:
                return 500, {"Error": {"Code": "ServerError"}}, {}
            return super()._answer(host, path)

    with FailWestus3(items) as fake, pytest.raises(offers.OfferError, match=r"azure westus3: GET .*westus3"):
        _collect(http, fake, ["eastus", "westus3"])


def test_connection_failure_raises_offer_error(http) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(offers.OfferError, match=rf"azure eastus: GET {url}/api/retail/prices\?.* failed after 4"):
        prices.collect(http, ["eastus"], base_url=url, retry=FAST)


def test_error_answer_is_an_offer_error(http, items) -> None:
    # A base URL with a wrong path: the server answers 404, which is not retried.
    with AzureRetailFake(items) as fake, pytest.raises(offers.OfferError, match=r"azure eastus: .*HTTP 404"):
        prices.collect(http, ["eastus"], base_url=f"{fake.url}/wrong", retry=FAST)


def test_retry_get_returns_last_error_response(http, items) -> None:
    waits: list[float] = []
    with AzureRetailFake(items) as fake:
        fake.fail(page=1, status=429, times=None, retry_after="120")
        resp = retry.get(http, f"{fake.url}/api/retail/prices",
                         policy=prices.RetryPolicy(attempts=3, max_wait=2.5), sleep=waits.append)
    assert resp.status_code == 429
    assert waits == [2.5, 2.5]  # Retry-After capped at max_wait; no wait after the last try
    # (Retry-After parsing itself, seconds and HTTP dates: tests/test_retry.py)


# -- bad rows --------------------------------------------------------------------------------------
def test_zero_price_dropped_with_warning(http, items, caplog) -> None:
    zero = next(i for i in items if i["retailPrice"] == 0.0)
    with AzureRetailFake(items) as fake, caplog.at_level(logging.WARNING, logger="collectors.azure.prices"):
        df = _collect(http, fake, [ZERO_REGION])
    assert df.filter(pl.col("instance_type") == ZERO_SKU).is_empty()
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1
    assert all(s in warnings[0] for s in ("azure", ZERO_REGION, ZERO_SKU, zero["meterId"], "0.0"))


def test_negative_or_missing_price_and_wrong_unit_dropped(caplog) -> None:
    bad = [make_item("Standard_NC4as_T4_v3", "eastus", -1.0),
           make_item("Standard_NC4as_T4_v3", "eastus", 1.0, kind="spot", retailPrice=None),
           make_item("Standard_NC8as_T4_v3", "eastus", 5.0, unitOfMeasure="1/Month")]
    with caplog.at_level(logging.WARNING, logger="collectors.azure.prices"):
        assert prices.region_offers(bad, WHEN) == []
    assert len(caplog.records) == 3


def test_unknown_gpu_size_kept_and_flagged(http, items, rows, caplog) -> None:
    with AzureRetailFake(items) as fake, caplog.at_level(logging.WARNING, logger="collectors.azure.prices"):
        got = _by_key(_collect(http, fake, ["eastus"]))
    catalog = next(r for r in rows if r["InstanceType"] == "Standard_NV12ads_V710_v5" and r["Region"] == "eastus")
    for market, price in (("on_demand", catalog["Price"]), ("spot", catalog["SpotPrice"])):
        row = got[("eastus", "Standard_NV12ads_V710_v5", market)]
        assert row["flag"] == "unknown instance type"
        assert row["price_per_hour"] == float(price)
        assert all(row[c] is None for c in ("accelerator_name", "accelerator_count", "accelerator_memory_gb",
                                            "vcpus", "memory_gb"))
    assert any("Standard_NV12ads_V710_v5" in r.getMessage() for r in caplog.records)


# -- the VM table ----------------------------------------------------------------------------------
# Where Microsoft's size pages (the table's source) and the catalog disagree; the docs win.
CATALOG_DIFFERS = {
    ("Standard_ND96amsr_A100_v4", "memory_gb"): (1900, 1800),
    **{(f"Standard_{n}", "accelerator_count"): (f, 1) for n, f in
       (("NV4as_v4", 1 / 8), ("NV8as_v4", 1 / 4), ("NV16as_v4", 1 / 2))},
}


def test_vm_table_against_catalog(rows) -> None:
    catalog = {r["InstanceType"]: r for r in rows}
    assert set(prices.VM_SHAPES) <= set(catalog), "every table entry has a catalog row to check against"
    for size, shape in prices.VM_SHAPES.items():
        assert shape.accelerator in offers.ACCELERATORS
        assert offers.canonical_accelerator(shape.accelerator) == shape.accelerator
        row = catalog[size]
        theirs_acc = offers.canonical_accelerator(row["AcceleratorName"])
        # the catalog calls H100 NVL (94 GB) plain H100; Microsoft's size pages win
        assert theirs_acc == shape.accelerator or (theirs_acc, shape.accelerator) == ("H100", "H100-NVL"), size
        assert shape.vcpus == float(row["vCPUs"]), size
        for field, theirs in (("memory_gb", float(row["MemoryGiB"])),
                              ("accelerator_count", float(row["AcceleratorCount"]))):
            ours = getattr(shape, field)
            if (size, field) in CATALOG_DIFFERS:
                assert (ours, theirs) == pytest.approx(CATALOG_DIFFERS[(size, field)]), (size, field)
            else:
                assert ours == pytest.approx(theirs, abs=1e-3), (size, field)  # catalog rounds 1/6 to 0.167


def test_gpu_size_detection() -> None:
    assert prices.is_gpu_size("Standard_NC24ads_A100_v4")
    assert prices.is_gpu_size("Standard_NCC40ads_H100_v5")
    assert prices.is_gpu_size("Standard_NG8ads_V620_v1")
    assert not prices.is_gpu_size("Standard_NP10s")
    assert not prices.is_gpu_size("Standard_D4s_v5")
    assert not prices.is_gpu_size("")
    assert not prices.is_gpu_size(None)
