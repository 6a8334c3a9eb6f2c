"""CUR → FOCUS mapping (collectors/aws/cur.py) on the real legacy CUR samples, on CUR 2.0 Parquet written
from generated FOCUS data, and on legacy line items of every commitment type built from a real row."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.aws import cur
from collectors.files import IngestError, read_raw
from finops import focus
from finops.generate import generate
from finops.generate.native_aws import write_cur2
from tests import focus_validator as fv
from tests.collectors.aws.cur_samples import ANON, KOKU, column_total, read_rows, template, to_csv

RI = "arn:aws:ec2:us-east-1:123412340534:reserved-instances/6c1f3b2e-1111-4a5b-9c7d-0a1b2c3d4e5f"
SP = "arn:aws:savingsplans::123412340534:savingsplan/7e0d2c1b-2222-4f3e-8a9b-1c2d3e4f5a6b"


def normalise(path: Path) -> pl.DataFrame:
    return cur.normalise(read_raw(path), str(path)).collect()


def errors(frame: pl.DataFrame) -> list[str]:
    return [str(p) for p in focus.validate(frame) if p.severity == "error"]


# -- the real legacy sample --------------------------------------------------------------------
def test_real_legacy_cur_maps_to_valid_focus_with_the_cur_totals() -> None:
    _, rows = read_rows(ANON)
    out = normalise(ANON)
    assert errors(out) == []
    assert out.height == len(rows)
    assert out["BilledCost"].sum() == column_total(rows, "lineItem/UnblendedCost")
    assert out["ListCost"].sum() == column_total(rows, "pricing/publicOnDemandCost")
    assert out["BillingAccountId"].unique().to_list() == ["123412340534"]
    assert out["InvoiceIssuerName"].unique().to_list() == ["AWS"]
    by_type = out.group_by("ChargeCategory").len().sort("ChargeCategory").rows()
    assert by_type == [("Tax", 12), ("Usage", 1269)]
    tax = out.filter(pl.col("ChargeCategory") == "Tax")
    assert tax["PricingQuantity"].null_count() == tax.height and tax["SkuId"].null_count() == tax.height
    s3 = out.filter(pl.col("ServiceName") == "Amazon Simple Storage Service")
    assert set(s3["ServiceCategory"]) == {"Storage"}
    assert set(out["PricingUnit"].drop_nulls()) >= {"GB-Months", "Requests"}  # GB-Mo, Request rewritten


def test_real_legacy_cur_passes_the_focus_validator(validator_venv: Path, tmp_path: Path) -> None:
    normalise(ANON).write_parquet(tmp_path / "cur.parquet")
    result = fv.run_focus_validator(tmp_path / "cur.parquet")
    assert result.passed, result.blocking


# -- line items of every kind, from a real row ---------------------------------------------------
def _lines() -> tuple[list[str], list[dict[str, str]]]:
    header, base = template()
    header = [*header, "reservation/ReservationARN", "resourceTags/user:team", "resourceTags/aws:createdBy"]

    def line(kind: str, cost: str, **extra: str) -> dict[str, str]:
        row = dict(base, **{"lineItem/LineItemType": kind, "lineItem/UnblendedCost": cost})
        return row | {k.replace("__", "/"): v for k, v in extra.items()}

    rows = [
        line("Usage", "1.5", lineItem__UsageType="USE1-SpotUsage:p3.2xlarge", pricing__publicOnDemandCost="3.06",
             pricing__unit="Hrs", **{"resourceTags/user:team": 'ml "core"'}),
        line("DiscountedUsage", "0", reservation__ReservationARN=RI, reservation__EffectiveCost="2.1",
             pricing__term="Reserved",
             **{"resourceTags/user:team": "research", "resourceTags/aws:createdBy": "role/x"}),
        line("RIFee", "720.0", reservation__ReservationARN=RI, lineItem__UsageAmount="720",
             reservation__UnusedAmortizedUpfrontFeeForBillingPeriod="10.5", reservation__UnusedRecurringFee="20.25"),
        line("Fee", "5000", reservation__ReservationARN=RI, lineItem__UsageAmount="1"),
        line("SavingsPlanCoveredUsage", "3.06", savingsPlan__SavingsPlanARN=SP,
             savingsPlan__SavingsPlanEffectiveCost="2.0"),
        line("SavingsPlanNegation", "-3.06", savingsPlan__SavingsPlanARN=SP),
        line("SavingsPlanRecurringFee", "100", savingsPlan__SavingsPlanARN=SP,
             savingsPlan__TotalCommitmentToDate="100", savingsPlan__UsedCommitment="80.5"),
        line("SavingsPlanUpfrontFee", "8760", savingsPlan__SavingsPlanARN=SP),
        line("Credit", "-12.34", pricing__publicOnDemandCost="0"),
        line("Refund", "-1.5", pricing__publicOnDemandCost="0"),
        line("BundledDiscount", "-0.5", pricing__publicOnDemandCost="0"),
        line("Tax", "7.7", lineItem__TaxType="VAT", product__sku="", pricing__publicOnDemandCost="0"),
    ]
    return header, rows


def amortized(row: dict[str, str]) -> Decimal:
    """AWS's amortised cost of a CUR line (the formula of AWS's own amortised-cost queries)."""
    d = lambda k: Decimal(row.get(k) or 0)  # noqa: E731
    kind = row["lineItem/LineItemType"]
    if kind == "DiscountedUsage":
        return d("reservation/EffectiveCost")
    if kind == "SavingsPlanCoveredUsage":
        return d("savingsPlan/SavingsPlanEffectiveCost")
    if kind in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
        return Decimal(0)
    if kind == "SavingsPlanRecurringFee":
        return d("savingsPlan/TotalCommitmentToDate") - d("savingsPlan/UsedCommitment")
    if kind == "RIFee":
        return d("reservation/UnusedAmortizedUpfrontFeeForBillingPeriod") + d("reservation/UnusedRecurringFee")
    if kind == "Fee" and row.get("reservation/ReservationARN"):
        return Decimal(0)
    return d("lineItem/UnblendedCost")


def test_every_line_item_type_lands_where_focus_wants_it(tmp_path: Path) -> None:
    header, rows = _lines()
    (tmp_path / "cur.csv").write_bytes(to_csv(header, rows))
    out = normalise(tmp_path / "cur.csv")
    assert errors(out) == []
    kinds = dict(out.filter(~pl.col("x_LineItemType").str.ends_with(":Unused"))
                 .select("x_LineItemType", "ChargeCategory").iter_rows())
    assert kinds == {"Usage": "Usage", "DiscountedUsage": "Usage", "RIFee": "Purchase", "Fee": "Purchase",
                     "SavingsPlanCoveredUsage": "Usage", "SavingsPlanNegation": "Usage",
                     "SavingsPlanRecurringFee": "Purchase", "SavingsPlanUpfrontFee": "Purchase",
                     "Credit": "Credit", "Refund": "Adjustment", "BundledDiscount": "Credit", "Tax": "Tax"}
    assert out["BilledCost"].sum() == column_total(rows, "lineItem/UnblendedCost")
    assert out["EffectiveCost"].sum() == sum(map(amortized, rows))
    # Purchases carry no EffectiveCost; what a commitment left unused is a Usage row of its own.
    assert set(out.filter(pl.col("ChargeCategory") == "Purchase")["EffectiveCost"]) == {Decimal(0)}
    unused = out.filter(pl.col("CommitmentDiscountStatus") == "Unused").sort("CommitmentDiscountType")
    assert unused.select("CommitmentDiscountType", "EffectiveCost", "BilledCost").rows() == [
        ("Reserved Instance", Decimal("30.75"), Decimal(0)), ("Savings Plan", Decimal("19.5"), Decimal(0))]
    committed = out.filter(pl.col("CommitmentDiscountId").is_not_null())
    reservations = committed.filter(pl.col("CommitmentDiscountType") == "Reserved Instance")
    savings_plans = committed.filter(pl.col("CommitmentDiscountType") == "Savings Plan")
    assert set(reservations["CommitmentDiscountId"]) == {RI}
    assert set(savings_plans["CommitmentDiscountCategory"]) == {"Spend"}
    usage = out.filter(pl.col("ChargeCategory") == "Usage")
    pricing = dict(usage.select("x_LineItemType", "PricingCategory").iter_rows())
    assert pricing["Usage"] == "Dynamic" and pricing["DiscountedUsage"] == "Committed"
    tags = [json.loads(t) for t in out.filter(pl.col("Tags").is_not_null())["Tags"]]
    assert {"team": 'ml "core"'} in tags and {"aws:createdBy": "role/x", "team": "research"} in tags


def test_line_items_of_every_kind_pass_the_focus_validator(validator_venv: Path, tmp_path: Path) -> None:
    header, rows = _lines()
    (tmp_path / "cur.csv").write_bytes(to_csv(header, rows))
    normalise(tmp_path / "cur.csv").write_parquet(tmp_path / "out.parquet")
    result = fv.run_focus_validator(tmp_path / "out.parquet")
    assert result.passed, result.blocking


KINDS = ["Usage", "DiscountedUsage", "RIFee", "Fee", "SavingsPlanCoveredUsage", "SavingsPlanNegation",
         "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "Credit", "Refund", "Tax", "EdpDiscount"]
money = st.decimals(min_value=Decimal(-1000), max_value=Decimal(100000), places=10, allow_nan=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KINDS), money, money, money, st.booleans()), min_size=1, max_size=30))
def test_totals_match_the_cur_for_any_mix_of_line_items(tmp_path: Path, lines: list) -> None:
    """BilledCost sums to the unblended cost and EffectiveCost to AWS's amortised cost, whatever the mix."""
    header, base = template()
    header = [*header, "reservation/ReservationARN"]
    rows = []
    for kind, cost, a, b, ri in lines:
        row = dict(base, **{"lineItem/LineItemType": kind, "lineItem/UnblendedCost": str(cost)})
        reserved = (ri or kind in ("RIFee", "DiscountedUsage")) and "SavingsPlan" not in kind
        arn = "reservation/ReservationARN" if reserved else "savingsPlan/SavingsPlanARN"
        row[arn] = RI if arn.startswith("reservation") else SP
        row.update({"reservation/EffectiveCost": str(a), "savingsPlan/SavingsPlanEffectiveCost": str(a),
                    "reservation/UnusedRecurringFee": str(b), "savingsPlan/TotalCommitmentToDate": str(a),
                    "savingsPlan/UsedCommitment": str(b)})
        rows.append(row)
    path = tmp_path / "cur.csv"
    path.write_bytes(to_csv(header, rows))
    out = normalise(path)
    assert out["BilledCost"].sum() == column_total(rows, "lineItem/UnblendedCost")
    assert out["EffectiveCost"].sum() == sum(map(amortized, rows))


# -- CUR 2.0: generated FOCUS → CUR 2.0 Parquet → FOCUS -------------------------------------------
@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return pl.concat(generate(days=40, teams=3, seed=3, providers=("aws",), end=dt.date(2026, 10, 5)))


def test_cur2_round_trip_keeps_the_totals(generated: pl.DataFrame, tmp_path: Path) -> None:
    paths = write_cur2(generated, tmp_path)
    data = [p for p in paths if p.suffix == ".parquet"]
    assert [p.parent.name for p in data] == [
        "BILLING_PERIOD=2026-08", "BILLING_PERIOD=2026-09", "BILLING_PERIOD=2026-10"]
    assert all(cur.FORMATS[1].matches(read_raw(p).collect_schema().names()) for p in data)
    out = pl.concat([normalise(p) for p in data])
    assert errors(out) == []
    keys = ["BillingAccountId", "SubAccountId", "BillingPeriodStart"]

    def sums(frame: pl.DataFrame, col: str) -> dict:
        return {(a, s, p): v for a, s, p, v in frame.group_by(keys).agg(pl.col(col).sum()).iter_rows()}

    assert sums(out, "BilledCost") == sums(generated, "BilledCost")
    assert sums(out, "ListCost") == sums(generated, "ListCost")
    # A CUR has no amortised tax: tax rows come back with EffectiveCost = BilledCost; all else is exact.
    not_tax = pl.col("ChargeCategory") != "Tax"
    assert sums(out.filter(not_tax), "EffectiveCost") == sums(generated.filter(not_tax), "EffectiveCost")
    tax = out.filter(~not_tax)
    assert (tax["EffectiveCost"] == tax["BilledCost"]).all()
    assert sorted(out["Tags"].drop_nulls().unique()) == sorted(generated["Tags"].drop_nulls().unique())
    assert set(out["CommitmentDiscountId"].drop_nulls()) == set(generated["CommitmentDiscountId"].drop_nulls())


def test_cur2_as_csv_with_json_maps_maps_like_the_parquet(generated: pl.DataFrame, tmp_path: Path) -> None:
    """CUR 2.0 delivered as CSV carries ``resource_tags`` and ``product`` as JSON text."""
    (parquet,) = [p for p in write_cur2(generated.filter(pl.col("BillingPeriodStart").dt.month() == 9), tmp_path)
                  if p.suffix == ".parquet"]
    frame = pl.read_parquet(parquet)
    as_json = lambda s: None if s is None else json.dumps({d["key"]: d["value"] for d in s})  # noqa: E731
    text = frame.with_columns(
        pl.Series("resource_tags", [as_json(v) for v in frame["resource_tags"].map.entries().to_list()]),
        pl.Series("product", [as_json(v) for v in frame["product"].map.entries().to_list()]))
    text.write_csv(tmp_path / "cur2.csv")
    from_csv, from_parquet = normalise(tmp_path / "cur2.csv"), normalise(parquet)
    assert errors(from_csv) == []
    for col in ("BilledCost", "EffectiveCost", "Tags", "ServiceName", "CommitmentDiscountId"):
        assert from_csv[col].to_list() == from_parquet[col].to_list(), col


def test_cur2_manifest_names_its_data_files(generated: pl.DataFrame, tmp_path: Path) -> None:
    paths = write_cur2(generated, tmp_path, bucket="b", prefix="exports", export="demo")
    manifests = [p for p in paths if p.name.endswith("-Manifest.json")]
    assert [p.relative_to(tmp_path).as_posix() for p in manifests] == [
        f"exports/demo/metadata/BILLING_PERIOD=2026-{m:02d}/demo-Manifest.json" for m in (8, 9, 10)]
    doc = json.loads(manifests[0].read_text())
    assert doc["dataFiles"] == ["s3://b/exports/demo/data/BILLING_PERIOD=2026-08/demo-00001.snappy.parquet"]
    assert (tmp_path / doc["dataFiles"][0].removeprefix("s3://b/")).exists()


# -- spellings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, key", [
    ("lineItem/UnblendedCost", "line_item_unblended_cost"),
    ("bill/PayerAccountId", "bill_payer_account_id"),
    ("pricing/publicOnDemandCost", "pricing_public_on_demand_cost"),
    ("savingsPlan/SavingsPlanARN", "savings_plan_savings_plan_arn"),
    ("savings_plan_savings_plan_a_r_n", "savings_plan_savings_plan_arn"),
    ("reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
     "reservation_unused_amortized_upfront_fee_for_billing_period"),
    ("product/ProductName", "product_product_name"),
    ("resourceTags/user:Cost Center", "resource_tags/user:Cost Center"),
])
def test_every_cur_generation_spells_to_the_cur2_name(name: str, key: str) -> None:
    assert cur.canonical(name) == key


def test_legacy_parquet_spelling_maps_like_the_csv(tmp_path: Path) -> None:
    """The Athena-style legacy Parquet (snake_case, ``resource_tags_user_*`` columns) maps like its CSV."""
    header, rows = read_rows(ANON)
    frame = pl.read_csv(ANON, infer_schema=False)
    snake = frame.rename({c: cur.canonical(c) for c in header}).with_columns(
        pl.lit("research").alias("resource_tags_user_team"),
        pl.col("line_item_unblended_cost").cast(pl.Float64))
    snake.write_parquet(tmp_path / "legacy.parquet")
    out = normalise(tmp_path / "legacy.parquet")
    assert cur.FORMATS[1].matches(snake.columns) and not cur.FORMATS[0].matches(snake.columns)
    assert errors(out) == []
    assert abs(out["BilledCost"].sum() - column_total(rows, "lineItem/UnblendedCost")) < Decimal("1e-12")
    assert set(out["Tags"]) == {'{"team":"research"}'}


def test_formats_recognise_cur_headers_only() -> None:
    legacy, _ = read_rows(ANON)
    assert [f.name for f in cur.FORMATS if f.matches(legacy)] == ["aws-cur"]
    focus_header = [c.name for c in focus.COLUMNS]
    assert not any(f.matches(focus_header) for f in cur.FORMATS)


# -- bad input ------------------------------------------------------------------------------------
def test_koku_cur_with_a_fused_header_is_refused_by_name() -> None:
    with pytest.raises(IngestError) as e:
        cur.to_focus(read_raw(KOKU), str(KOKU))
    assert KOKU.name in str(e.value) and "pricing/OfferingClasspricing/PurchaseOption" in str(e.value)


def test_a_cur_missing_a_required_column_names_it(tmp_path: Path) -> None:
    header, rows = read_rows(ANON)
    cut = [h for h in header if h != "lineItem/UnblendedCost"]
    (tmp_path / "cut.csv").write_bytes(to_csv(cut, rows[:5]))
    with pytest.raises(cur.CurError, match=r"cut\.csv: .*missing column\(s\) lineItem/UnblendedCost"):
        cur.to_focus(read_raw(tmp_path / "cut.csv"), str(tmp_path / "cut.csv"))


def test_an_unknown_currency_fails_validation_by_name(tmp_path: Path) -> None:
    header, rows = read_rows(ANON)
    rows = [dict(r, **{"lineItem/CurrencyCode": "XYZ"}) for r in rows[:10]]
    (tmp_path / "c.csv").write_bytes(to_csv(header, rows))
    problems = [p for p in focus.validate(normalise(tmp_path / "c.csv")) if p.column == "BillingCurrency"]
    assert problems and "ISO 4217" in problems[0].rule and "XYZ" in problems[0].examples
