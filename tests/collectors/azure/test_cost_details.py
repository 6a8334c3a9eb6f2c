"""collectors.azure.cost_details on Microsoft's real cost-details samples (EA, actual and amortized,
both column-name generations) and on exports written from generated FOCUS data."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import fsspec
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import billing
from collectors.azure import cost_details as cd
from collectors.files import IngestError
from finops import focus
from finops.config import BillingSource
from finops.generate import generate
from finops.generate.native_azure import write_cost_details
from finops.store import Store
from tests import focus_validator as fv
from tests.conftest import DATA, SAMPLE_12

RAW = DATA / "raw" / "azure"
ANON = RAW / "ea-cost-details-actual_anon_2023-09_27.csv"          # older names, M/D/YYYY, no BOM
ACTUAL = RAW / "ea-cost-details-actual_demo_2023-09_11.csv"        # current names, BOM, a reservation purchase
AMORTIZED = RAW / "ea-cost-details-amortized_demo_2023-09_28.csv"  # reservation and savings-plan usage
SAMPLES = (ANON, ACTUAL, AMORTIZED)
CENT = Decimal("0.01")


def raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def expected_totals(path: Path) -> dict[str, Decimal]:
    """BilledCost/EffectiveCost by the documented rules, straight from the CSV text."""
    kind = "amortized" if "amortized" in path.name else "actual"
    billed = effective = Decimal(0)
    for r in raw_rows(path):
        cost = Decimal(r.get("Cost") or r["CostInBillingCurrency"])
        commit = r["PricingModel"] in ("Reservation", "SavingsPlan")
        purchase = r["ChargeType"] in ("Purchase", "Refund") and commit
        if kind == "amortized" and purchase:
            continue
        effective += 0 if purchase else cost
        covered = (r["ChargeType"] == "Usage" and commit) or r["ChargeType"].startswith("Unused")
        billed += 0 if (kind == "amortized" and covered) else cost
    return {"BilledCost": billed, "EffectiveCost": effective}


def load(path: Path) -> pl.DataFrame:
    return cd.load(pl.scan_csv(path, infer_schema=False), str(path)).collect()


def totals(frame: pl.DataFrame | pl.LazyFrame) -> dict[str, Decimal]:
    row = frame.lazy().select(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).collect().row(0)
    return {"BilledCost": Decimal(row[0] or 0), "EffectiveCost": Decimal(row[1] or 0)}


def store_totals(store: Store) -> dict[str, dict[str, Decimal]]:
    """Totals by billing month, from the store's data (not its manifests)."""
    frame = store.scan("billing").group_by(pl.col("BillingPeriodStart").dt.strftime("%Y-%m").alias("m")).agg(
        pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).collect()
    return {m: {"BilledCost": Decimal(b), "EffectiveCost": Decimal(e)} for m, b, e in frame.iter_rows()}


# -- mapping the real samples --------------------------------------------------------------------
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_real_samples_map_to_valid_focus_with_the_source_totals(path: Path) -> None:
    frame = load(path)
    assert [str(p) for p in focus.validate(frame) if p.severity == "error"] == []
    assert frame.height == len(raw_rows(path))  # the samples hold no amortized-file purchases to keep out
    got, want = totals(frame), expected_totals(path)
    for col in ("BilledCost", "EffectiveCost"):
        assert abs(got[col] - want[col]) < Decimal("1e-12"), col
    assert set(frame["ProviderName"]) == {"Microsoft"}
    assert frame["ChargePeriodStart"].dt.date().min() >= dt.date(2023, 9, 1)
    assert (frame["ChargePeriodEnd"] - frame["ChargePeriodStart"]).unique().to_list() == [dt.timedelta(days=1)]
    assert frame["BillingPeriodEnd"].unique().to_list() == [dt.datetime(2023, 10, 1, tzinfo=dt.UTC)]


def test_both_header_generations_are_recognised_and_bom_stripped() -> None:
    for path in SAMPLES:
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh))
        assert cd.matches(header), path.name
        assert any(f.matches(header) for f in cd.FORMATS)
    with open(ACTUAL, "rb") as fh:
        assert fh.read(3) == b"\xef\xbb\xbf"
    with open(SAMPLE_12, encoding="utf-8-sig", newline="") as fh:
        focus_header = next(csv.reader(fh))
    assert not cd.matches(focus_header)
    anon = load(ANON)
    assert set(anon["BillingCurrency"]) == {"CAD"}  # BillingCurrencyCode, the older name
    assert anon["ChargeDescription"][0] == raw_rows(ANON)[0]["ProductName"]


def test_tags_that_are_not_json_become_json_objects() -> None:
    for path in SAMPLES:
        rows, frame = raw_rows(path), load(path)
        for raw, tags in zip(rows, frame["Tags"].to_list(), strict=True):  # one FOCUS row per raw row
            if not raw["Tags"].strip():
                assert tags is None
                continue
            assert not raw["Tags"].lstrip().startswith("{")
            parsed = json.loads(tags)
            assert isinstance(parsed, dict) and parsed == json.loads("{" + raw["Tags"] + "}")


def test_dates_in_every_layout_parse_to_the_same_day() -> None:
    lf = pl.LazyFrame({"d": ["9/2/2023", "09/02/2023", "2023-09-02", "2023-09-02T00:00:00.0000000Z"]})
    assert lf.select(cd.parse_date(pl.col("d"))).collect().to_series().to_list() == [dt.date(2023, 9, 2)] * 4


def test_commitments_purchases_and_spot_follow_focus() -> None:
    actual, amortized, anon = load(ACTUAL), load(AMORTIZED), load(ANON)
    purchase = actual.filter(pl.col("ChargeCategory") == "Purchase").row(0, named=True)
    assert purchase["BilledCost"] > 0 and purchase["EffectiveCost"] == 0
    assert purchase["CommitmentDiscountType"] == "Reservation" and purchase["PricingCategory"] == "Standard"
    assert purchase["ChargeFrequency"] == "Recurring"
    covered = amortized.filter(pl.col("CommitmentDiscountStatus") == "Used")
    assert set(covered["CommitmentDiscountType"]) == {"Reservation", "Savings Plan"}
    assert set(covered["CommitmentDiscountCategory"]) == {"Usage", "Spend"}
    assert covered["BilledCost"].sum() == 0 and covered["EffectiveCost"].sum() > 0
    assert set(covered["PricingCategory"]) == {"Committed"}
    spot = [r["PricingModel"] == "Spot" for r in raw_rows(ANON)]
    assert (anon["PricingCategory"] == "Dynamic").to_list() == spot


def test_mca_layout_with_camel_case_names_and_iso_dates(tmp_path: Path) -> None:
    """No public MCA export exists: the EA sample rewritten with MCA's column names (camelCase,
    billing profile distinct from the billing account, ISO dates, ProductId) maps the same."""
    renames = {"Cost": "costInBillingCurrency", "Product": "ProductName", "ResourceGroup": "resourceGroupName",
               "InvoiceSection": "invoiceSectionName", "BillingCurrency": "billingCurrency", "Date": "date",
               "ChargeType": "chargeType", "MeterCategory": "meterCategory", "SubscriptionId": "SubscriptionId",
               "PricingModel": "pricingModel", "Tags": "tags", "BillingProfileId": "billingProfileId"}
    rows = raw_rows(ACTUAL)
    path = tmp_path / "mca-actual.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, [renames.get(k, k) for k in rows[0]] + ["ProductId"])
        w.writeheader()
        for r in rows:
            out = {renames.get(k, k): v for k, v in r.items()}
            out["date"] = dt.datetime.strptime(r["Date"], "%m/%d/%Y").replace(tzinfo=dt.UTC).date().isoformat()
            out["billingProfileId"] = "ABCD-EFGH-IJK-LMN"
            out["ProductId"] = "DZH318Z0BQ4L"
            w.writerow(out)
    mca, ea = load(path), load(ACTUAL)
    assert totals(mca) == totals(ea)
    assert set(mca["BillingAccountId"]) == {"ABCD-EFGH-IJK-LMN"}
    assert set(mca["BillingAccountType"]) == {"Billing Profile"}
    assert set(ea["BillingAccountType"]) == {"Billing Account"}
    assert mca["ChargePeriodStart"].to_list() == ea["ChargePeriodStart"].to_list()
    assert set(mca["SkuId"]) == {"DZH318Z0BQ4L"}


UNIT_FORMAT = re.compile(r"^([0-9]+ )?[A-Za-z][A-Za-z0-9]*( [A-Za-z][A-Za-z0-9]*)*([-/][A-Za-z]+)?$")


@pytest.mark.parametrize(("uom", "unit"), [("1 Hour", "Hours"), ("10K", "10000 Units"), ("1K", "1000 Units"),
                                           ("1 GB", "GB"), ("1 GB/Month", "GB-Months"), ("1/Month", "Units/Month"),
                                           ("1/Day", "Units/Day"), ("100 Hours", "100 Hours"),
                                           ("GB-Months", "GB-Months"), ("", None)])
def test_units_in_focus_unit_format(uom: str, unit: str | None) -> None:
    assert cd.pricing_unit(uom) == unit


def test_every_sample_unit_is_in_focus_unit_format() -> None:
    units = {u for p in SAMPLES for u in load(p)["PricingUnit"].drop_nulls()}
    assert units and all(UNIT_FORMAT.match(u) for u in units), units


def test_real_samples_pass_the_focus_validator(validator_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "azure.parquet"
    pl.concat([load(p) for p in SAMPLES], how="diagonal_relaxed").write_parquet(out)
    result = fv.run_focus_validator(out)
    assert result.passed, result.blocking
    assert result.counts["pass"] > 300


# -- reading exports into the store --------------------------------------------------------------
def collect(store: Store, location: str | Path, since: dt.date | None = None,
            today: dt.date | None = None) -> list[billing.ChunkResult]:
    """Through the collector contract, as ``finops collect billing`` calls it."""
    src = BillingSource(kind="cost-details", location=str(location))
    assert cd.source_id(src) == f"{cd.SOURCE_PREFIX}:{location}"
    chunks = cd.collect(cd.make_client(src), src, store.cursor(cd.source_id(src)), since,
                        settings=billing.CollectSettings(today=today))
    return list(billing.run(store, chunks))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_each_sample_collects_with_its_totals_and_a_second_run_changes_nothing(tmp_path: Path, path: Path) -> None:
    store = Store(tmp_path / "store")
    results = collect(store, path)
    assert [r.period for r in results] == [dt.date(2023, 9, 1)]
    want = expected_totals(path)
    got = store_totals(store)["2023-09"]
    assert all(abs(got[c] - want[c]) < CENT for c in want)
    before = [(m.partition, m.rows, m.sums, m.files) for m in store.manifests("billing")]
    data = store.scan("billing").collect()
    assert collect(store, path) == []                      # cursor: nothing new
    assert collect(store, path, since=dt.date(2023, 9, 1))  # forced re-read …
    after = store.scan("billing").collect()
    assert [(m.partition, m.rows, m.sums) for m in store.manifests("billing")] == [b[:3] for b in before]
    assert after.sort(after.columns).equals(data.sort(data.columns))  # … leaves the same data


def test_folder_of_gzipped_files_through_an_fsspec_url(tmp_path: Path) -> None:
    import gzip

    fs = fsspec.filesystem("memory")
    for p in (ANON, AMORTIZED):
        with fs.open(f"/azure-exports/2023-09/{p.name}.gz", "wb") as f:
            f.write(gzip.compress(p.read_bytes()))
    store = Store(tmp_path / "store")
    try:
        results = collect(store, "memory://azure-exports")
    finally:
        fs.rm("/azure-exports", recursive=True)
    assert [r.period for r in results] == [dt.date(2023, 9, 1)]
    accounts = {m.partition["billing_account"] for m in store.manifests("billing")}
    assert accounts == {"12345678", "8611537"}
    srcs = {s["path"] for m in store.manifests("billing") for s in m.sources}
    assert srcs == {f"memory:///azure-exports/2023-09/{p.name}.gz" for p in (ANON, AMORTIZED)}


def generated(seed: int, days: int = 45) -> pl.DataFrame:
    return pl.concat(list(generate(days=days, teams=2, seed=seed, end=dt.date(2026, 10, 12), providers=["azure"])))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_generated_focus_round_trips_through_cost_details(tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    source = generated(seed)
    paths = write_cost_details(source, tmp / "exports")
    assert {p.name.split("_")[0] for p in paths} == {"cost-details-actual", "cost-details-amortized"}
    with open(paths[0], "rb") as f:
        assert f.read(3) == b"\xef\xbb\xbf"
    store = Store(tmp / "store")
    collect(store, tmp / "exports")
    want = {m: totals(g) for (m,), g in source.group_by(pl.col("BillingPeriodStart").dt.strftime("%Y-%m"))}
    assert store_totals(store) == want
    out = store.scan("billing").collect()
    assert [str(p) for p in focus.validate(out) if p.severity == "error"] == []
    assert out.height >= source.height


def test_generated_exports_pass_the_focus_validator(validator_venv: Path, tmp_path: Path) -> None:
    write_cost_details(generated(3, days=20), tmp_path / "exports")
    store = Store(tmp_path / "store")
    collect(store, tmp_path / "exports")
    out = tmp_path / "billing.parquet"
    store.scan("billing").sink_parquet(out)
    result = fv.run_focus_validator(out)
    assert result.passed, result.blocking


def test_a_run_failing_midway_keeps_finished_months_and_the_next_resumes(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    paths = write_cost_details(generated(5), exports)
    october = next(p for p in paths if p.name == "cost-details-amortized_2026-10.csv")
    good = october.read_bytes()
    lines = good.splitlines(keepends=True)
    on_demand = next(i for i, line in enumerate(lines) if b",OnDemand," in line and b",Usage," in line)
    # The amortized file lost an on-demand row: it disagrees with the actual file.
    october.write_bytes(b"".join(lines[:on_demand] + lines[on_demand + 1:]))
    store = Store(tmp_path / "store")
    source = f"{cd.SOURCE_PREFIX}:{exports}"
    today = dt.date(2026, 10, 12)
    with pytest.raises(billing.CollectError, match=r"2026-10: BilledCost .* differs from the source's total"):
        collect(store, exports, today=today)
    assert sorted(store_totals(store)) == ["2026-08", "2026-09"]
    assert store.cursor(source)["period"] == "2026-09-01"
    october.write_bytes(good)
    results = collect(store, exports, today=today)
    assert [r.period for r in results] == [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]  # restated month + the rest
    assert sorted(store_totals(store)) == ["2026-08", "2026-09", "2026-10"]


# -- bad input -------------------------------------------------------------------------------------
def _tampered(tmp_path: Path, column: str, row: int, value: str) -> Path:
    rows = raw_rows(ACTUAL)
    rows[row][column] = value
    out = tmp_path / "in" / ACTUAL.name
    out.parent.mkdir()
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.mark.parametrize(("column", "value", "message"), [
    ("BillingCurrency", "XYZ", "not an ISO 4217 currency code: 'XYZ'"),
    ("Date", "13/45/2023", "not a date: '13/45/2023'"),
    ("Cost", "$3.25", "not a number: '$3.25'"),
    ("Date", "", "empty"),
])
def test_bad_values_name_file_row_and_column_and_write_nothing(tmp_path: Path, column: str, value: str,
                                                               message: str) -> None:
    path = _tampered(tmp_path, column, 6, value)
    store = Store(tmp_path / "store")
    with pytest.raises(IngestError) as err:
        collect(store, path.parent)
    assert str(err.value) == f"{path}: row 7, column {column}: {message}"
    assert store.manifests("billing") == []
    assert store.cursor(f"{cd.SOURCE_PREFIX}:{path.parent}") is None


def test_a_bad_file_in_a_folder_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    write_cost_details(generated(2), folder)
    bad = _tampered(tmp_path, "BillingCurrency", 0, "DOLLARS")
    shutil.copy(bad, folder / "zz-bad.csv")
    store = Store(tmp_path / "store")
    with pytest.raises(IngestError, match=r"zz-bad\.csv: row 1, column BillingCurrency"):
        collect(store, folder)
    assert store.manifests("billing") == []


def test_missing_columns_and_other_files_are_refused(tmp_path: Path) -> None:
    raw = pl.scan_csv(ACTUAL, infer_schema=False).drop("ChargeType", "Cost")
    missing = r"x\.csv: not an Azure cost-details export: missing column\(s\) Cost, ChargeType"
    with pytest.raises(IngestError, match=missing):
        cd.to_focus(raw, "x.csv")
    with pytest.raises(IngestError, match="not an Azure cost-details export"):
        list(cd.read_exports(SAMPLE_12))
    with pytest.raises(IngestError, match="no such file or folder"):
        list(cd.read_exports(tmp_path / "nowhere"))


def test_the_kind_comes_from_the_path_else_from_the_rows(tmp_path: Path) -> None:
    assert cd.hint("exports/daily-amortized/20230901-20230930/part_0.csv") == "amortized"
    assert cd.hint("exports/actual/x-amortised.csv") == "amortized"  # the file's own name first
    assert cd.hint("exports/part_0.csv") is None
    neutral = tmp_path / "part_0_0001.csv"
    shutil.copy(AMORTIZED, neutral)
    raw = cd.canonical(pl.scan_csv(neutral, infer_schema=False), str(neutral))
    assert cd.kind_of(str(neutral), raw) == "amortized"   # unused/covered usage with a cost
    assert cd.check(pl.scan_csv(neutral, infer_schema=False), str(neutral)).kind == "amortized"
    shutil.copy(ACTUAL, neutral)
    assert cd.check(pl.scan_csv(neutral, infer_schema=False), str(neutral)).kind == "actual"


def test_parquet_exports_with_typed_columns(tmp_path: Path) -> None:
    """Cost Management also exports Parquet: numbers and dates then arrive typed."""
    frame = pl.read_csv(AMORTIZED, infer_schema=False).with_columns(
        pl.col("Cost", "Quantity", "UnitPrice", "PayGPrice", "EffectivePrice").cast(pl.Float64),
        pl.col("Date", "BillingPeriodStartDate", "BillingPeriodEndDate").str.to_date("%m/%d/%Y"))
    frame.write_parquet(tmp_path / "part_0_0001.parquet")
    [chunk] = cd.read_exports(tmp_path)
    out = chunk.frame.collect()
    assert out.height == frame.height and chunk.source_totals.keys() == {"EffectiveCost"}  # kind from the rows
    assert abs(totals(out)["EffectiveCost"] - expected_totals(AMORTIZED)["EffectiveCost"]) < CENT
    assert out["ChargePeriodStart"].dt.date().to_list() == frame["Date"].to_list()
