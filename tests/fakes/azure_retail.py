"""A local Azure Retail Prices API (``GET /api/retail/prices``) on 127.0.0.1, for tests.

It speaks the real wire format. The envelope is ``BillingCurrency, CustomerEntityId,
CustomerEntityType, Items, NextPageLink, Count``. Items carry the real fields. ``NextPageLink`` is
an absolute URL with ``$skip``, built from the request's own ``Host`` header, as the real service
builds it from its own host. ``$filter`` clauses ``<field> eq '<value>'`` joined by `` and `` are
applied to the fields the collector filters on (``serviceName``, ``armRegionName``, ``priceType``
(the item's ``type``) and a few more). Anything else in a filter is answered with 400, as the real
API does.

The items are built from a SkyPilot-layout catalog (:func:`items_from_catalog`): ``Price`` becomes
the Linux ``Consumption`` meter and ``SpotPrice`` the `` Spot`` meter, with distractors beside them
(Windows, Low Priority, DevTestConsumption, Reservation).

Usage::

    with AzureRetailFake(items, page_size=50) as fake:
        fake.fail(page=2, status=429, times=2)       # two 429s (Retry-After: 0), then the page
        collect(httpx.Client(), ["eastus"], base_url=fake.url)
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.fakes.server import LocalServer, QuietHandler, Served

API_PATH = "/api/retail/prices"
API_VERSION = "2023-01-01-preview"
CATALOG = Path(__file__).resolve().parents[1] / "data" / "catalog" / "azure" / "vms.csv"
LOCATIONS = {"eastus": "US East", "westeurope": "EU West", "westus3": "US West 3", "eastus2": "US East 2",
             "northeurope": "EU North", "southcentralus": "US South Central", "westus2": "US West 2"}
# Filter field → item field. priceType is the one whose item field has another name.
FILTER_FIELDS = {"serviceName": "serviceName", "armRegionName": "armRegionName", "priceType": "type",
                 "armSkuName": "armSkuName", "meterName": "meterName", "skuName": "skuName",
                 "productName": "productName", "location": "location", "serviceFamily": "serviceFamily",
                 "meterId": "meterId", "skuId": "skuId", "productId": "productId"}
EFFECTIVE = "2025-03-01T00:00:00Z"


# -- items ---------------------------------------------------------------------------------------
def catalog_rows(path: Path = CATALOG) -> list[dict[str, str]]:
    """Rows of a SkyPilot-layout Azure ``vms.csv`` (all values as text)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _product(arm_sku: str) -> tuple[str, str]:
    """(productName stem, meter/sku display name): Standard_NC24ads_A100_v4 → ("Virtual Machines
    NCadsA100v4 Series", "NC24ads A100 v4")."""
    short = arm_sku.removeprefix("Standard_")
    family = short
    for i, ch in enumerate(short):
        if ch.isdigit():
            j = i
            while j < len(short) and short[j].isdigit():
                j += 1
            family = short[:i] + short[j:]
            break
    return f"Virtual Machines {family.replace('_', '')} Series", short.replace("_", " ")


def _id(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n].upper()


def make_item(arm_sku: str, region: str, price: float, *, kind: str = "linux",
              price_type: str = "Consumption", primary: bool = True, currency: str = "USD",
              **extra: Any) -> dict[str, Any]:
    """One Retail Prices item. ``kind``: linux, spot, windows, windows_spot, low_priority."""
    product, name = _product(arm_sku)
    if kind in ("windows", "windows_spot"):
        product += " Windows"
    suffix = {"spot": " Spot", "windows_spot": " Spot", "low_priority": " Low Priority"}.get(kind, "")
    meter = name + suffix
    product_id = "DZH318" + _id(product, n=6)
    item = {
        "currencyCode": currency, "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
        "armRegionName": region, "location": LOCATIONS.get(region, region), "effectiveStartDate": EFFECTIVE,
        "meterId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{region}|{meter}|{product}|{price_type}|{primary}")),
        "meterName": meter, "productId": product_id, "skuId": f"{product_id}/{_id(meter, region, n=4)}",
        "availabilityId": None, "productName": product, "skuName": meter, "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8", "serviceFamily": "Compute", "unitOfMeasure": "1 Hour",
        "type": price_type, "isPrimaryMeterRegion": primary, "armSkuName": arm_sku,
    }
    if price_type == "Reservation":
        item["reservationTerm"] = "1 Year"
    item.update(extra)
    return item


def items_from_catalog(rows: Iterable[Mapping[str, str]], *, distractors: bool = True) -> list[dict[str, Any]]:
    """Items for catalog rows: ``Price`` → Linux Consumption, ``SpotPrice`` → Spot (empty prices
    give no item). With ``distractors``, every row also gets Windows, Windows Spot, Low Priority,
    DevTestConsumption and Reservation items, priced so that taking any of them would change the
    result. The rows' own prices are kept exactly as the catalog has them."""
    items: list[dict[str, Any]] = []
    for row in rows:
        sku, region = row["InstanceType"], row["Region"]
        price = float(row["Price"]) if row.get("Price") else None
        spot = float(row["SpotPrice"]) if row.get("SpotPrice") else None
        if distractors and price is not None:
            # Served before the real meters, so a collector that let one through would keep it.
            vcpus = float(row.get("vCPUs") or 1)
            items += [
                make_item(sku, region, round(price + 0.046 * vcpus, 6), kind="windows"),
                make_item(sku, region, round((spot or price) + 0.046 * vcpus, 6), kind="windows_spot"),
                make_item(sku, region, round(price * 0.2, 6), kind="low_priority"),
                make_item(sku, region, round(price * 0.9, 6), price_type="DevTestConsumption"),
                make_item(sku, region, round(price * 8760 * 0.6, 2), price_type="Reservation"),
            ]
        if price is not None:
            items.append(make_item(sku, region, price))
        if spot is not None:
            items.append(make_item(sku, region, spot, kind="spot"))
    return items


# -- server --------------------------------------------------------------------------------------
@dataclass
class _Failure:
    status: int
    remaining: int | None  # None: every time
    retry_after: str | None


class AzureRetailFake(Served):
    """The fake API on an ephemeral loopback port. ``url`` is its base URL. ``requests`` lists
    ``(host, path_with_query)`` of every request, in order."""

    def __init__(self, items: Sequence[Mapping[str, Any]], *, page_size: int = 1000,
                 link_base: str | None = None, ignore_filters: Iterable[str] = ()) -> None:
        """``page_size``: items per page. ``link_base``: build NextPageLink on this base URL instead
        of the request's Host (to check that links are followed as given). ``ignore_filters``:
        filter fields to accept but not apply (to send the collector items it should skip itself)."""
        self.items = [dict(i) for i in items]
        self.page_size = page_size
        self.link_base = link_base
        self.ignore_filters = frozenset(ignore_filters)
        self.requests: list[tuple[str, str]] = []
        self._failures: dict[int, _Failure] = {}
        self._lock = threading.Lock()
        self._server = LocalServer(self._handler())

    def fail(self, *, page: int = 1, status: int = 429, times: int | None = 1,
             retry_after: str | None = "0") -> None:
        """Answer page ``page`` (1-based, any region) with ``status`` the next ``times`` times
        (``None``: always), with a ``Retry-After`` header unless ``retry_after`` is None."""
        with self._lock:
            self._failures[page] = _Failure(status, times, retry_after)

    # -- request handling
    def _handler(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                status, body, headers = fake._answer(self.headers.get("Host", ""), self.path)
                self.reply(status, json.dumps(body), "application/json; charset=utf-8", headers)

        return Handler

    def _answer(self, host: str, path: str) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((host, path))
        parts = urlsplit(path)
        if parts.path != API_PATH:
            return 404, {"Error": {"Code": "NotFound", "Message": f"{parts.path} not found"}}, {}
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            skip = int(query.get("$skip", "0"))
            clauses = self._clauses(query.get("$filter", ""))
        except ValueError as exc:
            return 400, {"Error": {"Code": "BadRequest", "Message": str(exc)}}, {}
        page = skip // self.page_size + 1
        with self._lock:
            failure = self._failures.get(page)
            if failure and failure.remaining != 0:
                if failure.remaining is not None:
                    failure.remaining -= 1
                headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                return failure.status, {"Error": {"Code": "Throttled" if failure.status == 429 else "ServerError",
                                                  "Message": f"injected {failure.status}"}}, headers
        matched = [i for i in self.items if all(i.get(FILTER_FIELDS[f]) == v for f, v in clauses)]
        chunk = matched[skip:skip + self.page_size]
        next_link = None
        if skip + self.page_size < len(matched):
            base = self.link_base or f"http://{host}"
            next_link = (f"{base}{API_PATH}?api-version={quote(query.get('api-version', API_VERSION))}"
                         f"&$filter={quote(query.get('$filter', ''))}&$skip={skip + self.page_size}")
        return 200, {"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                     "Items": chunk, "NextPageLink": next_link, "Count": len(chunk)}, {}

    def _clauses(self, text: str) -> list[tuple[str, str]]:
        out = []
        for clause in filter(None, (c.strip() for c in text.split(" and "))):
            field, sep, rest = clause.partition(" eq ")
            if not sep or field not in FILTER_FIELDS or len(rest) < 2 or rest[0] != "'" or rest[-1] != "'":
                raise ValueError(f"Invalid $filter clause: {clause!r}")
            if field not in self.ignore_filters:
                out.append((field, rest[1:-1]))
        return out
