"""The offer contract: one accelerator naming, interruption risk, checks, history and the latest view."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops import offers
from finops.store import Store

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("name, memory, expected", [
    ("A100", None, "A100-40GB"), ("A100", 80, "A100-80GB"), ("A100-80GB", None, "A100-80GB"),
    ("NVIDIA A100-SXM4-80GB", None, "A100-80GB"), ("Tesla T4", None, "T4"), ("nvidia-l4", None, "L4"),
    ("H100-MEGA", None, "H100"), ("H100", None, "H100"), ("V100", None, "V100-16GB"), ("V100", 32, "V100-32GB"),
    ("Radeon MI25", None, "MI25"), ("tpu-v5litepod-8", None, "TPU-v5e"), ("tpu-v6e-256", None, "TPU-v6e"),
    ("TPU v5e", None, "TPU-v5e"), ("Gaudi HL-205", None, "Gaudi HL-205"), ("", None, None), (None, None, None),
])
def test_one_accelerator_naming(name: str | None, memory: float | None, expected: str | None) -> None:
    assert offers.canonical_accelerator(name, memory) == expected


def test_requests_mean_families_and_tpu_slices_count_chips() -> None:
    assert offers.accelerator_family("A100") == ["A100-40GB", "A100-80GB"]
    assert offers.accelerator_family("a100-80gb") == ["A100-80GB"]
    assert offers.accelerator_family("tpu-v5e") == ["TPU-v5e"]
    assert (offers.tpu_chips("tpu-v5litepod-8"), offers.tpu_chips("tpu-v3-32"), offers.tpu_chips("x")) == (8, 16, None)


def test_interruption_rates_are_per_hour_and_configurable() -> None:
    assert offers.interruption_rate("aws", "p4d.24xlarge", "on_demand") == 0.0
    # a monthly share f is a constant hazard -ln(1 - f) / 730 (f / 730 understates it); AWS bands at their
    # upper edge: p4d sits in ">20%" (taken as 30%), g5 in "5-10%"
    assert offers.interruption_rate("aws", "p4d.24xlarge", "spot") == pytest.approx(-math.log(0.7) / 730)
    assert offers.interruption_rate("aws", "g5.xlarge", "spot") == pytest.approx(-math.log(0.9) / 730)
    table = offers.interruption_table({"aws": {"p4d": 0.5}, "azure": {"*": 0.01}})
    assert offers.interruption_rate("aws", "p4d.24xlarge", "spot", table) == pytest.approx(-math.log(0.5) / 730)
    assert offers.interruption_rate("aws", "g5.xlarge", "spot", table) == pytest.approx(-math.log(0.9) / 730)  # kept
    # GCP / Azure: no per-family figure; per accelerator class, from a daily share (15% a day for H100)
    nd = offers.interruption_rate("azure", "Standard_ND96asr_v4", "spot", table)
    assert nd == pytest.approx(-math.log(0.99) / 730)
    h100 = offers.interruption_rate("gcp", "a3-highgpu-8g", "spot", accelerator="H100")
    assert 1 - math.exp(-24 * h100) == pytest.approx(0.15)
    t4 = offers.interruption_rate("gcp", "n1-standard-8+T4x1", "spot", accelerator="T4")
    assert 1 - math.exp(-24 * t4) == pytest.approx(0.05)
    assert offers.interruption_rate("gcp", "a3-highgpu-8g", "spot") == pytest.approx(-math.log(0.9) / 24)  # "*"


def row(**kw: object) -> dict[str, object]:
    base = {"provider": "aws", "region": "us-east-1", "zone": None, "instance_type": "p4d.24xlarge",
            "accelerator_name": "A100-40GB", "accelerator_count": 8.0, "accelerator_memory_gb": 40.0,
            "vcpus": 96.0, "memory_gb": 1152.0, "market": "on_demand", "price_per_hour": 32.7726,
            "currency": "USD", "observed_at": T0, "source": "test", "sku": "SKU1", "interruption_rate": 0.0}
    return base | kw


@pytest.mark.parametrize("bad, words", [
    ({"price_per_hour": 0.0}, ["price of zero or less", "aws us-east-1 p4d.24xlarge (sku SKU1)"]),
    ({"price_per_hour": -1.0, "sku": "X9"}, ["price of zero or less", "(sku X9)"]),
    ({"market": "reserved"}, ["market not on_demand or spot"]),
    ({"region": None}, ["missing provider, region or instance type"]),
])
def test_bad_offers_are_refused_with_provider_region_and_sku(bad: dict[str, object], words: list[str]) -> None:
    with pytest.raises(offers.OfferError) as e:
        offers.frame([row(), row(**bad)])
    for w in words:
        assert w in str(e.value)


def test_prices_in_other_currencies_convert_or_fail_clearly() -> None:
    df = offers.frame([row(), row(currency="EUR", price_per_hour=10.0, region="eu-west-1")]).lazy()
    out = offers.to_usd(df, {"EUR": 1.1}).collect()
    assert out["price_per_hour"].to_list() == pytest.approx([32.7726, 11.0])
    assert set(out["currency"]) == {"USD"}
    with pytest.raises(offers.OfferError, match=r"no exchange rate for EUR; add it under \[prices.rates\]"):
        offers.to_usd(df, {})


def test_latest_takes_the_newest_observation_and_flags_stale() -> None:
    hist = offers.frame([row(price_per_hour=30.0, observed_at=T0 - timedelta(days=3)),
                         row(price_per_hour=31.0, observed_at=T0),
                         row(market="spot", zone="us-east-1a", price_per_hour=9.0, observed_at=T0 - timedelta(days=3))])
    out = offers.latest(hist.lazy(), now=T0, max_age=timedelta(days=1)).collect().sort("market")
    assert out["price_per_hour"].to_list() == [31.0, 9.0]
    assert out["stale"].to_list() == [False, True]
    fresh = offers.latest(hist.lazy(), now=T0, max_age=timedelta(days=1), exclude_stale=True).collect()
    assert fresh["market"].to_list() == ["on_demand"]


def test_record_keeps_history_and_refreshes_the_latest_view(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert offers.record(store, offers.frame([row(price_per_hour=30.0, observed_at=T0 - timedelta(hours=2))])) == 1
    first_files = {f: Path(f).read_bytes() for f in store.files("prices")}
    assert offers.record(store, offers.frame([row(price_per_hour=31.0), row(region="us-west-2")])) == 2
    history = store.scan("prices").collect()
    assert sorted(history["price_per_hour"].to_list()) == [30.0, 31.0, 32.7726]
    assert all(Path(f).read_bytes() == b for f, b in first_files.items())  # never rewritten
    latest = offers.latest_offers(store, now=T0).collect().sort("region")
    assert latest.select("region", "price_per_hour").rows() == [("us-east-1", 31.0), ("us-west-2", 32.7726)]
    offers.record(store, offers.frame([row(price_per_hour=31.0)]))  # the same observation again
    assert store.scan("prices").select(pl.len()).collect().item() == 3


def test_latest_offers_of_an_empty_store(tmp_path: Path) -> None:
    assert offers.latest_offers(Store(tmp_path)).collect().height == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["us-east-1", "eu-west-1"]), st.sampled_from(["on_demand", "spot"]),
                          st.integers(0, 1000), st.floats(0.01, 100)), min_size=1, max_size=30))
def test_latest_is_the_newest_per_offer(obs: list[tuple[str, str, int, float]]) -> None:
    rows = [row(region=r, market=m, observed_at=T0 + timedelta(minutes=t), price_per_hour=p) for r, m, t, p in obs]
    out = offers.latest(offers.frame(rows).lazy(), now=T0).collect()
    expected: dict[tuple[str, str], tuple[int, float]] = {}
    for r, m, t, p in obs:  # ties keep the later observation in input order, as sort is stable
        if (r, m) not in expected or t >= expected[(r, m)][0]:
            expected[(r, m)] = (t, p)
    got = {(r["region"], r["market"]): r["price_per_hour"] for r in out.iter_rows(named=True)}
    assert got == {k: v[1] for k, v in expected.items()}


def test_a_spot_dip_is_costed_at_the_recent_level_and_volatility_is_measured(tmp_path: Path) -> None:
    """A spot price's last week of history: the latest quote below its mean is costed at the mean (a job
    runs for hours across the moves); a quote above is kept; with one observation there is no volatility."""
    store = Store(tmp_path / "store")
    prices = [10.0, 12.0, 14.0, 6.0]  # the last quote dips
    for i, p in enumerate(prices):
        offers.record(store, offers.frame([row(market="spot", zone="use1-az1", price_per_hour=p,
                                               observed_at=T0 + timedelta(days=i), interruption_rate=0.001),
                                           row(instance_type="p5.48xlarge", market="spot", zone="use1-az1",
                                               price_per_hour=20.0 + i, observed_at=T0 + timedelta(days=i),
                                               interruption_rate=0.001)]))
    offers.record(store, offers.frame([row(instance_type="p3.2xlarge", market="spot", zone="use1-az2",
                                           price_per_hour=1.0, observed_at=T0, interruption_rate=0.001)]))
    now = T0 + timedelta(days=3, hours=1)
    out = offers.spot_risk(offers.latest_offers(store, now=now), offers.spot_history(store, now=now), now=now).collect()
    got = {r["instance_type"]: r for r in out.iter_rows(named=True)}
    assert got["p4d.24xlarge"]["quoted_price"] == 6.0
    assert got["p4d.24xlarge"]["price_per_hour"] == pytest.approx(sum(prices) / 4)
    mean = sum(prices) / 4
    sd = math.sqrt(sum((p - mean) ** 2 for p in prices) / 3)
    assert got["p4d.24xlarge"]["price_volatility"] == pytest.approx(sd / mean)
    assert got["p5.48xlarge"]["price_per_hour"] == 23.0  # rising: the latest quote, above the mean
    assert got["p3.2xlarge"]["price_per_hour"] == 1.0 and got["p3.2xlarge"]["price_volatility"] is None
