"""The synthetic FOCUS generator: deterministic, exact row counts, valid FOCUS 1.2, realistic content,
exports that read back to the cent."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops import focus
from finops.generate import PROVIDER_KEYS, generate, make_org, write_exports

END = dt.date(2026, 11, 1)
SCHEMA = pl.Schema({c.name: c.dtype for c in focus.COLUMNS})
ENUMS = Path(__file__).parent / "data" / "focus" / "validator_enums_1_2.json"


def collect(**kwargs: object) -> pl.DataFrame:
    frames = list(generate(**kwargs))  # type: ignore[arg-type]
    return pl.concat(frames) if frames else focus.empty_frame()


@pytest.fixture(scope="module")
def demo() -> pl.DataFrame:
    """What ``make demo`` generates: 90 days, 6 teams, three clouds, daily."""
    return collect(days=90, end=END, seed=0)


def tag_key(key: str) -> pl.Expr:
    return pl.col("Tags").str.json_path_match(f"$.{key}")


# --- the organisation --------------------------------------------------------------------------------


def test_org_has_teams_accounts_and_commitments_per_cloud() -> None:
    org = make_org(6, seed=0)
    assert [t.name for t in org.teams] == ["ml-research", "ml-platform", "recsys", "nlp", "vision", "data-eng"]
    assert all(2 <= len(t.projects) <= 4 for t in org.teams)
    aws, gcp, azure = (org.accounts_of(p) for p in PROVIDER_KEYS)
    assert {a.billing_account_id for a in aws} == {org.billing_accounts[0][0]}
    assert re.fullmatch(r"\d{12}", aws[0].billing_account_id)
    assert all(re.fullmatch(r"\d{12}", a.sub_account_id) for a in aws)
    assert re.fullmatch(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}", gcp[0].billing_account_id)
    assert all(re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", a.sub_account_id) for a in gcp)
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert all(re.fullmatch(guid, a.sub_account_id) for a in azure)
    assert len({a.sub_account_id for a in org.accounts}) == len(org.accounts)
    assert {c.provider for c in org.commitments} == set(PROVIDER_KEYS)
    assert {c.category for c in org.commitments} == {"Spend", "Usage"}
    assert make_org(6, seed=0) == org and make_org(6, seed=1) != org
    assert len(make_org(20, seed=0).teams) == 20


# --- determinism and row counts ----------------------------------------------------------------------


def test_same_seed_same_output_and_other_seed_differs() -> None:
    kwargs = dict(rows=4_000, days=10, end=END, teams=3)
    a, b = collect(seed=7, **kwargs), collect(seed=7, **kwargs)
    assert a.equals(b)
    c = collect(seed=8, **kwargs)
    assert c.height == a.height and not c.equals(a)
    assert set(c["ResourceId"].drop_nulls()) != set(a["ResourceId"].drop_nulls())


def test_output_does_not_depend_on_batch_size() -> None:
    kwargs = dict(rows=300_000, days=5, end=END, seed=3)
    small = list(generate(batch_rows=70_000, **kwargs))  # type: ignore[arg-type]
    assert [f.height for f in small] == [70_000] * 4 + [20_000]
    assert pl.concat(small).equals(collect(batch_rows=250_000, **kwargs))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(0, 6_000), days=st.integers(1, 40), grain=st.sampled_from(["daily", "hourly"]),
       teams=st.integers(1, 8), seed=st.integers(0, 2**32),
       providers=st.lists(st.sampled_from(PROVIDER_KEYS), min_size=1, max_size=3, unique=True))
def test_exact_row_count_and_valid_focus(rows: int, days: int, grain: str, teams: int, seed: int,
                                         providers: list[str]) -> None:
    df = collect(rows=rows, days=days, end=END, grain=grain, teams=teams, seed=seed, providers=providers,
                 batch_rows=1_500)
    assert df.height == rows
    assert df.schema == SCHEMA
    assert focus.validate(df) == []
    start = dt.datetime.combine(END - dt.timedelta(days=days), dt.time(), dt.UTC)
    usage = df.filter(pl.col("ChargeCategory") != "Purchase")  # a one-time purchase covers its term
    assert usage.filter((pl.col("ChargePeriodStart") < start) | (pl.col("ChargePeriodEnd") >
                                                                  start + dt.timedelta(days=days))).is_empty()
    names = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Microsoft"}
    assert set(df["ProviderName"]) <= {names[p] for p in providers}


def test_rows_spread_over_the_window() -> None:
    df = collect(rows=10_000, days=30, end=END, seed=1)
    per_day = df.group_by(pl.col("ChargePeriodStart").dt.date()).len()
    assert per_day.height == 30
    assert per_day["len"].min() > 200


def test_bad_arguments_raise_at_call() -> None:
    with pytest.raises(ValueError, match="rows"):
        generate(rows=-1)
    with pytest.raises(ValueError, match="provider"):
        generate(providers=("oracle",))
    with pytest.raises(ValueError, match="grain"):
        generate(grain="weekly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="days"):
        generate(days=0)
    with pytest.raises(ValueError, match="teams"):
        generate(teams=0)


# --- the demo run: valid FOCUS and everything present ------------------------------------------------


def test_demo_is_valid_and_conformed(demo: pl.DataFrame) -> None:
    assert 25_000 < demo.height < 60_000
    assert demo.schema == SCHEMA
    assert focus.validate(demo) == []
    assert focus.conform(demo.lazy()).collect().equals(demo)
    assert not any(name.startswith("x_") for name in demo.columns)
    assert demo.select(pl.col(c.name).null_count() for c in focus.COLUMNS if c.level == "Mandatory"
                       and c.name not in ("BillingAccountName", "ChargeClass", "PricingQuantity", "PricingUnit",
                                          "ChargeDescription")).sum_horizontal().item() == 0
    assert demo["ChargeDescription"].null_count() == 0


def test_service_pairs_are_focus_1_2(demo: pl.DataFrame) -> None:
    pairs = demo.select("ServiceCategory", "ServiceSubcategory").unique().rows()
    allowed = json.loads(ENUMS.read_text())["ServiceSubcategory"] if ENUMS.exists() else None
    for category, subcategory in pairs:
        assert category in focus.SERVICE_CATEGORIES
        if allowed is not None:
            assert allowed[subcategory] == category
    per_service = demo.group_by("ServiceName").agg(pl.col("ServiceCategory").n_unique())
    assert per_service["ServiceCategory"].max() == 1


def test_demo_covers_providers_teams_services_and_charge_kinds(demo: pl.DataFrame) -> None:
    assert set(demo["ProviderName"]) == {"AWS", "Google Cloud", "Microsoft"}
    assert set(demo["PublisherName"]) == {"Amazon Web Services, Inc.", "Google Cloud", "Microsoft"}
    assert set(demo.select(tag_key("team")).to_series().drop_nulls()) >= {
        "ml-research", "ml-platform", "recsys", "nlp", "vision", "data-eng"}
    assert set(demo["ChargeCategory"]) == {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    assert set(demo["PricingCategory"].drop_nulls()) == {"Standard", "Dynamic", "Committed"}
    assert set(demo["CommitmentDiscountStatus"].drop_nulls()) == {"Used", "Unused"}
    assert set(demo["CommitmentDiscountType"].drop_nulls()) >= {"Savings Plan", "Reserved Instance",
                                                                "Committed Use Discount", "Reservation"}
    purchases = demo.filter(pl.col("ChargeCategory") == "Purchase")
    assert set(purchases["ChargeFrequency"]) == {"One-Time", "Recurring"}
    assert set(demo["ServiceCategory"]) >= {"Compute", "AI and Machine Learning", "Storage", "Networking"}
    assert set(demo["ServiceName"]) >= {"Amazon Elastic Compute Cloud", "Amazon SageMaker", "Compute Engine",
                                        "Cloud TPU", "Vertex AI", "Virtual Machines", "Azure Machine Learning",
                                        "Amazon Simple Storage Service", "Cloud Storage", "Bandwidth"}
    instance_types = set(demo.select(pl.col("SkuPriceDetails").str.json_path_match("$.InstanceType"))
                         .to_series().drop_nulls())
    assert instance_types >= {"p4d.24xlarge", "p5.48xlarge", "g5.xlarge", "a2-highgpu-8g", "a3-highgpu-8g",
                              "Standard_ND96asr_v4", "Standard_NC24ads_A100_v4"}
    assert any(t.startswith("v5litepod") for t in instance_types)
    assert set(demo["RegionId"].drop_nulls()) >= {"us-east-1", "us-central1", "eastus"}
    # Both markets for GPUs on every cloud.
    gpu = demo.filter(pl.col("SkuPriceDetails").str.contains('"GpuCount"'))
    markets = gpu.group_by("ProviderName").agg(pl.col("PricingCategory").unique())
    assert all({"Standard", "Dynamic"} <= set(m) for m in markets["PricingCategory"])


def test_demo_has_untagged_and_mistagged_spend(demo: pl.DataFrame) -> None:
    usage = demo.filter(pl.col("ChargeCategory") == "Usage", pl.col("ResourceId").is_not_null(),
                        pl.col("CommitmentDiscountStatus").is_null() | (pl.col("CommitmentDiscountStatus") == "Used"))
    untagged = usage["Tags"].null_count() / usage.height
    assert 0.03 < untagged < 0.2
    tags = usage["Tags"].drop_nulls().unique().to_list()
    parsed = [json.loads(t) for t in tags]
    teams = {t.name for t in make_org(6, 0).teams}
    assert any(p.get("Team") == "ML-Research" for p in parsed)  # key and value case drift
    assert any(p.get("team") == "ml_research" for p in parsed)  # underscores
    assert any("team" in p and p["team"] not in teams and "_" not in p["team"] for p in parsed)  # unknown
    assert any("team" not in p and "Team" not in p for p in parsed)  # no team at all
    assert any("finops-workload" in p for p in parsed)  # stamped by our launchers
    assert all(all(isinstance(v, str) for v in p.values()) for p in parsed)
    gcp = demo.filter(pl.col("ProviderName") == "Google Cloud")["Tags"].drop_nulls().unique()
    assert all(t == t.lower() for t in gcp)  # GCP labels are lower case


def test_resources_are_stable(demo: pl.DataFrame) -> None:
    usage = demo.filter(pl.col("ChargeCategory") == "Usage", pl.col("CommitmentDiscountStatus").is_null()
                        | (pl.col("CommitmentDiscountStatus") == "Used"))
    per_resource = usage.group_by("ResourceId").agg(
        pl.col("SubAccountId", "RegionId", "ServiceName", "SkuId", "ResourceName", "Tags").n_unique())
    assert per_resource.drop("ResourceId").max().row(0) == (1,) * 6
    days = usage.group_by("ResourceId").agg(pl.col("ChargePeriodStart").n_unique())["ChargePeriodStart"]
    assert days.max() == 90 and days.min() < 90  # a steady core, and a tail that comes and goes


# --- the numbers ---------------------------------------------------------------------------------------


def test_cost_columns_are_consistent(demo: pl.DataFrame) -> None:
    priced = demo.filter(pl.col("ListUnitPrice").is_not_null())
    assert priced.filter(pl.col("ListUnitPrice") * pl.col("PricingQuantity") != pl.col("ListCost")).is_empty()
    assert priced.filter(pl.col("ContractedUnitPrice") * pl.col("PricingQuantity")
                         != pl.col("ContractedCost")).is_empty()
    usage = demo.filter(pl.col("ChargeCategory") == "Usage")
    assert usage.filter(pl.col("ListCost") < pl.col("ContractedCost")).is_empty()
    assert usage.filter(pl.col("ContractedCost") < pl.col("EffectiveCost")).is_empty()
    assert usage.filter(pl.col("PricingQuantity") <= 0).is_empty()
    spot = usage.filter(pl.col("PricingCategory") == "Dynamic")
    assert spot.filter(pl.col("ContractedUnitPrice") > pl.col("ListUnitPrice") * Decimal("0.5")).is_empty()
    committed = usage.filter(pl.col("PricingCategory") == "Committed")
    assert committed.filter(pl.col("BilledCost") != 0).is_empty()
    assert committed.filter(pl.col("CommitmentDiscountStatus") == "Unused")["ConsumedQuantity"].null_count() \
        == committed.filter(pl.col("CommitmentDiscountStatus") == "Unused").height
    assert demo.filter(pl.col("ChargeCategory") == "Purchase", pl.col("EffectiveCost") != 0).is_empty()
    assert demo.filter(pl.col("ChargeCategory") == "Purchase", pl.col("ChargeFrequency") == "Usage-Based").is_empty()
    assert demo.filter(pl.col("ChargeCategory") == "Credit", pl.col("BilledCost") >= 0).is_empty()
    for col in ("BilledCost", "ListCost", "ContractedCost"):
        assert demo.filter(pl.col("ChargeCategory").is_in(["Credit", "Adjustment"]),
                           pl.col(col) != pl.col("EffectiveCost")).is_empty()
    assert demo.filter(pl.col("PricingCurrencyEffectiveCost") != pl.col("EffectiveCost")).is_empty()


def test_periods_and_billing_months(demo: pl.DataFrame) -> None:
    assert demo.filter(pl.col("ChargePeriodEnd") <= pl.col("ChargePeriodStart")).is_empty()
    assert demo.filter(pl.col("BillingPeriodStart") != pl.col("ChargePeriodStart").dt.truncate("1mo")).is_empty()
    assert demo.filter(pl.col("BillingPeriodEnd") != pl.col("BillingPeriodStart").dt.offset_by("1mo")).is_empty()
    daily = demo.filter(pl.col("ChargeCategory") == "Usage")
    assert set((daily["ChargePeriodEnd"] - daily["ChargePeriodStart"]).unique()) == {dt.timedelta(days=1)}


def test_commitment_fees_equal_used_plus_unused_each_period(demo: pl.DataFrame) -> None:
    c = demo.filter(pl.col("CommitmentDiscountId").is_not_null())
    key = ["CommitmentDiscountId", "ChargePeriodStart"]
    fees = c.filter(pl.col("ChargeFrequency") == "Recurring").group_by(key).agg(pl.col("BilledCost").sum())
    amortised = c.filter(pl.col("ChargeCategory") == "Usage").group_by(key).agg(pl.col("EffectiveCost").sum())
    joined = fees.join(amortised, on=key, how="inner")
    assert joined.height == fees.height > 0
    assert joined.filter(pl.col("BilledCost") != pl.col("EffectiveCost")).is_empty()
    unused = c.filter(pl.col("CommitmentDiscountStatus") == "Unused")
    assert unused.filter(pl.col("EffectiveCost") <= 0).is_empty()
    assert (unused["ResourceId"] == unused["CommitmentDiscountId"]).all()
    used = c.filter(pl.col("CommitmentDiscountStatus") == "Used")["EffectiveCost"].sum()
    utilisation = used / (used + unused["EffectiveCost"].sum())
    assert Decimal("0.5") < utilisation < Decimal("0.99")


def test_tax_is_charged_on_each_month(demo: pl.DataFrame) -> None:
    tax = demo.filter(pl.col("ChargeCategory") == "Tax")
    assert tax.select("SkuId", "ListUnitPrice", "PricingQuantity", "PricingCategory").null_count().row(0) \
        == (tax.height,) * 4
    months = demo["BillingPeriodStart"].n_unique()
    assert tax.height == months * demo["SubAccountId"].n_unique()
    base = (demo.filter(pl.col("ChargeCategory") != "Tax").group_by("SubAccountId", "BillingPeriodStart")
            .agg(pl.col("BilledCost").sum().alias("base")))
    joined = tax.join(base, on=["SubAccountId", "BillingPeriodStart"])
    rates = {"AWS": Decimal("0.0625"), "Google Cloud": Decimal("0.0725"), "Microsoft": Decimal("0.06")}
    for provider, billed, base_cost in joined.select("ProviderName", "BilledCost", "base").rows():
        assert billed == (rates[provider] * base_cost).quantize(Decimal("0.01"))


# --- other shapes ------------------------------------------------------------------------------------


def test_hourly_grain() -> None:
    df = collect(days=2, end=END, seed=5, grain="hourly", teams=2)
    assert focus.validate(df) == []
    usage = df.filter(pl.col("ChargeCategory") == "Usage")
    assert set((usage["ChargePeriodEnd"] - usage["ChargePeriodStart"]).unique()) == {dt.timedelta(hours=1)}
    assert usage["ChargePeriodStart"].n_unique() == 48
    assert usage.filter(pl.col("PricingUnit") == "Hours", pl.col("ConsumedQuantity") > 1).is_empty()


def test_one_provider_only() -> None:
    df = collect(days=20, end=END, seed=2, providers=("gcp",))
    assert set(df["ProviderName"]) == {"Google Cloud"}
    assert set(df["ChargeCategory"]) >= {"Usage", "Purchase", "Tax", "Credit"}


# --- exports -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz"])
def test_write_exports_round_trip(tmp_path: Path, fmt: str) -> None:
    kwargs = dict(days=45, end=END, seed=4, teams=3, batch_rows=3_000)
    generated = collect(**kwargs)
    paths = write_exports(tmp_path, fmt=fmt, **kwargs)  # type: ignore[arg-type]
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"{prov}/focus-{m}.{fmt}" for prov in ("aws", "azure", "gcp") for m in ("2026-09", "2026-10")]
    parts = []
    for p in paths:
        # CSV: every field a string, as an ingest would read it; gzip is detected from the content.
        raw = pl.read_parquet(p) if fmt == "parquet" else pl.read_csv(p, infer_schema=False)
        part = focus.conform(raw.lazy()).collect()
        assert part["BillingPeriodStart"].n_unique() == 1 and part["ProviderName"].n_unique() == 1
        parts.append(part)
    back = pl.concat(parts)
    assert back.schema == SCHEMA
    assert back["BilledCost"].sum() == generated["BilledCost"].sum()
    assert back["EffectiveCost"].sum() == generated["EffectiveCost"].sum()
    assert back.sort(pl.all()).equals(generated.sort(pl.all()))


def test_csv_export_looks_like_a_cloud_export(tmp_path: Path) -> None:
    paths = write_exports(tmp_path, fmt="csv.gz", days=3, end=END, seed=1, providers=("azure",))
    text = gzip.decompress(paths[0].read_bytes()).decode()
    header, first = text.splitlines()[:2]
    assert header.split(",") == [c.name for c in focus.COLUMNS]
    assert re.search(r",2026-10-29T00:00:00Z,", first)
    assert ",," in first  # nulls are empty fields
    assert not re.search(r"\.\d*0,", first)  # no trailing zeros on decimals


@pytest.mark.slow
def test_generated_data_passes_focus_validator(validator_venv: Path, tmp_path: Path) -> None:
    from tests import focus_validator as fv

    path = tmp_path / "generated.parquet"
    collect(days=40, end=dt.date(2026, 10, 20), seed=3).write_parquet(path)
    result = fv.run_focus_validator(path)
    assert result.passed, result.blocking
    assert result.counts["pass"] > 300
