"""The billing collector contract: which months a run reads, and `finops ingest` of native exports."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors import formats
from collectors.billing import periods
from collectors.files import IngestError, ingest
from finops.generate import generate
from finops.generate.native import write_native_exports
from finops.periods import add_months
from finops.store import Store
from tests.conftest import DATA

RAW = DATA / "raw"
TODAY = date(2026, 11, 28)


def test_periods_default_cursor_and_since() -> None:
    assert periods(None, None, TODAY) == [date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1)]
    assert periods({"period": "2026-05-01"}, None, TODAY) == [date(2026, m, 1) for m in range(6, 12)]
    assert periods(None, date(2026, 7, 19), TODAY) == [date(2026, m, 1) for m in range(7, 12)]
    # a cursor on the current month still re-reads the previous one: clouds restate both
    assert periods({"period": "2026-11-01"}, None, TODAY) == [date(2026, 10, 1), date(2026, 11, 1)]


@given(st.dates(date(2015, 1, 1), date(2035, 12, 31)),
       st.one_of(st.none(), st.dates(date(2014, 1, 1), date(2036, 1, 1))),
       st.one_of(st.none(), st.dates(date(2014, 1, 1), date(2036, 1, 1))))
def test_periods_are_consecutive_months_ending_now_with_the_last_two(today: date, cursor: date | None,
                                                                     since: date | None) -> None:
    got = periods({"period": cursor.replace(day=1).isoformat()} if cursor else None, since, today)
    current = today.replace(day=1)
    assert got[-1] == current and add_months(current, -1) in got
    assert all(d.day == 1 for d in got)
    assert all(add_months(a, 1) == b for a, b in pairwise(got))
    if since is not None:
        assert got[0] == min(since.replace(day=1), add_months(current, -1))


def test_native_exports_are_recognised_by_their_columns() -> None:
    def header(path: Path) -> list[str]:
        return pl.scan_csv(path, infer_schema=False).collect_schema().names()

    found = {p.name: formats.detect(header(p)) for p in sorted(RAW.rglob("*.csv"))}
    assert {n: f.name for n, f in found.items() if f} == {
        "cur-legacy-csv_anon_2023-11_1281.csv": "aws-cur",
        "cur-legacy-csv_koku-test_2018-06_19.csv": "aws-cur",
        "ea-cost-details-actual_anon_2023-09_27.csv": "azure-cost-details",
        "ea-cost-details-actual_demo_2023-09_11.csv": "azure-cost-details",
        "ea-cost-details-amortized_demo_2023-09_28.csv": "azure-cost-details",
        "bq-export-with-resource-flattened_koku_2022-08_9.csv": "gcp-bigquery-export",
        "bq-standard-export-flattened_koku_2020-11_25.csv": "gcp-bigquery-export",
    }
    assert formats.detect(header(DATA / "focus" / next(p.name for p in (DATA / "focus").glob("*.csv")))) is None


def test_ingest_maps_native_exports_and_reads_azure_views_as_a_pair(tmp_path: Path) -> None:
    written = write_native_exports(tmp_path / "ex", days=20, teams=2, seed=5)
    frame = pl.concat(list(generate(days=20, teams=2, seed=5)), how="vertical_relaxed")
    files = [str(p) for ps in written.values() for p in ps if p.suffix in (".csv", ".parquet")]
    store = Store(tmp_path / "store")
    result = ingest(store, files)
    got = store.scan("billing").group_by("ProviderName").agg(pl.col("BilledCost").sum()).collect()
    want = frame.group_by("ProviderName").agg(pl.col("BilledCost").sum())
    # Azure's actual and amortized files of a month hold the same usage twice: read as a pair, once
    for row in got.join(want, on="ProviderName", suffix="_want").iter_rows(named=True):
        assert abs(row["BilledCost"] - row["BilledCost_want"]) < Decimal("0.01"), row["ProviderName"]
    assert got.height == 3 and result.rows == store.scan("billing").select(pl.len()).collect().item()
    again = ingest(Store(tmp_path / "store"), files)
    assert again.rows == result.rows
    assert [(m.partition, m.rows, m.sums) for m in store.manifests("billing")] == \
        [(m.partition, m.rows, m.sums) for m in result.manifests]


def test_a_native_export_with_a_bad_value_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    with open(RAW / "aws" / "cur-legacy-csv_anon_2023-11_1281.csv", encoding="utf8") as f:
        rows = list(csv.reader(f))
    rows[7][rows[0].index("lineItem/UnblendedCost")] = "1,23 USD"
    bad = tmp_path / "cur.csv"
    with open(bad, "w", newline="", encoding="utf8") as f:
        csv.writer(f).writerows(rows)
    store = Store(tmp_path / "store")
    before = ingest(store, [str(RAW / "gcp" / "bq-standard-export-flattened_koku_2020-11_25.csv")])
    assert before.rows
    with pytest.raises(IngestError, match=r"column lineItem/UnblendedCost, row 7: '1,23 USD'"):
        ingest(store, [str(bad), str(RAW / "aws" / "cur-legacy-csv_koku-test_2018-06_19.csv")])
    assert [(m.partition, m.rows) for m in store.manifests("billing")] == \
        [(m.partition, m.rows) for m in before.manifests]
