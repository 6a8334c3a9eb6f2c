"""Candidates (the filters) and costing (expected hours, re-work, egress, deadline, commitments)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops import offers
from finops.workloads import loads
from placement import candidates as cm
from placement import costing
from placement.candidates import PlacementError

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def offer(provider: str, region: str, itype: str, acc: str | None, count: float | None, market: str, price: float,
          *, vcpus: float = 96, mem: float = 1000, zone: str | None = None, age_h: float = 1,
          rate: float | None = None, flag: str | None = None) -> dict:
    return {"provider": provider, "region": region, "zone": zone, "instance_type": itype, "accelerator_name": acc,
            "accelerator_count": count, "accelerator_memory_gb": offers.ACCELERATORS.get(acc or "", None),
            "vcpus": vcpus, "memory_gb": mem, "market": market, "price_per_hour": price, "currency": "USD",
            "observed_at": NOW - timedelta(hours=age_h), "source": "test", "sku": None,
            "interruption_rate": rate if rate is not None else (0.001 if market == "spot" else 0.0), "flag": flag}


OFFERS = [
    offer("aws", "us-east-1", "p5.48xlarge", "H100", 8, "on_demand", 98.0),
    offer("aws", "us-east-1", "p5.48xlarge", "H100", 8, "spot", 40.0, zone="us-east-1a"),
    offer("aws", "us-east-1", "p5.48xlarge", "H100", 8, "spot", 35.0, zone="us-east-1b"),
    offer("aws", "eu-west-1", "p5.48xlarge", "H100", 8, "on_demand", 110.0),
    offer("gcp", "europe-west4", "a3-highgpu-8g", "H100", 8, "spot", 30.0, rate=0.02),
    offer("gcp", "europe-west2", "a3-highgpu-8g", "H100", 8, "on_demand", 90.0),  # London: UK, not EU
    offer("azure", "westeurope", "Standard_NC24ads_A100_v4", "A100-80GB", 1, "on_demand", 4.0, vcpus=24, mem=220),
    offer("azure", "eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 1, "spot", 1.5, vcpus=24, mem=220),
    offer("gcp", "us-central1", "a2-highgpu-1g", "A100-40GB", 1, "on_demand", 3.7, vcpus=12, mem=85),
    offer("gcp", "us-central1", "g2-standard-8", "L4", 1, "on_demand", 0.85, vcpus=8, mem=32),
    offer("azure", "eastus", "Standard_NV36ads_A10_v5", "A10", 1, "on_demand", 3.2, vcpus=36, mem=440, age_h=100),
    offer("aws", "us-east-1", "weird.big", "H100", 8, "on_demand", 1.0, flag=offers.FLAG_UNKNOWN_INSTANCE_TYPE),
]


def prepared(rows: list[dict] = OFFERS, **kw: object) -> pl.DataFrame:
    lf = offers.latest(offers.frame(rows).lazy(), now=NOW, max_age=timedelta(hours=24))
    return cm.prepare_offers(lf, **kw)  # type: ignore[arg-type]


def cands_for(yaml_text: str, off: pl.DataFrame | None = None) -> pl.DataFrame:
    specs = list(enumerate(loads(yaml_text)))
    sf = cm.spec_frame(specs, NOW)
    off = prepared() if off is None else off
    out = costing.cost(cm.candidates(sf, off), costing.egress_table(sf, off, costing.EgressRates())).collect()
    return out.join(off.select("oid", "instance_type"), on="oid", how="left")


def keys(df: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(df.select("provider", "region", "market").iter_rows())


def test_prepare_keeps_usable_fresh_cheapest_zone() -> None:
    off = prepared()
    assert "weird.big" not in off["instance_type"].to_list()  # flagged
    assert "Standard_NV36ads_A10_v5" not in off["instance_type"].to_list()  # stale, excluded by default
    spot = off.filter((pl.col("instance_type") == "p5.48xlarge") & (pl.col("market") == "spot"))
    assert spot["price_per_hour"].to_list() == [35.0] and spot["zone"].to_list() == ["us-east-1b"]
    assert "Standard_NV36ads_A10_v5" in prepared(stale="allow")["instance_type"].to_list()
    with pytest.raises(PlacementError, match="stale prices"):
        prepared(stale="error")
    assert "europe-west4" not in prepared(blocked=["gcp:europe-*:a3-*"])["region"].to_list()


def test_empty_price_table_is_a_clear_error() -> None:
    with pytest.raises(PlacementError, match="price table is empty"):
        cm.prepare_offers(pl.LazyFrame(schema=offers.SCHEMA))


def test_accelerator_forms_and_floors() -> None:
    exact = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1}")
    assert set(exact["instance_type"]) == {"p5.48xlarge", "a3-highgpu-8g"}
    wrong_count = cands_for("{name: a, team: t, accelerators: {name: H100, count: 4}, runtime_hours: 1}")
    assert wrong_count.is_empty()
    family = cands_for("{name: a, team: t, accelerators: {name: A100}, runtime_hours: 1}")
    assert set(family["accelerator_name"]) == {"A100-40GB", "A100-80GB"}
    any_of = cands_for("{name: a, team: t, accelerators: {any_of: [L4, A100-40GB]}, runtime_hours: 1}")
    assert set(any_of["accelerator_name"]) == {"L4", "A100-40GB"}
    by_mem = cands_for("{name: a, team: t, accelerators: {min_memory_gb: 40}, runtime_hours: 1}")
    assert set(by_mem["accelerator_name"]) == {"A100-40GB", "A100-80GB"}
    floors = cands_for("{name: a, team: t, accelerators: {min_memory_gb: 40}, runtime_hours: 1, min_vcpus: 16,"
                       " min_memory_gb: 200}")
    assert set(floors["instance_type"]) == {"Standard_NC24ads_A100_v4"}


def test_market_region_and_residency_filters() -> None:
    never = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1, spot: never}")
    assert set(never["market"]) == {"on_demand"}
    required = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1, spot: required}")
    assert set(required["market"]) == {"spot"}
    eu = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1, residency: [EU]}")
    assert keys(eu) == {("aws", "eu-west-1", "on_demand"), ("gcp", "europe-west4", "spot")}
    europe = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1,"
                       " residency: [EUROPE]}")
    assert ("gcp", "europe-west2", "on_demand") in keys(europe)
    regions = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1,"
                        " regions: [us-east-1], providers: [aws]}")
    assert keys(regions) == {("aws", "us-east-1", "on_demand"), ("aws", "us-east-1", "spot")}


def test_diagnose_names_the_first_need_no_offer_meets() -> None:
    off = prepared()
    sf = cm.spec_frame(list(enumerate(loads(
        "{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 1, residency: [JP]}"))), NOW)
    assert "residency ['JP']" in cm.diagnose(sf, off)
    sf = cm.spec_frame(list(enumerate(loads("{name: a, team: t, accelerators: {name: T4}, runtime_hours: 1}"))), NOW)
    assert "no T4 x1 offer" in cm.diagnose(sf, off)


def test_expected_cost_rework_egress_and_deadline() -> None:
    text = ("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 10, checkpoint_minutes: 60,"
            " dataset: {provider: aws, region: us-east-1, size_gb: 1000},"
            f" deadline: '{(NOW + timedelta(hours=10.1)).isoformat()}'}}")
    c = cands_for(text)
    row = {(r["provider"], r["region"], r["market"]): r for r in c.iter_rows(named=True)}
    od = row[("aws", "us-east-1", "on_demand")]
    assert od["expected_hours"] == 10 and od["cost"] == pytest.approx(980.0) and od["egress_cost"] == 0
    spot = row[("aws", "us-east-1", "spot")]
    restart = 1 / 6
    # each 1-hour segment retried until it runs through: (1/λ + r)(e^λ - 1) hours per hour of work
    hours = 10 * (1 / 0.001 + restart) * (math.exp(0.001) - 1)
    assert hours == pytest.approx(10 * (1 + 0.001 * (1.0 / 2 + restart)), rel=1e-5)  # ≈ the linear rule here
    assert spot["expected_hours"] == pytest.approx(hours)
    assert spot["rework_cost"] == pytest.approx(35.0 * (hours - 10))
    assert spot["deadline_ok"]
    eu = row[("aws", "eu-west-1", "on_demand")]
    assert eu["egress_cost"] == pytest.approx(1000 * 0.02)  # between two AWS regions
    gcp = row[("gcp", "europe-west4", "spot")]
    assert gcp["egress_cost"] == pytest.approx(1000 * 0.09)  # out of AWS to the internet
    gcp_hours = 10 * (1 / 0.02 + restart) * (math.exp(0.02) - 1)
    assert gcp["expected_hours"] == pytest.approx(gcp_hours) and not gcp["deadline_ok"]  # 10.34 h > 10.1 h


def test_egress_pair_overrides() -> None:
    rates = costing.EgressRates(pairs={("aws", "gcp:europe-west4"): 0.01})
    assert rates.rate("aws", "us-east-1", "gcp", "europe-west4") == 0.01
    assert rates.rate("aws", "us-east-1", "gcp", "us-central1") == 0.09
    assert rates.rate("gcp", "us-central1", "gcp", "us-central1") == 0.0


def test_commitments_add_zero_compute_cost_candidates() -> None:
    c = cands_for("{name: a, team: t, accelerators: {name: H100, count: 8}, runtime_hours: 10}")
    pools = pl.DataFrame({"pool": ["ri-1"], "provider": ["aws"], "region": ["us-east-1"],
                          "instance_type": ["p5.48xlarge"], "hours": [100.0]})
    out = costing.with_commitments(c, pools, prepared())
    committed = out.filter(pl.col("market") == "commitment")
    assert committed.height == 1 and committed["cost"][0] == 0.0 and committed["pool"][0] == "ri-1"
    assert out.height == c.height + 1


# -- issue 12: memory requests mean GPUs; a share of a GPU has only its share of memory ---------------
def _real_offers(*instance_types: str, region: str | None = None) -> pl.DataFrame:
    """Offers of the shipped catalog snapshot (real prices), restricted to some instance types."""
    from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir

    df = read_catalog(snapshot_dir(), observed_at=SNAPSHOT_DATE)
    df = df.filter(pl.col("instance_type").is_in(list(instance_types)))
    return cm.prepare_offers(df.filter(pl.col("region") == region) if region else df, stale="allow")


def test_a_gpu_memory_request_never_lands_on_a_tpu_unless_the_spec_names_tpus() -> None:
    off = _real_offers("tpu-v5p-16", "a3-ultragpu-8g", "p5.48xlarge", "Standard_ND96isr_H200_v5")
    assert "TPU-v5p" in off["accelerator_name"].to_list()  # a v5p-16 slice: 8 chips of 95 GB
    mem = cands_for("{name: a, team: t, accelerators: {min_memory_gb: 90, count: 8}, runtime_hours: 10}", off)
    assert mem.height > 0 and not mem["accelerator_name"].str.starts_with("TPU").any()
    named = cands_for("{name: a, team: t, accelerators: {any_of: [TPU-v5p, H200], count: 8}, runtime_hours: 10}", off)
    assert "TPU-v5p" in named["accelerator_name"].to_list()


def test_a_share_of_a_gpu_never_meets_a_memory_floor_it_does_not_have() -> None:
    off = _real_offers("Standard_NV4as_v4", "Standard_NV32as_v4", "Standard_NV6ads_A10_v5", region="eastus")
    # a whole MI25 (NV32as_v4, 16 GB) meets 16 GB; NV4as_v4 is 1/8 of one (2 GB)
    whole = cands_for("{name: a, team: t, accelerators: {min_memory_gb: 16}, runtime_hours: 1}", off)
    assert set(whole["instance_type"]) == {"Standard_NV32as_v4"}
    eighth = cands_for("{name: a, team: t, accelerators: {min_memory_gb: 2, count: 0.125}, runtime_hours: 1}", off)
    assert set(eighth["instance_type"]) == {"Standard_NV4as_v4"}
    assert cands_for("{name: a, team: t, accelerators: {min_memory_gb: 4, count: 0.125}, runtime_hours: 1}",
                     off).is_empty()


@given(floor=st.floats(0.5, 200), count=st.sampled_from([1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 8.0]),
       shares=st.lists(st.tuples(st.sampled_from(sorted(offers.ACCELERATORS)),
                                 st.sampled_from([1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 8.0])),
                       min_size=1, max_size=8))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_no_candidate_has_less_gpu_memory_than_asked(floor: float, count: float,
                                                              shares: list[tuple[str, float]]) -> None:
    """Whatever the offers (whole GPUs, shares of one, TPUs), a memory request's candidates give at least
    the floor per accelerator asked — a share giving only its share — and are never TPUs."""
    rows = [offer("azure", "eastus", f"size{i}", acc, n, "on_demand", 1.0 + i) for i, (acc, n) in enumerate(shares)]
    if floor > max(offers.ACCELERATORS.values()):
        return  # no accelerator that large: the spec itself is refused
    spec = loads(f"{{name: a, team: t, accelerators: {{min_memory_gb: {floor}, count: {count}}}, runtime_hours: 1}}")
    sf = cm.spec_frame(list(enumerate(spec)), NOW)
    off = prepared(rows)
    got = cm.candidates(sf, off).collect().join(off.select("oid", "accelerator_memory_gb"), on="oid")
    for r in got.iter_rows(named=True):
        assert not r["accelerator_name"].startswith("TPU-")
        assert r["accelerator_memory_gb"] * min(r["accelerator_count"], 1.0) >= floor - 1e-9
        assert r["accelerator_count"] == count
