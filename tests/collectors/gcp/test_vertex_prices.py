"""Vertex AI prices: the Vertex AI service's SKUs of the Cloud Billing Catalog, read with a real
CloudCatalogClient (REST, anonymous) from the local fake, composed into offers of service ``vertex``, and
placed for a workload allowed only a Vertex AI launch target.

The fake's Vertex AI SKUs are those of a real bill (ids, descriptions, prices; see tests/fakes/gcp_catalog.py),
so the on-demand a3-highgpu-8g offer must come out at that bill's hourly total less its boot disk."""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from google.api_core import retry as api_retry
from google.cloud import billing_v1

from collectors.gcp import prices
from finops import offers
from finops.config import Config, parse
from finops.placements import Placed, Unplaced
from finops.workloads import loads
from placement import candidates as cm
from placement import run
from placement.plan import plan
from tests.fakes import gcp_catalog as fk
from tests.fakes.gcp_catalog import FakeCloudCatalog, sku_id

WHEN = datetime(2026, 4, 2, 12, tzinfo=UTC)
FAST = api_retry.Retry(predicate=prices.is_retryable, initial=0.005, maximum=0.02, multiplier=2.0, timeout=2.0)
GIVE_UP = api_retry.Retry(predicate=prices.is_retryable, initial=0.005, maximum=0.02, multiplier=2.0, timeout=0.3)
A3 = "a3-highgpu-8g"  # 208 vCPUs, 1872 GiB, 8 × H100 80GB
IOWA = "running in Iowa"
TRAINING = {desc: (ident, Decimal(price)) for ident, desc, price, _ in fk.VERTEX_TRAINING}
FEES = {desc: (ident, Decimal(price)) for ident, desc, price, _ in fk.VERTEX_FEES}
CORE = "Vertex AI: Training/Pipelines on A3 Instance Core in Iowa"
RAM = "Vertex AI: Training/Pipelines on A3 Instance RAM in Iowa"
H100 = "Vertex AI: Training/Pipelines on NVIDIA H100 80GB in Iowa"
FEE_CORE = "Vertex AI: Training/Pipelines management fee on A3 Instance Core in Iowa"
FEE_RAM = "Vertex AI: Training/Pipelines management fee on A3 Instance RAM in Iowa"
FEE_H100 = "Vertex AI: Training/Pipelines management fee on NVIDIA H100 80GB in Iowa"


@pytest.fixture
def fake() -> Iterator[FakeCloudCatalog]:
    with FakeCloudCatalog() as f:
        yield f


def collect(fake: FakeCloudCatalog, regions: list[str] | None = None, **kw: object) -> pl.DataFrame:
    return prices.collect(fake.client(), ["us-central1", "europe-west4"] if regions is None else regions,
                          observed_at=WHEN, retry=kw.pop("retry", FAST), **kw)  # type: ignore[arg-type]


def vertex(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("service") == prices.VERTEX)


def one(df: pl.DataFrame, instance_type: str, market: str) -> dict:
    rows = vertex(df).filter((pl.col("instance_type") == instance_type) & (pl.col("market") == market))
    assert rows.height == 1, (instance_type, market, rows)
    return rows.row(0, named=True)


def wire(description: str, **kw: object) -> billing_v1.Sku:
    """A Vertex AI SKU as the SDK reads it from the API's JSON."""
    return billing_v1.Sku.from_json(json.dumps(fk.vertex_sku(description, **kw)))  # type: ignore[arg-type]


# -- reading the SKUs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("description", "expected"), [
    # the shapes of a real Vertex AI bill (tests/fakes/gcp_catalog.py)
    (CORE, ("core", "a3", False)),
    (RAM, ("ram", "a3", False)),
    (H100, ("gpu", "H100 80GB", False)),
    (FEE_CORE, ("core", "a3", True)),
    (FEE_H100, ("gpu", "H100 80GB", True)),
    # the older families' shapes ("… Predefined Instance … running in", "Management fee on N1 Instance …")
    ("Vertex AI: Training/Pipelines on N1 Predefined Instance Core running in Iowa", ("core", "n1", False)),
    ("Vertex AI: Training/Pipelines on N1 Predefined Instance Ram running in Iowa", ("ram", "n1", False)),
    ("Vertex AI: Training/Pipelines Management fee on N1 Instance RAM in Iowa", ("ram", "n1", True)),
    # Vertex AI's other spelling of a GPU comes back to the spelling MACHINES uses
    ("Vertex AI: Training/Pipelines on Nvidia H100 80gb GPU running in Iowa", ("gpu", "H100 80GB", False)),
    # not priced here: prediction (serving uses the training rates), disks, families we do not compose
    ("Vertex AI: Online/Batch Prediction A3 Predefined Instance Core running in Iowa", None),
    ("Vertex AI: Online/Batch Prediction Nvidia H100 80gb GPU running in Iowa", None),
    ("Vertex AI: Training/Pipelines on SSD backed PD Capacity", None),
    ("Vertex AI: Training/Pipelines on E2 Instance Core running in Iowa", None),
    ("DWS Defined Duration A3 Core running in Americas", None),
])
def test_vertex_training_skus_are_read_by_their_description(description: str,
                                                            expected: tuple[str, str, bool] | None) -> None:
    assert prices.classify_vertex(wire(description, price="1")) == expected


def test_usage_and_fee_rates_are_exact_and_apart() -> None:
    skus = [wire(d, price=p, unit=u, id=i) for i, d, p, u in (*fk.VERTEX_TRAINING, *fk.VERTEX_FEES, *fk.VERTEX_UNREAD)]
    usage, fees = prices.parse_vertex_rates(skus, [])
    got = {(r.kind, r.key, r.market, r.regions, r.price, r.sku_id, r.service) for r in usage}
    assert got == {("core", "a3", "on_demand", ("us-central1",), Decimal("0.0293227"), "2E83-99F1-391A",
                    prices.VERTEX_AI),
                   ("ram", "a3", "on_demand", ("us-central1",), Decimal("0.0025534"), "B045-9255-8314",
                    prices.VERTEX_AI),
                   ("gpu", "H100 80GB", "on_demand", ("us-central1",), Decimal("11.2660332"), "3F95-001E-B747",
                    prices.VERTEX_AI)}
    assert {(r.kind, r.price, r.sku_id) for r in fees} == {("core", Decimal("0.0038247"), "9AC1-7D9B-C47E"),
                                                          ("ram", Decimal("0.0003331"), "D30D-69C9-F057"),
                                                          ("gpu", Decimal("1.4694826"), "5853-505F-A5C4")}
    assert prices.parse_vertex_rates(skus, ["europe-west4"]) == ([], [])


# -- offers ----------------------------------------------------------------------------------------------
def test_on_demand_vertex_offer_is_composed_from_vertex_skus(fake: FakeCloudCatalog) -> None:
    df = collect(fake)
    od = one(df, A3, "on_demand")
    price = 208 * TRAINING[CORE][1] + 1872 * TRAINING[RAM][1] + 8 * TRAINING[H100][1]
    assert price == Decimal("101.007352")
    # the real bill: 101.5429684 an hour, of which 0.53561644 is the 2000 GiB boot disk (not a machine price)
    assert price == Decimal("101.5429684") - Decimal("0.5356164")
    assert od["price_per_hour"] == float(price)
    assert od["sku"] == "2E83-99F1-391A+B045-9255-8314+3F95-001E-B747"
    assert (od["provider"], od["region"], od["zone"], od["market"], od["service"], od["source"]) == (
        "gcp", "us-central1", None, "on_demand", "vertex", prices.SOURCE)
    assert (od["accelerator_name"], od["accelerator_count"], od["vcpus"], od["memory_gb"]) == ("H100", 8, 208, 1872)
    assert (od["interruption_rate"], od["flag"], od["observed_at"]) == (0, None, WHEN)
    # Vertex AI costs more than the same VM on Compute Engine (its rates are Compute Engine's × 1.15)
    compute = df.filter((pl.col("service") == "compute") & (pl.col("instance_type") == A3)
                        & (pl.col("market") == "on_demand") & (pl.col("region") == "us-central1"))
    assert compute.height == 1 and compute["price_per_hour"][0] < od["price_per_hour"]
    offers.check(df)
    assert df.schema == offers.SCHEMA


def test_spot_vertex_offer_is_compute_engine_spot_plus_the_management_fee(fake: FakeCloudCatalog) -> None:
    df = collect(fake)
    spot = one(df, A3, "spot")
    core_spot, ram_spot = (Decimal(p) for p in fk.CORE_RAM[("us-central1", "a3")][2:])
    h100_spot = Decimal(fk.GPUS[("us-central1", "H100")][1])
    assert (core_spot, ram_spot, h100_spot) == (Decimal("0.007271"), Decimal("0.000975"), Decimal("3.4565"))
    price = (208 * (core_spot + FEES[FEE_CORE][1]) + 1872 * (ram_spot + FEES[FEE_RAM][1])
             + 8 * (h100_spot + FEES[FEE_H100][1]))
    assert spot["price_per_hour"] == float(price)
    assert spot["sku"] == "+".join([
        sku_id(f"Spot Preemptible A3 Instance Core {IOWA}"), "9AC1-7D9B-C47E",
        sku_id(f"Spot Preemptible A3 Instance Ram {IOWA}"), "D30D-69C9-F057",
        sku_id(f"Nvidia H100 80GB GPU attached to Spot Preemptible VMs {IOWA}"), "5853-505F-A5C4"])
    assert (spot["market"], spot["service"], spot["source"]) == ("spot", "vertex", prices.VERTEX_SPOT_SOURCE)
    assert spot["interruption_rate"] == offers.interruption_rate("gcp", A3, "spot") > 0
    assert spot["price_per_hour"] < one(df, A3, "on_demand")["price_per_hour"]


def test_vertex_offers_only_where_vertex_prices_every_part(fake: FakeCloudCatalog) -> None:
    df = collect(fake)
    # Iowa prices A3 only; Europe has no Vertex AI SKU in the fake; prediction and disk SKUs are not used.
    assert {(r["region"], r["instance_type"]) for r in vertex(df).iter_rows(named=True)} == {("us-central1", A3)}
    used = {s for joined in df["sku"] for s in joined.split("+")}
    assert used.isdisjoint({ident for ident, *_ in fk.VERTEX_UNREAD})
    # Compute Engine's offers are the same with or without Vertex AI.
    without = collect(fake, vertex=False)
    assert vertex(without).height == 0
    assert df.filter(pl.col("service") == "compute").equals(without)


def test_without_the_management_fee_there_is_no_vertex_spot_offer(fake: FakeCloudCatalog) -> None:
    fake.set_skus(fk.VERTEX_AI, [s for s in fk.vertex_skus() if s["description"] != FEE_H100])
    df = collect(fake)
    assert vertex(df)["market"].to_list() == ["on_demand"]  # never the spot VM price alone


def test_a_published_vertex_spot_price_wins_over_the_derived_one(fake: FakeCloudCatalog) -> None:
    # Hypothetical: the catalog has no such SKU today; if Vertex AI published one, it is used as it is.
    fake.add_skus(fk.vertex_sku(H100, usage="Preemptible", price="2.5", id="AAAA-BBBB-CCCC"), service=fk.VERTEX_AI)
    spot = one(collect(fake), A3, "spot")
    assert spot["sku"].endswith("+AAAA-BBBB-CCCC") and spot["source"] == prices.VERTEX_SPOT_SOURCE  # core, RAM
    core_ram = 208 * (Decimal("0.007271") + FEES[FEE_CORE][1]) + 1872 * (Decimal("0.000975") + FEES[FEE_RAM][1])
    assert spot["price_per_hour"] == float(core_ram + 8 * Decimal("2.5"))


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_vertex_skus_are_skipped_with_a_warning(fake: FakeCloudCatalog, caplog: pytest.LogCaptureFixture) -> None:
    baseline = collect(fake)
    unknown = fk.vertex_sku("Vertex AI: Training/Pipelines on NVIDIA Z900 in Iowa", price="3")
    unreadable = fk.vertex_sku("Vertex AI: Training/Pipelines on A3 Instance Core", price="0.03")
    per_hour_ram = fk.vertex_sku("Vertex AI: Training/Pipelines on A3 Instance RAM in Iowa", price="0.01",
                                 id="1111-2222-3333", regions=["us-central1", "us-east1"])
    fake.add_skus(unknown, unreadable, per_hour_ram, service=fk.VERTEX_AI)
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        (f"gcp us-central1: SKU {unknown['skuId']} ('Vertex AI: Training/Pipelines on NVIDIA Z900 in Iowa') names a "
        "GPU we do not know ('Z900'); not priced"),
        (f"gcp us-central1: SKU {unreadable['skuId']} ('Vertex AI: Training/Pipelines on A3 Instance Core') is a "
        "Vertex AI training SKU whose shape we cannot read; not priced"),
        ("gcp us-central1: SKU 1111-2222-3333 ('Vertex AI: Training/Pipelines on A3 Instance RAM in Iowa') is priced "
        "in USD per 'h', expected USD per 'GiBy.h'; dropped"),
    ]
    assert df.equals(baseline)


def test_a_zero_vertex_price_drops_that_offer_only(fake: FakeCloudCatalog, caplog: pytest.LogCaptureFixture) -> None:
    fake.replace_price(CORE, 0)
    with caplog.at_level(logging.WARNING, logger="collectors.gcp.prices"):
        df = collect(fake)
    assert any("2E83-99F1-391A" in r.getMessage() and "price of 0" in r.getMessage() for r in caplog.records)
    assert vertex(df)["market"].to_list() == ["spot"]  # the fee and spot SKUs are still good


def test_a_failing_vertex_page_names_the_service(fake: FakeCloudCatalog) -> None:
    fake.fail_page(1, 503, service=fk.VERTEX_AI)
    with pytest.raises(offers.OfferError, match=r"list_skus\(services/C7E2-9256-1C43, Vertex AI\) failed on page 1"):
        collect(fake, retry=GIVE_UP)


# -- placement: a workload allowed only the Vertex AI target ---------------------------------------------
TARGETS = """
[launch.targets.vx]
kind = "vertex"
project = "finops-test"
"""


def config() -> Config:
    return parse(tomllib.loads(TARGETS), "finops.toml")


def decide(cfg: Config, frame: pl.DataFrame, yaml: str) -> list:
    now = WHEN + timedelta(hours=1)
    off = cm.prepare_offers(offers.latest(frame.lazy(), now=now), targets=cfg.launch.all_targets())
    specs = list(enumerate(loads(yaml), start=1))
    allowed = {w: run.workload_targets(s, cfg)[0] for w, s in specs}
    return plan(specs, off, targets=allowed, now=now).decisions


def h100s(**kw: str) -> str:
    extra = "".join(f", {k}: {v}" for k, v in kw.items())
    return ("- {name: t, team: ml, kind: train, accelerators: {name: H100, count: 8}, runtime_hours: 10"
            f"{extra}, launch: {{targets: [vx]}}}}")


def test_a_workload_allowed_only_vertex_is_placed_on_a_vertex_offer(fake: FakeCloudCatalog) -> None:
    cfg = config()
    before = decide(cfg, collect(fake, vertex=False), h100s(spot="never"))[0]
    assert isinstance(before, Unplaced) and "launch targets ['vx']" in before.reason

    df = collect(fake)
    d = decide(cfg, df, h100s(spot="never"))[0]
    assert isinstance(d, Placed)
    assert (d.main.target, d.main.provider, d.main.region, d.main.instance_type, d.main.market) == (
        "vx", "gcp", "us-central1", A3, "on_demand")
    assert d.main.price_per_hour == one(df, A3, "on_demand")["price_per_hour"] == 101.007352  # not the VM price

    spot = decide(cfg, df, h100s(spot="required"))[0]
    assert isinstance(spot, Placed) and (spot.main.target, spot.main.market) == ("vx", "spot")
    assert spot.main.price_per_hour == one(df, A3, "spot")["price_per_hour"]
