"""GCP on-demand and spot prices for GPU and TPU capacity, from the Cloud Billing Catalog API.

GCP sells no GPU machine at one price: it bills a VM's vCPUs and memory on per-family SKUs ("A2
Instance Core", "A2 Instance Ram") and each attached GPU on its own SKU ("Nvidia Tesla A100 GPU").
This module reads those SKUs with ``CloudCatalogClient.list_skus`` and composes machine prices:

    price(machine) = vCPUs × core SKU + memory GiB × RAM SKU (+ GPUs × GPU SKU)

for the machine shapes in :data:`MACHINES`, in each region and market (on demand: usage type
``OnDemand``; spot: ``Preemptible``, described "Spot Preemptible …"). TPU slices are priced per chip:
Compute Engine's own TPU SKUs (``TpuV5e``, ``TpuV5p``, ``TpuV6e``) price one chip-hour; the older
Cloud TPU service prices a TPU v4 "Pod" device of 8 TensorCores (4 chips) an hour, see
:data:`TPU_VERSIONS`. SKU prices are regional, so every offer has a null zone.

**Vertex AI** (service ``C7E2-9256-1C43``) bills custom training at its own prices, per machine component,
as Compute Engine does: "Vertex AI: Training/Pipelines on A3 Instance Core in Iowa", "… on A3 Instance RAM
in Iowa", "… on NVIDIA H100 80GB in Iowa" (older families: "… on N1 Predefined Instance Core running in
…"). :func:`collect` composes the same :data:`MACHINES` from those SKUs into offers of service ``vertex``
(:data:`VERTEX`), on demand. Each is 1.15 × a base rate whose 0.15 × is the management fee below (A3 core
in Iowa: 0.0293227 and 0.0038247 an hour): consistent with Compute Engine's on-demand rate plus a 15 % fee.

*Spot on Vertex AI.* The catalog has no Vertex AI spot SKU, and the Spot VM page for Vertex AI says only
that you are "billed by job duration and machine type" (cloud.google.com/vertex-ai/docs/predictions/
use-spot-vms). Where Vertex AI runs a VM on a discounted provisioning model it documents the bill as split
across two SKUs, the Compute Engine SKU of that model plus a Vertex AI "management fee" SKU
(cloud.google.com/vertex-ai/docs/predictions/use-flex-start-vms, "Billing"; a Flex-start training bill
shows "DWS Defined Duration A3 Core …" + "Vertex AI: Training/Pipelines management fee on A3 Instance Core
in Iowa"). The rule applied: a ``vertex`` spot offer = Compute Engine's spot ("Spot Preemptible …") core,
RAM and GPU SKUs + the Vertex AI training management-fee SKU of each, with source
:data:`VERTEX_SPOT_SOURCE`, and only where every part is in the catalog (never the spot VM price alone,
which would under-price it). A Vertex AI SKU of usage type ``Preemptible``, should the catalog publish
one, is used as it is and wins over the derived price.

*Serving.* Online prediction has its own SKUs ("Vertex AI: Online/Batch Prediction A3 Predefined Instance
Core running in Iowa"), but at the same prices as training in the published catalog (a3 core 0.0293227,
RAM 0.0025534, H100 11.2660332 in Iowa, for both), and the engine has one ``vertex`` price list for both
kinds of workload (``finops.offers.SERVICES``). So prediction SKUs are not read: serving on Vertex AI is
priced at the training rates. TPU training on Vertex AI is not collected.

Bad input is kept apart, never guessed at: a SKU with a price of zero or less, an unexpected unit or
currency, or a GPU the engine does not know is logged as a warning naming the provider, region and
SKU and left out (as is a Vertex AI training SKU naming a core, RAM or GPU in a shape we cannot read);
a TPU SKU of an unknown generation priced per chip comes back as one flagged row
("unknown accelerator"). A page that still fails after the retries raises
:class:`finops.offers.OfferError` and nothing is returned.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.cloud import billing_v1

from collectors.gcp.endpoints import client_kwargs
from finops import offers

log = logging.getLogger(__name__)

PROVIDER = "gcp"
SOURCE = "gcp:cloudbilling.list_skus"
COMPUTE_ENGINE = "services/6F81-5844-456A"
"""Compute Engine: VM cores and RAM, GPUs, and the TPU generations from v5 on (per chip)."""
CLOUD_TPU = "services/E000-3F24-B8AA"
"""Cloud TPU: the older TPU generations (v2, v3, v4), priced per device of 8 TensorCores."""
VERTEX_AI = "services/C7E2-9256-1C43"
"""Vertex AI: custom training per machine component, and the management fee added to VMs it bills on
Compute Engine's SKUs (see the module docstring)."""
SERVICES: dict[str, str] = {COMPUTE_ENGINE: "Compute Engine", CLOUD_TPU: "Cloud TPU", VERTEX_AI: "Vertex AI"}
VERTEX = "vertex"
"""The offer ``service`` of Vertex AI prices (``finops.offers.SERVICES``)."""
VERTEX_SPOT_SOURCE = "derived:gcp-spot+vertex-fee"
"""Vertex AI on Spot VMs: Compute Engine's spot SKUs + Vertex AI's management-fee SKUs (no published price)."""
PAGE_SIZE = 5000  # the API's largest page
CALL = "CloudCatalogClient.list_skus"

Progress = Callable[[str], None]
"""``progress(message)``: ``"<service>: <n> SKUs"`` after each page."""


# -- machine shapes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """A machine shape: the family whose core and RAM SKUs bill it, and its GPUs (if any)."""

    family: str                # core/RAM SKU family: "A2 Instance Core …" → a2
    vcpus: int
    memory_gib: int            # GCP bills RAM per GiB-hour
    gpu: str | None = None     # the GPU model as GCP's SKU names it ("A100 80GB"), see GPU_MODELS
    gpus: int = 0


def _n1_hosts() -> dict[str, Machine]:
    """N1 hosts with GPUs attached, named ``host+GPUxN`` as ``collectors.catalog`` names them.

    n1-standard-8 (8 vCPUs, 30 GiB) fits every count here: GCP's attach limits are 48/48/96 vCPUs for
    1/2/4 T4s, 12/24/48/96 for 1/2/4/8 V100s, 16/32/96 for 1/2/4 P100s and 24/48/96 for 1/2/4 P4s
    (https://cloud.google.com/compute/docs/gpus). n1-standard-4 + 1 T4 is the smallest T4 machine."""
    counts = {"T4": (1, 2, 4), "V100": (1, 2, 4, 8), "P100": (1, 2, 4), "P4": (1, 2, 4)}
    hosts = {f"n1-standard-8+{g}x{n}": Machine("n1", 8, 30, g, n) for g, ns in counts.items() for n in ns}
    return {"n1-standard-4+T4x1": Machine("n1", 4, 15, "T4", 1), **hosts}


MACHINES: dict[str, Machine] = {
    # A2 High: 12 vCPUs and 85 GB per A100 40GB; A2 Ultra: 12 vCPUs and 170 GB per A100 80GB.
    **{f"a2-highgpu-{n}g": Machine("a2", 12 * n, 85 * n, "A100", n) for n in (1, 2, 4, 8)},
    **{f"a2-ultragpu-{n}g": Machine("a2", 12 * n, 170 * n, "A100 80GB", n) for n in (1, 2, 4, 8)},
    "a3-highgpu-8g": Machine("a3", 208, 1872, "H100 80GB", 8),
    # G2: 4 GB per vCPU; the L4 count is not proportional to the vCPUs.
    **{f"g2-standard-{v}": Machine("g2", v, 4 * v, "L4", n)
       for v, n in ((4, 1), (8, 1), (12, 1), (16, 1), (24, 2), (32, 1), (48, 4), (96, 8))},
    **_n1_hosts(),
}
"""GPU machines priced, with their shapes from GCP's machine-type docs
(https://cloud.google.com/compute/docs/accelerator-optimized-machines for A2, A3 and G2;
https://cloud.google.com/compute/docs/general-purpose-machines#n1_machines for N1: 3.75 GB per vCPU).
The vCPUs and GiB agree with the ``vCPUs``/``MemoryGiB`` columns of SkyPilot's GCP catalog (which reads
them from the Compute API's machineTypes), and the GPU counts with ``collectors.catalog.GCP_GPU_HOSTS``.
Bundled local SSD (A2 Ultra, A3) is billed on a storage SKU and is not included, as in SkyPilot."""

_FAMILIES = frozenset(m.family for m in MACHINES.values())

# GCP's own GPU spellings (the text before " GPU" in a SKU description, without "Nvidia"/"Tesla")
# where finops.offers.canonical_accelerator does not already know them.
GPU_MODELS: dict[str, str] = {
    "A100": "A100-40GB", "A100 80GB": "A100-80GB", "H100 80GB": "H100", "H100 80GB Mega": "H100",
    "H100 80GB Plus": "H100", "H200 141GB": "H200", "B200 180GB": "B200", "V100": "V100-16GB",
}

_GPU_SPELLINGS = {name.casefold(): name for name in {*GPU_MODELS, *(m.gpu for m in MACHINES.values() if m.gpu)}}
"""Vertex AI spells GPUs in other cases ("Nvidia H100 80gb GPU"): back to the spelling of :data:`MACHINES`."""


# -- TPUs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TpuVersion:
    """How a TPU generation is priced and sliced."""

    accelerator: str               # canonical name (finops.offers.ACCELERATORS)
    prefix: str                    # slice names: prefix-size, as GCP's accelerator types and SkyPilot
    chips_per_unit: int            # chips one SKU unit (an hour of …) buys
    sizes: tuple[int, ...]         # slice sizes priced (the number in the name: chips or TensorCores)

    def slices(self) -> list[tuple[str, int]]:
        """``(slice name, chips)`` for each size, chips as :func:`finops.offers.tpu_chips` counts them."""
        out = []
        for size in self.sizes:
            name = f"{self.prefix}-{size}"
            chips = offers.tpu_chips(name)
            if chips is None:
                raise ValueError(f"{name}: finops.offers.tpu_chips cannot count its chips")
            out.append((name, chips))
        return out


TPU_VERSIONS: dict[str, TpuVersion] = {
    # Compute Engine SKUs, per chip-hour (https://cloud.google.com/tpu/pricing). v5e and v6e slices
    # are named by chips, v5p and v4 by TensorCores (2 per chip).
    "v5e": TpuVersion("TPU-v5e", "tpu-v5litepod", 1, (1, 4, 8, 16, 32, 64, 128, 256)),
    "v6e": TpuVersion("TPU-v6e", "tpu-v6e", 1, (1, 4, 8, 16, 32, 64, 128, 256)),
    "v5p": TpuVersion("TPU-v5p", "tpu-v5p", 1, (8, 16, 32, 64, 128, 256)),
    # Cloud TPU service: a "Tpu-v4 Pod" SKU prices 8 TensorCores (4 chips) an hour, which is how
    # SkyPilot's and dstack's gpuhunt catalog fetchers read it (tpu-v4-8 = one unit).
    "v4": TpuVersion("TPU-v4", "tpu-v4", 4, (8, 16, 32, 64, 128, 256)),
}
"""TPU generations priced, with the slice sizes in GCP's TPU docs (cloud.google.com/tpu/docs/v5e, v5p,
v6e, v4) that SkyPilot's GCP catalog also lists."""


# -- retries -----------------------------------------------------------------------------------------
def is_retryable(exc: Exception) -> bool:
    """Whether a failed call is worth repeating: throttling, server errors, dropped connections."""
    return api_retry.if_transient_error(exc) or isinstance(
        exc, (api_exceptions.BadGateway, api_exceptions.GatewayTimeout))


DEFAULT_RETRY = api_retry.Retry(predicate=is_retryable, initial=1.0, maximum=32.0, multiplier=2.0, timeout=300.0)
"""Throttling (429) and server errors (500, 502, 503, 504) and dropped connections: exponential backoff
from 1 s to 32 s, giving up after 5 minutes per page."""


# -- reading SKUs ------------------------------------------------------------------------------------
def fetch_skus(catalog: billing_v1.CloudCatalogClient, service: str, *, retry: api_retry.Retry = DEFAULT_RETRY,
               timeout: float = 60.0, progress: Progress | None = None) -> list[billing_v1.Sku]:
    """Every SKU of ``service`` (``services/…``) priced in USD, page by page through the SDK pager.

    Each page is retried by ``retry``; a page that still fails raises :class:`OfferError` naming the
    call, the service and the page, and nothing read so far is returned."""
    request = billing_v1.ListSkusRequest(parent=service, currency_code="USD", page_size=PAGE_SIZE)
    skus: list[billing_v1.Sku] = []
    page = 1
    try:
        pager = catalog.list_skus(request=request, retry=retry, timeout=timeout)
        for response in pager.pages:
            skus.extend(response.skus)
            if progress:
                progress(f"{service}: {len(skus)} SKUs")
            page += 1
    except (api_exceptions.GoogleAPIError, OSError) as exc:  # OSError: requests' connection errors
        raise offers.OfferError(
            f"{PROVIDER}: {CALL}({service}, {SERVICES.get(service, 'unknown service')}) failed on page {page} "
            f"after {len(skus)} SKUs: {type(exc).__name__}: {exc}") from exc
    return skus


def unit_price(sku: billing_v1.Sku) -> tuple[Decimal, str, str] | None:
    """``(price, usage unit, currency)`` of the SKU's current base rate (the first tier of its
    newest pricing), exact; None without pricing."""
    if not sku.pricing_info:
        return None
    info = max(sku.pricing_info, key=lambda p: p.effective_time.timestamp() if p.effective_time else 0.0)
    expr = info.pricing_expression
    if not expr.tiered_rates:
        return None
    money = expr.tiered_rates[0].unit_price
    price = Decimal(money.units) + Decimal(money.nanos).scaleb(-9)
    return price, expr.usage_unit, money.currency_code


def market_of(sku: billing_v1.Sku) -> str | None:
    """``on_demand`` or ``spot`` from the usage type; None for commitments and the like. The Cloud
    TPU service marks preemptible TPUs as ``OnDemand`` and says "Preemptible" in the description."""
    usage = sku.category.usage_type
    if usage == "Preemptible":
        return "spot"
    if usage == "OnDemand":
        return "spot" if "preemptible" in sku.description.lower() else "on_demand"
    return None


# Prices that are not the plain hourly rate of a shared VM: never composed into an offer.
_EXCLUDED = ("commitment", "sole tenancy", "reserved", "calendar mode", "dws", "custom", "premium",
             "virtual workstation", "extended", "flex")
_CORE_RAM = re.compile(r"^(?:spot preemptible |preemptible )?(?P<family>[a-z]\d+[a-z]?)(?: predefined)? instance "
                       r"(?P<what>core|ram) running in ", re.IGNORECASE)
_GPU = re.compile(r"^(?:spot preemptible |preemptible )?(?:nvidia )?(?:tesla )?(?P<model>.+?) gpu"
                  r"(?: attached to (?:spot )?preemptible vms)? running in ", re.IGNORECASE)
_TPU = re.compile(r"\btpu[-\s]?(?:v(?=\d))?(?P<version>\d+[a-z]?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """One usable SKU price: what it prices (``kind`` core | ram | gpu | tpu and ``key``: the machine
    family, GPU model or TPU version), where, in which market, in USD per unit."""

    kind: str
    key: str
    market: str
    regions: tuple[str, ...]
    price: Decimal
    sku_id: str
    description: str
    service: str
    source: str = SOURCE   # where the price comes from: the SKU itself, or derived (VERTEX_SPOT_SOURCE)


def gpu_canonical(model: str) -> str | None:
    """The canonical accelerator for a GCP GPU model ("A100 80GB" → ``A100-80GB``); None if unknown."""
    name = GPU_MODELS.get(model) or offers.canonical_accelerator(model)
    return name if name in offers.ACCELERATORS else None


def classify(sku: billing_v1.Sku, service: str) -> tuple[str, str] | None:
    """``(kind, key)`` of a SKU this module prices, ``("gpu", "?")``/``("tpu", "?")`` for a GPU or
    TPU SKU whose description it cannot read, None for anything else (storage, other families …)."""
    if sku.category.resource_family != "Compute":
        return None
    text = sku.description
    if any(word in text.lower() for word in _EXCLUDED):
        return None
    group = sku.category.resource_group
    if group == "TPU" or service == CLOUD_TPU:
        m = _TPU.search(text)
        return ("tpu", f"v{m.group('version').lower()}") if m else ("tpu", "?")
    if group == "GPU":
        m = _GPU.match(text)
        return ("gpu", m.group("model").strip()) if m else ("gpu", "?")
    m = _CORE_RAM.match(text)
    if m and m.group("family").lower() in _FAMILIES:
        return ("core" if m.group("what").lower() == "core" else "ram", m.group("family").lower())
    return None


def _where(sku: billing_v1.Sku, regions: Sequence[str]) -> tuple[str, ...]:
    return tuple(r for r in sku.service_regions if not regions or r in regions)


def _warn(regions: Iterable[str], sku: billing_v1.Sku, why: str) -> None:
    log.warning("%s %s: SKU %s (%r) %s", PROVIDER, ",".join(regions), sku.sku_id, sku.description, why)


def parse_rates(skus: Iterable[billing_v1.Sku], service: str, regions: Sequence[str]) -> list[Rate]:
    """The SKUs that price GPU/TPU capacity in ``regions`` (all regions when empty), as rates.

    SKUs priced at zero or less, in an unexpected unit or currency, or naming a GPU the engine does
    not know are logged as warnings (provider, region, SKU) and left out."""
    out = []
    for sku in skus:
        kind_key = classify(sku, service)
        where = _where(sku, regions)
        market = market_of(sku)
        if kind_key is None or not where or market is None:
            continue
        kind, key = kind_key
        if kind == "gpu" and (key == "?" or gpu_canonical(key) is None):
            _warn(where, sku, f"names a GPU we do not know ({key!r}); not priced")
            continue
        if kind == "tpu" and key == "?":
            _warn(where, sku, "is a TPU SKU whose generation we cannot read; not priced")
            continue
        price = _usable_price(sku, kind, where)
        if price is not None:
            out.append(Rate(kind, key, market, where, price, sku.sku_id, sku.description, service))
    return out


def _usable_price(sku: billing_v1.Sku, kind: str, where: Sequence[str]) -> Decimal | None:
    """The SKU's price in USD per hour (per GiB-hour for RAM), or None with a warning when it has none, is
    in another unit or currency, or is zero or less."""
    priced = unit_price(sku)
    if priced is None:
        _warn(where, sku, "has no price; dropped")
        return None
    price, unit, currency = priced
    expected_unit = "GiBy.h" if kind == "ram" else "h"
    if unit != expected_unit or currency not in ("USD", ""):
        _warn(where, sku, f"is priced in {currency} per {unit!r}, expected USD per {expected_unit!r}; dropped")
        return None
    if price <= 0:
        _warn(where, sku, f"has a price of {price.normalize():f} {currency or 'USD'} per {unit}; dropped")
        return None
    return price


# -- Vertex AI ---------------------------------------------------------------------------------------
_VERTEX_TRAINING = re.compile(r"^vertex ai: training/pipelines (?P<fee>management fee )?on (?P<what>.+)$",
                              re.IGNORECASE)
# Vertex AI writes "A3 Instance Core in Iowa" as well as "N1 Predefined Instance Core running in Iowa".
_VERTEX_CORE_RAM = re.compile(r"^(?P<family>[a-z]\d+[a-z]?)(?: predefined)? instance (?P<what>core|ram) "
                              r"(?:running )?in \S", re.IGNORECASE)
_VERTEX_GPU = re.compile(r"^(?:nvidia )?(?:tesla )?(?P<model>.+?)(?: gpu)?(?: running)? in \S", re.IGNORECASE)
_VERTEX_COMPUTE_WORDS = re.compile(r"\b(?:core|ram|gpu|nvidia|tesla)\b", re.IGNORECASE)


def classify_vertex(sku: billing_v1.Sku) -> tuple[str, str, bool] | None:
    """``(kind, key, management fee?)`` of a Vertex AI custom-training SKU this module prices (kind core |
    ram | gpu, key the machine family or GCP's GPU model as :data:`MACHINES` spells it); ``("?", "?", fee)``
    for a training SKU naming a core, RAM or GPU in a shape we cannot read; None for anything else
    (prediction, storage, other families, TPUs, generative AI …)."""
    m = _VERTEX_TRAINING.match(sku.description.strip())
    if m is None:
        return None
    fee, what = m.group("fee") is not None, m.group("what")
    if re.search(r"\btpu", what, re.IGNORECASE):
        return None
    core_ram = _VERTEX_CORE_RAM.match(what)
    if core_ram:
        family = core_ram.group("family").lower()
        if family not in _FAMILIES:
            return None
        return ("core" if core_ram.group("what").lower() == "core" else "ram", family, fee)
    if re.match(r"(?:nvidia|tesla)\b", what, re.IGNORECASE) or re.search(r"\bgpu\b", what, re.IGNORECASE):
        gpu = _VERTEX_GPU.match(what)
        if gpu is None:
            return ("?", "?", fee)
        model = gpu.group("model").strip()
        return ("gpu", _GPU_SPELLINGS.get(model.casefold(), model), fee)
    if _VERTEX_COMPUTE_WORDS.search(what) and re.search(r"\binstance\b", what, re.IGNORECASE):
        return ("?", "?", fee)  # "… Instance Core" without a place: not a shape we know
    return None


def parse_vertex_rates(skus: Iterable[billing_v1.Sku], regions: Sequence[str]) -> tuple[list[Rate], list[Rate]]:
    """The Vertex AI custom-training SKUs in ``regions`` (all when empty) as ``(usage rates, management-fee
    rates)``. A SKU naming a GPU we do not know, in a shape we cannot read, or with an unusable price is
    logged as a warning (provider, region, SKU) and left out."""
    usage: list[Rate] = []
    fees: list[Rate] = []
    for sku in skus:
        got = classify_vertex(sku)
        where = _where(sku, regions)
        market = market_of(sku)
        if got is None or not where or market is None:
            continue
        kind, key, fee = got
        if kind == "?":
            _warn(where, sku, "is a Vertex AI training SKU whose shape we cannot read; not priced")
            continue
        if kind == "gpu" and gpu_canonical(key) is None:
            _warn(where, sku, f"names a GPU we do not know ({key!r}); not priced")
            continue
        if fee and market != "on_demand":
            continue  # a fee is added to the spot VM price, never a spot price itself
        price = _usable_price(sku, kind, where)
        if price is not None:
            (fees if fee else usage).append(
                Rate(kind, key, market, where, price, sku.sku_id, sku.description, VERTEX_AI))
    return usage, fees


def vertex_table(usage: Iterable[Rate], fees: Iterable[Rate],
                 compute: Mapping[tuple[str, str, str, str], Rate]) -> dict[tuple[str, str, str, str], Rate]:
    """Vertex AI's ``(region, market, kind, key) → rate``: its own SKUs (on demand, and spot should it publish
    any) and, where it has none, spot = Compute Engine's spot rate (``compute``, a :func:`price_table`) + the
    management fee of the same region, kind and key (see the module docstring)."""
    table = price_table(usage)
    for (region, _, kind, key), fee in price_table(fees).items():
        spot = compute.get((region, "spot", kind, key))
        if spot is not None:
            table.setdefault((region, "spot", kind, key), Rate(
                kind, key, "spot", (region,), spot.price + fee.price, f"{spot.sku_id}+{fee.sku_id}",
                f"{spot.description} + {fee.description}", VERTEX_AI, VERTEX_SPOT_SOURCE))
    return table


def price_table(rates: Iterable[Rate]) -> dict[tuple[str, str, str, str], Rate]:
    """``(region, market, kind, key) → rate``; where SKUs overlap, the one naming the fewest regions
    (the regional SKU over a multi-region one) wins, then the lowest SKU id, so runs agree."""
    table: dict[tuple[str, str, str, str], Rate] = {}
    for rate in sorted(rates, key=lambda r: (len(r.regions), r.sku_id)):
        for region in rate.regions:
            table.setdefault((region, rate.market, rate.kind, rate.key), rate)
    return table


# -- composing offers --------------------------------------------------------------------------------
def _offer(region: str, instance_type: str, market: str, price: Decimal, skus: Sequence[str], *,
           accelerator: str | None, count: float, vcpus: float | None, memory: float | None,
           observed_at: datetime, flag: str | None = None, service: str = offers.COMPUTE,
           source: str = SOURCE) -> dict[str, Any]:
    return {
        "provider": PROVIDER, "region": region, "zone": None, "instance_type": instance_type,
        "accelerator_name": accelerator, "accelerator_count": float(count),
        "accelerator_memory_gb": offers.ACCELERATORS.get(accelerator) if accelerator else None,
        "vcpus": vcpus, "memory_gb": memory, "market": market, "price_per_hour": float(price),
        "currency": "USD", "observed_at": observed_at, "source": source, "sku": "+".join(skus),
        "interruption_rate": offers.interruption_rate(PROVIDER, instance_type, market), "flag": flag,
        "service": service,
    }


def machine_offers(table: Mapping[tuple[str, str, str, str], Rate], region: str, market: str,
                   observed_at: datetime, *, service: str = offers.COMPUTE) -> list[dict[str, Any]]:
    """Offers of ``service`` for the :data:`MACHINES` whose core, RAM and GPU rates all exist in ``region``
    (a Compute Engine :func:`price_table` or a :func:`vertex_table`); the source is the derived one when a
    part is derived."""
    out = []
    for name, m in MACHINES.items():
        parts = [(m.vcpus, table.get((region, market, "core", m.family))),
                 (m.memory_gib, table.get((region, market, "ram", m.family)))]
        if m.gpu:
            parts.append((m.gpus, table.get((region, market, "gpu", m.gpu))))
        if any(rate is None for _, rate in parts):
            continue
        price = sum((Decimal(qty) * rate.price for qty, rate in parts if rate), Decimal(0))
        source = next((rate.source for _, rate in parts if rate and rate.source != SOURCE), SOURCE)
        out.append(_offer(region, name, market, price, [rate.sku_id for _, rate in parts if rate],
                          accelerator=gpu_canonical(m.gpu) if m.gpu else None, count=m.gpus,
                          vcpus=float(m.vcpus), memory=float(m.memory_gib), observed_at=observed_at,
                          service=service, source=source))
    return out


def tpu_offers(rate: Rate, region: str, observed_at: datetime) -> list[dict[str, Any]]:
    """Offers for the slices of a TPU SKU's generation; one flagged per-chip row for a generation we
    do not know when its SKU is per chip (Compute Engine), a warning when it is not (Cloud TPU)."""
    version = TPU_VERSIONS.get(rate.key)
    if version is not None:
        per_chip = rate.price / version.chips_per_unit
        return [_offer(region, name, rate.market, per_chip * chips, [rate.sku_id], accelerator=version.accelerator,
                       count=chips, vcpus=None, memory=None, observed_at=observed_at)
                for name, chips in version.slices()]
    canon = offers.canonical_accelerator(f"TPU-{rate.key}")
    if canon in offers.ACCELERATORS:  # v2, v3: known chips, device/pod pricing not collected
        log.debug("%s %s: SKU %s (%r): %s is not collected", PROVIDER, region, rate.sku_id, rate.description, canon)
        return []
    where = f"{PROVIDER} {region}: SKU {rate.sku_id} ({rate.description!r})"
    if rate.service != COMPUTE_ENGINE:
        log.warning("%s names a TPU we do not know (%s) and its unit is not per chip; not priced", where, canon)
        return []
    log.warning("%s names a TPU we do not know (%s); kept as one chip-hour, flagged", where, canon)
    return [_offer(region, f"tpu-{rate.key}", rate.market, rate.price, [rate.sku_id], accelerator=canon, count=1,
                   vcpus=None, memory=None, observed_at=observed_at, flag=offers.FLAG_UNKNOWN_ACCELERATOR)]


def offers_from_rates(rates: Sequence[Rate], regions: Sequence[str], observed_at: datetime, *,
                      vertex: Sequence[Rate] = (), vertex_fees: Sequence[Rate] = ()) -> pl.DataFrame:
    """The offer frame for ``regions`` (all regions the rates name when empty): composed machines in
    both markets and TPU slices from the Compute Engine and Cloud TPU ``rates``, and machines of service
    :data:`VERTEX` from the Vertex AI ``vertex`` and ``vertex_fees`` rates (:func:`parse_vertex_rates`),
    sorted by region, instance type, market and service."""
    table = price_table(rates)
    vtable = vertex_table(vertex, vertex_fees, table)
    wanted = list(regions) or sorted({r for rate in [*rates, *vertex] for r in rate.regions})
    rows: list[dict[str, Any]] = []
    for region in wanted:
        for market in offers.MARKETS:
            rows += machine_offers(table, region, market, observed_at)
            rows += machine_offers(vtable, region, market, observed_at, service=VERTEX)
            tpus = [rate for (reg, mkt, kind, _), rate in table.items() if (reg, mkt, kind) == (region, market, "tpu")]
            for rate in tpus:
                rows += tpu_offers(rate, region, observed_at)
    rows.sort(key=lambda r: (r["region"], r["instance_type"], r["market"], r["service"]))
    return offers.frame(rows)


def make_client(endpoint: str | None = None) -> billing_v1.CloudCatalogClient:
    """A Cloud Billing Catalog client with Application Default Credentials, or at ``endpoint`` (REST
    transport; anonymous on loopback, as Google's own emulators are called)."""
    return billing_v1.CloudCatalogClient(**client_kwargs(endpoint, rest=True))


def collect(catalog: billing_v1.CloudCatalogClient, regions: Sequence[str], *, observed_at: datetime | None = None,
            progress: Progress | None = None, retry: api_retry.Retry = DEFAULT_RETRY,
            timeout: float = 60.0, vertex: bool = True) -> pl.DataFrame:
    """GCP GPU machine and TPU slice offers in ``regions`` (every region priced when empty), on demand
    and spot, as a :func:`finops.offers.frame`: Compute Engine's (service ``compute``) and, with
    ``vertex``, Vertex AI's (service ``vertex``; see the module docstring).

    Reads the Compute Engine, Cloud TPU (and Vertex AI) SKUs with ``catalog.list_skus`` (all pages, each
    retried by ``retry``), composes each machine of :data:`MACHINES` from its core, RAM and GPU SKUs and
    each TPU slice of :data:`TPU_VERSIONS` from its per-chip SKU. ``observed_at`` defaults to now (UTC);
    ``progress("<service>: <n> SKUs")`` is called after each page. Raises :class:`OfferError` when a
    page fails after the retries; nothing partial is returned."""
    when = observed_at or datetime.now(UTC)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    rates: list[Rate] = []
    wanted = [s for s in SERVICES if vertex or s != VERTEX_AI]
    fetched = {service: fetch_skus(catalog, service, retry=retry, timeout=timeout, progress=progress)
               for service in wanted}
    usage: list[Rate] = []
    fees: list[Rate] = []
    for service, skus in fetched.items():
        if service == VERTEX_AI:
            usage, fees = parse_vertex_rates(skus, regions)
        else:
            rates += parse_rates(skus, service, regions)
    return offers_from_rates(rates, regions, when, vertex=usage, vertex_fees=fees)
