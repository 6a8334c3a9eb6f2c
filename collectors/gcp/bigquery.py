"""Billing from the Cloud Billing BigQuery export table, through google-cloud-bigquery.

One parameterised query per invoice month (``WHERE invoice.month = @invoice_month``, plus a partition
filter so BigQuery scans only the ingestion days that can hold that month), results paged by the SDK's
row iterator, each page turned into a polars frame, the month mapped to FOCUS by
:mod:`collectors.gcp.bigquery_export` and yielded as one :class:`collectors.billing.Chunk`. Months:
:func:`collectors.billing.periods` (after the store's cursor, and always the previous and current
month, which Google restates). Throttling and 5xx are retried by the SDK (``retry=`` on each API call,
``job_retry=`` re-running a failed query job); what still fails, or a 401/403, raises
:class:`collectors.billing.CollectError` naming the table, month and API call — the months already
yielded stay written by :func:`collectors.billing.run`, the failing month writes nothing.

Credentials are the client's (Application Default Credentials when the caller builds
``bigquery.Client()``); nothing here reads or logs them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import polars as pl
from google.api_core import retry as api_retry
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from collectors.billing import Chunk, CollectError, CollectSettings, periods, require_location
from collectors.gcp import bigquery_export as bx
from collectors.gcp import errors
from collectors.gcp.endpoints import client_kwargs
from finops.config import BillingSource
from finops.store import Source

KIND = "gcp-bigquery"
PAGE_SIZE = 50_000
RETRY = bigquery.DEFAULT_RETRY.with_deadline(300.0)
"""Per API call: retried on rateLimitExceeded/backendError/internalError/badGateway, 429 and 5xx."""
JOB_RETRY = DEFAULT_JOB_RETRY.with_deadline(600.0)
"""Re-runs a query job that failed with a retryable job error."""
LATE_DAYS = 7
"""Rows of an invoice month are exported from a few days before it starts: the partition filter
starts this many days before the month (late restatements are in later partitions, which it keeps)."""

QUERY = """
SELECT *
FROM `{table}`
WHERE invoice.month = @invoice_month
  AND DATE(_PARTITIONTIME) >= @partition_from
"""

Progress = Callable[[str, str], None]
"""``progress(invoice_month, state)``: "querying", "<n> rows", "mapped"."""


def source_id(source: BillingSource, settings: CollectSettings | None = None) -> str:
    """The source id and cursor name: ``source.name``, else ``gcp-bigquery:<project.dataset.table>``."""
    return source.name or table_id(require_location(source))


def table_id(table: str) -> str:
    """The default source id of an export table ``project.dataset.table``."""
    return f"{KIND}:{table}"


def query_config(month: dt.date) -> bigquery.QueryJobConfig:
    """The job config of one invoice month's query (named parameters, standard SQL)."""
    return bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("invoice_month", "STRING", f"{month:%Y%m}"),
        bigquery.ScalarQueryParameter("partition_from", "DATE", month - dt.timedelta(days=LATE_DAYS)),
    ], use_legacy_sql=False)


# -- BigQuery schema → polars ------------------------------------------------------------------------
_SCALARS: dict[str, pl.DataType] = {
    "STRING": pl.String(), "FLOAT": pl.Float64(), "FLOAT64": pl.Float64(), "INTEGER": pl.Int64(),
    "INT64": pl.Int64(), "BOOLEAN": pl.Boolean(), "BOOL": pl.Boolean(), "NUMERIC": pl.Decimal(38, 9),
    "BIGNUMERIC": pl.Decimal(38, 15), "TIMESTAMP": pl.Datetime("us", "UTC"), "DATE": pl.Date(),
    "DATETIME": pl.Datetime("us"), "JSON": pl.String(),
}


def polars_type(field: bigquery.SchemaField) -> pl.DataType:
    """A BigQuery column's polars type (RECORD → Struct, REPEATED → List)."""
    if field.field_type in ("RECORD", "STRUCT"):
        t: pl.DataType = pl.Struct({f.name: polars_type(f) for f in field.fields})
    else:
        t = _SCALARS.get(field.field_type, pl.String())
    return pl.List(t) if field.mode == "REPEATED" else t


def polars_schema(schema: Sequence[bigquery.SchemaField]) -> dict[str, pl.DataType]:
    return {f.name: polars_type(f) for f in schema}


def _plain(value: Any) -> Any:
    # Row → dicts and lists all the way down (RECORDs come back as dicts already).
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- collection --------------------------------------------------------------------------------------
def read_month(client: bigquery.Client, table: str, month: dt.date, *, retry: api_retry.Retry = RETRY,
               job_retry: api_retry.Retry = JOB_RETRY, page_size: int = PAGE_SIZE,
               location: str | None = None) -> tuple[pl.DataFrame, str]:
    """The export rows of one invoice month as a nested polars frame, and the query's job id.

    Raises :class:`CollectError` naming the call and, for a row the SDK cannot parse, its number.
    """
    what = f"{table_id(table)} invoice month {month:%Y%m}"
    with errors.named(f"{what}: BigQuery jobs.insert"):
        job = client.query(QUERY.format(table=table), job_config=query_config(month), retry=retry,
                           job_retry=job_retry, location=location)
    call = f"{what}: BigQuery jobs.getQueryResults"
    with errors.named(call):
        rows = job.result(page_size=page_size, retry=retry, job_retry=job_retry)
        schema = polars_schema(rows.schema)
        frames, n = [], 0
        for page_no, page in enumerate(rows.pages, start=1):
            batch = []
            try:
                for row in page:
                    batch.append(_plain(dict(row.items())))
            except (ValueError, TypeError, ArithmeticError) as e:
                raise CollectError(f"{call} page {page_no}: row {n + len(batch) + 1} cannot be parsed ({e})") from None
            n += len(batch)
            frames.append(pl.DataFrame(batch, schema=schema))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return frame, job.job_id


def _source(table: str, month: dt.date, job_id: str, frame: pl.DataFrame) -> Source:
    # An API read has no file to checksum: record the query (table, month, job) and a digest of the rows.
    data = frame.write_ipc(None).getvalue()
    return Source(path=f"bigquery://{table}?invoice_month={month:%Y%m}&job={job_id}",
                  sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


def collect(client: bigquery.Client, source: BillingSource, cursor: Mapping[str, Any] | None,
            since: dt.date | None, *, settings: CollectSettings | None = None, retry: api_retry.Retry = RETRY,
            job_retry: api_retry.Retry = JOB_RETRY, page_size: int = PAGE_SIZE, location: str | None = None,
            progress: Progress | None = None) -> Iterator[Chunk]:
    """One :class:`Chunk` per invoice month to (re)collect from the export table ``source.location``
    (``project.dataset.table``).

    ``cursor``: the store's cursor for :func:`source_id`; ``since`` overrides it.
    ``settings.billing_account_names``: billing account id → display name (see
    :func:`collectors.gcp.accounts.discover`); ``settings.today`` pins today. The keyword-only rest
    tunes the SDK calls (tests shorten the retries). Lazy: each month is queried when the caller asks
    for it, so :func:`collectors.billing.run` writes a month before the next is read.
    """
    settings = settings or CollectSettings()
    table, sid = require_location(source), source_id(source)
    account_names = dict(settings.billing_account_names) or None
    note = progress or (lambda _m, _s: None)
    for month in periods(dict(cursor) if cursor else None, since, settings.today):
        note(f"{month:%Y%m}", "querying")
        frame, job_id = read_month(client, table, month, retry=retry, job_retry=job_retry, page_size=page_size,
                                   location=location)
        note(f"{month:%Y%m}", f"{frame.height} rows")
        name = f"{sid} invoice month {month:%Y%m} (BigQuery jobs.getQueryResults, job {job_id})"
        try:
            raw = bx.read(frame.lazy(), name)
        except bx.ExportError as e:  # a row the SDK parsed but the export cannot hold
            raise CollectError(str(e)) from None
        rows = bx.to_focus_frame(raw, account_names).collect()
        note(f"{month:%Y%m}", "mapped")
        yield Chunk(source=sid, period=month, frame=rows.lazy(), sources=[_source(table, month, job_id, frame)],
                    source_totals=bx.source_totals(raw))


def make_client(source: BillingSource) -> bigquery.Client:
    """A ``bigquery.Client`` with Application Default Credentials, billing the queries to the export
    table's project. With ``source.endpoint_url``, that API root instead of Google's; one on loopback
    (a local emulator or test server) is called anonymously."""
    project = require_location(source).split(".")[0]
    return bigquery.Client(project=project, **client_kwargs(source.endpoint_url))
