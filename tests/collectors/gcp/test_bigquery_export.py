"""The BigQuery billing export → FOCUS mapping, on the real flattened samples and on nested rows."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from google.cloud.bigquery import SchemaField
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.formats import detect
from collectors.gcp import bigquery_export as bx
from collectors.gcp.bigquery import polars_schema
from finops import focus
from finops.generate import generate
from finops.generate.native_gcp import write_bigquery_export
from tests import focus_validator as fv
from tests.conftest import DATA
from tests.fakes.bigquery import EXPORT_SCHEMA, rows_from_flat_csv, synthetic_rows

RAW = DATA / "raw" / "gcp"
STANDARD = RAW / "bq-standard-export-flattened_koku_2020-11_25.csv"
RESOURCE = RAW / "bq-export-with-resource-flattened_koku_2022-08_9.csv"
SAMPLES = (STANDARD, RESOURCE)


def csv_totals(path: Path) -> tuple[Decimal, Decimal, int, int]:
    """sum(cost), sum(credits.amount), rows, credits — read with the csv module, independently of polars."""
    cost = credit_total = Decimal(0)
    rows = n_credits = 0
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows += 1
            cost += Decimal(r["cost"])
            for c in ast.literal_eval(r["credits"] or "[]"):
                credit_total += Decimal(repr(c["amount"]))
                n_credits += 1
    return cost, credit_total, rows, n_credits


def read_flat(path: Path) -> pl.DataFrame:
    return bx.normalize(pl.scan_csv(path, infer_schema=False), str(path)).collect()


def nested_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows in the nested form, typed as the BigQuery API's schema says (what the collector builds)."""
    schema = polars_schema([SchemaField.from_api_repr(f) for f in EXPORT_SCHEMA])
    return pl.DataFrame(rows, schema=schema)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_real_samples_map_to_valid_focus_with_totals_to_the_cent(path: Path) -> None:
    out = read_flat(path)
    assert focus.validate(out) == []
    cost, credit_total, rows, n_credits = csv_totals(path)
    assert out.height == rows + n_credits  # each PROMOTION credit is its own row
    assert out["BilledCost"].sum() == cost + credit_total
    assert out.filter(pl.col("ChargeCategory") == "Credit")["BilledCost"].sum() == credit_total
    assert out.filter(pl.col("ChargeCategory") == "Usage")["BilledCost"].sum() == cost
    with open(path, newline="") as f:
        first = next(csv.DictReader(f))
    assert set(out["BillingAccountId"]) == {first["billing_account_id"]}
    # Pacific-time invoice months, written in UTC
    assert out["BillingPeriodStart"].dt.strftime("%Y-%m-%dT%H:%M").unique().to_list() in (
        ["2020-11-01T07:00"], ["2022-08-01T07:00"])


def test_flattened_and_nested_forms_give_the_same_rows() -> None:
    flat = read_flat(STANDARD)
    nested = bx.normalize(nested_frame(rows_from_flat_csv(STANDARD)).lazy(), "nested").collect()
    assert nested.equals(flat)


def test_nested_json_lines_as_bigquery_exports_them(tmp_path: Path) -> None:
    rows = synthetic_rows("202611", n_hours=2)
    path = tmp_path / "export.jsonl"
    stamp = lambda v: v.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(v, dt.datetime) else str(v)  # noqa: E731
    path.write_text("".join(json.dumps(r, default=stamp) + "\n" for r in rows))
    raw = pl.scan_ndjson(path, infer_schema_length=None)
    fmt = next(f for f in bx.FORMATS if f.matches(raw.collect_schema().names()))
    assert fmt.name == "gcp-bigquery-export-nested"
    out = fmt.to_focus(raw, str(path)).collect()
    expected = bx.normalize(nested_frame(rows).lazy(), "nested").collect()
    assert out.drop("x_ExportTime").equals(expected.drop("x_ExportTime"))


def test_credit_policy_nets_discounts_and_itemises_credits() -> None:
    rows = synthetic_rows("202611", n_hours=2)
    out = bx.normalize(nested_frame(rows).lazy(), "synthetic").collect()
    assert focus.validate(out) == []
    gpu = out.filter(pl.col("ChargeDescription") == "Nvidia Tesla A100 GPU running in Americas",
                     pl.col("ChargeCategory") == "Usage")
    # committed use discount netted into the row, with the commitment named
    assert gpu["BilledCost"].to_list() == [Decimal("1.319908")] * 2
    assert gpu["ContractedCost"].to_list() == [Decimal("2.933908")] * 2
    assert gpu["CommitmentDiscountCategory"].to_list() == ["Usage"] * 2
    assert gpu["CommitmentDiscountStatus"].to_list() == ["Used"] * 2
    assert gpu["PricingCategory"].to_list() == ["Committed"] * 2
    commitment = "projects/ml-train-4711/regions/us-central1/commitments/c1"
    assert gpu["CommitmentDiscountId"].to_list() == [commitment] * 2
    # sustained use, promotion and free tier: their own Credit rows, itemised against the charge
    credit = out.filter(pl.col("ChargeCategory") == "Credit")
    assert sorted(credit["x_CreditType"].to_list()) == ["FREE_TIER", "PROMOTION"] + ["SUSTAINED_USAGE_DISCOUNT"] * 2
    assert (credit["ListCost"] == credit["BilledCost"]).all()
    assert (credit["ContractedCost"] == credit["BilledCost"]).all()
    storage_credit = credit.filter(pl.col("x_CreditType") == "PROMOTION").row(0, named=True)
    assert storage_credit["ServiceName"] == "Cloud Storage" and storage_credit["SubAccountId"] == "ml-train-4711"
    assert json.loads(storage_credit["Tags"]) == {"team": "data", "dataset": "c4"}
    # spot, commitment fee, tax, adjustment
    spot = out.filter(pl.col("ChargeDescription").str.starts_with("Spot"), pl.col("ChargeCategory") == "Usage")
    assert set(spot["PricingCategory"]) == {"Dynamic"}
    fee = out.filter(pl.col("ChargeDescription").str.starts_with("Commitment"))
    assert fee.select("ChargeCategory", "ChargeFrequency", "CommitmentDiscountId").rows() == [
        ("Usage", "Recurring", None)]
    assert fee["EffectiveCost"].to_list() == [Decimal("38.736")]
    tax = out.filter(pl.col("ChargeCategory") == "Tax").row(0, named=True)
    assert tax["SkuId"] is None and tax["PricingQuantity"] is None and tax["ListUnitPrice"] is None
    # tags: project labels < tags < labels < system labels
    tags = json.loads(gpu["Tags"][0])
    assert tags == {"team": "research", "987654321/env": "prod", "workload": "llm-pretrain",
                    "compute.googleapis.com/machine_spec": "a2-highgpu-1g"}
    expected = sum(Decimal(repr(r["cost"])) + sum(Decimal(repr(c["amount"])) for c in r["credits"]) for r in rows)
    assert out["BilledCost"].sum() == expected


def test_other_billing_currency_prices_in_usd() -> None:
    out = bx.normalize(nested_frame(synthetic_rows("202611", n_hours=1, currency="EUR", rate=0.92)).lazy(),
                       "eur").collect()
    assert set(out["BillingCurrency"]) == {"EUR"} and set(out["PricingCurrency"]) == {"USD"}
    row = out.filter(pl.col("ChargeCategory") == "Tax").row(0, named=True)
    assert row["PricingCurrencyEffectiveCost"] == (Decimal("2.9532") / Decimal("0.92")).quantize(Decimal("1e-15"),
                                                                                                 rounding="ROUND_DOWN")


def test_account_names_fill_billing_account_name() -> None:
    raw = bx.read(pl.scan_csv(RESOURCE, infer_schema=False), "f")
    out = bx.to_focus_frame(raw, {"018984-D0AAA4-940B88": "Cost management lab"}).collect()
    assert set(out["BillingAccountName"]) == {"Cost management lab"}


def test_formats_recognise_the_export_by_its_columns() -> None:
    for path in SAMPLES:
        with open(path, newline="") as f:
            header = next(csv.reader(f))
        fmt = detect(header)
        assert fmt is not None and fmt.provider == "gcp"
    focus_header = list(focus.BY_NAME)
    assert not any(f.matches(focus_header) for f in bx.FORMATS)
    out = bx.FORMATS[0].to_focus(pl.scan_csv(STANDARD, infer_schema=False), str(STANDARD)).collect()
    assert out.columns[:len(focus.COLUMNS)] == [c.name for c in focus.COLUMNS]


# -- bad input -------------------------------------------------------------------------------------
def _bad_copy(tmp_path: Path, column: str, row: int, value: str) -> Path:
    df = pl.read_csv(STANDARD, infer_schema=False)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value)).otherwise(pl.col(column))
                         .alias(column))
    out = tmp_path / "bad.csv"
    df.write_csv(out)
    return out


@pytest.mark.parametrize(("column", "value", "message"), [
    ("cost", "12,5 USD", r"row 7, column cost: cannot parse '12,5 USD'"),
    ("usage_start_time", "yesterday", r"row 7, column usage_start_time: cannot parse 'yesterday'"),
    ("invoice.month", "2020-11", r"row 7, column invoice.month: bad value '2020-11'"),
    ("cost_type", "refund", r"row 7, column cost_type: bad value 'refund'"),
    ("credits", "[{'amount': -1", r"row 7, column credits: cannot parse"),
    ("billing_account_id", "", r"row 7, column billing_account_id: missing"),
])
def test_a_malformed_row_is_named(tmp_path: Path, column: str, value: str, message: str) -> None:
    path = _bad_copy(tmp_path, column, 7, value)
    with pytest.raises(bx.ExportError, match=r"bad\.csv: " + message):
        read_flat(path)


def test_a_file_without_the_export_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    pl.read_csv(STANDARD, infer_schema=False).drop("cost").write_csv(path)
    with pytest.raises(bx.ExportError, match=r"x\.csv: not a BigQuery billing export: missing column\(s\) cost"):
        read_flat(path)


# -- invariants ------------------------------------------------------------------------------------
_amounts = st.decimals(min_value=Decimal(-50), max_value=Decimal(50), places=6, allow_nan=False)
_credit = st.builds(lambda a, t: {"name": t.lower(), "amount": float(a), "full_name": None, "id": t, "type": t},
                    _amounts, st.sampled_from(["PROMOTION", "FREE_TIER", "SUSTAINED_USAGE_DISCOUNT", "DISCOUNT",
                                               "COMMITTED_USAGE_DISCOUNT", "RESELLER_MARGIN", "SOMETHING_NEW"]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_amounts, st.lists(_credit, max_size=4)), min_size=1, max_size=8))
def test_billed_cost_reconciles_whatever_the_credits(rows_spec: list[tuple[Decimal, list[dict]]]) -> None:
    base = synthetic_rows("202611", n_hours=1)[0]
    rows = [{**base, "cost": float(cost), "credits": credit_list} for cost, credit_list in rows_spec]
    out = bx.normalize(nested_frame(rows).lazy(), "h").collect()
    expected = sum(Decimal(repr(float(c))) + sum(Decimal(repr(x["amount"])) for x in cr) for c, cr in rows_spec)
    assert out["BilledCost"].sum() == expected
    itemised = sum(1 for _, cr in rows_spec for x in cr if x["type"] not in bx.NETTED_CREDITS)
    assert out.height == len(rows) + itemised
    assert focus.validate(out) == []


# -- the demo's export writer ----------------------------------------------------------------------
def test_generated_focus_round_trips_through_the_export(tmp_path: Path) -> None:
    frame = pl.concat(list(generate(days=40, teams=2, seed=3, end=dt.date(2026, 10, 10), providers=["gcp"])))
    paths = write_bigquery_export(frame, tmp_path)
    assert [p.name for p in paths] == [f"gcp-billing-export_{m}.csv" for m in ("202608", "202609", "202610")]
    back = pl.concat([read_flat(p) for p in paths])
    assert focus.validate(back) == []
    for col in ("BilledCost", "ListCost", "ContractedCost"):
        assert back[col].sum() == frame[col].sum(), col
    by = lambda f: f.group_by("BillingPeriodStart", "SubAccountId").agg(pl.col("BilledCost").sum()).sort(pl.all())  # noqa: E731
    assert by(back.with_columns(pl.col("BillingPeriodStart").dt.strftime("%Y-%m"))).equals(
        by(frame.with_columns(pl.col("BillingPeriodStart").dt.strftime("%Y-%m"))))
    assert back.filter(pl.col("ChargeCategory") == "Credit").height == frame.filter(
        pl.col("ChargeCategory") == "Credit").height


# -- the FinOps Foundation's validator -------------------------------------------------------------
def test_samples_synthetic_and_generated_rows_pass_the_validator(validator_venv: Path, tmp_path: Path) -> None:
    frame = pl.concat(list(generate(days=20, teams=2, seed=5, end=dt.date(2026, 10, 10), providers=["gcp"])))
    generated = [read_flat(p) for p in write_bigquery_export(frame, tmp_path / "gen")]
    synthetic = bx.normalize(nested_frame(synthetic_rows("202611")).lazy(), "s").collect()
    out = pl.concat([*(read_flat(p) for p in SAMPLES), synthetic, *generated], how="diagonal_relaxed")
    path = tmp_path / "gcp.parquet"
    out.write_parquet(path)
    result = fv.run_focus_validator(path)
    assert result.passed, result.blocking
    assert result.counts["pass"] > 300
