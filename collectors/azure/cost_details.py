"""Azure Cost Management cost-details exports (actual and amortized CSV) mapped to FOCUS 1.2.

Cost details come in two column-name generations and two agreements: EA (``Cost`` or
``CostInBillingCurrency``, ``Product`` or ``ProductName``, ``BillingCurrency`` or
``BillingCurrencyCode``) and MCA (camelCase names, ``billingProfileId``, ``paygCostInBillingCurrency``,
``pricingCurrency`` …). Headers are matched case-insensitively through :data:`ALIASES` onto one
canonical name each; :data:`REQUIRED` must be there.

Values: ``Date`` is ``MM/DD/YYYY``, ``M/D/YYYY`` or ISO; the file may start with a UTF-8 BOM; ``Tags``
is key-value pairs *without* the surrounding braces (``"env": "prod","org": "trey"``), wrapped here;
amounts may use exponents (``5.64902E-05``).

The mapping (:func:`mapping`, FOCUS column → polars expression) follows Microsoft's own guidance
for converting cost details to FOCUS (learn.microsoft.com/cloud-computing/finops/focus/convert),
with these choices:

- **BilledCost / EffectiveCost.** An *actual* file is the invoice basis: BilledCost = Cost.
  EffectiveCost = Cost, except commitment purchases and refunds (ChargeType Purchase/Refund with
  PricingModel Reservation/SavingsPlan), whose EffectiveCost is 0 (FOCUS: their cost reaches
  EffectiveCost through the usage they cover). An actual file shows commitment-covered usage at 0,
  so its EffectiveCost misses the amortised commitment: give the amortized file too.
  An *amortized* file: EffectiveCost = Cost; BilledCost = 0 on commitment-covered usage and on
  ``UnusedReservation``/``UnusedSavingsPlan`` rows (they are amortisation, not invoice lines);
  commitment purchases are kept out (dropped) — the actual file carries them.
- **Both files for one billing month** (:func:`combine`, used by :func:`read_exports`): every row of
  the amortized file plus only the commitment purchases/refunds of the actual file, per billing
  account — Microsoft's recipe; tax (MCA) from both, each row carrying only its own measure.
  BilledCost then sums to the actual file's total, EffectiveCost to the amortized file's, which the
  chunk's ``source_totals`` check to the cent (files that disagree fail that month). Mapped one by
  one (``finops ingest`` of both files) the two would each carry the month's usage: give both
  to :func:`read_exports` instead.
- **Which file is which**: headers are identical; :func:`hint` reads ``actual``/``amortized`` in the
  path, else :func:`kind_of` looks at the rows (Unused* rows or commitment usage with a cost mean
  amortized; a file with neither holds the same rows either way).
- ChargeCategory: Usage/Purchase/Credit/Tax as is; Unused* → Usage; Refund → Purchase with
  ChargeClass ``Correction``; anything else (RoundingAdjustment …) → Adjustment.
- PricingCategory: OnDemand → Standard, Spot → Dynamic, Reservation/SavingsPlan → Committed (but
  Standard on the purchase itself, as FOCUS requires); empty → Standard; other → Other; Tax → null.
- Commitment columns from ``benefitId``/``benefitName`` (else ReservationId/Name):
  ``/microsoft.capacity/`` → Reservation (category Usage), ``/microsoft.billingbenefits/`` →
  Savings Plan (Spend); status Unused on Unused* rows, Used on covered usage.
- BillingAccountId: MCA's billing profile (``BillingProfileId``) where present, else
  ``BillingAccountId`` (EA files repeat the enrollment there). SubAccount = subscription.
- Prices: PricingQuantity = Quantity in ``UnitOfMeasure`` blocks (Cost = Quantity × EffectivePrice
  in the samples), PricingUnit = UnitOfMeasure in FOCUS unit format (``10K`` → ``10000 Units``,
  ``1 GB/Month`` → ``GB-Months``); ListUnitPrice = PayGPrice, ContractedUnitPrice = UnitPrice (MCA:
  times ``ExchangeRatePricingToBilling``); ListCost and ContractedCost = unit price × quantity (MCA's
  ``PaygCostInBillingCurrency`` wins for ListCost when present).
- Service: ServiceName = MeterCategory; ServiceCategory/Subcategory from :data:`SERVICES` (by meter
  category, so each ServiceName has one subcategory), else from ServiceFamily, else Other.
- Region: RegionId = ResourceLocation lower-cased without spaces, RegionName from :data:`REGIONS`.
- Resource: ResourceType = the ARM type in ResourceId (``Microsoft.Compute/virtualMachines``), else
  ConsumedService; ResourceName = ResourceName, else the last segment of ResourceId.
- SkuId = ProductId (MCA) or PartNumber (EA); SkuPriceId = ``<SkuId>:<MeterId>`` (one meter is sold
  under several part numbers, and FOCUS wants one parent SkuId per price id); SkuMeter = MeterName.
- Extension columns: x_ResourceGroupName, x_CostCenter, x_InvoiceSectionName, x_SkuMeterCategory,
  x_SkuMeterSubcategory, x_ChargeType, x_PricingModel, x_CostDetailsKind (actual | amortized).

Reading (:func:`read_exports`): a file, a folder (searched recursively for ``*.csv``, ``*.csv.gz``,
``*.parquet``), a list of them, or an fsspec URL (``az://container/path`` through adlfs, ``abfs://``,
``s3://`` …); each file is checked (unparseable dates/amounts, unknown currencies: an error naming file,
row and column, before anything is yielded), then one :class:`collectors.billing.Chunk` per billing month.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fsspec
import polars as pl

from collectors.billing import Chunk, CollectSettings, periods, require_location
from collectors.files import IngestError, _is_local, local_copy, read_raw
from collectors.formats import NativeFormat
from finops import focus
from finops.config import BillingSource
from finops.exprs import recode
from finops.periods import month_start
from finops.store import Source

Kind = Literal["actual", "amortized"]
PROVIDER = "Microsoft"
SOURCE_PREFIX = "azure-cost-details"

# Canonical column name → the names it goes by (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "Cost": ("Cost", "CostInBillingCurrency", "PreTaxCost"),
    "ProductName": ("ProductName", "Product"),
    "BillingCurrency": ("BillingCurrency", "BillingCurrencyCode", "Currency"),
    "ResourceGroup": ("ResourceGroup", "ResourceGroupName"),
    "InvoiceSectionName": ("InvoiceSectionName", "InvoiceSection"),
    "ResourceLocation": ("ResourceLocation", "ResourceLocationNormalized", "Location"),
    "PricingCurrency": ("PricingCurrency", "PricingCurrencyCode"),
    "ExchangeRatePricingToBilling": ("ExchangeRatePricingToBilling",),
    "PaygCostInBillingCurrency": ("PaygCostInBillingCurrency",),
    "CostInPricingCurrency": ("CostInPricingCurrency",),
    "BenefitId": ("benefitId", "BenefitId"),
    "BenefitName": ("benefitName", "BenefitName"),
    **{n: (n,) for n in (
        "Date", "BillingAccountId", "BillingAccountName", "BillingProfileId", "BillingProfileName",
        "BillingPeriodStartDate", "BillingPeriodEndDate", "SubscriptionId", "SubscriptionName",
        "MeterId", "MeterName", "MeterCategory", "MeterSubCategory", "MeterRegion", "ServiceFamily",
        "Quantity", "EffectivePrice", "UnitPrice", "PayGPrice", "UnitOfMeasure", "ConsumedService",
        "ResourceId", "ResourceName", "Tags", "ChargeType", "Frequency", "PricingModel",
        "ReservationId", "ReservationName", "PublisherName", "PublisherType", "AvailabilityZone",
        "PartNumber", "ProductId", "InvoiceId", "PartnerName", "CostCenter", "Term", "AdditionalInfo",
        "ProductOrderId", "ProductOrderName", "OfferId", "PlanName", "InvoiceSectionId",
        "CostAllocationRuleName", "IsAzureCreditEligible", "AccountName", "AccountOwnerId",
        "ServiceInfo1", "ServiceInfo2")},
}
_LOOKUP = {alias.lower(): canon for canon, names in ALIASES.items() for alias in names}
REQUIRED = ("Date", "Cost", "BillingCurrency", "ChargeType", "SubscriptionId", "MeterCategory")
# What a cost-details header always has (and a FOCUS header never has).
_SIGNATURE = ("date", "metercategory", "chargetype", "subscriptionid")

COMMITMENT_MODELS = ("Reservation", "SavingsPlan")
UNUSED = ("UnusedReservation", "UnusedSavingsPlan")

# Meter category → (ServiceCategory, ServiceSubcategory); Microsoft's services list, abridged.
SERVICES: dict[str, tuple[str, str]] = {
    "Virtual Machines": ("Compute", "Virtual Machines"),
    "Virtual Machines Licenses": ("Compute", "Virtual Machines"),
    "Cloud Services": ("Compute", "Virtual Machines"),
    "Azure Kubernetes Service": ("Compute", "Containers"),
    "Container Instances": ("Compute", "Containers"),
    "Container Registry": ("Compute", "Containers"),
    "Azure Container Apps": ("Compute", "Containers"),
    "Functions": ("Compute", "Serverless Compute"),
    "Azure Batch": ("Compute", "Other (Compute)"),
    "Storage": ("Storage", "Storage Platforms"),
    "Backup": ("Storage", "Backup Storage"),
    "Azure NetApp Files": ("Storage", "File Storage"),
    "Virtual Network": ("Networking", "Network Infrastructure"),
    "Bandwidth": ("Networking", "Network Connectivity"),
    "Load Balancer": ("Networking", "Application Networking"),
    "Application Gateway": ("Networking", "Application Networking"),
    "VPN Gateway": ("Networking", "Network Connectivity"),
    "ExpressRoute": ("Networking", "Network Connectivity"),
    "Azure DNS": ("Networking", "Network Routing"),
    "Azure Front Door Service": ("Networking", "Content Delivery"),
    "Content Delivery Network": ("Networking", "Content Delivery"),
    "Azure Firewall": ("Networking", "Network Security"),
    "Network Watcher": ("Networking", "Other (Networking)"),
    "NAT Gateway": ("Networking", "Network Connectivity"),
    "IP Addresses": ("Networking", "Network Infrastructure"),
    "SQL Database": ("Databases", "Relational Databases"),
    "SQL Managed Instance": ("Databases", "Relational Databases"),
    "Azure Database for MySQL": ("Databases", "Relational Databases"),
    "Azure Database for PostgreSQL": ("Databases", "Relational Databases"),
    "Azure Cosmos DB": ("Databases", "NoSQL Databases"),
    "Redis Cache": ("Databases", "Caching"),
    "Azure Cache for Redis": ("Databases", "Caching"),
    "Azure Synapse Analytics": ("Analytics", "Data Processing"),
    "Azure Databricks": ("Analytics", "Data Processing"),
    "Azure Data Factory v2": ("Analytics", "Data Processing"),
    "Azure Data Factory": ("Analytics", "Data Processing"),
    "HDInsight": ("Analytics", "Data Processing"),
    "Event Hubs": ("Analytics", "Streaming Analytics"),
    "Stream Analytics": ("Analytics", "Streaming Analytics"),
    "Azure Cognitive Search": ("Analytics", "Search"),
    "Azure Machine Learning": ("AI and Machine Learning", "Machine Learning"),
    "Machine Learning Studio": ("AI and Machine Learning", "Machine Learning"),
    "Cognitive Services": ("AI and Machine Learning", "AI Platforms"),
    "Azure OpenAI": ("AI and Machine Learning", "Generative AI"),
    "Foundry Models": ("AI and Machine Learning", "Generative AI"),
    "Azure Bot Service": ("AI and Machine Learning", "Bots"),
    "Key Vault": ("Security", "Secret Management"),
    "Advanced Threat Protection": ("Security", "Threat Detection and Response"),
    "Advanced Data Security": ("Security", "Security Posture Management"),
    "Microsoft Defender for Cloud": ("Security", "Security Posture Management"),
    "Sentinel": ("Security", "Threat Detection and Response"),
    "Log Analytics": ("Management and Governance", "Observability"),
    "Azure Monitor": ("Management and Governance", "Observability"),
    "Insight and Analytics": ("Management and Governance", "Observability"),
    "Automation": ("Management and Governance", "Other (Management and Governance)"),
    "Azure Site Recovery": ("Management and Governance", "Disaster Recovery"),
    "Azure App Service": ("Web", "Application Platforms"),
    "Service Bus": ("Integration", "Messaging"),
    "Event Grid": ("Integration", "Messaging"),
    "Logic Apps": ("Integration", "Workflow Orchestration"),
    "API Management": ("Integration", "API Management"),
    "IoT Hub": ("Internet of Things", "IoT Platforms"),
    "Azure DevOps": ("Developer Tools", "Developer Platforms"),
    "Azure Active Directory": ("Identity", "Identity and Access Management"),
    "Microsoft Entra ID": ("Identity", "Identity and Access Management"),
}
# ServiceFamily → ServiceCategory, the fallback for meter categories not in SERVICES.
FAMILIES: dict[str, str] = {
    "Compute": "Compute", "Storage": "Storage", "Networking": "Networking", "Databases": "Databases",
    "Analytics": "Analytics", "AI + Machine Learning": "AI and Machine Learning", "Security": "Security",
    "Management and Governance": "Management and Governance", "Web": "Web", "Integration": "Integration",
    "Internet of Things": "Internet of Things", "Developer Tools": "Developer Tools",
    "Containers": "Compute", "Identity": "Identity", "Migration": "Migration", "Mixed Reality": "Media",
    "Media": "Media",
}
# ARM region name → display name (RegionName).
REGIONS: dict[str, str] = {
    "eastus": "East US", "eastus2": "East US 2", "centralus": "Central US", "northcentralus": "North Central US",
    "southcentralus": "South Central US", "westcentralus": "West Central US", "westus": "West US",
    "westus2": "West US 2", "westus3": "West US 3", "canadacentral": "Canada Central", "canadaeast": "Canada East",
    "brazilsouth": "Brazil South", "northeurope": "North Europe", "westeurope": "West Europe",
    "uksouth": "UK South", "ukwest": "UK West", "francecentral": "France Central", "francesouth": "France South",
    "germanywestcentral": "Germany West Central", "germanynorth": "Germany North",
    "switzerlandnorth": "Switzerland North", "switzerlandwest": "Switzerland West", "norwayeast": "Norway East",
    "norwaywest": "Norway West", "swedencentral": "Sweden Central", "polandcentral": "Poland Central",
    "italynorth": "Italy North", "spaincentral": "Spain Central", "eastasia": "East Asia",
    "southeastasia": "Southeast Asia", "japaneast": "Japan East", "japanwest": "Japan West",
    "koreacentral": "Korea Central", "koreasouth": "Korea South", "australiaeast": "Australia East",
    "australiasoutheast": "Australia Southeast", "australiacentral": "Australia Central",
    "centralindia": "Central India", "southindia": "South India", "westindia": "West India",
    "uaenorth": "UAE North", "uaecentral": "UAE Central", "southafricanorth": "South Africa North",
    "qatarcentral": "Qatar Central", "israelcentral": "Israel Central", "mexicocentral": "Mexico Central",
    "global": "Global", "unassigned": "Unassigned",
}


# -- headers -------------------------------------------------------------------------------------
def canonical_names(columns: Sequence[str]) -> dict[str, str]:
    """Rename map of a header onto canonical names (BOM stripped, case-insensitive); the first
    column wins when two names alias one canonical column. Unknown columns are left out."""
    out: dict[str, str] = {}
    for col in columns:
        canon = _LOOKUP.get(col.lstrip("\ufeff").strip().lower())
        if canon and canon not in out.values():
            out[col] = canon
    return out


def matches(columns: Sequence[str]) -> bool:
    """Whether a header is an Azure cost-details export (EA or MCA, either name generation)."""
    low = {c.lstrip("\ufeff").strip().lower() for c in columns}
    has_cost = bool(low & {"cost", "costinbillingcurrency", "pretaxcost"})
    return has_cost and all(s in low for s in _SIGNATURE) and "billedcost" not in low


def canonical(raw: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The raw frame with canonical column names, every column as text, empty strings null; raises
    :class:`IngestError` naming the file and the missing columns."""
    names = raw.collect_schema().names()
    renames = canonical_names(names)
    missing = [r for r in REQUIRED if r not in renames.values()]
    if missing:
        raise IngestError(f"{name}: not an Azure cost-details export: missing column(s) {', '.join(missing)}")
    lf = raw.select([pl.col(src).alias(dst) for src, dst in renames.items()])
    schema = lf.collect_schema()
    lf = lf.with_columns(_as_text(n, t) for n, t in schema.items() if t != pl.String)
    # The CSV reader reads an empty field as null but a quoted empty one ("") as "": both are null.
    # (when/then, not `replace`: replace is a whole-column function that stops the query streaming)
    return lf.with_columns(pl.when(pl.col(n) != "").then(pl.col(n)).alias(n) for n in schema.names())


def _as_text(n: str, t: pl.DataType) -> pl.Expr:
    # Parquet exports carry real types; the mapping reads text, so dates become ISO strings.
    if isinstance(t, (pl.Datetime, pl.Date)):
        return pl.col(n).dt.strftime("%Y-%m-%d").alias(n)
    return pl.col(n).cast(pl.String).alias(n)


# -- value parsers (text → typed) ------------------------------------------------------------------
def _nn(n: str) -> pl.Expr:
    """Column ``n`` of a :func:`canonical` frame (empty strings already null). Values are not
    trimmed: exports do not pad them, and trimming at every use made the mapping 4x slower; a
    padded number or date is reported by :func:`check`."""
    return pl.col(n)


def parse_date(e: pl.Expr) -> pl.Expr:
    """``MM/DD/YYYY``, ``M/D/YYYY`` or ISO (``YYYY-MM-DD[Thh:mm:ss…]``) → Date; null where it does not
    parse (both branches see every row, so neither can be strict; :func:`check` reports the row)."""
    s = e
    return (pl.when(s.str.contains("/", literal=True)).then(s.str.to_date("%m/%d/%Y", strict=False))
            .otherwise(s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)))


def parse_decimal(e: pl.Expr, strict: bool = True) -> pl.Expr:
    """Exact decimal; polars 2.x parses exponent notation (``5.64902E-05``) exactly too."""
    return e.cast(focus.DECIMAL, strict=strict)


def _dt(d: pl.Expr) -> pl.Expr:
    return d.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _dec(n: str, cols: set[str]) -> pl.Expr:
    return parse_decimal(_nn(n)) if n in cols else pl.lit(None, dtype=focus.DECIMAL)


def _txt(n: str, cols: set[str]) -> pl.Expr:
    return _nn(n) if n in cols else pl.lit(None, dtype=pl.String)


# -- units -------------------------------------------------------------------------------------
_UNIT_WORDS = {"hour": "Hours", "hours": "Hours", "day": "Days", "days": "Days", "month": "Months",
               "months": "Months", "year": "Years", "minute": "Minutes", "second": "Seconds"}
_SIZE = {"gb": "GB", "tb": "TB", "mb": "MB", "kb": "KB", "gib": "GiB", "tib": "TiB", "mib": "MiB", "pb": "PB"}


def pricing_unit(uom: str | None) -> str | None:
    """An Azure UnitOfMeasure in FOCUS unit format: ``1 Hour`` → ``Hours``, ``10K`` → ``10000 Units``,
    ``1 GB/Month`` → ``GB-Months``, ``1/Month`` → ``Units/Month``, ``100 Hours`` → ``100 Hours``."""
    if uom is None or not uom.strip():
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)?\s*([KkMm](?![a-zA-Z]))?\s*(.*?)\s*", uom)
    assert m is not None  # the pattern matches any text
    num, mult, rest = m.groups()
    n = float(num) if num else 1.0
    n *= {"k": 1e3, "m": 1e6}.get((mult or "").lower(), 1.0)
    base, _, per = rest.partition("/")
    base_l = base.strip().lower()
    if "-" in base:  # already FOCUS unit format ("GB-Months")
        return uom.strip()
    unit = _SIZE.get(base_l) or _UNIT_WORDS.get(base_l) or (base.strip() or "Units")
    if unit in ("Hours", "Days", "Months", "Years", "Minutes", "Seconds") and per:
        unit = unit.rstrip("s")  # "1 Hour/Month" reads as hours per month
    if per:
        per_word = _UNIT_WORDS.get(per.strip().lower(), per.strip().title())
        per_singular = per_word.removesuffix("s")
        unit = f"{unit}-{per_word}" if unit in _SIZE.values() and per_singular == "Month" else f"{unit}/{per_singular}"
    count = int(n) if n == int(n) else n
    return unit if count == 1 else f"{count} {unit}"


def _unit_expr(e: pl.Expr) -> pl.Expr:
    # Units repeat across millions of rows: convert each distinct value once per batch.
    def convert(s: pl.Series) -> pl.Series:
        uniq = s.unique().drop_nulls().to_list()
        return s.replace_strict({u: pricing_unit(u) for u in uniq}, default=None, return_dtype=pl.String)
    return e.map_batches(convert, return_dtype=pl.String, is_elementwise=True)


# -- the mapping ---------------------------------------------------------------------------------
def _region_name(region_id: pl.Expr, raw: pl.Expr) -> pl.Expr:
    return recode(region_id, REGIONS, default=raw)


def _service(cols: set[str]) -> tuple[pl.Expr, pl.Expr]:
    meter = _txt("MeterCategory", cols)
    family_cat = recode(_txt("ServiceFamily", cols), FAMILIES, default="Other")
    category = recode(meter, {k: v[0] for k, v in SERVICES.items()}, default=family_cat).fill_null("Other")
    subcat = recode(meter, {k: v[1] for k, v in SERVICES.items()})
    subcat = subcat.fill_null(pl.concat_str(pl.lit("Other ("), category, pl.lit(")")))
    return category, subcat


def mapping(columns: Sequence[str], kind: Kind) -> dict[str, pl.Expr]:
    """FOCUS column → expression over a :func:`canonical` frame (text columns) of a ``kind`` file.

    The reviewable heart of this module: see the module docstring for the choices."""
    cols = set(columns)
    t = lambda n: _txt(n, cols)  # noqa: E731 (short local helper)
    d = lambda n: _dec(n, cols)  # noqa: E731
    cost = parse_decimal(t("Cost").fill_null("0"))
    charge = t("ChargeType")
    model = t("PricingModel")
    commit = model.is_in(COMMITMENT_MODELS).fill_null(False)
    unused = charge.is_in(UNUSED).fill_null(False)
    commit_purchase = charge.is_in(("Purchase", "Refund")).fill_null(False) & commit
    commit_usage = (charge == "Usage").fill_null(False) & commit
    zero = pl.lit(0, dtype=focus.DECIMAL)
    category = (pl.when(charge.is_in(("Usage", "Purchase", "Credit", "Tax"))).then(charge)
                .when(unused).then(pl.lit("Usage"))
                .when(charge == "Refund").then(pl.lit("Purchase"))
                .otherwise(pl.lit("Adjustment")))
    is_tax = charge == "Tax"
    day = parse_date(t("Date"))
    period_start = parse_date(t("BillingPeriodStartDate")) if "BillingPeriodStartDate" in cols else day.dt.month_start()
    period_end = (parse_date(t("BillingPeriodEndDate")) + timedelta(days=1) if "BillingPeriodEndDate" in cols
                  else day.dt.month_start().dt.offset_by("1mo"))
    rate = d("ExchangeRatePricingToBilling").fill_null(pl.lit(1, dtype=focus.DECIMAL))
    quantity = pl.when(is_tax).then(None).otherwise(d("Quantity"))
    list_price = pl.when(is_tax).then(None).otherwise(d("PayGPrice") * rate)
    contracted_price = pl.when(is_tax).then(None).otherwise(d("UnitPrice") * rate)
    unit = pl.when(quantity.is_not_null()).then(_unit_expr(t("UnitOfMeasure")))
    benefit = t("BenefitId").fill_null(t("ReservationId")) if "BenefitId" in cols or "ReservationId" in cols \
        else pl.lit(None, dtype=pl.String)
    low_benefit = benefit.str.to_lowercase()
    is_ri = low_benefit.str.contains("/microsoft.capacity/", literal=True) | (
        ~low_benefit.str.contains("/microsoft.billingbenefits/", literal=True) & (model == "Reservation"))
    is_sp = low_benefit.str.contains("/microsoft.billingbenefits/", literal=True) | (
        ~low_benefit.str.contains("/microsoft.capacity/", literal=True) & (model == "SavingsPlan"))
    has_benefit = benefit.is_not_null()
    location = t("ResourceLocation")
    region_id = location.str.to_lowercase().str.replace_all(" ", "", literal=True)
    resource_id = t("ResourceId")
    resource_type = resource_id.str.extract(r"(?i)/providers/([^/]+/[^/]+)", 1).fill_null(t("ConsumedService")) \
        .fill_null(pl.lit("Unknown"))
    profile = t("BillingProfileId")
    account = profile.fill_null(t("BillingAccountId")) if "BillingProfileId" in cols else t("BillingAccountId")
    ea = profile.is_null() | (profile == t("BillingAccountId"))
    service_category, service_subcategory = _service(cols)
    tags = t("Tags")
    frequency = t("Frequency")
    usage_like = category == "Usage"
    consumed = pl.when(usage_like & ~unused).then(d("Quantity"))
    subscription = t("SubscriptionId")
    effective_cost = pl.when(commit_purchase).then(zero).otherwise(cost)
    # One currency: FOCUS has the pricing-currency figures equal the billing-currency ones.
    pricing_effective_cost = (pl.when(commit_purchase).then(zero).otherwise(d("CostInPricingCurrency"))
                              if "CostInPricingCurrency" in cols else effective_cost)

    out: dict[str, pl.Expr] = {
        "AvailabilityZone": t("AvailabilityZone"),
        "BilledCost": cost if kind == "actual" else pl.when(commit_usage | unused).then(zero).otherwise(cost),
        "BillingAccountId": account,
        "BillingAccountName": (t("BillingProfileName").fill_null(t("BillingAccountName"))
                               if "BillingProfileName" in cols else t("BillingAccountName")).fill_null(account),
        "BillingAccountType": pl.when(ea).then(pl.lit("Billing Account")).otherwise(pl.lit("Billing Profile")),
        "BillingCurrency": t("BillingCurrency"),
        "BillingPeriodEnd": _dt(period_end),
        "BillingPeriodStart": _dt(period_start),
        "ChargeCategory": category,
        "ChargeClass": pl.when(charge == "Refund").then(pl.lit("Correction")),
        "ChargeDescription": t("ProductName").fill_null(t("MeterName")),
        "ChargeFrequency": (pl.when(frequency == "OneTime").then(pl.lit("One-Time"))
                            .when(frequency == "Recurring").then(pl.lit("Recurring"))
                            .when((frequency == "UsageBased") & (category != "Purchase")).then(pl.lit("Usage-Based"))
                            .when(category == "Purchase").then(pl.lit("One-Time"))
                            .when(usage_like).then(pl.lit("Usage-Based"))
                            .otherwise(pl.lit("Recurring"))),
        "ChargePeriodEnd": _dt(day + timedelta(days=1)),
        "ChargePeriodStart": _dt(day),
        "CommitmentDiscountCategory": pl.when(has_benefit & is_ri).then(pl.lit("Usage"))
        .when(has_benefit & is_sp).then(pl.lit("Spend")),
        "CommitmentDiscountId": benefit,
        "CommitmentDiscountName": pl.when(has_benefit).then(
            t("BenefitName").fill_null(t("ReservationName")) if {"BenefitName", "ReservationName"} & cols
            else pl.lit(None, dtype=pl.String)),
        "CommitmentDiscountStatus": pl.when(has_benefit & unused).then(pl.lit("Unused"))
        .when(has_benefit & commit_usage).then(pl.lit("Used")),
        "CommitmentDiscountType": pl.when(has_benefit & is_ri).then(pl.lit("Reservation"))
        .when(has_benefit & is_sp).then(pl.lit("Savings Plan")),
        "ConsumedQuantity": consumed,
        "ConsumedUnit": pl.when(consumed.is_not_null()).then(unit),
        "ContractedCost": (contracted_price * quantity).fill_null(cost),
        "ContractedUnitPrice": contracted_price,
        "EffectiveCost": effective_cost,
        "InvoiceId": t("InvoiceId"),
        "InvoiceIssuerName": t("PartnerName").fill_null(pl.lit(PROVIDER)),
        "ListCost": (d("PaygCostInBillingCurrency") if "PaygCostInBillingCurrency" in cols
                     else list_price * quantity).fill_null(cost),
        "ListUnitPrice": list_price,
        "PricingCategory": pl.when(is_tax).then(None)
        .when(model.is_null() | (model == "OnDemand")).then(pl.lit("Standard"))
        .when(model == "Spot").then(pl.lit("Dynamic"))
        .when(commit & ~commit_purchase).then(pl.lit("Committed"))
        .when(commit).then(pl.lit("Standard"))
        .otherwise(pl.lit("Other")),
        "PricingCurrency": t("PricingCurrency").fill_null(t("BillingCurrency")),
        "PricingCurrencyContractedUnitPrice": pl.when(is_tax).then(None).otherwise(d("UnitPrice")),
        "PricingCurrencyEffectiveCost": pricing_effective_cost,
        "PricingCurrencyListUnitPrice": pl.when(is_tax).then(None).otherwise(d("PayGPrice")),
        "PricingQuantity": quantity,
        "PricingUnit": unit,
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": t("PublisherName").fill_null(pl.lit(PROVIDER)),
        "RegionId": region_id,
        "RegionName": pl.when(region_id.is_not_null()).then(_region_name(region_id, location)),
        "ResourceId": resource_id,
        "ResourceName": pl.when(resource_id.is_not_null()).then(
            t("ResourceName").fill_null(resource_id.str.split("/").list.last())),
        "ResourceType": pl.when(resource_id.is_not_null()).then(resource_type),
        "ServiceCategory": service_category,
        "ServiceName": t("MeterCategory").fill_null(t("ConsumedService")).fill_null(pl.lit("Other")),
        "ServiceSubcategory": service_subcategory,
        "SkuId": t("ProductId").fill_null(t("PartNumber")) if "ProductId" in cols else t("PartNumber"),
        "SkuMeter": t("MeterName"),
        "SkuPriceId": t("MeterId"),
        "SubAccountId": subscription,
        "SubAccountName": t("SubscriptionName"),
        "SubAccountType": pl.when(subscription.is_not_null()).then(pl.lit("Subscription")),
        "Tags": pl.when(tags.str.starts_with("{")).then(tags)
        .otherwise(pl.concat_str(pl.lit("{"), tags, pl.lit("}"))),
        "x_ResourceGroupName": t("ResourceGroup"),
        "x_CostCenter": t("CostCenter"),
        "x_InvoiceSectionName": t("InvoiceSectionName"),
        "x_SkuMeterCategory": t("MeterCategory"),
        "x_SkuMeterSubcategory": t("MeterSubCategory"),
        "x_ChargeType": charge,
        "x_PricingModel": model,
        "x_CostDetailsKind": pl.lit(kind),
    }
    # SkuMeter/SkuPriceId need a SkuId (FOCUS: SkuMeter null when SkuId null).
    out["SkuMeter"] = pl.when(out["SkuId"].is_not_null()).then(out["SkuMeter"])
    # A meter appears under several part numbers: the price id is the pair, so it has one parent SkuId.
    out["SkuPriceId"] = pl.when(out["SkuId"].is_not_null()).then(
        pl.concat_str(out["SkuId"], pl.lit(":"), out["SkuPriceId"]))
    return out


def kept(columns: Sequence[str], kind: Kind) -> pl.Expr:
    """Rows of a ``kind`` file that belong in FOCUS: an amortized file's commitment purchases are
    kept out (the actual file carries them)."""
    if kind == "actual":
        return pl.lit(True)
    charge, model = _txt("ChargeType", set(columns)), _txt("PricingModel", set(columns))
    return ~(charge.is_in(("Purchase", "Refund")) & model.is_in(COMMITMENT_MODELS)).fill_null(False)


def hint(name: str) -> Kind | None:
    """The kind a path names: ``amortized``/``amortised`` or ``actual`` in the file's own name, else in
    its folders (Cost Management puts the export's name there); None when neither says."""
    for part in (name.replace("\\", "/").rsplit("/", 1)[-1], name):
        low = part.lower()
        if re.search(r"amorti[sz]ed", low):
            return "amortized"
        if "actual" in low:
            return "actual"
    return None


def kind_of(name: str, raw: pl.LazyFrame | None = None) -> Kind:
    """``actual`` or ``amortized``: from the path (:func:`hint`), else from the rows of the
    :func:`canonical` frame ``raw`` (an amortized file has Unused* rows or commitment usage with a
    cost; one with neither holds the same rows as the actual file would, so reading it as actual
    loses nothing), else ``actual``."""
    found = hint(name)
    if found or raw is None:
        return found or "actual"
    cols = set(raw.collect_schema().names())
    row = raw.select(_amortized_flag(cols).any().alias("a")).collect()
    return "amortized" if row["a"][0] else "actual"


def _amortized_flag(cols: set[str]) -> pl.Expr:
    charge, model = _txt("ChargeType", cols), _txt("PricingModel", cols)
    cost = parse_decimal(_txt("Cost", cols).fill_null("0"), strict=False)
    commitment_usage = (charge == "Usage") & model.is_in(COMMITMENT_MODELS) & (cost != 0)
    return (charge.is_in(UNUSED) | commitment_usage).fill_null(False)


def to_focus(raw: pl.LazyFrame, name: str, kind: Kind | None = None) -> pl.LazyFrame:
    """A cost-details file (as read: text columns, any header generation) as FOCUS-named columns,
    ready for :func:`finops.focus.conform`. ``kind`` defaults to :func:`kind_of` ``(name, raw)``.
    Lazy: a value that does not parse fails on collect — :func:`check` finds it by row."""
    lf = canonical(raw, name)
    kind = kind or kind_of(name, lf)
    cols = lf.collect_schema().names()
    return lf.filter(kept(cols, kind)).select(e.alias(k) for k, e in mapping(cols, kind).items())


def load(raw: pl.LazyFrame, name: str, kind: Kind | None = None) -> pl.LazyFrame:
    """:func:`to_focus` then :func:`finops.focus.conform`: FOCUS 1.2 rows."""
    return focus.conform(to_focus(raw, name, kind))


FORMATS: list[NativeFormat] = [NativeFormat(
    "azure-cost-details", "azure", matches, to_focus,
    together=lambda urls, storage_options: read_exports(urls, storage_options=storage_options))]


# -- checking a file -----------------------------------------------------------------------------
@dataclass
class FileFacts:
    """What one pass over a cost-details file tells: its kind, months, accounts, cost total."""

    name: str
    kind: Kind
    months: list[date]
    accounts: list[str]
    total: Decimal
    rows: int


def check(raw: pl.LazyFrame, name: str, kind: Kind | None = None) -> FileFacts:
    """One pass over a file: raises :class:`IngestError` naming the file, the (1-based) data row and
    the column of the first value that does not parse (dates, amounts), of an empty Date, or of a
    currency that is not ISO 4217; returns its :class:`FileFacts` otherwise."""
    lf = canonical(raw, name)
    cols = set(lf.collect_schema().names())
    rules: list[tuple[str, pl.Expr, str]] = [("Date", _nn("Date").is_null(), "empty")]
    for col in ("Date", "BillingPeriodStartDate", "BillingPeriodEndDate"):
        if col in cols:
            rules.append((col, _nn(col).is_not_null() & parse_date(_nn(col)).is_null(), "not a date"))
    for col in ("Cost", "Quantity", "UnitPrice", "PayGPrice", "EffectivePrice", "PaygCostInBillingCurrency",
                "ExchangeRatePricingToBilling", "CostInPricingCurrency"):
        if col in cols:
            rules.append((col, _nn(col).is_not_null() & parse_decimal(_nn(col), strict=False).is_null(),
                          "not a number"))
    for col in ("BillingCurrency", "PricingCurrency"):
        if col in cols:
            rules.append((col, _nn(col).is_not_null() & ~_nn(col).is_in(sorted(focus.currency_codes())),
                          "not an ISO 4217 currency code"))
    account = _txt("BillingProfileId", cols).fill_null(_txt("BillingAccountId", cols))
    month = (parse_date(_nn("BillingPeriodStartDate")) if "BillingPeriodStartDate" in cols
             else parse_date(_nn("Date")).dt.month_start())
    cost = parse_decimal(_nn("Cost"), strict=False)
    aggs = [e.fill_null(False).any().alias(f"__rule{i}") for i, (_, e, _) in enumerate(rules)]
    aggs += [cost.sum().alias("__all"), cost.filter(kept(list(cols), "amortized")).sum().alias("__kept"),
             month.drop_nulls().unique().sort().implode().alias("__months"),
             account.drop_nulls().unique().sort().implode().alias("__accounts"),
             _amortized_flag(cols).any().alias("__amortized"), pl.len().alias("__rows")]
    try:
        row = lf.select(aggs).collect().row(0, named=True)
    except pl.exceptions.PolarsError as e:
        first_line = str(e).strip().splitlines()[0]
        raise IngestError(f"{name}: cannot read as an Azure cost-details file ({first_line})") from None
    for i, (col, expr, what) in enumerate(rules):
        if row[f"__rule{i}"]:
            r, value = (lf.with_row_index("__row").filter(expr.fill_null(False))
                        .select("__row", pl.col(col)).limit(1).collect().row(0))
            shown = "" if value is None or what == "empty" else f": {value!r}"
            raise IngestError(f"{name}: row {r + 1}, column {col}: {what}{shown}")
    if row["__rows"] == 0:
        raise IngestError(f"{name}: no rows (header only)")
    if kind is None:
        kind = hint(name) or ("amortized" if row["__amortized"] else "actual")
    total = row["__kept"] if kind == "amortized" else row["__all"]
    return FileFacts(name, kind, row["__months"] or [], row["__accounts"] or [], Decimal(total or 0), row["__rows"])


# -- combining the two files of one month --------------------------------------------------------
COMMITMENT_PURCHASE = (pl.col("ChargeCategory") == "Purchase") & pl.col("x_PricingModel").is_in(COMMITMENT_MODELS)
TAX = pl.col("ChargeCategory") == "Tax"


def combine(actual: Sequence[pl.LazyFrame], amortized: Sequence[pl.LazyFrame],
            amortized_accounts: Sequence[str]) -> pl.LazyFrame:
    """Mapped (FOCUS-named, pre-conform) frames of one billing month into one frame.

    For accounts with an amortized file: every amortized row, plus the actual files' commitment
    purchases and refunds (Microsoft's recipe). Tax (MCA) may differ between the two views, so it
    is taken from both, each row carrying only its own measure: the actual row its BilledCost (and
    EffectiveCost 0), the amortized row its EffectiveCost (and BilledCost 0). Accounts without an
    amortized file keep all their actual rows."""
    zero = pl.lit(0, dtype=focus.DECIMAL)
    covered = list(amortized_accounts)
    frames = [lf.with_columns(pl.when(TAX).then(zero).otherwise(pl.col("BilledCost")).alias("BilledCost"))
              for lf in amortized]
    for lf in actual:
        mine = pl.col("BillingAccountId").is_in(covered)
        frames.append(lf.filter(~mine | COMMITMENT_PURCHASE.fill_null(False) | TAX.fill_null(False))
                      .with_columns([pl.when(mine & TAX).then(zero).otherwise(pl.col(c)).alias(c)
                                     for c in ("EffectiveCost", "ListCost", "ContractedCost",
                                               "PricingCurrencyEffectiveCost")]))
    return pl.concat(frames, how="diagonal_relaxed")


# -- reading exports -------------------------------------------------------------------------------
EXTENSIONS = (".csv", ".csv.gz", ".parquet")


def list_exports(location: str | Path, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Export files at ``location`` (a file, or every CSV/CSV.gz/Parquet file under a folder), as
    URLs or local paths, sorted."""
    loc = str(location)
    fs, path = fsspec.core.url_to_fs(loc, **(storage_options or {}))
    if not fs.exists(path):
        raise IngestError(f"{loc}: no such file or folder")
    if not fs.isdir(path):
        return [loc]
    found = sorted(p for p in fs.find(path) if p.lower().endswith(EXTENSIONS))
    if not found:
        raise IngestError(f"{loc}: no cost-details files (*.csv, *.csv.gz, *.parquet) in this folder")
    return [p if _is_local(fs) else fs.unstrip_protocol(p) for p in found]


def read_exports(location: str | Path | Sequence[str | Path], *, since: date | None = None,
                 cursor: Mapping[str, Any] | None = None, storage_options: Mapping[str, Any] | None = None,
                 today: date | None = None, source: str | None = None) -> Iterator[Chunk]:
    """Cost-details exports at ``location`` (path, folder or fsspec URL such as
    ``az://container/exports``, or a list of them) as one :class:`Chunk` per billing month,
    oldest first. Give the actual and the amortized file of a month together: mapped one by one
    they would each carry the month's usage (``finops ingest`` of both files should come here).

    Every file is read and checked first (:func:`check`); a bad one raises :class:`IngestError`
    naming file, row and column before any chunk is yielded, so nothing is written. Months: all of
    them without ``since``/``cursor``; otherwise from the first month :func:`collectors.billing.periods`
    gives (the cursor's next month, and always the previous and current month). A month with both
    an actual and an amortized file is :func:`combine`-d. ``source_totals`` holds the actual files'
    Cost total as BilledCost and the amortized files' as EffectiveCost where they cover every
    account of the month.
    """
    locations = [location] if isinstance(location, (str, Path)) else list(location)
    source = source or f"{SOURCE_PREFIX}:{locations[0] if len(locations) == 1 else ','.join(map(str, locations))}"
    first = periods(dict(cursor) if cursor else None, since, today)[0] if (since or cursor) else None
    urls = [u for loc in locations for u in list_exports(loc, storage_options)]
    with ExitStack() as stack:  # every file stays readable until the last month is written
        files = [_open(url, *stack.enter_context(local_copy(url, storage_options))) for url in urls]
        by_month: dict[date, list[tuple[FileFacts, pl.LazyFrame, Source]]] = {}
        for facts, raw, src in files:
            for m in facts.months:
                by_month.setdefault(month_start(m), []).append((facts, raw, src))
        for month in sorted(by_month):
            if first is not None and month < first:
                continue
            yield _month_chunk(source, month, by_month[month])


# -- the billing collector contract ------------------------------------------------------------------
StorageOptions = Mapping[str, Any]


def make_client(source: BillingSource) -> StorageOptions | None:
    """Exports are files: no SDK client. The "client" is fsspec's storage options for the location,
    None meaning each filesystem's own credential chain (adlfs: ``DefaultAzureCredential``)."""
    return None


def source_id(source: BillingSource, settings: CollectSettings | None = None) -> str:
    """The source id and cursor name: ``source.name``, else ``azure-cost-details:<location>``."""
    return source.name or f"{SOURCE_PREFIX}:{require_location(source)}"


def collect(client: StorageOptions | None, source: BillingSource, cursor: Mapping[str, Any] | None,
            since: date | None, *, settings: CollectSettings | None = None) -> Iterator[Chunk]:
    """The cost-details exports at ``source.location`` as one :class:`Chunk` per billing month
    (:func:`read_exports`, with ``client`` as the storage options)."""
    return read_exports(require_location(source), since=since, cursor=cursor, storage_options=client,
                        today=settings.today if settings else None, source=source_id(source, settings))


def _open(url: str, local: Path, pending: Future[Source]) -> tuple[FileFacts, pl.LazyFrame, Source]:
    raw = read_raw(local, url)
    if not matches(raw.collect_schema().names()):
        first_columns = ", ".join(raw.collect_schema().names()[:6])
        raise IngestError(f"{url}: not an Azure cost-details export (columns {first_columns} …)")
    return check(raw, url), raw, pending.result()


def _month_chunk(source: str, month: date, files: list[tuple[FileFacts, pl.LazyFrame, Source]]) -> Chunk:
    in_month = lambda lf: lf.filter(pl.col("BillingPeriodStart").dt.date() == month)  # noqa: E731
    mapped: dict[Kind, list[pl.LazyFrame]] = {"actual": [], "amortized": []}
    accounts: dict[Kind, set[str]] = {"actual": set(), "amortized": set()}
    totals: dict[Kind, Decimal] = {"actual": Decimal(0), "amortized": Decimal(0)}
    for facts, raw, _ in files:
        mapped[facts.kind].append(in_month(to_focus(raw, facts.name, facts.kind)))
        accounts[facts.kind] |= set(facts.accounts)
    single_month = all(len(f.months) == 1 for f, _, _ in files)
    for facts, _, _ in files:
        totals[facts.kind] += facts.total
    frame = combine(mapped["actual"], mapped["amortized"], sorted(accounts["amortized"]))
    source_totals: dict[str, Decimal] = {}
    if single_month and mapped["actual"] and accounts["amortized"] <= accounts["actual"]:
        source_totals["BilledCost"] = totals["actual"]
    if single_month and mapped["amortized"] and accounts["actual"] <= accounts["amortized"]:
        source_totals["EffectiveCost"] = totals["amortized"]
    return Chunk(source, month, focus.conform(frame), [s for _, _, s in files], source_totals)
