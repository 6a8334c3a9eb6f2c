"""Azure billing through the Cost Management Query API (azure-mgmt-costmanagement), as FOCUS 1.2.

Per billing month, two queries on a scope (subscription, billing account or billing profile):
``ActualCost`` and ``AmortizedCost``, ``Daily`` granularity, summing the cost column and grouped by
:data:`DIMENSIONS` (SubscriptionId, ResourceGroupName, MeterCategory — and SubscriptionName, which
FOCUS wants beside the id; ChargeType and PricingModel, without which purchases could not be told
from usage nor commitment usage from on-demand; BenefitId/BenefitName for the commitment columns)
plus one ``TagKey`` grouping per tag key asked for. The first page comes from
``client.query.usage``; the SDK has no pager, so ``properties.nextLink`` is followed through the
client's own pipeline (``client.send_request``) until it is null. Amounts are read from the
response text as exact decimals. The REST API takes more than two groupings (older SDKs checked two
client-side; 5.x does not). How the service lays out several TagKey groupings is not documented:
every ``TagKey``/``TagValue`` column pair is read, in column order.

Rows become FOCUS through the cost-details mapping (``collectors.azure.cost_details.mapping``:
the same ChargeCategory, PricingCategory, commitment and service rules), and the two views are
combined the same way: every AmortizedCost row (BilledCost 0 on commitment usage and unused
commitment) plus the ActualCost commitment purchases. So BilledCost sums to the ActualCost total
and EffectiveCost to the AmortizedCost total, which the chunk's ``source_totals`` then check. The
API has no prices or quantities: ListCost and ContractedCost equal the row's cost, PricingQuantity
and the unit prices are null.

Faults: retries are the SDK's (``RetryPolicy``: 429 honouring ``Retry-After``, 408 and 5xx, with
exponential backoff; :data:`RETRY` are our defaults for :func:`make_client`). What still fails
raises :class:`collectors.billing.CollectError` naming the scope, month, query type and page; a 401
says the credential was rejected. A malformed row (wrong field count, a cost or date that does
not parse, an unknown currency) is an error naming call, page, row and column — nothing of that
month is yielded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest

from collectors.azure import cost_details
from collectors.billing import Chunk, CollectError, CollectSettings, periods, require_location
from finops import focus
from finops.config import BillingSource
from finops.periods import add_months
from finops.store import Source

MANAGEMENT = "https://management.azure.com"
SOURCE_PREFIX = "azure-cost-query"
DIMENSIONS = ("SubscriptionId", "SubscriptionName", "ResourceGroupName", "MeterCategory", "ChargeType",
              "PricingModel", "BenefitId", "BenefitName")
KINDS = ("ActualCost", "AmortizedCost")
COST_COLUMNS = ("PreTaxCost", "Cost", "CostUSD", "PreTaxCostUSD")
RETRY: dict[str, Any] = {"retry_total": 6, "retry_backoff_factor": 1.0, "retry_backoff_max": 60}
"""RetryPolicy settings for :func:`make_client` (keyword arguments of the SDK client)."""


def make_client(source: BillingSource, *, credential: Any = None, **kwargs: Any) -> Any:
    """A ``CostManagementClient`` for ``source`` (Azure Resource Manager, or its ``endpoint_url``) with
    :data:`RETRY` (overridable through ``kwargs``, the SDK client's own keywords); the credential
    defaults to ``DefaultAzureCredential`` (the SDK's own chain: environment, managed identity, CLI)."""
    from azure.mgmt.costmanagement import CostManagementClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return CostManagementClient(credential, base_url=source.endpoint_url or MANAGEMENT, **{**RETRY, **kwargs})


def source_id(source: BillingSource, settings: CollectSettings | None = None) -> str:
    """The source id and cursor name: ``source.name``, else ``azure-cost-query:<scope>``."""
    return source.name or f"{SOURCE_PREFIX}:{require_location(source)}"


def query_definition(kind: str, month: date, tag_keys: Sequence[str] = (), cost_column: str = "PreTaxCost",
                     dimensions: Sequence[str] = DIMENSIONS) -> dict[str, Any]:
    """The request body (the REST API's QueryDefinition) for one month of one cost view."""
    start = datetime.combine(month, time(), UTC)
    end = datetime.combine(add_months(month, 1) - timedelta(days=1), time(23, 59, 59), UTC)
    grouping = [{"type": "Dimension", "name": d} for d in dimensions]
    grouping += [{"type": "TagKey", "name": k} for k in tag_keys]
    return {"type": kind, "timeframe": "Custom",
            "timePeriod": {"from": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "to": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "dataset": {"granularity": "Daily",
                        "aggregation": {"totalCost": {"name": cost_column, "function": "Sum"}},
                        "grouping": grouping}}


def fetch(client: Any, scope: str, body: dict[str, Any], call: str) -> tuple[list[dict[str, Any]], list[Source]]:
    """Every row of a query (all pages), as dicts by column name (tags folded into ``tags``), and
    one :class:`Source` per page (the call and the checksum of what it answered)."""
    rows: list[dict[str, Any]] = []
    sources: list[Source] = []
    try:
        resp = client.query.usage(scope, body, cls=lambda pipeline_response, _d, _h: pipeline_response.http_response)
        page, link = 1, _page(resp, call, 1, rows, sources)
        while link:
            page += 1
            resp = client.send_request(HttpRequest("POST", link, json=body))
            if resp.status_code == 401:
                raise ClientAuthenticationError(response=resp)
            if resp.status_code != 200:
                raise HttpResponseError(response=resp)
            link = _page(resp, call, page, rows, sources)
    except ClientAuthenticationError as e:
        raise CollectError(f"{call}: credential rejected (HTTP 401: {_reason(e)}); renew it "
                           f"(DefaultAzureCredential: az login, managed identity or environment)") from None
    except HttpResponseError as e:
        raise CollectError(f"{call}: HTTP {e.status_code} after retries: {_reason(e)}") from None
    except ServiceRequestError as e:
        raise CollectError(f"{call}: cannot reach the service: {e}") from None
    return rows, sources


def _reason(e: HttpResponseError) -> str:
    return (str(e.message or e).strip().splitlines() or ["?"])[0]


def _page(resp: Any, call: str, page: int, rows: list[dict[str, Any]], sources: list[Source]) -> str | None:
    if resp is None or resp.status_code == 204:  # no data
        return None
    text = resp.text()
    sources.append(Source(f"{call} page {page}", hashlib.sha256(text.encode()).hexdigest(), len(text)))
    try:
        props = json.loads(text, parse_float=Decimal)["properties"]
        names = [c["name"] for c in props["columns"]]
    except (ValueError, KeyError, TypeError) as e:
        raise CollectError(f"{call} page {page}: not a query result ({e})") from None
    for i, values in enumerate(props.get("rows") or []):
        rows.append(_row(names, values, f"{call} page {page}, row {i + 1}"))
    return props.get("nextLink")


def _row(names: list[str], values: object, where: str) -> dict[str, Any]:
    if not isinstance(values, list) or len(values) != len(names):
        raise CollectError(f"{where}: {len(values) if isinstance(values, list) else 'no'} field(s) "
                           f"for {len(names)} column(s) {names}")
    out: dict[str, Any] = {"tags": {}}
    key = None
    for name, value in zip(names, values, strict=True):  # equal lengths: checked above
        if name == "TagKey":
            key = value
        elif name == "TagValue":
            if key:
                out["tags"][str(key)] = "" if value is None else str(value)
            key = None
        else:
            out[name] = value
    cost_name = next((c for c in COST_COLUMNS if c in out), None)
    if cost_name is None:
        raise CollectError(f"{where}: no cost column (expected one of {', '.join(COST_COLUMNS)})")
    try:
        out["cost"] = Decimal(str(out.pop(cost_name)))
        if not out["cost"].is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise CollectError(f"{where}, column {cost_name}: not a number: {values[names.index(cost_name)]!r}") from None
    try:
        out["day"] = datetime.strptime(str(out.pop("UsageDate")), "%Y%m%d").replace(tzinfo=UTC).date()
    except (KeyError, ValueError):
        raise CollectError(f"{where}, column UsageDate: not a yyyymmdd date: "
                           f"{values[names.index('UsageDate')] if 'UsageDate' in names else None!r}") from None
    currency = str(out.get("Currency") or "")
    if currency not in focus.currency_codes():
        raise CollectError(f"{where}, column Currency: not an ISO 4217 currency code: {currency!r}")
    return out


def _canonical(rows: list[dict[str, Any]], month: date, account: str, account_name: str) -> pl.LazyFrame:
    """Query rows as a cost-details-like frame (canonical names, text) for the shared mapping."""
    end = add_months(month, 1) - timedelta(days=1)
    data = {
        "Date": [r["day"].isoformat() for r in rows],
        "Cost": [format(r["cost"], "f") for r in rows],
        "BillingCurrency": [r.get("Currency") for r in rows],
        "SubscriptionId": [r.get("SubscriptionId") or None for r in rows],
        "SubscriptionName": [r.get("SubscriptionName") or None for r in rows],
        "BenefitId": [r.get("BenefitId") or None for r in rows],
        "BenefitName": [r.get("BenefitName") or None for r in rows],
        "ResourceGroup": [r.get("ResourceGroupName") or None for r in rows],
        "MeterCategory": [r.get("MeterCategory") or None for r in rows],
        "ProductName": [r.get("MeterCategory") or None for r in rows],
        "ChargeType": [r.get("ChargeType") or "Usage" for r in rows],
        "PricingModel": [r.get("PricingModel") or None for r in rows],
        "Tags": [focus.dumps_tags(r["tags"]) if r["tags"] else None for r in rows],
        "BillingAccountId": [account] * len(rows),
        "BillingAccountName": [account_name] * len(rows),
        "BillingPeriodStartDate": [month.isoformat()] * len(rows),
        "BillingPeriodEndDate": [end.isoformat()] * len(rows),
    }
    return pl.LazyFrame(data, schema=dict.fromkeys(data, pl.String))


def to_focus(actual: list[dict[str, Any]], amortized: list[dict[str, Any]], month: date, account: str,
             account_name: str | None = None) -> pl.LazyFrame:
    """Both views of one month as FOCUS 1.2 rows (conformed)."""
    frames: dict[str, pl.LazyFrame] = {}
    for kind, rows in (("actual", actual), ("amortized", amortized)):
        lf = _canonical(rows, month, account, account_name or account)
        cols = lf.collect_schema().names()
        mapped = lf.filter(cost_details.kept(cols, kind)).select(   # type: ignore[arg-type]
            e.alias(k) for k, e in cost_details.mapping(cols, kind).items())  # type: ignore[arg-type]
        frames[kind] = mapped.with_columns(pl.lit("azure-cost-query").alias("x_CostDetailsKind"))
    return focus.conform(cost_details.combine([frames["actual"]], [frames["amortized"]], [account]))


def account_of(scope: str) -> str:
    """The billing account a scope names: the billing profile, else the billing account, else the
    subscription (a subscription scope says nothing about its billing account)."""
    m = (re.search(r"billingProfiles/([^/]+)", scope, re.IGNORECASE)
         or re.search(r"billingAccounts/([^/]+)", scope, re.IGNORECASE)
         or re.search(r"subscriptions/([^/]+)", scope, re.IGNORECASE))
    return m.group(1) if m else scope.strip("/")


def collect(client: Any, source: BillingSource, cursor: Mapping[str, Any] | None, since: date | None, *,
            settings: CollectSettings | None = None, cost_column: str = "PreTaxCost",
            dimensions: Sequence[str] = DIMENSIONS) -> Iterator[Chunk]:
    """One :class:`Chunk` per billing month of the scope ``source.location``, oldest first, for
    :func:`collectors.billing.run`. Months: :func:`collectors.billing.periods` ``(cursor, since,
    settings.today)`` — the current and previous month always. Grouped also by each of
    ``settings.tag_keys``; the billing account is the one the scope names (:func:`account_of`), its
    name from ``settings.billing_account_names``. Each month is fully fetched (both views, every
    page) before it is yielded, so a failure leaves earlier months written and nothing of its own."""
    settings = settings or CollectSettings()
    scope, sid = require_location(source), source_id(source)
    tag_keys = settings.tag_keys
    account = account_of(scope)
    account_name = settings.billing_account_names.get(account)
    base = getattr(getattr(client, "_config", None), "base_url", "")
    for month in periods(dict(cursor) if cursor else None, since, settings.today):
        views: dict[str, list[dict[str, Any]]] = {}
        sources: list[Source] = []
        for kind in KINDS:
            call = f"POST {base}/{scope.strip('/')}/providers/Microsoft.CostManagement/query ({kind}, {month:%Y-%m})"
            body = query_definition(kind, month, tag_keys, cost_column, dimensions)
            rows, srcs = fetch(client, scope, body, call)
            views[kind], sources = rows, sources + srcs
        totals = {"BilledCost": sum((r["cost"] for r in views["ActualCost"]), Decimal(0)),
                  "EffectiveCost": sum((r["cost"] for r in views["AmortizedCost"] if not _commit_purchase(r)),
                                       Decimal(0))}
        frame = to_focus(views["ActualCost"], views["AmortizedCost"], month, account, account_name)
        yield Chunk(sid, month, frame, sources, totals)


def _commit_purchase(r: Mapping[str, Any]) -> bool:
    return r.get("ChargeType") in ("Purchase", "Refund") and r.get("PricingModel") in cost_details.COMMITMENT_MODELS
