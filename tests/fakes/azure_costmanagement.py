"""A local Azure Cost Management Query API (``POST /{scope}/providers/Microsoft.CostManagement/query``)
over HTTPS on 127.0.0.1, for tests.

HTTPS with a certificate generated at test time (:func:`make_certificate`), so the SDK's real ARM
bearer-token policy stays on (it refuses plain http); clients trust the certificate through
``connection_verify=<cert.pem>``. Wire format as the real service answers it::

    {"id": ".../query/<guid>", "name": "<guid>", "type": "Microsoft.CostManagement/query",
     "location": null, "sku": null, "eTag": null,
     "properties": {"nextLink": "<absolute url with $skiptoken>" | null,
                    "columns": [{"name": "PreTaxCost", "type": "Number"}, {"name": "UsageDate", "type": "Number"},
                                {"name": "SubscriptionId", "type": "String"}, …, {"name": "TagKey", …},
                                {"name": "TagValue", …}, {"name": "Currency", "type": "String"}],
                    "rows": [[412.5, 20230902, "…", …, "USD"], …]}}

Daily ``UsageDate`` is a yyyymmdd number; amounts are JSON numbers written exactly (no float
rounding); one ``TagKey``/``TagValue`` pair per TagKey grouping (empty strings when untagged).
``nextLink`` is built on the server's own base URL and carries ``$skiptoken``.

Data: a ledger of records built from the real cost-details samples (:func:`ledger_from_samples`),
each with its cost in the ActualCost and the AmortizedCost view, filtered by scope
(``/subscriptions/{id}`` or ``/providers/Microsoft.Billing/billingAccounts/{id}``) and by the
query's time period, grouped by the requested dimensions and day.

Faults on demand: :meth:`CostManagementFake.fail` (status such as 429 with ``Retry-After``, 500,
503, on a page, a query type or a month, a number of times), :meth:`corrupt` (a malformed row on a
page), and 401 for any bearer token not in ``tokens`` (an expired credential).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalServer, QuietHandler, Served, make_certificate

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "raw" / "azure"
QUERY_PATH = re.compile(r"^/?(?P<scope>.+)/providers/Microsoft\.CostManagement/query$", re.IGNORECASE)
COMMITMENT = ("Reservation", "SavingsPlan")


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One cost line: its dimensions and its cost in each view (None: absent from that view)."""

    day: dt.date
    billing_account: str
    dims: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...]
    currency: str
    actual: Decimal | None
    amortized: Decimal | None

    def dim(self, name: str) -> str:
        return dict(self.dims).get(name, "")

    def cost(self, kind: str) -> Decimal | None:
        return self.actual if kind == "ActualCost" else self.amortized


def _tags(text: str) -> dict[str, str]:
    text = (text or "").strip()
    if not text:
        return {}
    return {str(k): str(v) for k, v in json.loads(text if text.startswith("{") else "{" + text + "}").items()}


def _date(text: str) -> dt.date:
    if "/" in text:
        return dt.datetime.strptime(text, "%m/%d/%Y").replace(tzinfo=dt.UTC).date()
    return dt.date.fromisoformat(text[:10])


def _get(row: dict[str, str], *names: str) -> str:
    return next((row[n] for n in names if n in row), "")


def ledger_from_samples(actual: Iterable[Path], amortized: Iterable[Path],
                        shift_months: Sequence[int] = (0,)) -> list[Record]:
    """Records from real cost-details files, consistent across the two views as the real service is:
    a non-commitment line costs the same in both; commitment-covered usage and unused commitment
    (amortized files) cost 0 in / are absent from ActualCost; commitment purchases (actual files)
    are absent from AmortizedCost. ``shift_months`` repeats the data that many months later (0 =
    as is), for multi-month tests."""
    base: list[Record] = []

    def add(row: dict[str, str], actual_cost: Decimal | None, amortized_cost: Decimal | None) -> None:
        dims = (("SubscriptionId", row["SubscriptionId"]), ("SubscriptionName", row.get("SubscriptionName", "")),
                ("ResourceGroupName", _get(row, "ResourceGroup", "ResourceGroupName")),
                ("MeterCategory", row["MeterCategory"]), ("ChargeType", row["ChargeType"]),
                ("PricingModel", row["PricingModel"]), ("ResourceLocation", row.get("ResourceLocation", "")),
                ("BenefitId", _get(row, "benefitId", "BenefitId")),
                ("BenefitName", _get(row, "benefitName", "BenefitName")))
        base.append(Record(_date(row["Date"]), _get(row, "BillingProfileId", "BillingAccountId"), dims,
                           tuple(sorted(_tags(row.get("Tags", "")).items())),
                           _get(row, "BillingCurrency", "BillingCurrencyCode"), actual_cost, amortized_cost))

    for path in actual:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            cost = Decimal(_get(row, "Cost", "CostInBillingCurrency"))
            commit = row["PricingModel"] in COMMITMENT
            if row["ChargeType"] in ("Purchase", "Refund") and commit:
                add(row, cost, None)
            elif not commit:
                add(row, cost, cost)
    for path in amortized:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            cost = Decimal(_get(row, "Cost", "CostInBillingCurrency"))
            if row["ChargeType"].startswith("Unused"):
                add(row, None, cost)
            elif row["PricingModel"] in COMMITMENT and row["ChargeType"] == "Usage":
                add(row, Decimal(0), cost)
            elif row["ChargeType"] not in ("Purchase", "Refund"):
                add(row, cost, cost)
    out: list[Record] = []
    for n in shift_months:
        for r in base:
            y, m = divmod(r.day.month - 1 + n, 12)
            out.append(Record(r.day.replace(year=r.day.year + y, month=m + 1), r.billing_account, r.dims, r.tags,
                              r.currency, r.actual, r.amortized))
    return out


def default_ledger(shift_months: Sequence[int] = (0,)) -> list[Record]:
    """The ledger of the three real samples in tests/data/raw/azure."""
    return ledger_from_samples(sorted(SAMPLES.glob("*actual*.csv")), sorted(SAMPLES.glob("*amortized*.csv")),
                               shift_months)


# -- server --------------------------------------------------------------------------------------
@dataclass
class _Failure:
    status: int
    remaining: int | None
    retry_after: str | None
    page: int | None
    kind: str | None
    month: str | None


@dataclass
class Request:
    """One request the fake received."""

    path: str
    query: dict[str, str]
    body: dict[str, Any]
    authorization: str
    status: int = 0


@dataclass
class _State:
    failures: list[_Failure] = field(default_factory=list)
    corrupt: dict[tuple[int, int], str] = field(default_factory=dict)


class CostManagementFake(Served):
    """The fake on an ephemeral loopback port, over TLS. ``url``: its base URL; ``cert``: the
    certificate to trust; ``requests``: every request received, in order."""

    def __init__(self, records: Sequence[Record], cert_dir: Path, *, page_size: int = 10,
                 tokens: Iterable[str] = ("fake-token",)) -> None:
        self.records = list(records)
        self.page_size = page_size
        self.tokens = set(tokens)
        self.requests: list[Request] = []
        self._state = _State()
        self._lock = threading.Lock()
        self.cert, key = make_certificate(cert_dir)
        self._server = LocalServer(self._handler(), tls=(Path(self.cert), Path(key)))

    def fail(self, status: int = 429, *, times: int | None = 1, retry_after: str | None = "0",
             page: int | None = None, kind: str | None = None, month: str | None = None) -> None:
        """Answer matching requests (page 1-based, query type, month ``YYYY-MM`` of the time period;
        None matches any) with ``status`` the next ``times`` times (None: always)."""
        with self._lock:
            self._state.failures.append(_Failure(status, times, retry_after, page, kind, month))

    def heal(self) -> None:
        """Forget every injected failure and corruption."""
        with self._lock:
            self._state = _State()

    def corrupt(self, page: int, row: int, how: str = "cost") -> None:
        """Make row ``row`` (0-based) of page ``page`` malformed: ``cost`` (a non-number cost),
        ``date`` (UsageDate 20231345) or ``short`` (a field missing)."""
        with self._lock:
            self._state.corrupt[(page, row)] = how

    # -- handling
    def _handler(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                status, text, headers = fake._answer(self.path, self.body(), self.headers.get("Authorization", ""))
                self.reply(status, text, "application/json; charset=utf-8",
                           {"x-ms-request-id": str(uuid.uuid4()), **headers})

        return Handler

    def _answer(self, path: str, raw: bytes, auth: str) -> tuple[int, str, dict[str, str]]:
        parts = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        req = Request(parts.path, query, body, auth)
        with self._lock:
            self.requests.append(req)
        req.status, text, headers = self._respond(parts.path, query, body, auth)
        return req.status, text, headers

    def _respond(self, path: str, query: dict[str, str], body: dict[str, Any],
                 auth: str) -> tuple[int, str, dict[str, str]]:
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return 401, _error("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier "
                               "than current UTC time."), {}
        m = QUERY_PATH.match(path)
        if not m:
            return 404, _error("NotFound", f"{path} not found"), {}
        if not query.get("api-version"):
            return 400, _error("MissingApiVersionParameter", "The api-version query parameter is required."), {}
        try:
            kind = body["type"]
            start = dt.date.fromisoformat(body["timePeriod"]["from"][:10])
            end = dt.date.fromisoformat(body["timePeriod"]["to"][:10])
            dataset = body["dataset"]
            cost_name = next(iter(dataset["aggregation"].values()))["name"]
            groupings = [(g["type"], g["name"]) for g in dataset.get("grouping", [])]
            if dataset.get("granularity") != "Daily":
                raise ValueError("only Daily granularity is served")
        except (KeyError, ValueError, TypeError, StopIteration) as exc:
            return 400, _error("BadRequest", f"Invalid query definition: {exc}"), {}
        skip = int(query.get("$skiptoken", "0"))
        page = skip // self.page_size + 1
        failure = self._take_failure(page, kind, f"{start:%Y-%m}")
        if failure:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
            code = "TooManyRequests" if failure.status == 429 else "ServerError"
            return failure.status, _error(code, f"injected {failure.status}"), headers
        columns, rows = self._table(m.group("scope"), kind, start, end, cost_name, groupings)
        chunk = rows[skip:skip + self.page_size]
        with self._lock:
            for (p, r), how in self._state.corrupt.items():
                if p == page and r < len(chunk):
                    chunk[r] = _corrupted(chunk[r], how)
        next_link = None
        if skip + self.page_size < len(rows):
            next_link = (f"{self.url}{path}?api-version={query['api-version']}"
                         f"&$skiptoken={skip + self.page_size}")
        qid = str(uuid.uuid4())
        doc = {"id": f"{m.group('scope').lstrip('/')}/providers/Microsoft.CostManagement/query/{qid}", "name": qid,
               "type": "Microsoft.CostManagement/query", "location": None, "sku": None, "eTag": None,
               "properties": {"nextLink": next_link, "columns": columns, "rows": chunk}}
        return 200, _dumps(doc), {}

    def _take_failure(self, page: int, kind: str, month: str) -> _Failure | None:
        with self._lock:
            for f in self._state.failures:
                if f.remaining == 0 or (f.page not in (None, page)) or (f.kind not in (None, kind)) \
                        or (f.month not in (None, month)):
                    continue
                if f.remaining is not None:
                    f.remaining -= 1
                return f
        return None

    def _table(self, scope: str, kind: str, start: dt.date, end: dt.date, cost_name: str,
               groupings: list[tuple[str, str]]) -> tuple[list[dict[str, str]], list[list[Any]]]:
        scope = scope.strip("/").lower()
        sums: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for r in self.records:
            cost = r.cost(kind)
            if cost is None or not (start <= r.day <= end) or not _in_scope(r, scope):
                continue
            key: list[Any] = [int(r.day.strftime("%Y%m%d"))]
            for gtype, name in groupings:
                if gtype == "TagKey":
                    value = dict(r.tags).get(name)
                    key += [name, value] if value is not None else ["", ""]
                else:
                    key.append(r.dim(name))
            key.append(r.currency)
            sums[tuple(key)] += cost
        columns = [{"name": cost_name, "type": "Number"}, {"name": "UsageDate", "type": "Number"}]
        for gtype, name in groupings:
            columns += ([{"name": "TagKey", "type": "String"}, {"name": "TagValue", "type": "String"}]
                        if gtype == "TagKey" else [{"name": name, "type": "String"}])
        columns.append({"name": "Currency", "type": "String"})
        rows = [[cost, *key] for key, cost in sorted(sums.items(), key=lambda kv: tuple(map(str, kv[0])))]
        return columns, rows


def _in_scope(r: Record, scope: str) -> bool:
    if scope.startswith("subscriptions/"):
        return r.dim("SubscriptionId").lower() == scope.split("/")[1]
    m = re.search(r"billingaccounts/([^/]+)(?:/billingprofiles/([^/]+))?", scope)
    if m:
        return r.billing_account.lower() in {g for g in m.groups() if g}
    return True


def _corrupted(row: list[Any], how: str) -> list[Any]:
    row = list(row)
    if how == "cost":
        row[0] = "twelve dollars"
    elif how == "date":
        row[1] = 20231345
    else:
        row.pop()
    return row


def _error(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def _dumps(doc: Any) -> str:
    # Amounts go out as exact JSON numbers: Decimals are marked, then unquoted.
    def mark(o: Any) -> Any:
        if isinstance(o, Decimal):
            return f"__dec__{o}__"
        raise TypeError(type(o))
    return re.sub(r'"__dec__([-0-9.Ee+]+)__"', r"\1", json.dumps(doc, default=mark))
