"""A local Cloud Billing Catalog API (``cloudbilling.googleapis.com/v1``) for tests.

It answers ``GET /v1/services`` and ``GET /v1/services/{id}/skus`` in the API's JSON wire format (the
format google-cloud-billing's REST transport reads), pages with ``pageSize``/``nextPageToken``, and can
answer errors: ``fail_next`` queues transient errors (429, 503 …) before success, ``fail_page`` fails
one page of a service N times or every time. Use it as a context manager::

    with FakeCloudCatalog(page_size=10) as fake:
        client = fake.client()                 # a real CloudCatalogClient (REST, anonymous)
        client.list_skus(parent=COMPUTE_ENGINE)

Its SKUs carry real prices: the unit prices below were derived from SkyPilot's GCP catalog
(``tests/data/catalog/gcp/vms.csv``, a subset of ``../shared/data/catalog/gcp/vms.csv``), so that

    round(vCPUs × core + GiB × RAM, 5)   = the catalog's VM row        (a2-highgpu-8g: 5.91582)
    round(GPUs × GPU, 5)                 = the catalog's GPU row       (A100 ×8: 23.47126)
    round(chips × TPU per chip, 5)       = the catalog's TPU slice row (tpu-v5litepod-8: 9.6)

for every row of that file (``tests/collectors/gcp/test_prices.py`` checks it). N1 and A2 core and
RAM prices are solved exactly from shapes with different GiB per vCPU (n1-standard-8 / n1-highmem-8,
a2-highgpu / a2-ultragpu); in Iowa they come out at 0.031611 per vCPU-hour and 0.004237 per
GiB-hour, GCP's published N1 on-demand rates. A3 and G2 shapes all have the same GiB per vCPU (9
and 4), so the catalog fixes only vCPU price + k × GiB price; the split between core and RAM here
takes the A2 ratio of the same region and market and is a choice, not an observation. GPU and TPU
prices are the catalog rows divided by the count (the largest row, for precision), with the fewest
decimals that reproduce them all. The catalog's own quirks are kept as they are (e.g. the A100 80GB
spot price in us-central1 is above its on-demand price; europe-west4's A100 is cheaper than
us-central1's).

Descriptions and categories follow the real catalog: "A2 Instance Core running in Iowa" (CPU),
"Spot Preemptible A2 Instance Ram running in Iowa" (RAM, Preemptible), "N1 Predefined Instance Core …"
(resource group N1Standard), "Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in …",
"TpuV5e running in …" (Compute Engine, per chip), "Tpu-v4 Pod Accelerator USA" (Cloud TPU, per 8
TensorCores; its preemptible SKU has usage type OnDemand, as the legacy service does). Decoys that a
collector must ignore (commitments, sole tenancy, virtual workstations, storage, other families) are
priced at 99 so that a leak shows.

The Vertex AI service (:func:`vertex_skus`) serves the SKUs of a real Vertex AI bill for an
a3-highgpu-8g custom-training job and an a3-highgpu-1g endpoint in us-central1, with their real SKU ids,
descriptions and USD unit prices as the Cloud Billing report listed them, each id linked to
cloud.google.com/skus. Source: a Google Cloud Japan engineer's Zenn article on DWS Flex-start pricing
("DWS の新料金プランで GPU コストを大幅削減"; its markdown source as indexed, billing screenshots of
2025-08-16). E.g. 3F95-001E-B747 "Vertex AI: Training/Pipelines on NVIDIA H100 80GB in Iowa" at
11.2660332 an hour; the article's on-demand total, 101.5429684 an hour, is a3-highgpu-8g plus a 2000 GiB
boot disk. Served: training core, RAM and H100; the training management fees (from the same article's
Flex-start bill; added to Compute Engine's spot prices for Vertex AI spot offers); online-prediction SKUs
and a persistent-disk SKU, which the collector does not read. Only the category (resource family and
group) of these SKUs is not observed; the collector reads Vertex AI SKUs by description, never category.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

from tests.fakes.server import LocalServer, QuietHandler

COMPUTE_ENGINE = "6F81-5844-456A"
CLOUD_TPU = "E000-3F24-B8AA"
VERTEX_AI = "C7E2-9256-1C43"
SERVICE_NAMES = {COMPUTE_ENGINE: "Compute Engine", CLOUD_TPU: "Cloud TPU", VERTEX_AI: "Vertex AI"}
PLACES = {"us-central1": "Iowa", "europe-west4": "Netherlands", "us-central2": "Oklahoma"}
EFFECTIVE = "2026-04-02T08:00:00Z"

# Core and RAM per family: (core on demand, RAM on demand, core spot, RAM spot), USD per vCPU-hour and
# per GiB-hour. Derived from these catalog rows (us-central1 / europe-west4):
#   n1: n1-standard-4, -8 and n1-highmem-8     a2: a2-highgpu-{1,2,4,8}g and a2-ultragpu-{1,2,4,8}g
#   a3: a3-highgpu-8g (split: A2 ratio)        g2: g2-standard-{4,…,96}  (split: A2 ratio)
CORE_RAM: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("us-central1", "n1"): ("0.031611", "0.004237", "0.01018", "0.001305"),
    ("us-central1", "a2"): ("0.031611", "0.004237", "0.01581", "0.002118"),
    ("us-central1", "a3"): ("0.02061398", "0.00276301", "0.007271", "0.000975"),
    ("us-central1", "g2"): ("0.02389", "0.003202", "0.00956", "0.001281"),
    ("europe-west4", "n1"): ("0.034802", "0.004664", "0.0119", "0.001595"),
    ("europe-west4", "a2"): ("0.034802", "0.004664", "0.0136", "0.001824"),
    ("europe-west4", "a3"): ("0.0216461", "0.002901", "0.005464", "0.000733"),
    ("europe-west4", "g2"): ("0.02511063", "0.0033652", "0.01255", "0.001683"),
}
FAMILY_SKUS = {"n1": ("N1 Predefined Instance", "N1Standard", "N1Standard"), "a2": ("A2 Instance", "CPU", "RAM"),
               "a3": ("A3 Instance", "CPU", "RAM"), "g2": ("G2 Instance", "CPU", "RAM")}

# GPUs, keyed by SkyPilot's names (the catalog's AcceleratorName): (on demand, spot) per GPU-hour.
GPUS: dict[tuple[str, str], tuple[str, str]] = {
    ("us-central1", "A100"): ("2.933908", "1.4341"),
    ("us-central1", "A100-80GB"): ("1.846198", "1.964"),
    ("us-central1", "H100"): ("4.200761", "3.4565"),
    ("us-central1", "L4"): ("0.56004", "0.2231"),
    ("us-central1", "T4"): ("0.35", "0.1579"),
    ("us-central1", "V100"): ("2.48", "1.0858"),
    ("us-central1", "P100"): ("1.46", "0.7016"),
    ("us-central1", "P4"): ("0.6", "0.1911"),
    ("europe-west4", "A100"): ("1.613649", "1.1691"),
    ("europe-west4", "A100-80GB"): ("2.032848", "2.1626"),
    ("europe-west4", "H100"): ("12.735516", "3.2096"),
    ("europe-west4", "L4"): ("0.588042", "0.2631"),
    ("europe-west4", "T4"): ("0.3675", "0.1496"),
    ("europe-west4", "V100"): ("2.604", "0.8929"),
    ("europe-west4", "P100"): ("1.533", "0.2002"),
    ("europe-west4", "P4"): ("0.63", "0.1525"),
}
GPU_SKUS = {"A100": "Nvidia Tesla A100", "A100-80GB": "Nvidia Tesla A100 80GB", "H100": "Nvidia H100 80GB",
            "L4": "Nvidia L4", "T4": "Nvidia Tesla T4", "V100": "Nvidia Tesla V100", "P100": "Nvidia Tesla P100",
            "P4": "Nvidia Tesla P4"}

# TPUs on Compute Engine: (on demand, spot) per chip-hour.
TPUS: dict[tuple[str, str], tuple[str, str]] = {
    ("us-central1", "v5e"): ("1.2", "0.244926"),
    ("us-central1", "v5p"): ("4.2", "0.873307"),
    ("us-central1", "v6e"): ("2.7", "0.542847"),
    ("europe-west4", "v5e"): ("1.56", "0.490594"),
    ("europe-west4", "v5p"): ("4.2525", "1.34849"),
    ("europe-west4", "v6e"): ("2.97", "1.19828499"),
}
TPU_SKUS = {"v5e": "TpuV5e", "v5p": "TpuV5p", "v6e": "TpuV6e"}
# TPU v4 on the Cloud TPU service: per 8 TensorCores (4 chips) an hour = tpu-v4-8 (12.88 / 3.686).
TPU_V4 = ("us-central2", "12.88", "3.686")
# TPU v3 device (tpu-v3-8, us-central1, 8.0): a generation the collector knows but does not price.
TPU_V3 = ("us-central1", "8.0")

# Vertex AI in us-central1 (Iowa), as billed (see the module docstring): (SKU id, description, USD per unit,
# unit). The RAM SKUs are listed "per 1 gigabyte hour" (GiBy.h, as Compute Engine's); the disk "per 1 gibibyte
# month", at 0.0002678 an hour × 730 (the bill's own conversion) = 0.1955 a month.
VERTEX_TRAINING: tuple[tuple[str, str, str, str], ...] = (
    ("2E83-99F1-391A", "Vertex AI: Training/Pipelines on A3 Instance Core in Iowa", "0.0293227", "h"),
    ("B045-9255-8314", "Vertex AI: Training/Pipelines on A3 Instance RAM in Iowa", "0.0025534", "GiBy.h"),
    ("3F95-001E-B747", "Vertex AI: Training/Pipelines on NVIDIA H100 80GB in Iowa", "11.2660332", "h"),
)
VERTEX_FEES: tuple[tuple[str, str, str, str], ...] = (
    ("9AC1-7D9B-C47E", "Vertex AI: Training/Pipelines management fee on A3 Instance Core in Iowa", "0.0038247", "h"),
    ("D30D-69C9-F057", "Vertex AI: Training/Pipelines management fee on A3 Instance RAM in Iowa", "0.0003331",
     "GiBy.h"),
    ("5853-505F-A5C4", "Vertex AI: Training/Pipelines management fee on NVIDIA H100 80GB in Iowa", "1.4694826", "h"),
)
VERTEX_UNREAD: tuple[tuple[str, str, str, str], ...] = (
    ("AE9C-DB60-DF46", "Vertex AI: Online/Batch Prediction Nvidia H100 80gb GPU running in Iowa", "11.2660332", "h"),
    ("A002-4323-D900", "Vertex AI: Online/Batch Prediction A3 Predefined Instance Core running in Iowa", "0.0293227",
     "h"),
    ("2424-9F04-82A8", "Vertex AI: Online/Batch Prediction A3 Predefined Instance Ram running in Iowa", "0.0025534",
     "GiBy.h"),
    ("1797-967A-274D", "Vertex AI: Online/Batch Prediction management fee on NVIDIA H100 80GB in Iowa", "1.4694826",
     "h"),
    ("5692-009D-2057", "Vertex AI: Online/Batch Prediction management fee on A3 Instance RAM in Iowa", "0.0003331",
     "GiBy.h"),
    ("A005-98FE-36CC", "Vertex AI: Training/Pipelines on SSD backed PD Capacity", "0.1955", "GiBy.mo"),
)
"""Real Vertex AI SKUs the collector must not turn into offers (prediction, management fees of prediction,
disk)."""


def sku_id(description: str) -> str:
    """A stable, real-looking SKU id (``XXXX-XXXX-XXXX``) for a description."""
    h = hashlib.sha1(description.encode()).hexdigest().upper()
    return f"{h[0:4]}-{h[4:8]}-{h[8:12]}"


def money(price: Decimal | str | float, currency: str = "USD") -> dict[str, Any]:
    """``google.type.Money`` as JSON: units (an int64, so a string) and nanos, both with the sign."""
    value = Decimal(str(price))
    units = int(value)  # truncates toward zero, as Money wants
    nanos = int((value - units) * 1_000_000_000)
    return {"currencyCode": currency, "units": str(units), "nanos": nanos}


def sku(description: str, *, service: str = COMPUTE_ENGINE, group: str, usage: str = "OnDemand",
        regions: Sequence[str] = ("us-central1",), price: Decimal | str | float, unit: str = "h",
        family: str = "Compute", currency: str = "USD", id: str | None = None) -> dict[str, Any]:  # noqa: A002 (the API's field)
    """One SKU in the API's JSON wire format."""
    ident = id or sku_id(description)
    gib = unit.startswith("GiBy")
    return {
        "name": f"services/{service}/skus/{ident}",
        "skuId": ident,
        "description": description,
        "category": {"serviceDisplayName": SERVICE_NAMES.get(service, service), "resourceFamily": family,
                     "resourceGroup": group, "usageType": usage},
        "serviceRegions": list(regions),
        "pricingInfo": [{
            "effectiveTime": EFFECTIVE,
            "summary": "",
            "pricingExpression": {
                "usageUnit": unit,
                "displayQuantity": 1,
                "usageUnitDescription": "gibibyte hour" if gib else ("gibibyte month" if unit == "GiBy.mo" else "hour"),
                "baseUnit": "By.s" if gib else "s",
                "baseUnitDescription": "byte second" if gib else "second",
                "baseUnitConversionFactor": 3865470566400 if gib else 3600,
                "tieredRates": [{"startUsageAmount": 0, "unitPrice": money(price, currency)}],
            },
            "currencyConversionRate": 1,
            "aggregationInfo": {"aggregationLevel": "ACCOUNT", "aggregationInterval": "DAILY",
                                "aggregationCount": 1},
        }],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "REGIONAL" if len(regions) == 1 else "MULTI_REGIONAL", "regions": list(regions)},
    }


def _spot(description: str) -> str:
    return f"Spot Preemptible {description}"


def _gpu_spot(name: str, place: str) -> str:
    return f"{name} GPU attached to Spot Preemptible VMs running in {place}"


def compute_skus() -> list[dict[str, Any]]:
    """The Compute Engine SKUs: core/RAM per family, GPUs, TPUs (on demand and spot) and decoys."""
    out = []
    for (region, fam), (core, ram, core_spot, ram_spot) in CORE_RAM.items():
        name, core_group, ram_group = FAMILY_SKUS[fam]
        place = PLACES[region]
        for what, group, od, spot, unit in (("Core", core_group, core, core_spot, "h"),
                                            ("Ram", ram_group, ram, ram_spot, "GiBy.h")):
            desc = f"{name} {what} running in {place}"
            out.append(sku(desc, group=group, regions=[region], price=od, unit=unit))
            out.append(sku(_spot(desc), group=group, usage="Preemptible", regions=[region], price=spot, unit=unit))
    for (region, gpu), (od, spot) in GPUS.items():
        name, place = GPU_SKUS[gpu], PLACES[region]
        out.append(sku(f"{name} GPU running in {place}", group="GPU", regions=[region], price=od))
        out.append(sku(_gpu_spot(name, place), group="GPU", usage="Preemptible", regions=[region], price=spot))
    for (region, version), (od, spot) in TPUS.items():
        name, place = TPU_SKUS[version], PLACES[region]
        out.append(sku(f"{name} running in {place}", group="TPU", regions=[region], price=od))
        out.append(sku(f"{name} attached to Spot Preemptible VMs running in {place}", group="TPU",
                       usage="Preemptible", regions=[region], price=spot))
    return out + decoys()


def decoys() -> list[dict[str, Any]]:
    """Real-shaped SKUs that price nothing the collector offers; priced at 99 so a leak shows."""
    return [
        sku("Commitment v1: A2 Cpu in Americas for 1 Year", group="CPU", usage="Commit1Yr",
            regions=["us-central1", "europe-west4"], price="99"),
        sku("Nvidia Tesla T4 GPU attached to Sole Tenancy VMs running in Iowa", group="GPU", price="99"),
        sku("Nvidia Tesla T4 GPU Virtual Workstation running in Iowa", group="GPU", price="99"),
        sku("Reserved TpuV5p in Iowa in Calendar Mode", group="TPU", price="99"),
        sku("N2 Instance Core running in Iowa", group="CPU", price="99"),
        sku("Custom Instance Core running in Americas", group="N1Standard", regions=["us-central1", "europe-west4"],
            price="99"),
        sku("Storage PD Capacity in Iowa", group="PDStandard", family="Storage", price="99", unit="GiBy.mo"),
    ]


def tpu_service_skus() -> list[dict[str, Any]]:
    """The Cloud TPU service's SKUs: TPU v4 pods (on demand and preemptible) and a v3 device."""
    region, od, spot = TPU_V4
    return [
        sku("Tpu-v4 Pod Accelerator USA", service=CLOUD_TPU, group="TPU", regions=[region], price=od),
        # The legacy service marks preemptible TPUs OnDemand and says so in the description.
        sku("Tpu-v4 Pod Preemptible Accelerator USA", service=CLOUD_TPU, group="TPU", regions=[region], price=spot),
        sku("Tpu-v3 Accelerator USA", service=CLOUD_TPU, group="TPU", regions=[TPU_V3[0]], price=TPU_V3[1]),
    ]


def vertex_sku(description: str, *, price: Decimal | str | float, unit: str = "h", id: str | None = None,  # noqa: A002
                regions: Sequence[str] = ("us-central1",), usage: str = "OnDemand") -> dict[str, Any]:
    """One Vertex AI SKU in the wire format (its category is not observed: see the module docstring)."""
    family = "Storage" if unit.endswith(".mo") else "ApplicationServices"
    return sku(description, service=VERTEX_AI, group="VertexAI", family=family, usage=usage, regions=regions,
               price=price, unit=unit, id=id)


def vertex_skus() -> list[dict[str, Any]]:
    """The Vertex AI service's SKUs: training, training management fees, and SKUs the collector ignores."""
    return [vertex_sku(desc, price=price, unit=unit, id=ident)
            for ident, desc, price, unit in (*VERTEX_TRAINING, *VERTEX_FEES, *VERTEX_UNREAD)]


def default_skus() -> dict[str, list[dict[str, Any]]]:
    """Service id → its SKUs, as the fake serves them unless told otherwise."""
    return {COMPUTE_ENGINE: compute_skus(), CLOUD_TPU: tpu_service_skus(), VERTEX_AI: vertex_skus()}


# -- the server --------------------------------------------------------------------------------------
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class Call:
    """One request the fake answered."""

    path: str
    page_token: str
    page_size: int | None
    status: int


@dataclass
class _State:
    skus: dict[str, list[dict[str, Any]]]
    page_size: int
    transient: list[tuple[int, str | None]] = field(default_factory=list)  # (status, service or None)
    broken_pages: dict[tuple[str, int], tuple[int, int | None]] = field(default_factory=dict)  # → (status, left)
    calls: list[Call] = field(default_factory=list)


class FakeCloudCatalog:
    """The fake Cloud Billing Catalog API on 127.0.0.1 (an ephemeral port); a context manager."""

    def __init__(self, skus: Mapping[str, list[dict[str, Any]]] | None = None, *, page_size: int = 25) -> None:
        self._state = _State({k: list(v) for k, v in (skus or default_skus()).items()}, page_size)
        self._lock = threading.Lock()
        self._server = LocalServer(_handler(self))

    # -- lifecycle
    def start(self) -> Self:
        """Serve in a background thread."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._server.url

    def client(self) -> Any:
        """A real ``billing_v1.CloudCatalogClient`` (REST transport, anonymous) pointed at the fake."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import billing_v1

        return billing_v1.CloudCatalogClient(credentials=AnonymousCredentials(), transport="rest",
                                             client_options=ClientOptions(api_endpoint=self.url))

    # -- shaping answers
    def set_skus(self, service: str, skus: list[dict[str, Any]]) -> None:
        """Serve ``skus`` for ``service`` from now on."""
        with self._lock:
            self._state.skus[service] = list(skus)

    def add_skus(self, *skus: dict[str, Any], service: str = COMPUTE_ENGINE) -> None:
        """Append SKUs to a service's list."""
        with self._lock:
            self._state.skus.setdefault(service, []).extend(skus)

    def replace_price(self, description: str, price: Decimal | str | float) -> str:
        """Set the price of the SKU with this description; returns its SKU id."""
        with self._lock:
            for items in self._state.skus.values():
                for item in items:
                    if item["description"] == description:
                        rate = item["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]
                        rate["unitPrice"] = money(price)
                        return str(item["skuId"])
        raise KeyError(description)

    def fail_next(self, count: int, status: int = 429, *, service: str | None = None) -> None:
        """Answer the next ``count`` SKU requests (of ``service``, or any) with ``status``."""
        with self._lock:
            self._state.transient += [(status, service)] * count

    def fail_page(self, page: int, status: int = 503, *, service: str = COMPUTE_ENGINE,
                  times: int | None = None) -> None:
        """Answer requests for ``page`` (1-based) of ``service``'s SKUs with ``status``: every time, or
        the next ``times`` times."""
        with self._lock:
            self._state.broken_pages[(service, page)] = (status, times)

    def calls(self, path_contains: str = "") -> list[Call]:
        """The requests answered so far (their path containing ``path_contains``)."""
        with self._lock:
            return [c for c in self._state.calls if path_contains in c.path]

    # -- answering (called from the handler threads)
    def _answer(self, path: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        token = query.get("pageToken", "")
        size = int(query["pageSize"]) if query.get("pageSize") else None
        with self._lock:
            status, body = self._route(path, token, size)
            self._state.calls.append(Call(path, token, size, status))
        return status, body

    def _route(self, path: str, token: str, size: int | None) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if parts == ["v1", "services"]:
            services = [{"name": f"services/{sid}", "serviceId": sid, "displayName": SERVICE_NAMES.get(sid, sid),
                         "businessEntityName": "businessEntities/GCP"} for sid in self._state.skus]
            return self._page("services", services, token, size)
        if len(parts) == 4 and parts[:2] == ["v1", "services"] and parts[3] == "skus":
            service = parts[2]
            if service not in self._state.skus:
                return _error(404, f"Service services/{service} not found.")
            page = int(token) if token else 1
            for i, (status, only) in enumerate(self._state.transient):
                if only in (None, service):
                    del self._state.transient[i]
                    return _error(status, "Quota exceeded" if status == 429 else "The service is unavailable.")
            broken = self._state.broken_pages.get((service, page))
            if broken and broken[1] != 0:
                status, left = broken
                self._state.broken_pages[(service, page)] = (status, None if left is None else left - 1)
                return _error(status, f"page {page} of services/{service}/skus failed")
            return self._page("skus", self._state.skus[service], token, size)
        return _error(404, f"no such resource: {path}")

    def _page(self, key: str, items: list[dict[str, Any]], token: str, size: int | None) -> tuple[int, dict[str, Any]]:
        page = int(token) if token else 1
        per = min(size or self._state.page_size, self._state.page_size)
        chunk = items[(page - 1) * per: page * per]
        more = page * per < len(items)
        return 200, {key: chunk, "nextPageToken": str(page + 1) if more else ""}


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


def _handler(fake: FakeCloudCatalog) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            status, body = fake._answer(url.path, dict(urllib.parse.parse_qsl(url.query)))
            self.reply(status, json.dumps(body))

    return Handler


@contextmanager
def serve_catalog(skus: Mapping[str, list[dict[str, Any]]] | None = None, *,
                  page_size: int = 25) -> Iterator[FakeCloudCatalog]:
    """``with serve_catalog() as fake:`` the fake, started, stopped on exit."""
    with FakeCloudCatalog(skus, page_size=page_size) as fake:
        yield fake
