"""A local AWS price server for tests. It speaks the real wire formats:

- EC2 query protocol, answered in XML: ``DescribeInstanceTypes`` and ``DescribeSpotPriceHistory``, paged
  with ``NextToken``. The region is read from the SigV4 credential scope, as AWS routes it.
- JSON 1.1: ``AWSPriceListService.GetProducts``, paged with ``NextToken``. Every ``PriceList`` item is a
  JSON string, and the filters are TERM_MATCH, EQUALS, CONTAINS, ANY_OF and NONE_OF.

It serves the real prices and specs of a catalog in SkyPilot's AWS layout (``tests/data/catalog/aws/vms.csv``):

- ``Price`` becomes the on-demand product. Two capacity-reservation products sit beside it, as in the
  real price list: Unused at the same price, and Allocated at 0.
- ``SpotPrice`` becomes the current "Linux/UNIX" spot price of the zone. A three-day-old
  "Linux/UNIX (Amazon VPC)" entry at another price sits beside it, as older accounts see.
- The other columns become the instance spec.

It also serves ``AmazonSageMaker`` "ML Instance" products in the real price-list shape (attributes
``instanceName``, ``component``, ``usagetype`` such as ``USE1-Train:ml.p4d.24xlarge``, ``regionCode``, …):
a "Training" and a "Hosting" product for each GPU instance the catalog prices on demand, at the EC2 price ×
:data:`SAGEMAKER_MARKUP` (SageMaker's list price for ml.p4d.24xlarge in us-east-1, $37.688, is 1.15 × EC2's
$32.7726), plus a CPU "Training" product and a "Notebook" product that a GPU collector must leave out.
``set_sagemaker`` overrides one price.

The zone named ``…-azN`` is the N-th letter of the region (``use1-az3`` is ``us-east-1c``). The SKUs are
stable hashes, because the catalog has none.

Usage::

    with AWSPricesFake(page_size=4) as fake:
        fake.throttle("GetProducts", 2)            # two ThrottlingException answers, then success
        fake.unavailable("DescribeSpotPriceHistory")  # one 503
        fake.fail_on_page("DescribeSpotPriceHistory", 2)  # page 2 fails with 500, every time
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=fake.url)
"""

from __future__ import annotations

import ast
import base64
import csv
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from tests.fakes.server import LocalServer, QuietHandler

CATALOG = Path(__file__).resolve().parents[1] / "data" / "catalog" / "aws" / "vms.csv"
ACTIONS = ("DescribeInstanceTypes", "DescribeSpotPriceHistory", "GetProducts")
EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
             "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)",
             "eu-west-2": "EU (London)",
             "eu-central-1": "EU (Frankfurt)", "ap-northeast-1": "Asia Pacific (Tokyo)"}
USAGE_PREFIX = {"us-east-1": "", "us-west-2": "USW2-", "eu-west-1": "EU-", "us-east-2": "USE2-"}
SAGEMAKER_MARKUP = Decimal("1.15")
SAGEMAKER_USAGE = {"Training": "Train", "Hosting": "Host", "Notebook": "Notebk"}
_THROTTLE = {"GetProducts": "ThrottlingException"}
_UNAVAILABLE = {"GetProducts": "ServiceUnavailableException"}
_INTERNAL = {"GetProducts": "InternalErrorException"}


@dataclass(frozen=True)
class CatalogRow:
    """One row of a SkyPilot AWS ``vms.csv``: an instance type in one zone (by zone id)."""

    instance_type: str
    region: str
    az_id: str
    vcpus: float
    memory_gib: float
    gpu_info: Mapping[str, Any] | None
    price: str | None
    spot_price: str | None


@dataclass(frozen=True)
class Request:
    """A request the fake answered: the action, its region, its parameters, its page, the status sent."""

    action: str
    region: str | None
    params: Mapping[str, Any]
    page: int
    status: int


def load_catalog(path: Path = CATALOG) -> list[CatalogRow]:
    """The rows of a SkyPilot-layout AWS catalog. An empty price becomes None."""
    with open(path, newline="") as f:
        return [CatalogRow(r["InstanceType"], r["Region"], r["AvailabilityZone"], float(r["vCPUs"]),
                           float(r["MemoryGiB"]), ast.literal_eval(r["GpuInfo"]) if r["GpuInfo"] else None,
                           r["Price"] or None, r["SpotPrice"] or None)
                for r in csv.DictReader(f)]


def az_name(region: str, az_id: str) -> str:
    """The zone name the fake gives a zone id: ``use1-az3`` in us-east-1 is ``us-east-1c``."""
    n = int(az_id.rsplit("-az", 1)[1])
    return f"{region}{'abcdefghijklmnop'[n - 1]}"


def sku_for(region: str, instance_type: str, capacity: str = "Used") -> str:
    """A stable 16-character SKU, shaped like AWS's."""
    digest = hashlib.sha256(f"{region}/{instance_type}/Linux/Shared/NA/{capacity}".encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def _price_text(price: str) -> str:
    return f"{Decimal(price):.10f}"


def _token(offset: int, page: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "p": page}).encode()).decode()


def _untoken(token: str) -> tuple[int, int]:
    doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    return int(doc["o"]), int(doc["p"])


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Faults:
    queued: list[tuple[int, str]] = field(default_factory=list)   # (status, code), answered first
    failing_page: tuple[int, int, str] | None = None              # (page, status, code), every time


class AWSPricesFake:
    """The server and its data. Configure it before or during a test, and use it as a context manager."""

    def __init__(self, catalog: Path = CATALOG, *, page_size: int = 100, now: datetime | None = None) -> None:
        self.rows = load_catalog(catalog)
        self.page_size = page_size
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.requests: list[Request] = []
        self.hidden: set[str] = set()
        self._on_demand: dict[tuple[str, str], str] = {(r.region, r.instance_type): r.price
                                                       for r in self.rows if r.price}
        self._spot: dict[tuple[str, str, str], str] = {(r.region, r.az_id, r.instance_type): r.spot_price
                                                       for r in self.rows if r.spot_price}
        self._sagemaker: dict[tuple[str, str, str], str] = {}
        for (region, itype), price in sorted(self._on_demand.items()):
            if _is_number(price) and itype.startswith(("p", "g")):
                ml_price = str((Decimal(price) * SAGEMAKER_MARKUP).quantize(Decimal("0.0001")))
                for component in ("Training", "Hosting"):
                    self._sagemaker[(region, f"ml.{itype}", component)] = ml_price
        for region in {r.region for r in self.rows}:
            self._sagemaker[(region, "ml.m5.xlarge", "Training")] = "0.23"
            self._sagemaker[(region, "ml.g5.xlarge", "Notebook")] = "1.41"
        self._faults: dict[str, _Faults] = {a: _Faults() for a in ACTIONS}
        self._lock = threading.Lock()
        self._server: LocalServer | None = None

    # -- configuration -----------------------------------------------------------------------------
    def throttle(self, action: str, times: int = 1, *, status: int = 400) -> None:
        """Answer the next ``times`` requests for ``action`` with a throttling error
        (``ThrottlingException``, or ``RequestLimitExceeded`` for EC2)."""
        code = _THROTTLE.get(action, "RequestLimitExceeded")
        self._queue(action, times, status, code)

    def unavailable(self, action: str, times: int = 1) -> None:
        """Answer the next ``times`` requests for ``action`` with HTTP 503."""
        self._queue(action, times, 503, _UNAVAILABLE.get(action, "Unavailable"))

    def fail_on_page(self, action: str, page: int, *, status: int = 500) -> None:
        """Fail page ``page`` (1-based) of every ``action`` listing, on every try."""
        with self._lock:
            self._faults[self._check(action)].failing_page = (page, status, _INTERNAL.get(action, "InternalError"))

    def set_on_demand(self, region: str, instance_type: str, price: str) -> None:
        """Serve ``price`` (text, as the price list has it) as the on-demand price."""
        self._on_demand[(region, instance_type)] = price

    def set_spot(self, region: str, zone: str, instance_type: str, price: str) -> None:
        """Serve ``price`` as the current spot price in the zone named ``zone`` (``us-east-1a``)."""
        az_id = next(k[1] for k in self._spot if k[0] == region and az_name(region, k[1]) == zone)
        self._spot[(region, az_id, instance_type)] = price

    def set_sagemaker(self, region: str, instance_name: str, component: str, price: str) -> None:
        """Serve ``price`` for the SageMaker ``component`` ("Training", "Hosting") of ``instance_name``."""
        self._sagemaker[(region, instance_name, component)] = price

    def sagemaker_prices(self) -> dict[tuple[str, str, str], str]:
        """(region, ml instance, component) → the price text served."""
        return dict(self._sagemaker)

    def hide_spec(self, *instance_types: str) -> None:
        """Leave these types out of DescribeInstanceTypes, while their prices are still served."""
        self.hidden.update(instance_types)

    def calls(self, action: str) -> list[Request]:
        """The requests answered for ``action``, in order."""
        with self._lock:
            return [r for r in self.requests if r.action == action]

    def _queue(self, action: str, times: int, status: int, code: str) -> None:
        with self._lock:
            self._faults[self._check(action)].queued.extend([(status, code)] * times)

    @staticmethod
    def _check(action: str) -> str:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        return action

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return self._server.url

    def start(self) -> str:
        """Serve on 127.0.0.1, on an ephemeral port. Returns the URL."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = LocalServer(Handler).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data as the APIs show it ------------------------------------------------------------------
    def _specs(self) -> dict[str, CatalogRow]:
        specs: dict[str, CatalogRow] = {}
        for r in self.rows:
            specs.setdefault(r.instance_type, r)
        return specs

    def _offered(self, region: str) -> list[CatalogRow]:
        seen = {r.instance_type for r in self.rows if r.region == region}
        return [s for t, s in sorted(self._specs().items()) if t in seen and t not in self.hidden]

    def _spot_history(self, region: str) -> list[dict[str, str]]:
        entries = []
        for i, ((reg, az_id, itype), price) in enumerate(sorted(self._spot.items())):
            if reg != region:
                continue
            zone = az_name(region, az_id)
            fresh = self.now - timedelta(minutes=5 + i)
            stale_price = (str((Decimal(price) * Decimal("1.1")).quantize(Decimal("0.000001")))
                           if _is_number(price) else price)
            entries.append({"zone": zone, "az_id": az_id, "type": itype, "product": "Linux/UNIX", "price": price,
                            "ts": fresh})
            entries.append({"zone": zone, "az_id": az_id, "type": itype, "product": "Linux/UNIX (Amazon VPC)",
                            "price": stale_price, "ts": self.now - timedelta(days=3, minutes=i)})
        entries.sort(key=lambda e: (-e["ts"].timestamp(), e["zone"], e["type"], e["product"]))
        return entries

    def _products(self) -> list[dict[str, Any]]:
        specs = self._specs()
        out = []
        for (region, itype), price in sorted(self._on_demand.items()):
            spec = specs.get(itype)
            for capacity, usage, amount in (("Used", "BoxUsage", price),
                                            ("UnusedCapacityReservation", "UnusedBox", price),
                                            ("AllocatedCapacityReservation", "Reservation", "0")):
                out.append(_product(region, itype, spec, capacity, f"{USAGE_PREFIX.get(region, region.upper() + '-')}"
                                    f"{usage}:{itype}", amount))
        return out

    # -- actions -----------------------------------------------------------------------------------
    def answer(self, action: str, region: str | None, params: Mapping[str, Any]) -> tuple[int, Any]:
        """The (status, payload) for one request. The payload is a dict for JSON and a str for XML."""
        token = params.get("NextToken") or ""
        try:
            offset, page = _untoken(token) if token else (0, 1)
        except (ValueError, KeyError, TypeError):
            raise _BadRequest("InvalidNextTokenException" if action == "GetProducts" else "InvalidParameterValue",
                              f"invalid NextToken {token!r}") from None
        with self._lock:
            faults = self._faults[action]
            fault = faults.queued.pop(0) if faults.queued else None
            if fault is None and faults.failing_page and faults.failing_page[0] == page:
                fault = faults.failing_page[1:]
        if fault is not None:
            self._record(action, region, params, page, fault[0])
            return fault[0], {"__error__": fault[1]}
        if action == "DescribeInstanceTypes":
            items = self._describe_instance_types(region or "us-east-1", params)
        elif action == "DescribeSpotPriceHistory":
            items = self._describe_spot_price_history(region or "us-east-1", params)
        else:
            items = self._get_products(params)
        size = min(self.page_size, int(params.get("MaxResults") or self.page_size))
        chunk = items[offset:offset + size]
        next_token = _token(offset + size, page + 1) if offset + size < len(items) else None
        self._record(action, region, params, page, 200)
        return 200, {"items": chunk, "next": next_token}

    def _record(self, action: str, region: str | None, params: Mapping[str, Any], page: int, status: int) -> None:
        with self._lock:
            self.requests.append(Request(action, region, dict(params), page, status))

    def _describe_instance_types(self, region: str, params: Mapping[str, Any]) -> list[Any]:
        names = _numbered(params, "InstanceType")
        patterns = []
        for name, values in _filters(params):
            if name != "instance-type":
                raise _BadRequest("InvalidParameterValue", f"the fake does not filter on {name!r}")
            patterns += values
        return [r for r in self._offered(region)
                if (not names or r.instance_type in names)
                and (not patterns or any(fnmatchcase(r.instance_type, p) for p in patterns))]

    def _describe_spot_price_history(self, region: str, params: Mapping[str, Any]) -> list[Any]:
        types = set(_numbered(params, "InstanceType"))
        products = set(_numbered(params, "ProductDescription"))
        zone = params.get("AvailabilityZone")
        for name, values in _filters(params):
            if name == "instance-type":
                types |= set(values)
            elif name == "product-description":
                products |= set(values)
            else:
                raise _BadRequest("InvalidParameterValue", f"the fake does not filter on {name!r}")
        end = _parse_time(params["EndTime"]) if params.get("EndTime") else None
        return [e for e in self._spot_history(region)
                if (not types or e["type"] in types) and (not products or e["product"] in products)
                and (not zone or e["zone"] == zone) and (end is None or e["ts"] <= end)]

    def _get_products(self, req: Mapping[str, Any]) -> list[Any]:
        filters = req.get("Filters") or []
        if req.get("ServiceCode") == "AmazonSageMaker":
            products = [_sagemaker_product(r, i, c, p) for (r, i, c), p in sorted(self._sagemaker.items())]
            return [p for p in products if all(_term_matches(p, f) for f in filters)]
        if req.get("ServiceCode") != "AmazonEC2":
            return []
        return [p for p in self._products() if all(_term_matches(p, f) for f in filters)]


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


def _product(region: str, itype: str, spec: CatalogRow | None, capacity: str, usage: str, price: str) -> dict[str, Any]:
    """A price-list product in aws_v1 format, with the attributes the real EC2 products carry."""
    sku = sku_for(region, itype, capacity)
    gpus = (spec.gpu_info or {}).get("Gpus", [{}])[0] if spec else {}
    attrs = {
        "instanceType": itype, "regionCode": region, "location": LOCATIONS.get(region, region),
        "locationType": "AWS Region", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": capacity, "licenseModel": "No License required", "marketoption": "OnDemand",
        "operation": "RunInstances", "usagetype": usage, "servicecode": "AmazonEC2",
        "servicename": "Amazon Elastic Compute Cloud", "instanceFamily": "GPU instance", "currentGeneration": "Yes",
        "vcpu": f"{spec.vcpus:g}" if spec else "NA", "memory": f"{spec.memory_gib:g} GiB" if spec else "NA",
        "gpu": str(gpus.get("Count", "NA")), "processorArchitecture": "64-bit", "availabilityzone": "NA",
    }
    rate = f"{sku}.JRTCKXETXF.6YS6EN2CT7"
    text = _price_text(price) if _is_number(price) else price
    return {
        "product": {"productFamily": "Compute Instance", "attributes": attrs, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {rate: {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [], "rateCode": rate,
                "description": f"${text} per On Demand Linux {itype} Instance Hour",
                "pricePerUnit": {"USD": text}}},
            "sku": sku, "effectiveDate": "2026-04-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}},
        "version": "20260401000000", "publicationDate": "2026-04-01T00:00:00Z",
    }


def _sagemaker_product(region: str, instance: str, component: str, price: str) -> dict[str, Any]:
    """An AmazonSageMaker "ML Instance" product in aws_v1 format, with the attributes the real ones carry."""
    sku = hashlib.sha256(f"sagemaker/{region}/{instance}/{component}".encode()).hexdigest()[:16].upper()
    prefix = {"us-east-1": "USE1-"}.get(region, USAGE_PREFIX.get(region, region.upper() + "-"))
    attrs = {
        "location": LOCATIONS.get(region, region), "locationType": "AWS Region", "regionCode": region,
        "instanceName": instance, "instanceType": instance, "component": component,
        "platoinstancetype": component, "platoinstancename": instance,
        "usagetype": f"{prefix}{SAGEMAKER_USAGE.get(component, component)}:{instance}", "operation": "RunInstance",
        "servicecode": "AmazonSageMaker", "servicename": "Amazon SageMaker", "currentGeneration": "yes",
        "vCpu": "N/A", "physicalCpu": "N/A", "physicalGpu": "N/A", "gpu": "N/A", "gpuMemory": "N/A",
        "memory": "N/A", "processorArchitecture": "64-bit",
    }
    rate = f"{sku}.JRTCKXETXF.6YS6EN2CT7"
    text = _price_text(price) if _is_number(price) else price
    return {
        "product": {"productFamily": "ML Instance", "attributes": attrs, "sku": sku},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {rate: {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [], "rateCode": rate,
                "description": f"${text} per {component} {instance} hour in {LOCATIONS.get(region, region)}",
                "pricePerUnit": {"USD": text}}},
            "sku": sku, "effectiveDate": "2026-04-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}}}},
        "version": "20260401000000", "publicationDate": "2026-04-01T00:00:00Z",
    }


def _term_matches(product: Mapping[str, Any], flt: Mapping[str, str]) -> bool:
    attrs = {k.lower(): v for k, v in product["product"]["attributes"].items()}
    attrs["sku"] = product["product"]["sku"]
    attrs["productfamily"] = product["product"].get("productFamily", "")
    value = attrs.get(str(flt.get("Field", "")).lower())
    want = str(flt.get("Value", ""))
    kind = flt.get("Type", "TERM_MATCH")
    if value is None:
        return kind == "NONE_OF"
    if kind in ("TERM_MATCH", "EQUALS"):
        return value.lower() == want.lower()
    if kind == "CONTAINS":
        return want.lower() in value.lower()
    options = {v.strip().lower() for v in want.split(",")}
    return (value.lower() in options) == (kind == "ANY_OF")


def _numbered(params: Mapping[str, str], name: str) -> list[str]:
    """``Name.1``, ``Name.2`` … of an EC2 query, in order."""
    keys = sorted((int(k.rsplit(".", 1)[1]), k) for k in params if re.fullmatch(rf"{name}\.\d+", k))
    return [params[k] for _, k in keys]


def _filters(params: Mapping[str, str]) -> Iterable[tuple[str, list[str]]]:
    for i in sorted({int(m.group(1)) for k in params if (m := re.fullmatch(r"Filter\.(\d+)\.Name", k))}):
        yield params[f"Filter.{i}.Name"], _numbered(params, f"Filter.{i}.Value")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- wire formats ----------------------------------------------------------------------------------
def _ec2_xml(action: str, items: Sequence[Any], next_token: str | None) -> str:
    if action == "DescribeInstanceTypes":
        body = "<instanceTypeSet>" + "".join(_instance_type_xml(r) for r in items) + "</instanceTypeSet>"
    else:
        body = "<spotPriceHistorySet>" + "".join(_spot_xml(e) for e in items) + "</spotPriceHistorySet>"
    token = f"<nextToken>{escape(next_token)}</nextToken>" if next_token else "<nextToken/>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_XMLNS}">'
            f"<requestId>{uuid.uuid4()}</requestId>{body}{token}</{action}Response>")


def _instance_type_xml(r: CatalogRow) -> str:
    gpu = ""
    if r.gpu_info:
        gpus = "".join(f"<item><name>{escape(g['Name'])}</name><manufacturer>{escape(g.get('Manufacturer', ''))}"
                       f"</manufacturer><count>{int(g['Count'])}</count><memoryInfo><sizeInMiB>"
                       f"{int(g['MemoryInfo']['SizeInMiB'])}</sizeInMiB></memoryInfo></item>"
                       for g in r.gpu_info.get("Gpus", []))
        gpu = (f"<gpuInfo><gpus>{gpus}</gpus><totalGpuMemoryInMiB>{int(r.gpu_info.get('TotalGpuMemoryInMiB', 0))}"
               f"</totalGpuMemoryInMiB></gpuInfo>")
    return (f"<item><instanceType>{escape(r.instance_type)}</instanceType><currentGeneration>true</currentGeneration>"
            f"<processorInfo><supportedArchitectures><item>x86_64</item></supportedArchitectures></processorInfo>"
            f"<vCpuInfo><defaultVCpus>{int(r.vcpus)}</defaultVCpus></vCpuInfo>"
            f"<memoryInfo><sizeInMiB>{int(r.memory_gib * 1024)}</sizeInMiB></memoryInfo>{gpu}</item>")


def _spot_xml(e: Mapping[str, Any]) -> str:
    return (f"<item><instanceType>{escape(e['type'])}</instanceType><productDescription>{escape(e['product'])}"
            f"</productDescription><spotPrice>{escape(e['price'])}</spotPrice><timestamp>{_iso(e['ts'])}</timestamp>"
            f"<availabilityZone>{escape(e['zone'])}</availabilityZone>"
            f"<availabilityZoneId>{escape(e['az_id'])}</availabilityZoneId></item>")


def _ec2_error(code: str, message: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>")


class _Handler(QuietHandler):
    server_fake: AWSPricesFake

    def do_POST(self) -> None:
        raw = self.body()
        target = self.headers.get("X-Amz-Target")
        if target is not None:
            self._json(target, raw)
        else:
            self._query(raw)

    def _json(self, target: str, raw: bytes) -> None:
        if target != "AWSPriceListService.GetProducts":
            return self._send(400, json.dumps({"__type": "UnknownOperationException", "message": target}), "json")
        try:
            req = json.loads(raw or b"{}")
            status, out = self.server_fake.answer("GetProducts", "us-east-1", req)
        except (_BadRequest, ValueError) as exc:
            code = exc.code if isinstance(exc, _BadRequest) else "SerializationException"
            return self._send(400, json.dumps({"__type": code, "message": str(exc)}), "json")
        if status != 200:
            return self._send(status, json.dumps({"__type": out["__error__"], "message": "fake fault"}), "json")
        body = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p) for p in out["items"]]}
        if out["next"]:
            body["NextToken"] = out["next"]
        self._send(200, json.dumps(body), "json")

    def _query(self, raw: bytes) -> None:
        params = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        action = params.get("Action", "")
        m = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", self.headers.get("Authorization", ""))
        region = m.group(1) if m else None
        if action not in ("DescribeInstanceTypes", "DescribeSpotPriceHistory"):
            return self._send(400, _ec2_error("InvalidAction", f"the fake does not serve {action!r}"), "xml")
        try:
            status, out = self.server_fake.answer(action, region, params)
        except _BadRequest as exc:
            return self._send(400, _ec2_error(exc.code, str(exc)), "xml")
        if status != 200:
            return self._send(status, _ec2_error(out["__error__"], "fake fault"), "xml")
        self._send(200, _ec2_xml(action, out["items"], out["next"]), "xml")

    def _send(self, status: int, body: str, kind: str) -> None:
        self.reply(status, body, "application/x-amz-json-1.1" if kind == "json" else "text/xml;charset=UTF-8",
                   {"x-amzn-RequestId": str(uuid.uuid4())})
