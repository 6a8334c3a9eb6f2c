"""Azure on-demand and spot prices for GPU VMs, as offer frames, from the Azure Retail Prices API.

The API (``GET https://prices.azure.com/api/retail/prices``) needs no authentication. One query per
region::

    $filter=serviceName eq 'Virtual Machines' and armRegionName eq '<region>' and priceType eq 'Consumption'

answers every VM meter of the region, up to 1,000 items a page, with ``NextPageLink`` pointing at
the next page. The link is followed exactly as given, never rebuilt from a host.

Azure Machine Learning has no price list of its own to collect: its compute clusters and instances are
billed as the VMs they run on (no Azure ML surcharge), so an ``azureml`` launch target uses these VM
offers (service ``compute``; see ``finops.offers.SERVICES``). Meters are classified as follows:

- Windows products (``productName`` ends with ``" Windows"``) are skipped.
- ``"Low Priority"`` meters are skipped. So are types other than ``Consumption``
  (``DevTestConsumption``, ``Reservation``), and tiers above zero units.
- Spot is a ``meterName`` ending with ``" Spot"``.
- Linux on demand is what remains.

Only GPU sizes are kept (``armSkuName`` ``Standard_NC…``, ``ND…``, ``NG…``, ``NV…``). The FPGA
``NP`` sizes and CPU sizes are dropped.

The API says nothing about the VM itself. vCPUs, memory and GPUs come from :data:`VM_SHAPES`, a
table copied from Microsoft's size pages (see there). A GPU size missing from the table is kept,
with its accelerator and shape fields null and ``flag`` set to ``"unknown instance type"``. It is
never guessed from the name.

Failures: 429 and 5xx answers, and transport errors, are retried a bounded number of times
(:func:`finops.retry.get`, honouring ``Retry-After`` in seconds or as an HTTP date). A page that
still fails raises :class:`finops.offers.OfferError` naming the provider, region and URL, and
nothing is returned.
A price of zero or less, or a missing price, is logged as a warning naming the region and meter,
and the row is dropped.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl

from finops import offers
from finops import retry as http_retry
from finops.retry import RetryPolicy

log = logging.getLogger(__name__)

PROVIDER = "azure"
SOURCE = "azure:retail-prices"
BASE_URL = "https://prices.azure.com"
PATH = "/api/retail/prices"
API_VERSION = "2023-01-01-preview"
UNKNOWN_TYPE = offers.FLAG_UNKNOWN_INSTANCE_TYPE
GPU_SERIES = re.compile(r"^Standard_N[CDGV]")
"""GPU sizes: the NC, NCC, ND, NG and NV families. NP is FPGA; no other family starts with N."""

Item = Mapping[str, Any]
Progress = Callable[[str], None]
"""``progress(message)``: ``"<region>: page <n>"`` after each page, ``"<region>: done"`` after each region."""


# -- VM shapes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VmShape:
    """What an Azure size is made of. ``accelerator_memory_gb`` is per whole GPU. A fractional
    ``accelerator_count`` (NVv4, NVadsA10 v5) is the share of one GPU, so the VM's GPU memory is
    count × memory."""

    vcpus: float
    memory_gb: float
    accelerator: str
    accelerator_count: float
    accelerator_memory_gb: float


def _series(accelerator: str, gpu_memory_gb: float, sizes: Mapping[str, tuple[float, float, float]]
            ) -> dict[str, VmShape]:
    return {f"Standard_{name}": VmShape(v, m, accelerator, n, gpu_memory_gb) for name, (v, m, n) in sizes.items()}


# Source: Microsoft Learn size pages ("Sizes in series", the Basics and Accelerators tabs), read from
# MicrosoftDocs/azure-docs articles/virtual-machines/sizes/gpu-accelerated/<series>-series.md
# (2024-07/08 revisions). Values are (vCPUs, memory GB, GPUs). Each entry was cross-checked against
# ../shared/data/catalog/azure/vms.csv (anycloud-sh/catalog, 2026-04-02), and the catalog agrees
# except in three places, where the docs win:
#   - ND96amsr_A100_v4 memory: the docs say 1900 GB, the catalog 1800.
#   - NVv4: the docs give 1/8, 1/4 and 1/2 of a GPU, the catalog 1.
#   - NC H100 v5 / NCC H100 v5: these are H100 NVL (94 GB, canonical "H100-NVL"). The catalog only says "H100".
# ND96isr_H200_v5 has no page in the indexed docs, so its entry is the catalog's row.
# NCads_A10_v4 is left out on purpose. No Microsoft page was found, and other sources disagree
# (NC32ads: 1 or 2 GPUs; NC8ads: a whole GPU or a share). Those rows come out flagged.
VM_SHAPES: dict[str, VmShape] = {
    # NCv3: Tesla V100 16 GB (ncv3-series.md)
    **_series("V100-16GB", 16, {"NC6s_v3": (6, 112, 1), "NC12s_v3": (12, 224, 2),
                                "NC24s_v3": (24, 448, 4), "NC24rs_v3": (24, 448, 4)}),
    # NDv2: Tesla V100 32 GB NVLink (ndv2-series.md)
    **_series("V100-32GB", 32, {"ND40rs_v2": (40, 672, 8)}),
    # NCasT4_v3: Tesla T4 16 GB (ncast4v3-series.md)
    **_series("T4", 16, {"NC4as_T4_v3": (4, 28, 1), "NC8as_T4_v3": (8, 56, 1),
                         "NC16as_T4_v3": (16, 110, 1), "NC64as_T4_v3": (64, 440, 4)}),
    # NC_A100_v4: A100 80 GB PCIe (nca100v4-series.md)
    **_series("A100-80GB", 80, {"NC24ads_A100_v4": (24, 220, 1), "NC48ads_A100_v4": (48, 440, 2),
                                "NC96ads_A100_v4": (96, 880, 4)}),
    # ND_A100_v4: A100 40 GB SXM; the docs call it ND96asr_A100_v4, the ARM name is ND96asr_v4
    **_series("A100-40GB", 40, {"ND96asr_v4": (96, 900, 8)}),
    # NDm_A100_v4: A100 80 GB SXM (ndma100v4-series.md)
    **_series("A100-80GB", 80, {"ND96amsr_A100_v4": (96, 1900, 8)}),
    # NCads_H100_v5 and NCCads_H100_v5 (confidential): H100 NVL 94 GB
    **_series("H100-NVL", 94, {"NC40ads_H100_v5": (40, 320, 1), "NC80adis_H100_v5": (80, 640, 2),
                           "NCC40ads_H100_v5": (40, 320, 1)}),
    # ND_H100_v5: H100 80 GB SXM (ndh100v5-series.md)
    **_series("H100", 80, {"ND96isr_H100_v5": (96, 1900, 8)}),
    # ND_H200_v5: H200 141 GB (the catalog's row)
    **_series("H200", 141, {"ND96isr_H200_v5": (96, 1850, 8)}),
    # ND_MI300X_v5: AMD Instinct MI300X, 1535 GB per VM in the docs (192 GB per GPU)
    **_series("MI300X", 192, {"ND96isr_MI300X_v5": (96, 1850, 8)}),
    # NVadsA10_v5: A10 24 GB, partitioned below one GPU (nvadsa10v5-series.md)
    **_series("A10", 24, {"NV6ads_A10_v5": (6, 55, 1 / 6), "NV12ads_A10_v5": (12, 110, 1 / 3),
                          "NV18ads_A10_v5": (18, 220, 1 / 2), "NV36ads_A10_v5": (36, 440, 1),
                          "NV36adms_A10_v5": (36, 880, 1), "NV72ads_A10_v5": (72, 880, 2)}),
    # NVv3: Tesla M60, 8 GB per GPU (nvv3-series.md)
    **_series("M60", 8, {"NV12s_v3": (12, 112, 1), "NV24s_v3": (24, 224, 2), "NV48s_v3": (48, 448, 4)}),
    # NVv4: Radeon Instinct MI25 16 GB, partitioned (nvv4-series.md)
    **_series("MI25", 16, {"NV4as_v4": (4, 14, 1 / 8), "NV8as_v4": (8, 28, 1 / 4),
                           "NV16as_v4": (16, 56, 1 / 2), "NV32as_v4": (32, 112, 1)}),
}


def is_gpu_size(arm_sku_name: str | None) -> bool:
    """Whether an ``armSkuName`` is a GPU size (the NC, NCC, ND, NG and NV families)."""
    return bool(arm_sku_name) and GPU_SERIES.match(arm_sku_name or "") is not None


# -- HTTP --------------------------------------------------------------------------------------------
def make_client(endpoint: str | None = None, *, timeout: float = 30.0, connect_retries: int = 3) -> httpx.Client:
    """An ``httpx.Client`` for the Retail Prices API at ``endpoint`` (default :data:`BASE_URL`; a proxy,
    a mirror or a local server otherwise). Its transport retries failed connections
    (``connect_retries``); status retries are :func:`finops.retry.get`'s job."""
    return httpx.Client(base_url=endpoint or BASE_URL, transport=httpx.HTTPTransport(retries=connect_retries),
                        timeout=timeout, headers={"Accept": "application/json"})


def region_filter(region: str) -> str:
    """The ``$filter`` for one region's VM consumption meters (values are case-sensitive)."""
    if "'" in region:
        raise offers.OfferError(f"{PROVIDER}: region name {region!r} contains a quote")
    return (f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
            f"and priceType eq 'Consumption'")


def iter_pages(http: httpx.Client, region: str, *, base_url: str = BASE_URL,
               policy: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
               progress: Progress | None = None) -> Iterator[list[dict[str, Any]]]:
    """The ``Items`` of each page of one region's VM meters. The first request is built from
    ``base_url``; after that ``NextPageLink`` is followed exactly as given. Raises
    :class:`~finops.offers.OfferError` (naming region and URL) for a page that still fails after
    the retries, or one that is not a Retail Prices page."""
    url: str | None = base_url.rstrip("/") + PATH
    params: dict[str, str] | None = {"api-version": API_VERSION, "$filter": region_filter(region)}
    seen: set[str] = set()
    page = 0
    while url:
        page += 1
        body = _get_page(http, url, params, region, policy=policy, sleep=sleep)
        items = body.get("Items")
        if not isinstance(items, list):
            raise offers.OfferError(f"{PROVIDER} {region}: page {page} from {url} has no Items list")
        if progress:
            progress(f"{region}: page {page}")
        yield items
        seen.add(url)
        next_link = body.get("NextPageLink")
        if next_link and next_link in seen:
            raise offers.OfferError(f"{PROVIDER} {region}: NextPageLink repeats ({next_link})")
        url, params = next_link or None, None


def _get_page(http: httpx.Client, url: str, params: Mapping[str, str] | None, region: str, *,
              policy: RetryPolicy, sleep: Callable[[float], None]) -> dict[str, Any]:
    shown = str(httpx.URL(url, params=params)) if params else url
    try:
        resp = http_retry.get(http, url, params=params, policy=policy, sleep=sleep)
    except httpx.TransportError as exc:
        raise offers.OfferError(f"{PROVIDER} {region}: GET {shown} failed after {policy.attempts} "
                                f"attempts: {type(exc).__name__}: {exc}") from exc
    shown = str(resp.request.url)
    if resp.status_code != 200:
        tries = f" after {policy.attempts} attempts" if resp.status_code in policy.statuses else ""
        raise offers.OfferError(f"{PROVIDER} {region}: GET {shown} answered HTTP {resp.status_code}{tries}: "
                                f"{resp.text[:200]!r}")
    try:
        body = resp.json()
    except ValueError as exc:
        raise offers.OfferError(f"{PROVIDER} {region}: GET {shown} did not answer JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise offers.OfferError(f"{PROVIDER} {region}: GET {shown} answered {type(body).__name__}, not an object")
    return body


# -- meters to offers --------------------------------------------------------------------------------
def market_of(item: Item) -> str | None:
    """``"spot"``, ``"on_demand"`` or None (skip) for a Retail Prices item. Skipped: non-Consumption
    types (DevTestConsumption, Reservation), Windows products, Low Priority meters, tiers above zero."""
    if item.get("type") != "Consumption" or item.get("serviceName", "Virtual Machines") != "Virtual Machines":
        return None
    if str(item.get("productName", "")).endswith(" Windows"):
        return None
    meter = str(item.get("meterName", ""))
    if "Low Priority" in meter:
        return None
    if (item.get("tierMinimumUnits") or 0) > 0:
        return None
    return "spot" if meter.endswith(" Spot") else "on_demand"


def offer_row(item: Item, market: str, observed_at: datetime,
              monthly: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any] | None:
    """One offer row (a dict of :data:`finops.offers.SCHEMA` fields) for a classified GPU meter.
    Returns None and logs a warning when the price is missing, zero or negative, or not per hour."""
    size = str(item["armSkuName"])
    region = str(item.get("armRegionName") or "")
    meter = item.get("meterId") or item.get("skuId")
    where = f"{PROVIDER} {region} {size} (meter {meter}, {item.get('meterName')!r})"
    price = item.get("retailPrice")
    if not isinstance(price, (int, float)) or isinstance(price, bool) or not math.isfinite(price) or price <= 0:
        log.warning("%s: %s price %r dropped: not a positive number", where, market, price)
        return None
    if item.get("unitOfMeasure") != "1 Hour":
        log.warning("%s: %s price dropped: unit %r is not '1 Hour'", where, market, item.get("unitOfMeasure"))
        return None
    shape = VM_SHAPES.get(size)
    row: dict[str, Any] = {
        "provider": PROVIDER, "region": region, "zone": None, "instance_type": size, "market": market,
        "price_per_hour": float(price), "currency": item.get("currencyCode"), "observed_at": observed_at,
        "source": SOURCE, "sku": meter,
        "interruption_rate": offers.interruption_rate(PROVIDER, size, market, monthly),
        "flag": None if shape else UNKNOWN_TYPE,
    }
    if shape:
        row.update(accelerator_name=offers.canonical_accelerator(shape.accelerator),
                   accelerator_count=shape.accelerator_count,
                   accelerator_memory_gb=shape.accelerator_memory_gb,
                   vcpus=shape.vcpus, memory_gb=shape.memory_gb)
    return row


def _preference(item: Item) -> tuple[bool, str]:
    # Among meters for the same (size, market): the primary meter region first, then the newest.
    return bool(item.get("isPrimaryMeterRegion", True)), str(item.get("effectiveStartDate") or "")


def region_offers(items: Sequence[Item], observed_at: datetime,
                  monthly: Mapping[str, Mapping[str, float]] | None = None) -> list[dict[str, Any]]:
    """Offer rows for one region's items: GPU sizes only, classified, one row per (size, market).
    Where several meters price the same offer, the primary meter region and then the newest
    ``effectiveStartDate`` wins."""
    chosen: dict[tuple[str, str, str], tuple[tuple[bool, str], dict[str, Any]]] = {}
    for item in items:
        if not is_gpu_size(item.get("armSkuName")):
            continue
        market = market_of(item)
        if market is None:
            continue
        row = offer_row(item, market, observed_at, monthly)
        if row is None:
            continue
        key = (row["region"], row["instance_type"], market)
        pref = _preference(item)
        if key not in chosen or pref > chosen[key][0]:
            chosen[key] = (pref, row)
    return [row for _, row in chosen.values()]


def collect(http: httpx.Client, regions: Sequence[str], *, observed_at: datetime | None = None,
            progress: Progress | None = None, base_url: str | None = None,
            retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
            interruption: Mapping[str, Mapping[str, float]] | None = None) -> pl.DataFrame:
    """On-demand and spot prices of Azure GPU VMs in ``regions``, as an offer frame
    (:func:`finops.offers.frame`). Every row has the same ``observed_at`` (default: now, UTC).

    ``http`` is any ``httpx.Client``; :func:`make_client` makes one with connection retries.
    ``base_url`` (default: the client's own base URL, else :data:`BASE_URL`) is where the first
    request of each region goes, and ``NextPageLink`` is followed from there. ``progress`` is called
    with ``"<region>: page N"`` after each page and ``"<region>: done"`` after each region.
    ``retry`` bounds the retries on 429/5xx. ``interruption`` overrides the monthly spot
    interruption defaults (``[prices.interruption]``).

    Raises :class:`~finops.offers.OfferError` if any page fails after its retries. Nothing partial
    is returned."""
    when = observed_at or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    monthly = offers.interruption_table(interruption)
    base_url = base_url or str(http.base_url).rstrip("/") or BASE_URL
    rows: list[dict[str, Any]] = []
    for region in dict.fromkeys(regions):  # each region once, in the order given
        items = [item for page in iter_pages(http, region, base_url=base_url, policy=retry, sleep=sleep,
                                             progress=progress) for item in page]
        rows.extend(region_offers(items, when, monthly))
        if progress:
            progress(f"{region}: done")
    unknown = sorted({r["instance_type"] for r in rows if r["flag"] == UNKNOWN_TYPE})
    if unknown:
        log.warning("%s: %d GPU size(s) not in VM_SHAPES, kept with flag %r: %s",
                    PROVIDER, len(unknown), UNKNOWN_TYPE, ", ".join(unknown))
    return offers.frame(rows)
