"""CUR collection from S3 (collectors/aws/cur_s3.py): a real boto3 S3 client against moto's
ThreadedMotoServer, with the fault proxy (tests/fakes/aws_faults.py) in front of it for throttling,
5xx and expired credentials. Deliveries are laid out as AWS lays them out: the real legacy CUR sample
gzipped under a legacy manifest, and CUR 2.0 Parquet written from generated FOCUS data under Data
Exports manifests."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from collectors import billing
from collectors.aws import cur_s3
from finops import focus
from finops.config import BillingSource
from finops.generate import generate
from finops.generate.native_aws import write_cur2
from finops.store import Store
from tests import focus_validator as fv
from tests.collectors.aws.cur_samples import ANON, KOKU, column_total, gz, read_rows, to_csv
from tests.fakes.aws_faults import S3_GET_OBJECT, S3_LIST, FaultProxy, s3_error

TODAY = dt.date(2023, 12, 10)  # the legacy sample is November 2023: previous month
REPORT = "cur/legacy-report"


@pytest.fixture
def s3(s3_server: str) -> object:
    return s3_client(s3_server)


def s3_client(endpoint: str) -> object:
    return cur_s3.make_client(BillingSource(kind="cur", endpoint_url=endpoint), region="us-east-1")


def source_id(url: str) -> str:
    return cur_s3.source_id(BillingSource(kind="cur", location=url))


def put_legacy(s3: object, bucket: str, parts: int = 2, header_rows: tuple[list[str], list[dict]] | None = None,
               missing: int | None = None) -> list[dict[str, str]]:
    """The real anonymised CUR as a legacy delivery in ``parts`` gzipped files; returns its rows."""
    header, rows = header_rows or read_rows(ANON)
    period = "20231101-20231201"
    keys = []
    for i in range(parts):
        key = f"{REPORT}/{period}/asm-0001/legacy-report-{i + 1:05d}.csv.gz"
        keys.append(key)
        if i != missing:
            s3.put_object(Bucket=bucket, Key=key, Body=gz(to_csv(header, rows[i::parts])))
    manifest = {"assemblyId": "asm-0001", "account": "123412340534", "reportName": "legacy-report",
                "charset": "UTF-8", "compression": "GZIP", "contentType": "text/csv", "bucket": bucket,
                "billingPeriod": {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"},
                "reportKeys": keys,
                "columns": [{"category": h.split("/")[0], "name": h.split("/")[-1]} for h in header]}
    s3.put_object(Bucket=bucket, Key=f"{REPORT}/{period}/legacy-report-Manifest.json", Body=json.dumps(manifest))
    return rows


def collect(store: Store, s3: object, url: str, since: dt.date | None = None,
            today: dt.date = TODAY) -> list[billing.ChunkResult]:
    src = BillingSource(kind="cur", location=url)
    chunks = cur_s3.collect(s3, src, store.cursor(cur_s3.source_id(src)), since,
                            settings=billing.CollectSettings(today=today))
    return list(billing.run(store, chunks))


def test_legacy_cur_collects_its_period_with_the_cur_totals(s3: object, s3_bucket: str, store: Store) -> None:
    rows = put_legacy(s3, s3_bucket)
    url = f"s3://{s3_bucket}/{REPORT}"
    results = collect(store, s3, url)
    assert [(r.period, r.rows) for r in results] == [(dt.date(2023, 11, 1), len(rows))]
    written = store.scan("billing").collect()
    assert written["BilledCost"].sum() == column_total(rows, "lineItem/UnblendedCost")
    assert [p for p in focus.validate(written) if p.severity == "error"] == []
    (m,) = store.manifests("billing")
    assert m.partition == {"provider": "aws", "billing_period": "2023-11", "billing_account": "123412340534"}
    assert sorted(s["path"] for s in m.sources) == [
        f"s3://{s3_bucket}/{REPORT}/20231101-20231201/asm-0001/legacy-report-0000{i}.csv.gz" for i in (1, 2)]
    assert store.cursor(source_id(url))["period"] == "2023-11-01"


def test_a_second_run_changes_nothing(s3: object, s3_bucket: str, store: Store) -> None:
    put_legacy(s3, s3_bucket)
    url = f"s3://{s3_bucket}/{REPORT}"
    collect(store, s3, url)
    first = [(m.partition, m.rows, m.sums, m.sources) for m in store.manifests("billing")]
    collect(store, s3, url)
    again = [(m.partition, m.rows, m.sums, m.sources) for m in store.manifests("billing")]
    assert again == first and first


@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return pl.concat(generate(days=40, teams=2, seed=5, providers=("aws",), end=dt.date(2026, 10, 5)))


def put_cur2(s3: object, bucket: str, frame: pl.DataFrame, tmp: Path, prefix: str = "exports") -> str:
    """A CUR 2.0 Data Exports delivery uploaded as written; returns the export's s3:// URL."""
    out = tmp / "delivery"
    for path in write_cur2(frame, out, bucket=bucket, prefix=prefix, export="cur2"):
        s3.put_object(Bucket=bucket, Key=path.relative_to(out).as_posix(), Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}/cur2"


def period_sums(frame: pl.DataFrame) -> dict[str, Decimal]:
    month = pl.col("BillingPeriodStart").dt.strftime("%Y-%m")
    return dict(frame.group_by(month).agg(pl.col("BilledCost").sum()).iter_rows())


def test_cur2_export_collects_every_period(s3: object, s3_bucket: str, store: Store, generated: pl.DataFrame,
                                           tmp_path: Path) -> None:
    url = put_cur2(s3, s3_bucket, generated, tmp_path)
    results = collect(store, s3, url, since=dt.date(2026, 8, 1), today=dt.date(2026, 10, 5))
    assert [r.period for r in results] == [dt.date(2026, 8, 1), dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
    written = store.scan("billing").collect()
    assert period_sums(written) == period_sums(generated)
    assert sum(r.rows for r in results) == written.height


def test_cur2_collected_output_passes_the_focus_validator(validator_venv: Path, s3: object, s3_bucket: str,
                                                          store: Store, generated: pl.DataFrame,
                                                          tmp_path: Path) -> None:
    url = put_cur2(s3, s3_bucket, generated, tmp_path)
    collect(store, s3, url, since=dt.date(2026, 8, 1), today=dt.date(2026, 10, 5))
    store.scan("billing").sink_parquet(tmp_path / "billing.parquet")
    result = fv.run_focus_validator(tmp_path / "billing.parquet")
    assert result.passed, result.blocking


def test_incremental_runs_take_the_cursor_and_the_restated_months(s3: object, s3_bucket: str, store: Store,
                                                                   generated: pl.DataFrame, tmp_path: Path) -> None:
    url = put_cur2(s3, s3_bucket, generated, tmp_path)
    collect(store, s3, url, since=dt.date(2026, 8, 1), today=dt.date(2026, 10, 5))
    later = collect(store, s3, url, today=dt.date(2026, 10, 20))  # cursor at October: Sept and Oct again
    assert [r.period for r in later] == [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]


# -- faults ---------------------------------------------------------------------------------------
def test_a_run_failing_midway_keeps_finished_periods_and_the_next_resumes(
        s3: object, s3_bucket: str, store: Store, generated: pl.DataFrame, tmp_path: Path) -> None:
    url = put_cur2(s3, s3_bucket, generated, tmp_path)
    september = "exports/cur2/data/BILLING_PERIOD=2026-09/cur2-00001.snappy.parquet"
    good = s3.get_object(Bucket=s3_bucket, Key=september)["Body"].read()
    s3.put_object(Bucket=s3_bucket, Key=september, Body=b"PAR1 this is not parquet")
    with pytest.raises(billing.CollectError, match="BILLING_PERIOD=2026-09"):
        collect(store, s3, url, since=dt.date(2026, 8, 1), today=dt.date(2026, 10, 5))
    assert [m.partition["billing_period"] for m in store.manifests("billing")] == ["2026-08"]
    assert store.cursor(source_id(url))["period"] == "2026-08-01"
    s3.put_object(Bucket=s3_bucket, Key=september, Body=good)
    resumed = collect(store, s3, url, today=dt.date(2026, 10, 5))
    assert [r.period for r in resumed] == [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
    assert period_sums(store.scan("billing").collect()) == period_sums(generated)


def test_throttling_and_5xx_from_s3_are_retried_by_botocore(s3_server: str, s3_bucket: str, store: Store,
                                                            backoffs: list[float]) -> None:
    rows = put_legacy(s3_client(s3_server), s3_bucket)
    with FaultProxy(s3_server) as proxy:
        proxy.fail(S3_LIST, 503, s3_error("SlowDown", "Please reduce your request rate."))
        proxy.fail(S3_GET_OBJECT, 500, s3_error("InternalError", "We encountered an internal error."), times=2)
        s3 = s3_client(proxy.url)
        collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    assert proxy.served == 3 and len(backoffs) == 3
    assert store.scan("billing").collect()["BilledCost"].sum() == column_total(rows, "lineItem/UnblendedCost")


def test_an_expired_token_is_a_clear_error_naming_the_call(s3_server: str, s3_bucket: str, store: Store) -> None:
    put_legacy(s3_client(s3_server), s3_bucket)
    with FaultProxy(s3_server) as proxy:
        proxy.fail(S3_LIST, 400, s3_error("ExpiredToken", "The provided token has expired."), times=None)
        s3 = s3_client(proxy.url)
        with pytest.raises(billing.CollectError) as e:
            collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    assert "s3.list_objects_v2" in str(e.value) and "ExpiredToken" in str(e.value) and s3_bucket in str(e.value)
    assert store.manifests("billing") == []


# -- bad input ------------------------------------------------------------------------------------
def test_a_manifest_naming_a_missing_file_writes_nothing(s3: object, s3_bucket: str, store: Store) -> None:
    put_legacy(s3, s3_bucket, missing=1)
    with pytest.raises(billing.CollectError) as e:
        collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    msg = str(e.value)
    assert "legacy-report-Manifest.json" in msg and "legacy-report-00002.csv.gz" in msg and "does not exist" in msg
    assert store.manifests("billing") == [] and store.cursor(source_id(f"s3://{s3_bucket}/{REPORT}")) is None


def test_the_koku_cur_whose_header_is_longer_than_its_rows_is_refused(s3: object, s3_bucket: str,
                                                                       store: Store) -> None:
    period = "20180601-20180701"
    key = f"{REPORT}/{period}/a/legacy-report-00001.csv.gz"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=gz(KOKU.read_bytes()))
    s3.put_object(Bucket=s3_bucket, Key=f"{REPORT}/{period}/legacy-report-Manifest.json",
                  Body=json.dumps({"reportKeys": [key], "billingPeriod": {"start": "20180601T000000.000Z"}}))
    with pytest.raises(billing.CollectError) as e:
        collect(store, s3, f"s3://{s3_bucket}/{REPORT}", since=dt.date(2018, 6, 1), today=dt.date(2018, 7, 2))
    assert key in str(e.value) and "header has 131 fields but line 2 has 130" in str(e.value)
    assert store.manifests("billing") == []


def test_an_unknown_currency_is_refused_and_nothing_written(s3: object, s3_bucket: str, store: Store) -> None:
    header, rows = read_rows(ANON)
    put_legacy(s3, s3_bucket, header_rows=(header, [dict(r, **{"lineItem/CurrencyCode": "ZZZ"}) for r in rows]))
    with pytest.raises(billing.CollectError, match=r"2023-11: not valid FOCUS: BillingCurrency: not an ISO 4217"):
        collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    assert store.manifests("billing") == []


def test_a_malformed_cost_names_the_file_row_and_column(s3: object, s3_bucket: str, store: Store) -> None:
    header, rows = read_rows(ANON)
    rows = [dict(r) for r in rows[:20]]
    rows[6]["lineItem/UnblendedCost"] = "12,5"
    put_legacy(s3, s3_bucket, parts=1, header_rows=(header, rows))
    with pytest.raises(billing.CollectError) as e:
        collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    assert "legacy-report-00001.csv.gz" in str(e.value) and "lineItem/UnblendedCost, row 7: '12,5'" in str(e.value)
    assert store.manifests("billing") == []


def test_not_an_s3_url_is_refused(s3: object) -> None:
    with pytest.raises(billing.CollectError, match="not an s3://"):
        cur_s3.find_manifests(s3, "/local/path")


def test_a_prefix_without_any_cur_is_an_error_not_an_empty_run(s3: object, s3_bucket: str, store: Store) -> None:
    put_legacy(s3, s3_bucket)
    with pytest.raises(billing.CollectError, match=r"s3://.*/cur/other-report: no CUR here"):
        collect(store, s3, f"s3://{s3_bucket}/cur/other-report")



def test_a_legacy_cur_delivered_as_parquet_is_read_through_its_manifest(s3: object, s3_bucket: str, store: Store,
                                                                        tmp_path: Path) -> None:
    """Legacy CURs can be delivered as Parquet (snake_case columns); the manifest's keys say where."""
    from collectors.aws import cur

    header, rows = read_rows(ANON)
    snake_case = pl.read_csv(ANON, infer_schema=False).rename({h: cur.canonical(h) for h in header})
    snake_case.write_parquet(tmp_path / "p.parquet")
    key = f"{REPORT}/20231101-20231201/asm-2/legacy-report-00001.snappy.parquet"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=(tmp_path / "p.parquet").read_bytes())
    s3.put_object(Bucket=s3_bucket, Key=f"{REPORT}/20231101-20231201/legacy-report-Manifest.json",
                  Body=json.dumps({"reportKeys": [key], "contentType": "application/x-parquet",
                                   "billingPeriod": {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"}}))
    (result,) = collect(store, s3, f"s3://{s3_bucket}/{REPORT}")
    assert result.rows == len(rows) and result.sums["BilledCost"] == column_total(rows, "lineItem/UnblendedCost")
