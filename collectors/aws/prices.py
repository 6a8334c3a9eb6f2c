"""AWS GPU and accelerator prices as offer frames: spot prices from EC2, on-demand prices from the Pricing API.

The collector makes three calls, each through a botocore paginator:

- ``ec2.describe_instance_types``, per region, for the specs of the accelerated families. GPUs come from
  ``GpuInfo``; Inferentia and Trainium come from ``NeuronInfo``, or from ``InferenceAcceleratorInfo``.
- ``ec2.describe_spot_price_history``, per region, for the current Linux spot price in each availability
  zone. It asks with ``StartTime`` = the collection time and keeps the newest price per (zone, instance type).
- ``pricing.get_products``, one listing per instance type that covers every region, for the Linux,
  shared-tenancy, on-demand price per hour in USD. The Pricing API is served from us-east-1.

SageMaker bills its ML instances at its own prices, not EC2's, so :func:`collect` also asks
``pricing.get_products`` with ``ServiceCode="AmazonSageMaker"``, ``productFamily`` "ML Instance", per region
and per ``component``: "Training" (training jobs, offers of service ``sagemaker``) and "Hosting" (real-time
endpoints, service ``sagemaker-hosting``), for the ``ml.*`` instances of the same accelerated families.
SageMaker managed spot training has no published per-hour price: its spot offer is *derived* as the
training price × (EC2 spot / EC2 on-demand of the same instance type in that region — the mean over the
region's zones, as SageMaker picks the zone), with source :data:`SAGEMAKER_SPOT_SOURCE`, and only where
both EC2 prices are known. Endpoints have no spot market: hosting is on demand only.

The caller builds the clients. Build them with :func:`client_config`, or let :func:`clients` do it.
That config turns on botocore's *standard* retry mode, so botocore retries throttling
(``ThrottlingException``, ``RequestLimitExceeded``) and 5xx answers itself. It backs off exponentially
with jitter, up to ``max_attempts`` tries. This module has no retry loop of its own. A page that still
fails raises :class:`finops.offers.OfferError`. The error names the call, the region (or instance type)
and the page, and :func:`collect` returns nothing.

Doubtful data is handled row by row:
- An instance type with no spec is kept, flagged :data:`UNKNOWN_INSTANCE_TYPE`, with its spec fields
  null. They are never guessed.
- A price of zero or less, or a price that cannot be read, is dropped with a ``logging`` warning. The
  warning names the provider, region, zone or SKU, and instance type.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import polars as pl
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from finops import offers

log = logging.getLogger(__name__)

PROVIDER = "aws"
PRICING_REGION = "us-east-1"
"""Where the Pricing API is served (its other endpoints are eu-central-1 and ap-south-1)."""
DEFAULT_FAMILIES: tuple[str, ...] = ("p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p6-b200",
                                     "g4dn", "g5", "g6", "g6e", "inf2", "trn1")
SPOT_PRODUCTS: tuple[str, ...] = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
ON_DEMAND_TERMS: dict[str, str] = {
    "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
    "capacitystatus": "Used",     # not capacity reservations (Allocated… is priced 0, Unused… again)
    "marketoption": "OnDemand",   # the price list also carries other market options
}
"""The TERM_MATCH filters of every on-demand query, besides ``instanceType``."""
SPOT_SOURCE = "aws:describe_spot_price_history"
ON_DEMAND_SOURCE = "aws:pricing.get_products"
SAGEMAKER_SOURCE = "aws:pricing.get_products:AmazonSageMaker"
SAGEMAKER_SPOT_SOURCE = "derived:ec2-spot-ratio"
"""Managed spot training: the training price scaled by the EC2 spot / on-demand ratio (no published price)."""
SAGEMAKER_COMPONENTS: dict[str, str] = {"Training": "sagemaker", "Hosting": "sagemaker-hosting"}
"""The AmazonSageMaker price-list ``component`` collected → the offer ``service`` it prices."""
UNKNOWN_INSTANCE_TYPE = offers.FLAG_UNKNOWN_INSTANCE_TYPE
DEFAULT_MAX_ATTEMPTS = 6
PAGE_SIZE: dict[str, int] = {"describe_instance_types": 100, "describe_spot_price_history": 1000,
                             "get_products": 100}
"""The largest page each call accepts."""


class PaginatingClient(Protocol):
    """A boto3 client: all this module uses is ``get_paginator``."""

    def get_paginator(self, operation_name: str) -> Any: ...


EC2Client = PaginatingClient
PricingClient = PaginatingClient


# -- clients ---------------------------------------------------------------------------------------
def client_config(max_attempts: int = DEFAULT_MAX_ATTEMPTS, *, connect_timeout: float = 10,
                  read_timeout: float = 60) -> Config:
    """The botocore config to build the EC2 and Pricing clients with. Standard retry mode retries
    throttling and 5xx errors with jittered exponential backoff, up to ``max_attempts`` tries per
    request, the first try included. This is botocore's ``total_max_attempts``. The retries dict's
    own ``max_attempts`` key counts retries only, one fewer."""
    return Config(retries={"mode": "standard", "total_max_attempts": max_attempts},
                  connect_timeout=connect_timeout, read_timeout=read_timeout)


@dataclass(frozen=True)
class Clients:
    """What :func:`collect` calls: ``ec2_for(region)``, an EC2 client per region (made once, then
    reused), and ``pricing``, a Pricing client in us-east-1."""

    ec2_for: Callable[[str], EC2Client]
    pricing: PricingClient


def make_client(endpoint: str | None = None, *, session: Any | None = None,
                config: Config | None = None) -> Clients:
    """The :class:`Clients` for :func:`collect`, built from ``session`` (a ``boto3.Session``; default
    credentials otherwise) with ``config`` (default :func:`client_config`), at ``endpoint`` when given
    (a proxy, a mirror, a local server) instead of AWS's own."""
    import boto3

    session = session or boto3.session.Session()
    cfg = config or client_config()
    made: dict[str, EC2Client] = {}

    def ec2_for(region: str) -> EC2Client:
        if region not in made:
            made[region] = session.client("ec2", region_name=region, config=cfg, endpoint_url=endpoint)
        return made[region]

    pricing = session.client("pricing", region_name=PRICING_REGION, config=cfg, endpoint_url=endpoint)
    return Clients(ec2_for, pricing)


# -- parsed records --------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceSpec:
    """What an instance type offers. The accelerator name is canonical (:func:`offers.canonical_accelerator`),
    and its memory is per chip, in GB."""

    instance_type: str
    vcpus: float | None = None
    memory_gb: float | None = None
    accelerator_name: str | None = None
    accelerator_count: float | None = None
    accelerator_memory_gb: float | None = None
    flag: str | None = None


@dataclass(frozen=True)
class SpotQuote:
    """One entry of the spot price history."""

    zone: str
    instance_type: str
    price: str
    timestamp: datetime
    product: str


@dataclass(frozen=True)
class OnDemandQuote:
    """The on-demand price of one Pricing product (``price`` is None when it has no USD hourly price)."""

    region: str | None
    instance_type: str | None
    sku: str
    price: str | None
    market_option: str | None = None


# -- parsing (pure) --------------------------------------------------------------------------------
def parse_instance_type(info: Mapping[str, Any]) -> InstanceSpec:
    """An ``InstanceTypes`` entry of ``describe_instance_types`` as a spec. The accelerator memory is
    the canonical chip's memory when the name is known (the figure the catalog import uses, too).
    Otherwise it is the memory AWS reports, and the spec is flagged."""
    itype = str(info["InstanceType"])
    vcpus = (info.get("VCpuInfo") or {}).get("DefaultVCpus")
    mib = (info.get("MemoryInfo") or {}).get("SizeInMiB")
    spec = InstanceSpec(itype, float(vcpus) if vcpus is not None else None, mib / 1024 if mib is not None else None)
    devices = _accelerator_devices(info)
    if not devices:
        return spec
    raw_name = devices[0].get("Name")
    count = float(sum(int(d.get("Count") or 0) for d in devices))
    dev_mib = (devices[0].get("MemoryInfo") or {}).get("SizeInMiB")
    reported_gb = dev_mib / 1024 if dev_mib else None
    name = offers.canonical_accelerator(raw_name, reported_gb)
    if name in offers.ACCELERATORS:
        return replace(spec, accelerator_name=name, accelerator_count=count,
                       accelerator_memory_gb=float(offers.ACCELERATORS[name]))
    return replace(spec, accelerator_name=name, accelerator_count=count, accelerator_memory_gb=reported_gb,
                   flag=f"unknown accelerator {raw_name!r}")


def _accelerator_devices(info: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    gpus = (info.get("GpuInfo") or {}).get("Gpus")
    if gpus:
        return list(gpus)
    neuron = (info.get("NeuronInfo") or {}).get("NeuronDevices")
    if neuron:
        return list(neuron)
    return list((info.get("InferenceAcceleratorInfo") or {}).get("Accelerators") or [])


def parse_product(item: str | Mapping[str, Any]) -> OnDemandQuote:
    """A ``PriceList`` item of ``get_products`` (a JSON string) as its on-demand hourly USD price.
    Raises :class:`offers.OfferError` if the item is not a price-list product."""
    try:
        doc = json.loads(item) if isinstance(item, str) else item
        product = doc["product"]
        attrs = product.get("attributes") or {}
        sku = str(product["sku"])
    except (ValueError, KeyError, TypeError) as exc:
        raise offers.OfferError(f"aws pricing.get_products: a PriceList item is not a product ({exc!r}): "
                                f"{str(item)[:200]}") from exc
    price = None
    for term in ((doc.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if dim.get("unit") == "Hrs" and usd is not None:
                price = str(usd)
                break
        if price is not None:
            break
    return OnDemandQuote(attrs.get("regionCode"), attrs.get("instanceType"), sku, price, attrs.get("marketoption"))


def newest_spot(quotes: Sequence[SpotQuote]) -> list[SpotQuote]:
    """The newest quote per (zone, instance type). On a tie, the first of :data:`SPOT_PRODUCTS` wins."""
    best: dict[tuple[str, str], SpotQuote] = {}
    for q in quotes:
        key = (q.zone, q.instance_type)
        cur = best.get(key)
        if cur is None or _spot_rank(q) > _spot_rank(cur):
            best[key] = q
    return [best[k] for k in sorted(best)]


def _spot_rank(q: SpotQuote) -> tuple[datetime, int]:
    order = SPOT_PRODUCTS.index(q.product) if q.product in SPOT_PRODUCTS else len(SPOT_PRODUCTS)
    return (q.timestamp, -order)


def _price(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class SageMakerQuote:
    """The on-demand price of one SageMaker ML instance product (``instance_type`` with its ``ml.`` prefix)."""

    region: str | None
    instance_type: str | None
    component: str | None
    sku: str
    price: str | None


def parse_sagemaker_product(item: str | Mapping[str, Any]) -> SageMakerQuote:
    """A ``PriceList`` item of ``get_products(ServiceCode="AmazonSageMaker")`` as its hourly USD price. The
    instance is the ``instanceName`` attribute, else ``instanceType`` (which some products suffix with
    ``-<component>``), else the part of ``usagetype`` after ``:`` (``USE1-Train:ml.p4d.24xlarge``)."""
    q = parse_product(item)
    doc = json.loads(item) if isinstance(item, str) else item
    attrs = doc["product"].get("attributes") or {}
    name = attrs.get("instanceName") or (attrs.get("instanceType") or "").split("-")[0]
    if not name or name == "NA":
        name = (attrs.get("usagetype") or "").rpartition(":")[2] or None
    return SageMakerQuote(q.region, name, attrs.get("component"), q.sku, q.price)


def _ml_family(instance_type: str) -> str:
    """``ml.p4d.24xlarge`` → ``p4d``."""
    return instance_type.removeprefix("ml.").split(".", 1)[0]


# -- calls -----------------------------------------------------------------------------------------
def _pages(client: PaginatingClient, call: str, where: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The pages of a paginated call. A page that fails after botocore's retries raises OfferError."""
    operation = call.split(".", 1)[1]
    pages = iter(client.get_paginator(operation).paginate(
        **kwargs, PaginationConfig={"PageSize": PAGE_SIZE[operation]}))
    page = 0
    while True:
        try:
            result = next(pages)
        except StopIteration:
            return
        except (ClientError, BotoCoreError) as exc:
            tries = ""
            if isinstance(exc, ClientError):
                retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
                tries = f" after {retries + 1} attempt(s)" if retries is not None else ""
            raise offers.OfferError(f"aws {call} ({where}) failed on page {page + 1}{tries}: {exc}") from exc
        page += 1
        yield result


def instance_specs(ec2: EC2Client, region: str, families: Sequence[str] = DEFAULT_FAMILIES,
                   instance_types: Sequence[str] = ()) -> dict[str, InstanceSpec]:
    """Specs of the instance types offered in ``region``, for ``families`` (``p4d`` means ``p4d.*``)
    and any ``instance_types`` named, keyed by instance type."""
    values = [f"{f}.*" for f in families] + list(instance_types)
    if not values:
        return {}
    specs: dict[str, InstanceSpec] = {}
    for page in _pages(ec2, "ec2.describe_instance_types", f"region {region}",
                       Filters=[{"Name": "instance-type", "Values": values}]):
        for info in page.get("InstanceTypes", []):
            spec = parse_instance_type(info)
            specs[spec.instance_type] = spec
    return specs


def spot_prices(ec2: EC2Client, region: str, instance_types: Sequence[str], *, start: datetime) -> list[SpotQuote]:
    """The Linux spot price in effect at ``start``, newest per (zone, instance type), in ``region``.
    An empty ``instance_types`` asks for nothing. The API would read it as every instance type."""
    if not instance_types:
        return []
    quotes = []
    for page in _pages(ec2, "ec2.describe_spot_price_history", f"region {region}",
                       InstanceTypes=list(instance_types), ProductDescriptions=list(SPOT_PRODUCTS),
                       StartTime=start):
        for sp in page.get("SpotPriceHistory", []):
            ts = sp["Timestamp"]
            ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
            # Zone ids (use1-az1) name the same physical zone in every account; names do not.
            zone = sp.get("AvailabilityZoneId") or sp["AvailabilityZone"]
            quotes.append(SpotQuote(zone, sp["InstanceType"], str(sp["SpotPrice"]), ts,
                                    sp.get("ProductDescription", "")))
    return newest_spot(quotes)


def on_demand_prices(pricing: PricingClient, instance_type: str, regions: Sequence[str]) -> list[OnDemandQuote]:
    """The on-demand Linux price products of ``instance_type`` in ``regions``. There is one listing
    per instance type, and it covers every region. Products of other market options are left out."""
    filters = [{"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type}]
    filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in ON_DEMAND_TERMS.items()]
    wanted = set(regions)
    quotes = []
    for page in _pages(pricing, "pricing.get_products", f"{PRICING_REGION}, instanceType {instance_type}",
                       ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"):
        for item in page.get("PriceList", []):
            q = parse_product(item)
            if q.region in wanted and q.instance_type == instance_type and q.market_option in (None, "OnDemand"):
                quotes.append(q)
    return quotes


def sagemaker_prices(pricing: PricingClient, region: str, component: str,
                     families: Sequence[str] = DEFAULT_FAMILIES) -> list[SageMakerQuote]:
    """The ``ml.*`` instance products of ``component`` ("Training" or "Hosting") in ``region``, for
    ``families``."""
    filters = [{"Type": "TERM_MATCH", "Field": f, "Value": v}
               for f, v in (("productFamily", "ML Instance"), ("component", component), ("regionCode", region))]
    wanted = set(families)
    out = []
    for page in _pages(pricing, "pricing.get_products", f"{PRICING_REGION}, AmazonSageMaker {component} {region}",
                       ServiceCode="AmazonSageMaker", Filters=filters, FormatVersion="aws_v1"):
        for item in page.get("PriceList", []):
            q = parse_sagemaker_product(item)
            if (q.region == region and q.component == component and q.instance_type
                    and q.instance_type.startswith("ml.") and _ml_family(q.instance_type) in wanted):
                out.append(q)
    return out


# -- rows ------------------------------------------------------------------------------------------
def _row(spec: InstanceSpec, region: str, zone: str | None, market: str, price: float, *, source: str,
         sku: str | None, when: datetime, monthly: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    return {
        "provider": PROVIDER, "region": region, "zone": zone, "instance_type": spec.instance_type,
        "accelerator_name": spec.accelerator_name, "accelerator_count": spec.accelerator_count,
        "accelerator_memory_gb": spec.accelerator_memory_gb, "vcpus": spec.vcpus, "memory_gb": spec.memory_gb,
        "market": market, "price_per_hour": price, "currency": "USD", "observed_at": when, "source": source,
        "sku": sku, "interruption_rate": offers.interruption_rate(PROVIDER, spec.instance_type, market, monthly),
        "flag": spec.flag,
    }


def _usable(text: str | None, what: str) -> float | None:
    """The price, or None (with a warning naming ``what``) when it is unreadable, zero or negative."""
    value = _price(text)
    if text is None:
        log.warning("%s: no hourly USD price; dropped", what)
    elif value is None:
        log.warning("%s: price %r is not a number; dropped", what, text)
    elif value <= 0:
        log.warning("%s: price %s is zero or negative; dropped", what, text)
        return None
    return value


def _one_per_region(quotes: Sequence[OnDemandQuote], instance_type: str) -> dict[str, tuple[OnDemandQuote, float]]:
    """The usable on-demand price per region. If several products disagree, the lowest price is kept,
    with a warning naming them."""
    by_region: dict[str, list[tuple[OnDemandQuote, float]]] = {}
    for q in sorted(quotes, key=lambda q: q.sku):
        what = f"aws {q.region} {instance_type} (sku {q.sku}) on_demand"
        value = _usable(q.price, what)
        if value is not None and q.region is not None:
            by_region.setdefault(q.region, []).append((q, value))
    chosen = {}
    for region, found in by_region.items():
        found.sort(key=lambda qv: qv[1])
        if len({v for _, v in found}) > 1:
            log.warning("aws %s %s: %d on-demand products disagree (%s); kept the lowest", region, instance_type,
                        len(found), ", ".join(f"sku {q.sku} {v}" for q, v in found))
        chosen[region] = found[0]
    return chosen


def collect(client: Clients, regions: Sequence[str], *, observed_at: datetime | None = None,
            progress: Callable[[str], None] | None = None, families: Sequence[str] = DEFAULT_FAMILIES,
            instance_types: Sequence[str] = (),
            interruption: Mapping[str, Mapping[str, float]] | None = None, sagemaker: bool = True) -> pl.DataFrame:
    """Spot and on-demand offers for the accelerated ``families`` in ``regions``, as an offer frame
    (:func:`finops.offers.frame`): EC2's (service ``compute``) and, with ``sagemaker``, SageMaker's
    (services ``sagemaker`` and ``sagemaker-hosting``; see the module's docstring).

    - ``client`` (:func:`make_client`): ``client.ec2_for(region)`` gives an EC2 client for the region,
      ``client.pricing`` is a Pricing client in us-east-1, both built with :func:`client_config`.
    - ``instance_types`` names more types to price besides the families. A type that no region
      describes is kept, and flagged :data:`UNKNOWN_INSTANCE_TYPE`.
    - ``observed_at`` is the collection time (now, in UTC, by default; a naive time is read as UTC).
      Every row gets it, and it is the ``StartTime`` of the spot query.
    - ``interruption`` overrides the monthly spot interruption defaults (``[prices.interruption]``).

    Raises :class:`finops.offers.OfferError` if a call still fails after botocore's retries, and
    returns nothing partial then."""
    when = observed_at or datetime.now(UTC)
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    say = progress or (lambda _msg: None)
    monthly = offers.interruption_table(interruption)
    specs: dict[str, InstanceSpec] = {}
    spot: dict[str, list[SpotQuote]] = {}
    for region in regions:
        ec2 = client.ec2_for(region)
        found = instance_specs(ec2, region, families, instance_types)
        specs.update(found)
        types = sorted(set(found) | set(instance_types))
        say(f"aws {region}: {len(found)} instance types described")
        spot[region] = spot_prices(ec2, region, types, start=when)
        say(f"aws {region}: {len(spot[region])} spot prices")
    wanted = sorted(set(specs) | set(instance_types))
    on_demand = {}
    for itype in wanted:
        on_demand[itype] = _one_per_region(on_demand_prices(client.pricing, itype, regions), itype)
        say(f"aws on-demand {itype}: {len(on_demand[itype])} region(s)")

    def spec_of(itype: str) -> InstanceSpec:
        return specs.get(itype) or InstanceSpec(itype, flag=UNKNOWN_INSTANCE_TYPE)

    rows = []
    for region, quotes in spot.items():
        for spot_quote in quotes:
            value = _usable(spot_quote.price, f"aws {region} {spot_quote.zone} {spot_quote.instance_type} spot")
            if value is not None:
                rows.append(_row(spec_of(spot_quote.instance_type), region, spot_quote.zone, "spot", value,
                                 source=SPOT_SOURCE, sku=None, when=when, monthly=monthly))
    for itype, per_region in on_demand.items():
        for region, (od_quote, value) in per_region.items():
            rows.append(_row(spec_of(itype), region, None, "on_demand", value, source=ON_DEMAND_SOURCE,
                             sku=od_quote.sku, when=when, monthly=monthly))
    if sagemaker:
        rows += _sagemaker_rows(client.pricing, regions, families, rows, spec_of, when=when, monthly=monthly, say=say)
    unknown = sorted({r["instance_type"] for r in rows if r["flag"] == UNKNOWN_INSTANCE_TYPE})
    if unknown:
        log.warning("aws %s: no instance spec for %s; kept, flagged %r", ", ".join(regions), ", ".join(unknown),
                    UNKNOWN_INSTANCE_TYPE)
    return offers.frame(rows).sort("region", "instance_type", "market", "zone", "service", nulls_last=False)


def spot_ratios(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """EC2 spot over on-demand per (region, instance type), the spot price the mean over the region's
    zones, where both are known (EC2 rows of :func:`collect`)."""
    od = {(r["region"], r["instance_type"]): r["price_per_hour"] for r in rows
          if r["market"] == "on_demand" and r.get("service", offers.COMPUTE) == offers.COMPUTE}
    spot: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["market"] == "spot" and r.get("service", offers.COMPUTE) == offers.COMPUTE:
            spot.setdefault((r["region"], r["instance_type"]), []).append(r["price_per_hour"])
    return {k: sum(v) / len(v) / od[k] for k, v in spot.items() if od.get(k)}


def _sagemaker_rows(pricing: PricingClient, regions: Sequence[str], families: Sequence[str],
                    ec2_rows: Sequence[Mapping[str, Any]], spec_of: Callable[[str], InstanceSpec], *,
                    when: datetime, monthly: Mapping[str, Mapping[str, float]],
                    say: Callable[[str], None]) -> list[dict[str, Any]]:
    """SageMaker's offers: training and hosting on demand, and managed spot training derived from the EC2
    spot ratio. The hardware of ``ml.<type>`` is EC2's ``<type>`` (``spec_of``)."""
    ratios = spot_ratios(ec2_rows)
    out = []
    for region in regions:
        for component, service in SAGEMAKER_COMPONENTS.items():
            quotes = sagemaker_prices(pricing, region, component, families)
            say(f"aws sagemaker {component.lower()} {region}: {len(quotes)} price(s)")
            best: dict[str, tuple[SageMakerQuote, float]] = {}
            for q in sorted(quotes, key=lambda q: q.sku):
                value = _usable(q.price, f"aws {region} {q.instance_type} (sku {q.sku}) sagemaker {component}")
                if value is not None and q.instance_type and (q.instance_type not in best
                                                              or value < best[q.instance_type][1]):
                    best[q.instance_type] = (q, value)
            for ml, (q, value) in sorted(best.items()):
                ec2_type = ml.removeprefix("ml.")
                spec = replace(spec_of(ec2_type), instance_type=ml)
                out.append(_row(spec, region, None, "on_demand", value, source=SAGEMAKER_SOURCE, sku=q.sku, when=when,
                                monthly=monthly) | {"service": service})
                ratio = ratios.get((region, ec2_type))
                if service == "sagemaker" and ratio is not None:
                    # the same machines as EC2 spot, so the family's interruption rate (keyed by the EC2 name)
                    rate = offers.interruption_rate(PROVIDER, ec2_type, "spot", monthly)
                    out.append(_row(spec, region, None, "spot", value * ratio, source=SAGEMAKER_SPOT_SOURCE, sku=q.sku,
                                    when=when, monthly=monthly) | {"service": service, "interruption_rate": rate})
    return out
