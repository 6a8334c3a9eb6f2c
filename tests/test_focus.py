"""The FOCUS contract: conform() and validate() on the real samples and on hand-made defects."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops import focus
from tests.conftest import SAMPLE_10, SAMPLE_12, SAMPLE_13


def raw(path: Path) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False)


def csv_sum(path: Path, column: str) -> Decimal:
    """Independent oracle: the column summed with Python's csv and Decimal."""
    with open(path, newline="") as f:
        return sum((Decimal(r[column]) for r in csv.DictReader(f) if r[column] not in ("", "NULL")), Decimal(0))


@pytest.mark.parametrize("path", [SAMPLE_10, SAMPLE_12, SAMPLE_13], ids=["1.0", "1.2", "1.3"])
def test_conform_gives_the_1_2_schema_and_keeps_every_cent(path: Path) -> None:
    df = focus.conform(raw(path)).collect()
    names = df.columns
    assert names[: len(focus.COLUMNS)] == [c.name for c in focus.COLUMNS]
    for c in focus.COLUMNS:
        assert df.schema[c.name] == c.dtype, c.name
    assert all(n.startswith("x_") for n in names[len(focus.COLUMNS):])
    for col in focus.COST_COLUMNS:
        assert df[col].sum() == pytest.approx(csv_sum(path, col), abs=Decimal("1e-12"))
        assert Decimal(df[col].sum()) == csv_sum(path, col)


def test_version_1_3_columns_are_mapped_or_kept_as_extensions() -> None:
    df = focus.conform(raw(SAMPLE_13)).collect()
    assert {"x_ServiceProviderName", "x_HostProviderName", "x_ContractApplied", "x_AllocatedTags"} <= set(df.columns)
    assert df["ProviderName"].to_list() == pl.read_csv(SAMPLE_13, infer_schema=False)["ProviderName"].to_list()


def test_1_3_service_provider_name_replaces_an_absent_provider_name() -> None:
    lf = raw(SAMPLE_13).drop("ProviderName")
    df = focus.conform(lf).collect()
    assert df["ProviderName"].unique().to_list() == ["AWS"]
    assert "x_ServiceProviderName" not in df.columns


def test_null_strings_and_spaced_datetimes_of_the_real_1_0_sample() -> None:
    df = focus.conform(raw(SAMPLE_10)).collect()
    assert df["ChargeClass"].null_count() == 1000  # the literal NULL everywhere
    assert df["AvailabilityZone"].null_count() == 893  # the literal NULL in 893 rows
    oracle = df.filter(pl.col("ProviderName") == "Oracle")
    assert oracle["ContractedCost"].null_count() == 7  # empty fields read as null too
    first = pl.read_csv(SAMPLE_10, infer_schema=False, n_rows=1)
    assert first["ChargePeriodStart"][0] == "2024-09-18 22:00:00"
    assert str(df["ChargePeriodStart"][0]) == "2024-09-18 22:00:00+00:00"
    assert "x_Id" in df.columns  # not a FOCUS column, kept with the custom-column prefix


def test_enumerated_values_get_the_spec_spelling() -> None:
    df = focus.conform(raw(SAMPLE_10)).collect()
    oracle = df.filter(pl.col("ProviderName") == "Oracle")
    assert set(oracle["ChargeFrequency"].to_list()) == {"Usage-Based"}  # written "Usage-based"


def test_missing_mandatory_columns_are_listed_in_one_error() -> None:
    lf = raw(SAMPLE_12).drop("BilledCost", "ServiceName", "ChargePeriodStart")
    with pytest.raises(focus.FocusError) as e:
        focus.conform(lf)
    msg = str(e.value)
    for name in ("BilledCost", "ServiceName", "ChargePeriodStart"):
        assert name in msg


def test_absent_optional_columns_are_typed_nulls() -> None:
    df = focus.conform(raw(SAMPLE_10)).collect()
    for name in ("ServiceSubcategory", "InvoiceId", "CommitmentDiscountQuantity", "SkuPriceDetails"):
        assert df[name].null_count() == df.height
        assert df.schema[name] == focus.BY_NAME[name].dtype


def test_strict_conform_fails_on_an_unparseable_amount_and_bad_values_finds_it() -> None:
    frame = pl.read_csv(SAMPLE_12, infer_schema=False).with_columns(
        pl.when(pl.int_range(pl.len()) == 41).then(pl.lit("12,5")).otherwise(pl.col("BilledCost")).alias("BilledCost"),
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("yesterday")).otherwise(pl.col("ChargePeriodEnd"))
        .alias("ChargePeriodEnd"),
    )
    with pytest.raises(pl.exceptions.PolarsError):
        focus.conform(frame.lazy()).collect()
    bad = focus.bad_values(frame.lazy())
    assert [(b.column, b.row, b.value) for b in bad] == [("ChargePeriodEnd", 7, "yesterday"),
                                                         ("BilledCost", 41, "12,5")]


def test_exponent_amounts_parse() -> None:
    frame = pl.read_csv(SAMPLE_12, infer_schema=False, n_rows=2).with_columns(pl.lit("1.5E-3").alias("BilledCost"))
    df = focus.conform(frame.lazy()).collect()
    assert df["BilledCost"].to_list() == [Decimal("0.0015"), Decimal("0.0015")]


def test_validate_is_clean_on_the_samples_that_keep_the_rules() -> None:
    assert focus.validate(focus.conform(raw(SAMPLE_12))) == []
    assert focus.validate(focus.conform(raw(SAMPLE_13))) == []


def test_validate_reports_each_rule() -> None:
    df = focus.conform(raw(SAMPLE_12)).collect()
    broken = df.with_columns(
        pl.when(pl.int_range(pl.len()) < 2).then(None).otherwise(pl.col("BillingAccountId")).alias("BillingAccountId"),
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("Refund")).otherwise(pl.col("ChargeCategory"))
        .alias("ChargeCategory"),
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("US$")).otherwise(pl.col("BillingCurrency"))
        .alias("BillingCurrency"),
        pl.when(pl.int_range(pl.len()) == 5).then(pl.col("ChargePeriodEnd")).otherwise(pl.col("ChargePeriodStart"))
        .alias("ChargePeriodStart"),
    )
    found = {(p.column, p.rows) for p in focus.validate(broken)}
    assert found == {("BillingAccountId", 2), ("ChargeCategory", 1), ("BillingCurrency", 1), ("ChargePeriodStart", 1)}
    msgs = {p.column: p for p in focus.validate(broken)}
    assert msgs["ChargeCategory"].examples == ("Refund",)
    assert msgs["BillingCurrency"].examples == ("US$",)


def test_cross_row_rules_are_warnings() -> None:
    df = focus.conform(raw(SAMPLE_12)).collect()
    twisted = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("Storage")).otherwise(pl.col("ServiceCategory"))
        .alias("ServiceCategory"))
    problems = {p.key: p for p in focus.validate(twisted)}
    assert problems.keys() == {"ServiceName|category", "ServiceSubcategory|parent"}
    assert {p.severity for p in problems.values()} == {"warning"}
    first = df.row(0, named=True)
    assert problems["ServiceName|category"].examples == (first["ServiceName"],)
    assert problems["ServiceSubcategory|parent"].examples == (f"{first['ServiceSubcategory']} under Storage",)


def test_upgrade_fills_what_1_2_added_from_what_1_0_has() -> None:
    df = focus.upgrade(focus.conform(raw(SAMPLE_10))).collect()
    assert df["ServiceSubcategory"].null_count() == 0
    assert (df["ServiceSubcategory"] == ("Other (" + df["ServiceCategory"] + ")")).all()
    types = dict(df.select("ProviderName", "BillingAccountType").unique().iter_rows())
    assert types == {"AWS": "Payer Account", "Microsoft": "Billing Account", "Oracle": "Tenancy"}
    assert (df["PricingCurrency"] == df["BillingCurrency"]).all()
    assert df["PricingCurrencyEffectiveCost"].to_list() == df["EffectiveCost"].to_list()
    assert df.filter(pl.col("SkuId").is_not_null())["SkuMeter"].null_count() == 0
    assert df.filter(pl.col("SubAccountId").is_null())["SubAccountType"].null_count() == \
        df["SubAccountId"].null_count()


def test_upgrade_keeps_values_that_are_present() -> None:
    df = focus.conform(raw(SAMPLE_12)).collect()
    assert focus.upgrade(df.lazy()).collect().equals(df)


def test_validate_reports_nothing_for_an_empty_frame() -> None:
    assert focus.validate(focus.empty_frame()) == []


amounts = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=10, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(amounts, min_size=1, max_size=40))
def test_money_parses_exactly(values: list[Decimal]) -> None:
    frame = pl.read_csv(SAMPLE_12, infer_schema=False, n_rows=1)
    many = pl.concat([frame] * len(values)).with_columns(pl.Series("BilledCost", [str(v) for v in values]))
    df = focus.conform(many.lazy()).collect()
    assert Decimal(df["BilledCost"].sum()) == sum(values)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_conform_is_idempotent(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=100))
    df = focus.conform(raw(SAMPLE_13).head(n)).collect()
    assert focus.conform(df.lazy()).collect().equals(df)
