"""AWS Cost Explorer ``get_cost_and_usage`` → FOCUS rows, for accounts without a CUR.

Cost Explorer allows at most two GroupBy per request, but we want each day's cost by linked account,
service, usage type and team tag. The requests, per billing month and linked account:

1. **GroupBy SERVICE, USAGE_TYPE**, filtered to the account (``Dimensions LINKED_ACCOUNT``). Without
   team tag keys these groups are the rows. With tag keys they only name each usage type's service
   (a usage type belongs to one service: ``USE1-BoxUsage:p4d.24xlarge`` is EC2).
2. With team tag keys ``k1, k2, …`` (several spellings of the team tag), one request per key:
   **GroupBy USAGE_TYPE, TAG:ki**, filtered to the account and to ``k1 … k(i-1)`` ABSENT. Request i
   keeps the groups that carry a value for ``ki``; the last one also keeps the untagged rest. The
   requests partition the account's cost, so nothing is counted twice or lost, and each row carries the
   team tag it was found under.

The account is a filter rather than a GroupBy, so both GroupBy slots serve the finer dimensions. Accounts
come from config; when none are given, one MONTHLY request grouped by LINKED_ACCOUNT finds those with
cost in the month. Every request loops on ``NextPageToken`` (botocore has no paginator for this call).

Metrics: UnblendedCost → BilledCost (and ListCost/ContractedCost: Cost Explorer has no list price),
AmortizedCost → EffectiveCost, UsageQuantity → ConsumedQuantity/PricingQuantity. A group whose cost is
negative is a Credit; the ``Tax`` service is Tax; the rest is Usage. One :class:`Chunk` per month.

The client is passed in; build it with :func:`make_client` (standard retry mode: botocore retries
throttling — Cost Explorer answers ``LimitExceededException`` — and 5xx). An error that remains raises
:class:`CollectError` naming the call, the account and the period.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError

from collectors.aws import cur, services
from collectors.aws.prices import client_config
from collectors.billing import Chunk, CollectError, CollectSettings, periods
from finops import focus
from finops.config import BillingSource
from finops.periods import add_months
from finops.store import Source

METRICS = ("UnblendedCost", "AmortizedCost", "UsageQuantity")
REGION = "us-east-1"  # Cost Explorer's endpoint


def make_client(source: BillingSource, *, session: Any | None = None) -> Any:
    """A Cost Explorer client for ``source`` (its ``endpoint_url``, if any) with
    :func:`collectors.aws.prices.client_config` (standard retries); credentials from ``session``
    (default: boto3's own chain)."""
    import boto3

    session = session or boto3.session.Session()
    return session.client("ce", region_name=REGION, config=client_config(), endpoint_url=source.endpoint_url)


def payers(source: BillingSource, settings: CollectSettings | None = None) -> list[str]:
    """The payer accounts a source reads: its ``location``, else the provider's ``billing_accounts``."""
    found = [source.location] if source.location else list(settings.billing_accounts if settings else ())
    if not found:
        raise CollectError(f"{source.label}: name the payer account in providers.aws.billing_accounts "
                           "(or as this source's location)")
    return found


def source_id(source: BillingSource, settings: CollectSettings | None = None) -> str:
    """The source (and cursor) name: ``source.name``, else ``aws-ce:<payer>[,<payer>…]``."""
    return source.name or f"aws-ce:{','.join(payers(source, settings))}"


# -- requests (pure) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One logical query (before paging): its body, and how to read its groups."""

    body: dict[str, Any]
    account: str
    tag_key: str | None = None
    keep_untagged: bool = True


def _and(*exprs: dict[str, Any]) -> dict[str, Any]:
    return exprs[0] if len(exprs) == 1 else {"And": list(exprs)}


def requests(account: str, start: date, end: date, tag_keys: Sequence[str] = ()) -> list[Request]:
    """The queries for one account and period (see the module docstring), in the order they run."""
    base = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Granularity": "DAILY",
            "Metrics": list(METRICS)}
    acct = {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [account]}}
    out = [Request({**base, "Filter": acct, "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"},
                                                        {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]}, account)]
    for i, key in enumerate(tag_keys):
        absent = [{"Tags": {"Key": k, "MatchOptions": ["ABSENT"]}} for k in tag_keys[:i]]
        out.append(Request({**base, "Filter": _and(acct, *absent),
                            "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": key}]},
                           account, key, keep_untagged=i == len(tag_keys) - 1))
    return out


# -- calls ----------------------------------------------------------------------------------------
def fetch(ce: Any, body: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    """Every ResultsByTime entry of a query, page after page."""
    results: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kw = dict(body, NextPageToken=token) if token else dict(body)
        try:
            page = ce.get_cost_and_usage(**kw)
        except ClientError as e:
            err = e.response.get("Error", {})
            raise CollectError(f"ce.get_cost_and_usage({what}) failed: {err.get('Code', '?')}: "
                               f"{err.get('Message', e)}") from None
        except BotoCoreError as e:
            raise CollectError(f"ce.get_cost_and_usage({what}) failed: {e}") from None
        results += page.get("ResultsByTime", [])
        token = page.get("NextPageToken")
        if not token:
            return results


def discover_accounts(ce: Any, start: date, end: date) -> list[str]:
    """Linked accounts with cost in [start, end)."""
    body = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Granularity": "MONTHLY",
            "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]}
    found = {g["Keys"][0] for r in fetch(ce, body, f"LINKED_ACCOUNT {start}..{end}") for g in r.get("Groups", [])}
    return sorted(found)


# -- rows (pure) ----------------------------------------------------------------------------------
def _metric(group: Mapping[str, Any], name: str) -> tuple[str | None, str | None]:
    m = group.get("Metrics", {}).get(name)
    return (m.get("Amount"), m.get("Unit")) if m else (None, None)


def rows(account: str, service_results: list[dict[str, Any]],
         tag_results: Sequence[tuple[Request, list[dict[str, Any]]]] = ()) -> list[dict[str, Any]]:
    """Plain rows (day, account, service, usage type, tag, metrics) from the answers of :func:`requests`."""
    service_of: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for r in service_results:
        for g in r.get("Groups", []):
            service, usage_type = g["Keys"]
            service_of.setdefault(usage_type, service)
            if not tag_results:
                out.append(_row(account, r, g, service, usage_type, None, None))
    for req, results in tag_results:
        for r in results:
            for g in r.get("Groups", []):
                usage_type, tag = g["Keys"]
                value = tag.split("$", 1)[1] if "$" in tag else tag
                if not value and not req.keep_untagged:
                    continue
                out.append(_row(account, r, g, service_of.get(usage_type, "Unknown"), usage_type,
                                req.tag_key, value or None))
    return out


def _row(account: str, result: Mapping[str, Any], group: Mapping[str, Any], service: str, usage_type: str,
         tag_key: str | None, tag_value: str | None) -> dict[str, Any]:
    billed, currency = _metric(group, "UnblendedCost")
    amortized, _ = _metric(group, "AmortizedCost")
    quantity, unit = _metric(group, "UsageQuantity")
    return {"start": result["TimePeriod"]["Start"], "end": result["TimePeriod"]["End"], "account": account,
            "service": service, "usage_type": usage_type, "billed": billed or "0",
            "amortized": amortized or billed or "0", "currency": currency, "quantity": quantity,
            "unit": None if unit in (None, "", "N/A") else unit,
            "tags": focus.dumps_tags({tag_key: tag_value}) if tag_key and tag_value else None,
            "estimated": bool(result.get("Estimated", False))}


ROW_SCHEMA = {"start": pl.String, "end": pl.String, "account": pl.String, "service": pl.String,
              "usage_type": pl.String, "billed": pl.String, "amortized": pl.String, "currency": pl.String,
              "quantity": pl.String, "unit": pl.String, "tags": pl.String, "estimated": pl.Boolean}


def to_focus(frame: pl.LazyFrame, payer: str, period: date,
             account_names: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """FOCUS-named columns (ready for :func:`finops.focus.conform`) from :func:`rows` as a frame."""
    c = pl.col
    billed = c("billed").cast(focus.DECIMAL)
    amortized = c("amortized").cast(focus.DECIMAL)
    category = (pl.when(c("service") == "Tax").then(pl.lit("Tax"))
                .when(billed < 0).then(pl.lit("Credit")).otherwise(pl.lit("Usage")))
    usage = category == "Usage"
    qty = pl.when(usage).then(c("quantity").cast(focus.DECIMAL).fill_null(pl.lit(0, dtype=focus.DECIMAL)))
    unit = pl.when(usage).then(cur.unit_expr(c("unit")).fill_null(pl.lit("Units")))
    cat, sub = services.category_exprs(pl.lit(None, dtype=pl.String), c("service"))
    names = dict(account_names or {})
    start = datetime(period.year, period.month, 1, tzinfo=UTC)
    end_p = add_months(period, 1)
    return frame.select(
        billed.alias("BilledCost"), pl.lit(payer).alias("BillingAccountId"), pl.lit(payer).alias("BillingAccountName"),
        pl.lit("Payer Account").alias("BillingAccountType"), c("currency").alias("BillingCurrency"),
        pl.lit(start).alias("BillingPeriodStart"),
        pl.lit(datetime(end_p.year, end_p.month, 1, tzinfo=UTC)).alias("BillingPeriodEnd"),
        category.alias("ChargeCategory"), pl.lit(None, dtype=pl.String).alias("ChargeClass"),
        pl.concat_str(c("service"), c("usage_type"), separator=" ").alias("ChargeDescription"),
        pl.when(usage).then(pl.lit("Usage-Based")).otherwise(pl.lit("One-Time")).alias("ChargeFrequency"),
        c("start").alias("ChargePeriodStart"), c("end").alias("ChargePeriodEnd"),
        qty.alias("ConsumedQuantity"), unit.alias("ConsumedUnit"),
        billed.alias("ContractedCost"), amortized.alias("EffectiveCost"),
        pl.lit(cur.PROVIDER).alias("InvoiceIssuerName"), billed.alias("ListCost"),
        pl.when(usage).then(pl.lit("Standard")).alias("PricingCategory"),
        c("currency").alias("PricingCurrency"), amortized.alias("PricingCurrencyEffectiveCost"),
        qty.alias("PricingQuantity"), unit.alias("PricingUnit"),
        pl.lit(cur.PROVIDER).alias("ProviderName"), pl.lit(cur.PROVIDER).alias("PublisherName"),
        cat.alias("ServiceCategory"), c("service").alias("ServiceName"), sub.alias("ServiceSubcategory"),
        c("account").alias("SubAccountId"),
        c("account").replace(names).alias("SubAccountName"),
        pl.lit("Linked Account").alias("SubAccountType"), c("tags").alias("Tags"),
        c("usage_type").alias("x_UsageType"), c("estimated").alias("x_Estimated"),
    )


# -- the collector --------------------------------------------------------------------------------
def _what(req: Request, start: date, end: date) -> str:
    return f"account {req.account}, {start}..{end}" + (f", tag {req.tag_key}" if req.tag_key else "")


def _source(req: Request, start: date, end: date, results: list[dict[str, Any]]) -> Source:
    """Provenance of one query: what was asked, and a checksum of every page's answer."""
    data = json.dumps(results, sort_keys=True, default=str).encode()
    return Source(f"ce.get_cost_and_usage({_what(req, start, end)})", hashlib.sha256(data).hexdigest(), len(data))


def collect_month(ce: Any, payer: str, period: date, accounts: Sequence[str] | None = None,
                  tag_keys: Sequence[str] = (), today: date | None = None,
                  account_names: Mapping[str, str] | None = None) -> tuple[pl.LazyFrame, list[Source]]:
    """One billing month of Cost Explorer data as conformed FOCUS rows, and the calls made."""
    today = today or datetime.now(UTC).date()
    start, end = period, min(add_months(period, 1), today + timedelta(days=1))
    if end <= start:
        return focus.empty_frame().lazy(), []
    out: list[dict[str, Any]] = []
    sources: list[Source] = []
    for account in accounts if accounts is not None else discover_accounts(ce, start, end):
        answers = []
        for req in requests(account, start, end, tag_keys):
            answers.append((req, fetch(ce, req.body, _what(req, start, end))))
            sources.append(_source(req, start, end, answers[-1][1]))
        out += rows(account, answers[0][1], answers[1:])
    frame = pl.DataFrame(out, schema=ROW_SCHEMA).lazy()
    return focus.upgrade(focus.conform(to_focus(frame, payer, period, account_names))), sources


def collect(ce: Any, source: BillingSource, cursor: dict | None, since: date | None, *,
            settings: CollectSettings | None = None) -> Iterator[Chunk]:
    """One :class:`Chunk` per billing month to (re)collect, oldest first, holding every payer of the
    source (:func:`payers`), so one month of all of them is written, or none.

    From ``settings``: ``accounts`` (linked account ids; empty: discovered per month), ``tag_keys``
    (the team tag's keys, most common spelling first), ``account_names``, ``today``. ``cursor``:
    ``store.cursor(source_id(source, settings))``. Feed the result to :func:`collectors.billing.run`.
    """
    settings = settings or CollectSettings()
    who, sid = payers(source, settings), source_id(source, settings)
    accounts = list(settings.accounts) or None
    for period in periods(cursor, since, settings.today):
        frames, sources = [], []
        for payer in who:
            frame, calls = collect_month(ce, payer, period, accounts, settings.tag_keys, settings.today,
                                         settings.account_names)
            frames.append(frame)
            sources += calls
        yield Chunk(sid, period, pl.concat(frames, how="diagonal_relaxed").collect().lazy(), sources, {})


def total(results: Sequence[Mapping[str, Any]], metric: str = "UnblendedCost") -> Decimal:
    """The sum of a metric over every group of some ResultsByTime (what Cost Explorer says was spent)."""
    return sum((Decimal(g["Metrics"][metric]["Amount"]) for r in results for g in r.get("Groups", [])
                if metric in g.get("Metrics", {})), Decimal(0))
