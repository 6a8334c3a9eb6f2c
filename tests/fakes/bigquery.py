"""A local BigQuery REST API (``bigquery.googleapis.com/bigquery/v2``) serving a Cloud Billing export table.

It answers what google-cloud-bigquery's ``Client.query(...).result()`` and ``Client.query_and_wait``
send — ``POST …/jobs`` (jobs.insert), ``POST …/queries`` (jobs.query), ``GET …/jobs/{id}`` (jobs.get),
``GET …/queries/{id}`` (jobs.getQueryResults, paged with ``maxResults``/``pageToken``) — in the API's
wire format: the table schema as REST ``TableFieldSchema`` JSON, rows as ``{"f": [{"v": …}]}``, RECORDs
nested the same way, REPEATED fields as ``[{"v": …}]``, FLOAT as text, TIMESTAMP as int64 microseconds
text (the client asks for ``formatOptions.useInt64Timestamp``).

It does not run SQL. A query must name the fake's table in backticks and carry the named parameter
``invoice_month`` (``YYYYMM``); the answer is the table's rows of that invoice month, which is what the
collector's ``WHERE invoice.month = @invoice_month`` selects. Every request is logged (:meth:`calls`).

Faults on demand: :meth:`fail` answers the next N matching requests with an HTTP error (429
``rateLimitExceeded``, 500 ``backendError``, 503 …), optionally only for one invoice month and one API
method; :meth:`expire_credentials` answers everything 401; :meth:`corrupt` puts a bad value into one
cell on the wire.

Rows: :func:`rows_from_flat_csv` turns the real flattened samples (``tests/data/raw/gcp``) back into
nested export rows; :func:`synthetic_rows` adds rows with what the samples lack (committed use
discounts, sustained use credits, tax, labels and tags, resources, prices, other currencies).
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from tests.fakes.server import LocalServer, QuietHandler, Served

Row = dict[str, Any]


def _f(name: str, type_: str, mode: str = "NULLABLE", fields: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": type_, "mode": mode}
    if fields:
        out["fields"] = list(fields)
    return out


_KV = (_f("key", "STRING"), _f("value", "STRING"))
EXPORT_SCHEMA: list[dict[str, Any]] = [
    _f("billing_account_id", "STRING"),
    _f("service", "RECORD", fields=(_f("id", "STRING"), _f("description", "STRING"))),
    _f("sku", "RECORD", fields=(_f("id", "STRING"), _f("description", "STRING"))),
    _f("usage_start_time", "TIMESTAMP"),
    _f("usage_end_time", "TIMESTAMP"),
    _f("project", "RECORD", fields=(
        _f("id", "STRING"), _f("number", "STRING"), _f("name", "STRING"), _f("labels", "RECORD", "REPEATED", _KV),
        _f("ancestry_numbers", "STRING"),
        _f("ancestors", "RECORD", "REPEATED", (_f("resource_name", "STRING"), _f("display_name", "STRING"))))),
    _f("labels", "RECORD", "REPEATED", _KV),
    _f("system_labels", "RECORD", "REPEATED", _KV),
    _f("location", "RECORD", fields=(_f("location", "STRING"), _f("country", "STRING"), _f("region", "STRING"),
                                      _f("zone", "STRING"))),
    _f("tags", "RECORD", "REPEATED", (_f("key", "STRING"), _f("value", "STRING"), _f("inherited", "BOOLEAN"),
                                      _f("namespace", "STRING"))),
    _f("transaction_type", "STRING"),
    _f("seller_name", "STRING"),
    _f("export_time", "TIMESTAMP"),
    _f("cost", "FLOAT"),
    _f("currency", "STRING"),
    _f("currency_conversion_rate", "FLOAT"),
    _f("usage", "RECORD", fields=(_f("amount", "FLOAT"), _f("unit", "STRING"), _f("amount_in_pricing_units", "FLOAT"),
                                   _f("pricing_unit", "STRING"))),
    _f("credits", "RECORD", "REPEATED", (_f("name", "STRING"), _f("amount", "FLOAT"), _f("full_name", "STRING"),
                                         _f("id", "STRING"), _f("type", "STRING"))),
    _f("invoice", "RECORD", fields=(_f("month", "STRING"), _f("publisher_type", "STRING"))),
    _f("cost_type", "STRING"),
    _f("adjustment_info", "RECORD", fields=(_f("id", "STRING"), _f("description", "STRING"), _f("mode", "STRING"),
                                            _f("type", "STRING"))),
    _f("resource", "RECORD", fields=(_f("name", "STRING"), _f("global_name", "STRING"))),
    _f("price", "RECORD", fields=(_f("effective_price", "NUMERIC"), _f("tier_start_amount", "NUMERIC"),
                                   _f("unit", "STRING"), _f("pricing_unit_quantity", "NUMERIC"))),
    _f("subscription", "RECORD", fields=(_f("instance_id", "STRING"),)),
    _f("cost_at_list", "FLOAT"),
]
"""The detailed (resource-level) usage cost export's schema, as ``tables.get`` would return it."""


# -- rows ------------------------------------------------------------------------------------------
def _ts(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _list(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        return json.loads(text)  # as our generator writes them
    except ValueError:
        return ast.literal_eval(text)  # the real samples hold Python repr text


def _num(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _csv_value(row: Mapping[str, str], key: str) -> str | None:
    return row.get(key) or None


def rows_from_flat_csv(path: Path) -> list[Row]:
    """The real flattened samples back in the nested form the export table holds."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            g = partial(_csv_value, r)
            out.append({
                "billing_account_id": g("billing_account_id"),
                "service": {"id": g("service.id"), "description": g("service.description")},
                "sku": {"id": g("sku.id"), "description": g("sku.description")},
                "usage_start_time": _ts(g("usage_start_time")), "usage_end_time": _ts(g("usage_end_time")),
                "project": {"id": g("project.id"), "name": g("project.name"), "labels": _list(g("project.labels")),
                            "ancestry_numbers": g("project.ancestry_numbers")},
                "labels": _list(g("labels")), "system_labels": _list(g("system_labels")),
                "location": {"location": g("location.location"), "country": g("location.country"),
                             "region": g("location.region"), "zone": g("location.zone")},
                "export_time": _ts(g("export_time")), "cost": _num(g("cost")), "currency": g("currency"),
                "currency_conversion_rate": _num(g("currency_conversion_rate")),
                "usage": {"amount": _num(g("usage.amount")), "unit": g("usage.unit"),
                          "amount_in_pricing_units": _num(g("usage.amount_in_pricing_units")),
                          "pricing_unit": g("usage.pricing_unit")},
                "credits": _list(g("credits")), "invoice": {"month": g("invoice.month")},
                "cost_type": g("cost_type"),
                "resource": {"name": g("resource.name"), "global_name": g("resource.global_name")}
                if "resource.name" in r else None,
            })
    return out


def synthetic_rows(month: str, *, account: str = "01A2B3-C4D5E6-F70819", n_hours: int = 6,
                   currency: str = "USD", rate: float = 1.0) -> list[Row]:
    """Rows of one invoice month (``YYYYMM``) with what the real samples lack: an A100 VM covered in part
    by a committed use discount, a spot VM with a sustained use credit, storage with a free-tier credit
    and tags, a commitment fee, an adjustment and a tax row. Amounts have at most 6 decimals."""
    y, m = int(month[:4]), int(month[4:])
    start = dt.datetime(y, m, 3, tzinfo=dt.UTC)
    project = {"id": "ml-train-4711", "number": "123456789012", "name": "ml-train",
               "labels": [{"key": "team", "value": "research"}], "ancestry_numbers": "/987654321/123456789012/"}
    base = {"billing_account_id": account, "project": project, "currency": currency,
            "currency_conversion_rate": rate, "invoice": {"month": month}, "transaction_type": "GOOGLE",
            "export_time": start + dt.timedelta(days=1)}
    rows: list[Row] = []
    for h in range(n_hours):
        t0 = start + dt.timedelta(hours=h)
        hour = {"usage_start_time": t0, "usage_end_time": t0 + dt.timedelta(hours=1)}
        rows.append({**base, **hour, "cost_type": "regular",
                     "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
                     "sku": {"id": "A2F0-2B1C-0D3E", "description": "Nvidia Tesla A100 GPU running in Americas"},
                     "location": {"location": "us-central1", "country": "US", "region": "us-central1",
                                  "zone": "us-central1-a"},
                     "resource": {"name": "trainer-1",
                                  "global_name": "//compute.googleapis.com/projects/ml-train-4711/zones/"
                                                 "us-central1-a/instances/4821"},
                     "labels": [{"key": "workload", "value": "llm-pretrain"}],
                     "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "a2-highgpu-1g"}],
                     "tags": [{"key": "env", "value": "prod", "inherited": True, "namespace": "987654321"}],
                     "cost": round(2.933908 * rate, 6), "cost_at_list": round(2.933908 * rate, 6),
                     "usage": {"amount": 3600.0, "unit": "seconds", "amount_in_pricing_units": 1.0,
                               "pricing_unit": "hour"},
                     "price": {"effective_price": Decimal("2.933908"), "tier_start_amount": Decimal(0),
                               "unit": "hour", "pricing_unit_quantity": Decimal(1)},
                     "credits": [{"name": "Committed use discount: GPU", "amount": round(-1.614 * rate, 6),
                                  "full_name": "Committed use discount: A100 GPU (1 year)",
                                  "id": "commitment-a100-1y", "type": "COMMITTED_USAGE_DISCOUNT"}],
                     "subscription": {"instance_id": "projects/ml-train-4711/regions/us-central1/commitments/c1"}})
        rows.append({**base, **hour, "cost_type": "regular",
                     "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
                     "sku": {"id": "5B2E-7C1A-9F00", "description": "Spot Preemptible Nvidia L4 GPU running in Iowa"},
                     "location": {"location": "us-central1", "country": "US", "region": "us-central1",
                                  "zone": "us-central1-b"},
                     "resource": {"name": "spot-l4", "global_name": "//compute.googleapis.com/projects/ml-train-4711/"
                                                                    "zones/us-central1-b/instances/77"},
                     "labels": [], "system_labels": [], "tags": [],
                     "cost": round(0.2231 * rate, 6), "cost_at_list": round(0.2231 * rate, 6),
                     "usage": {"amount": 3600.0, "unit": "seconds", "amount_in_pricing_units": 1.0,
                               "pricing_unit": "hour"},
                     "credits": [{"name": "Sustained Usage Discount", "amount": round(-0.044 * rate, 6),
                                  "full_name": None, "id": "sud-1", "type": "SUSTAINED_USAGE_DISCOUNT"}]})
    day = {"usage_start_time": start, "usage_end_time": start + dt.timedelta(days=1)}
    rows.append({**base, **day, "cost_type": "regular",
                 "service": {"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"},
                 "sku": {"id": "E5F0-6A5D-7BAD", "description": "Standard Storage US Multi-region"},
                 "location": {"location": "us", "country": "US", "region": None, "zone": None},
                 "resource": {"name": "datasets",
                              "global_name": "//storage.googleapis.com/projects/_/buckets/datasets"},
                 "labels": [{"key": "team", "value": "data"}, {"key": "dataset", "value": "c4"}],
                 "system_labels": [], "tags": [],
                 "cost": round(1.2345 * rate, 6), "cost_at_list": round(1.2345 * rate, 6),
                 "usage": {"amount": 2.0e12, "unit": "byte-seconds", "amount_in_pricing_units": 61.725,
                           "pricing_unit": "gibibyte month"},
                 "credits": [{"name": "FreeTrial:Credit-01A2B3", "amount": round(-0.25 * rate, 6), "full_name": None,
                              "id": "FreeTrial:Credit-01A2B3", "type": "PROMOTION"},
                             {"name": "Free tier", "amount": round(-0.05 * rate, 6), "full_name": None,
                              "id": "free-tier", "type": "FREE_TIER"}]})
    rows.append({**base, **day, "cost_type": "regular",
                 "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
                 "sku": {"id": "C0C0-1111-2222", "description": "Commitment v1: A100 GPU in Americas for 1 Year"},
                 "location": {"location": "us-central1", "country": "US", "region": "us-central1", "zone": None},
                 "labels": [], "system_labels": [], "tags": [],
                 "cost": round(38.736 * rate, 6), "cost_at_list": round(38.736 * rate, 6),
                 "usage": {"amount": 86400.0, "unit": "seconds", "amount_in_pricing_units": 24.0,
                           "pricing_unit": "hour"},
                 "credits": [],
                 "subscription": {"instance_id": "projects/ml-train-4711/regions/us-central1/commitments/c1"}})
    rows.append({**base, **day, "cost_type": "adjustment",
                 "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
                 "sku": {"id": "A2F0-2B1C-0D3E", "description": "Nvidia Tesla A100 GPU running in Americas"},
                 "location": {"location": "us-central1", "country": "US", "region": "us-central1", "zone": None},
                 "labels": [], "system_labels": [], "tags": [], "cost": round(-0.5 * rate, 6), "credits": [],
                 "usage": {"amount": 0.0, "unit": "seconds"},
                 "adjustment_info": {"id": "adj-1", "description": "Goodwill", "mode": "MANUAL_ADJUSTMENT",
                                     "type": "GENERAL_ADJUSTMENT"}})
    tax_end = start + dt.timedelta(days=20)
    rows.append({**base, "usage_start_time": start, "usage_end_time": tax_end, "cost_type": "tax",
                 "service": {"id": "2062-016F-44A2", "description": "Tax"},
                 "sku": {"id": "A0F5-A3C1-0A1F", "description": "Sales tax"},
                 "location": {"location": None}, "labels": [], "system_labels": [], "tags": [],
                 "cost": round(3.21 * rate, 6), "credits": [], "usage": {"amount": 0.0, "unit": "seconds"}})
    return rows


# -- the wire format -------------------------------------------------------------------------------
def _cell(value: Any, spec: Mapping[str, Any]) -> Any:
    if spec.get("mode") == "REPEATED":
        return [{"v": _scalar(v, spec)} for v in (value or [])]
    return _scalar(value, spec)


def _scalar(value: Any, spec: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    t = spec["type"]
    if t == "RECORD":
        return {"f": [{"v": _cell(value.get(f["name"]), f)} for f in spec["fields"]]}
    if t == "TIMESTAMP":
        if isinstance(value, dt.datetime):
            return str(int(value.timestamp()) * 1_000_000 + value.microsecond)
        return str(value)
    if t == "BOOLEAN":
        return "true" if value else "false"
    if t == "FLOAT":
        return repr(float(value)) if not isinstance(value, str) else value
    return str(value)


def encode_row(row: Row, schema: Sequence[Mapping[str, Any]] = EXPORT_SCHEMA) -> dict[str, Any]:
    """One table row as ``{"f": [{"v": …}, …]}``."""
    return {"f": [{"v": _cell(row.get(f["name"]), f)} for f in schema]}


# -- the server ------------------------------------------------------------------------------------
@dataclass
class Call:
    """One request the fake answered."""

    method: str          # jobs.insert | jobs.query | jobs.get | jobs.getQueryResults | …
    path: str
    status: int
    invoice_month: str | None = None
    page_token: str | None = None
    query: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    reason: str
    method: str | None
    month: str | None
    left: int | None     # None: always


@dataclass
class _Job:
    job_id: str
    location: str
    query: str
    parameters: dict[str, str]
    rows: list[dict[str, Any]]
    month: str | None


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE"}


class FakeBigQuery(Served):
    """The fake BigQuery API on 127.0.0.1 (an ephemeral port), serving one billing export table."""

    def __init__(self, table: str = "billing-admin.billing_export.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F70819",
                 rows: Iterable[Row] = (), *, page_size: int = 4, project: str = "billing-admin") -> None:
        self.table = table
        self.project = project
        self.page_size = page_size
        self._rows: list[Row] = list(rows)
        self._jobs: dict[str, _Job] = {}
        self._faults: list[_Fault] = []
        self._corrupt: dict[tuple[str, int], tuple[str, Any]] = {}
        self._expired = False
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = LocalServer(_handler(self))

    def client(self) -> Any:
        """A real ``bigquery.Client`` (anonymous) pointed at the fake."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=self.url))

    # -- shaping answers
    def add_rows(self, rows: Iterable[Row]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def set_rows(self, rows: Iterable[Row]) -> None:
        with self._lock:
            self._rows = list(rows)

    def fail(self, times: int | None = 1, status: int = 429, *, reason: str | None = None,
             method: str | None = None, month: str | None = None) -> None:
        """Answer the next ``times`` requests (None: all) of ``method`` for ``month`` (None: any) with
        ``status`` and the error ``reason`` BigQuery gives for it."""
        reason = reason or {429: "rateLimitExceeded", 500: "backendError", 502: "badGateway",
                            503: "backendError"}.get(status, "invalid")
        with self._lock:
            self._faults.append(_Fault(status, reason, method, month, times))

    def expire_credentials(self) -> None:
        """From now on answer every request 401 (an expired or revoked credential)."""
        with self._lock:
            self._expired = True

    def corrupt(self, month: str, index: int, column: str, value: Any) -> None:
        """Send ``value`` as the wire text of top-level ``column`` in row ``index`` (0-based) of ``month``."""
        with self._lock:
            self._corrupt[(month, index)] = (column, value)

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method in (None, c.method)]

    # -- answering
    def _fault(self, method: str, month: str | None) -> tuple[int, dict[str, Any]] | None:
        if self._expired:
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                               "login cookie or other valid authentication credential.", "authError")
        for f in self._faults:
            if f.left != 0 and f.method in (None, method) and f.month in (None, month):
                f.left = None if f.left is None else f.left - 1
                message = ("Exceeded rate limits: too many api requests per user per method" if f.status == 429
                           else "Error encountered during execution. Retrying may solve the problem.")
                return _error(f.status, message, f.reason)
        return None

    def _start(self, body: Mapping[str, Any], job_id: str | None, location: str) -> tuple[int, _Job | dict[str, Any]]:
        query = body.get("query", "")
        params = {p["name"]: p.get("parameterValue", {}).get("value") for p in body.get("queryParameters", [])}
        if f"`{self.table}`" not in query:
            return _error(404, f"Not found: Table named in the query was not found in location {location}", "notFound")
        month = params.get("invoice_month")
        if month is None:
            return _error(400, "Query parameter 'invoice_month' not found", "invalidQuery")
        rows = []
        for i, r in enumerate(x for x in self._rows if (x.get("invoice") or {}).get("month") == month):
            enc = encode_row(r)
            bad = self._corrupt.get((month, i))
            if bad:
                col, value = bad
                enc["f"][[f["name"] for f in EXPORT_SCHEMA].index(col)] = {"v": value}
            rows.append(enc)
        job = _Job(job_id or f"job_{len(self._jobs) + 1}", location, query, params, rows, month)
        self._jobs[job.job_id] = job
        return 200, job

    def _job_resource(self, job: _Job) -> dict[str, Any]:
        return {"kind": "bigquery#job", "id": f"{self.project}:{job.location}.{job.job_id}",
                "jobReference": {"projectId": self.project, "jobId": job.job_id, "location": job.location},
                "configuration": {"jobType": "QUERY", "query": {"query": job.query, "useLegacySql": False}},
                "status": {"state": "DONE"},
                "statistics": {"creationTime": "1700000000000", "startTime": "1700000000100",
                               "endTime": "1700000000200", "query": {"totalBytesProcessed": "0",
                                                                     "cacheHit": False, "statementType": "SELECT"}}}

    def _results(self, job: _Job, token: str | None, max_results: str | None) -> dict[str, Any]:
        start = int(token[1:]) if token else 0
        size = self.page_size if max_results is None else min(int(max_results), self.page_size)
        page = job.rows[start:start + size]
        out: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                               "jobReference": {"projectId": self.project, "jobId": job.job_id,
                                                "location": job.location},
                               "schema": {"fields": EXPORT_SCHEMA}, "totalRows": str(len(job.rows)),
                               "rows": page, "totalBytesProcessed": "0", "cacheHit": False}
        if start + size < len(job.rows):
            out["pageToken"] = f"p{start + size}"
        return out

    def handle(self, verb: str, path: str, query: Mapping[str, str],
               body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if parts[:2] != ["bigquery", "v2"] or len(parts) < 5 or parts[2] != "projects":
            return _error(404, f"no such resource: {path}", "notFound")
        rest = parts[4:]
        with self._lock:
            if verb == "POST" and rest == ["jobs"]:
                method = "jobs.insert"
                cfg = body.get("configuration", {}).get("query", {})
                ref = body.get("jobReference", {})
                month = _month(cfg)
                status, out = self._fault(method, month) or self._start(cfg, ref.get("jobId"),
                                                                        ref.get("location") or "US")
                answer = self._job_resource(out) if isinstance(out, _Job) else out
            elif verb == "POST" and rest == ["queries"]:
                method = "jobs.query"
                month = _month(body)
                status, out = self._fault(method, month) or self._start(body, None, body.get("location") or "US")
                answer = self._results(out, None, body.get("maxResults")) if isinstance(out, _Job) else out
            elif verb == "GET" and len(rest) == 2 and rest[0] in ("jobs", "queries"):
                method = "jobs.get" if rest[0] == "jobs" else "jobs.getQueryResults"
                job = self._jobs.get(rest[1])
                month = job.month if job else None
                fault = self._fault(method, month)
                if fault:
                    status, answer = fault
                elif job is None:
                    status, answer = _error(404, f"Not found: Job {self.project}:{rest[1]}", "notFound")
                else:
                    status = 200
                    answer = (self._job_resource(job) if method == "jobs.get"
                              else self._results(job, query.get("pageToken"), query.get("maxResults")))
            else:
                method, month = f"{verb} {path}", None
                status, answer = _error(404, f"no such resource: {path}", "notFound")
            params = {}
            if method in ("jobs.insert", "jobs.query"):
                src = body.get("configuration", {}).get("query", {}) if method == "jobs.insert" else body
                params = {p["name"]: p.get("parameterValue", {}).get("value") for p in src.get("queryParameters", [])}
            self._calls.append(Call(method, path, status, month, query.get("pageToken"),
                                    (body.get("configuration", {}).get("query", {}) or body).get("query"), params))
        return status, answer


def _month(cfg: Mapping[str, Any]) -> str | None:
    for p in cfg.get("queryParameters", []):
        if p.get("name") == "invoice_month":
            return p.get("parameterValue", {}).get("value")
    return None


def _error(status: int, message: str, reason: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN"),
                              "errors": [{"message": message, "domain": "global", "reason": reason}]}}


def _handler(fake: FakeBigQuery) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self, verb: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            raw = self.body()
            status, answer = fake.handle(verb, url.path, dict(urllib.parse.parse_qsl(url.query)),
                                         json.loads(raw) if raw else {})
            self.reply(status, json.dumps(answer))

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
