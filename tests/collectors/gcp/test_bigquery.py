"""The BigQuery export collector: a real bigquery.Client against tests/fakes/bigquery.py, written by
collectors.billing.run into a real store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import polars as pl
import pytest
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

from collectors import billing
from collectors.billing import CollectError
from collectors.gcp import bigquery as gbq
from finops import focus
from finops.config import BillingSource
from finops.store import Store
from tests.conftest import DATA
from tests.fakes.bigquery import FakeBigQuery, rows_from_flat_csv, synthetic_rows

RAW = DATA / "raw" / "gcp"
ACCOUNT = "000000-B0BBA4-940A77"  # the real standard sample's account
TODAY = dt.date(2020, 11, 20)
FAST = DEFAULT_RETRY.with_deadline(3.0).with_delay(initial=0.01, maximum=0.05)
FAST_JOB = DEFAULT_JOB_RETRY.with_deadline(6.0).with_delay(initial=0.01, maximum=0.05)
SHORT = DEFAULT_RETRY.with_deadline(0.3).with_delay(initial=0.01, maximum=0.05)  # for faults that never clear



def export_rows() -> list[dict]:
    """Invoice months 2020-09 … 2020-11: the real standard sample (2020-11) plus synthetic rows."""
    real = rows_from_flat_csv(RAW / "bq-standard-export-flattened_koku_2020-11_25.csv")
    synth = [r for m in ("202009", "202010", "202011") for r in synthetic_rows(m, account=ACCOUNT, n_hours=3)]
    return real + synth


def expected_billed(rows: list[dict], month: str) -> Decimal:
    return sum((Decimal(repr(r["cost"])) + sum((Decimal(repr(c["amount"])) for c in r["credits"]), Decimal(0))
                for r in rows if r["invoice"]["month"] == month), Decimal(0))


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with FakeBigQuery(rows=export_rows(), page_size=7) as f:
        yield f


def source(table: str, name: str | None = None) -> BillingSource:
    return BillingSource(kind="bigquery-export", location=table, name=name)


def collect(fake: FakeBigQuery, store: Store, since: dt.date | None = None, **kw) -> list[billing.ChunkResult]:
    kw = {"retry": FAST, "job_retry": FAST_JOB, **kw}
    src = source(fake.table)
    chunks = gbq.collect(fake.client(), src, store.cursor(gbq.source_id(src)), since,
                         settings=billing.CollectSettings(today=TODAY), page_size=5, **kw)
    return list(billing.run(store, chunks))


def store_state(store: Store) -> tuple[list[tuple], pl.DataFrame]:
    manifests = [(tuple(m.partition.values()), m.rows, tuple(sorted(m.sums.items())))
                 for m in store.manifests("billing")]
    return manifests, store.scan("billing").collect().sort(pl.all())


def test_collects_each_invoice_month_into_its_partition_with_totals_to_the_cent(fake: FakeBigQuery,
                                                                                  store: Store) -> None:
    results = collect(fake, store, since=dt.date(2020, 9, 1))
    assert [r.period for r in results] == [dt.date(2020, 9, 1), dt.date(2020, 10, 1), dt.date(2020, 11, 1)]
    rows = export_rows()
    for r in results:
        assert r.sums["BilledCost"] == expected_billed(rows, f"{r.period:%Y%m}")
    written = store.scan("billing").collect()
    assert focus.validate(written) == []
    assert written["BilledCost"].sum() == sum(expected_billed(rows, m) for m in ("202009", "202010", "202011"))
    assert {tuple(m.partition.values()) for m in store.manifests("billing")} == {
        ("gcp", p, ACCOUNT) for p in ("2020-09", "2020-10", "2020-11")}
    assert store.cursor(gbq.table_id(fake.table))["period"] == "2020-11-01"
    # one parameterised query per month, its rows paged through getQueryResults
    inserts = fake.calls("jobs.insert")
    assert [c.parameters["invoice_month"] for c in inserts] == ["202009", "202010", "202011"]
    assert all("@invoice_month" in c.query and "202011" not in c.query for c in inserts)
    nov = [c for c in fake.calls("jobs.getQueryResults") if c.invoice_month == "202011"]
    assert len(nov) >= 5 and len({c.page_token for c in nov}) == len(nov)
    sources = store.manifests("billing", {"billing_period": "2020-11"})[0].sources
    assert sources[0]["path"].startswith(f"bigquery://{fake.table}?invoice_month=202011&job=")


def test_a_second_run_changes_nothing(fake: FakeBigQuery, store: Store) -> None:
    collect(fake, store, since=dt.date(2020, 9, 1))
    before = store_state(store)
    again = collect(fake, store)
    # only the previous and the current month are read again (Google restates them)
    assert [r.period for r in again] == [dt.date(2020, 10, 1), dt.date(2020, 11, 1)]
    after = store_state(store)
    assert after[0] == before[0]
    assert after[1].equals(before[1])


@pytest.mark.parametrize(("status", "method"), [(429, "jobs.insert"), (503, "jobs.insert"),
                                                (429, "jobs.getQueryResults"), (500, "jobs.getQueryResults")])
def test_throttling_and_5xx_are_retried(fake: FakeBigQuery, store: Store, status: int, method: str) -> None:
    fake.fail(2, status, method=method, month="202011")
    results = collect(fake, store, since=dt.date(2020, 11, 1))
    assert results[0].sums["BilledCost"] == expected_billed(export_rows(), "202011")
    assert [c.status for c in fake.calls(method) if c.invoice_month == "202011"][:3] == [status, status, 200]


def test_a_run_failing_midway_keeps_finished_months_and_the_next_run_resumes(fake: FakeBigQuery,
                                                                                store: Store) -> None:
    fake.fail(None, 503, method="jobs.getQueryResults", month="202010")  # October keeps failing
    with pytest.raises(CollectError, match=r"invoice month 202010: BigQuery jobs.getQueryResults still failing after "
                                           r"retries"):
        collect(fake, store, since=dt.date(2020, 9, 1), retry=SHORT, job_retry=SHORT)
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2020-09"]
    assert store.cursor(gbq.table_id(fake.table))["period"] == "2020-09-01"
    september = store_state(store)

    with FakeBigQuery(rows=export_rows(), table=fake.table, page_size=7) as healthy:
        results = collect(healthy, store)
        assert [c.parameters["invoice_month"] for c in healthy.calls("jobs.insert")] == ["202010", "202011"]
    assert [r.period for r in results] == [dt.date(2020, 10, 1), dt.date(2020, 11, 1)]
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2020-09", "2020-10", "2020-11"]
    assert store.manifests("billing")[0].rows == september[0][0][1]


def test_a_page_with_a_malformed_row_names_the_call_and_row_and_writes_nothing(fake: FakeBigQuery,
                                                                                  store: Store) -> None:
    fake.corrupt("202011", 11, "cost", "12,5")  # row 12 of the month: on page 3 of 5-row pages
    with pytest.raises(CollectError, match=r"invoice month 202011: BigQuery jobs.getQueryResults page 3: row 12 "
                                           r"cannot be parsed"):
        collect(fake, store, since=dt.date(2020, 11, 1))
    # October (always re-read with the current month) was written; nothing of November
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2020-10"]
    assert store.cursor(gbq.table_id(fake.table))["period"] == "2020-10-01"


def test_a_row_the_export_cannot_hold_is_named(fake: FakeBigQuery, store: Store) -> None:
    fake.corrupt("202011", 3, "cost_type", "refund")
    with pytest.raises(CollectError, match=r"invoice month 202011 \(BigQuery jobs.getQueryResults, job .*\): "
                                           r"row 4, column cost_type: bad value 'refund'"):
        collect(fake, store, since=dt.date(2020, 11, 1))
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2020-10"]


def test_an_expired_credential_names_the_call(fake: FakeBigQuery, store: Store) -> None:
    fake.expire_credentials()
    with pytest.raises(CollectError, match=r"invoice month 202009: BigQuery jobs.insert refused the credential \(401"):
        collect(fake, store)
    assert store.manifests("billing") == []
    assert {c.status for c in fake.calls()} == {401}


def test_a_client_from_make_client_and_a_named_source(fake: FakeBigQuery, store: Store) -> None:
    named = BillingSource(kind="bigquery-export", location=fake.table, name="bigquery-export:demo",
                          endpoint_url=fake.url)
    client = gbq.make_client(named)
    chunks = gbq.collect(client, named, store.cursor(gbq.source_id(named)), dt.date(2020, 11, 1),
                         settings=billing.CollectSettings(today=TODAY), retry=FAST, job_retry=FAST_JOB)
    results = list(billing.run(store, chunks))
    assert {r.source for r in results} == {"bigquery-export:demo"}
    assert store.cursor("bigquery-export:demo")["period"] == "2020-11-01"
    assert store.cursor(gbq.table_id(fake.table)) is None


def test_an_unknown_table_names_the_table(fake: FakeBigQuery, store: Store) -> None:
    chunks = gbq.collect(fake.client(), source("p.d.missing"), None, dt.date(2020, 11, 1),
                         settings=billing.CollectSettings(today=TODAY), retry=FAST, job_retry=FAST_JOB)
    with pytest.raises(CollectError, match=r"gcp-bigquery:p.d.missing invoice month 202010: BigQuery jobs.insert "
                                           r"failed: 404 .*Not found: Table"):
        next(chunks)
