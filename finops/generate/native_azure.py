"""FOCUS rows written back as Azure Cost Management cost-details exports (EA layout), for the demo.

:func:`write_cost_details` writes, per billing month, the two files Cost Management exports: the
**actual** cost file (invoice view: commitment purchases at their price, commitment-covered usage
at 0, no unused-commitment rows) and the **amortized** one (commitment purchases left out, covered
usage at its amortised cost, ``UnusedReservation``/``UnusedSavingsPlan`` rows). They look like the
real exports: a UTF-8 BOM, the EA column names and order of Microsoft's samples, ``MM/DD/YYYY``
dates, tags as key-value pairs without braces. Reading both back through
``collectors.azure.cost_details`` gives the same BilledCost and EffectiveCost totals (what an EA
export cannot hold is lost: InvoiceId, SkuPriceDetails, capacity reservations).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from finops.providers import spellings

# Column order of Microsoft's EA cost-details sample (finops-toolkit EA_ActualCost_Small.csv).
COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingPeriodStartDate", "BillingPeriodEndDate", "BillingProfileId",
    "BillingProfileName", "AccountOwnerId", "AccountName", "SubscriptionId", "SubscriptionName", "Date", "Product",
    "PartNumber", "MeterId", "ServiceFamily", "MeterCategory", "MeterSubCategory", "MeterRegion", "MeterName",
    "Quantity", "EffectivePrice", "Cost", "UnitPrice", "BillingCurrency", "ResourceLocation", "AvailabilityZone",
    "ConsumedService", "ResourceId", "ResourceName", "ServiceInfo1", "ServiceInfo2", "AdditionalInfo", "Tags",
    "InvoiceSectionId", "InvoiceSection", "CostCenter", "UnitOfMeasure", "ResourceGroup", "ReservationId",
    "ReservationName", "ProductOrderId", "ProductOrderName", "OfferId", "IsAzureCreditEligible", "Term",
    "PublisherName", "PlanName", "ChargeType", "Frequency", "PublisherType", "PayGPrice", "PricingModel",
    "CostAllocationRuleName", "benefitId", "benefitName",
)
# FOCUS unit → Azure UnitOfMeasure.
UNITS = {"Hours": "1 Hour", "GB": "1 GB", "GB-Months": "1 GB/Month", "GB-Hours": "1 GB/Hour", "Units": "1"}
_US_DATE = "%m/%d/%Y"


def _num(e: pl.Expr) -> pl.Expr:
    """A decimal as exports write it: plain, no trailing zeros."""
    return e.cast(pl.String).str.replace(r"(\.\d*?)0+$", "$1").str.replace(r"\.$", "")


def _native(lf: pl.LazyFrame, kind: str) -> pl.LazyFrame:
    c = pl.col
    commit_type = c("CommitmentDiscountType")
    model = (pl.when(commit_type == "Reservation").then(pl.lit("Reservation"))
             .when(commit_type == "Savings Plan").then(pl.lit("SavingsPlan"))
             .when(c("ChargeCategory") == "Tax").then(pl.lit(""))
             .when(c("PricingCategory") == "Dynamic").then(pl.lit("Spot"))
             .otherwise(pl.lit("OnDemand")))
    unused = c("CommitmentDiscountStatus") == "Unused"
    charge = (pl.when(unused & (commit_type == "Savings Plan")).then(pl.lit("UnusedSavingsPlan"))
              .when(unused).then(pl.lit("UnusedReservation"))
              .when((c("ChargeCategory") == "Purchase") & (c("ChargeClass") == "Correction")).then(pl.lit("Refund"))
              .otherwise(c("ChargeCategory")))
    frequency = c("ChargeFrequency").replace_strict(
        {"Usage-Based": "UsageBased", "One-Time": "OneTime", "Recurring": "Recurring"}, default="UsageBased")
    tags = c("Tags").str.strip_chars().str.strip_prefix("{").str.strip_suffix("}")
    cost = c("BilledCost") if kind == "actual" else c("EffectiveCost")
    rg = c("ResourceId").str.extract(r"(?i)/resourcegroups/([^/]+)", 1)
    day = c("ChargePeriodStart").dt.strftime(_US_DATE)
    values = {
        "BillingAccountId": c("BillingAccountId"), "BillingAccountName": c("BillingAccountName"),
        "BillingPeriodStartDate": c("BillingPeriodStart").dt.strftime(_US_DATE),
        "BillingPeriodEndDate": c("BillingPeriodEnd").dt.offset_by("-1d").dt.strftime(_US_DATE),
        "BillingProfileId": c("BillingAccountId"), "BillingProfileName": c("BillingAccountName"),
        "SubscriptionId": c("SubAccountId"), "SubscriptionName": c("SubAccountName"), "Date": day,
        "Product": c("ChargeDescription"), "PartNumber": c("SkuId"), "MeterId": c("SkuPriceId"),
        "ServiceFamily": c("ServiceCategory"), "MeterCategory": c("ServiceName"),
        "MeterSubCategory": c("ServiceSubcategory"), "MeterRegion": c("RegionName"), "MeterName": c("SkuMeter"),
        "Quantity": _num(c("PricingQuantity")), "Cost": _num(cost), "UnitPrice": _num(c("ContractedUnitPrice")),
        "BillingCurrency": c("BillingCurrency"), "ResourceLocation": c("RegionId"),
        "AvailabilityZone": c("AvailabilityZone"), "ResourceId": c("ResourceId"), "ResourceName": c("ResourceName"),
        "ConsumedService": c("ResourceId").str.extract(r"(?i)/providers/([^/]+)/", 1),
        "Tags": tags, "UnitOfMeasure": c("PricingUnit").replace_strict(UNITS, default=c("PricingUnit")),
        "ResourceGroup": rg,
        "ReservationId": pl.when(commit_type == "Reservation")
        .then(c("CommitmentDiscountId").str.split("/").list.last()),
        "ReservationName": pl.when(commit_type == "Reservation").then(c("CommitmentDiscountName")),
        "IsAzureCreditEligible": pl.lit("True"), "PublisherName": c("PublisherName"),
        "ChargeType": charge, "Frequency": frequency, "PublisherType": pl.lit("Azure"),
        "PayGPrice": _num(c("ListUnitPrice")), "PricingModel": model,
        "benefitId": c("CommitmentDiscountId"), "benefitName": c("CommitmentDiscountName"),
    }
    keep = ~unused if kind == "actual" else ~((c("ChargeCategory") == "Purchase") & commit_type.is_not_null())
    return lf.filter(keep.fill_null(True)).select(
        (values[n] if n in values else pl.lit(None, dtype=pl.String)).cast(pl.String).alias(n) for n in COLUMNS)


def write_cost_details(focus_frame: pl.LazyFrame | pl.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write the Azure rows (ProviderName Microsoft/Azure) of a FOCUS 1.2 frame as cost-details
    exports: ``<out_dir>/cost-details-actual_<YYYY-MM>.csv`` and ``…-amortized_<YYYY-MM>.csv`` per
    billing month. Returns the paths written, sorted."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lf = focus_frame.lazy().filter(pl.col("ProviderName").is_in(spellings("azure")))
    months = lf.select(pl.col("BillingPeriodStart").unique()).collect().to_series().sort().to_list()
    paths: list[Path] = []
    for start in months:
        month = lf.filter(pl.col("BillingPeriodStart") == start).sort("ChargePeriodStart", maintain_order=True)
        for kind in ("actual", "amortized"):
            path = out / f"cost-details-{kind}_{start:%Y-%m}.csv"
            frame = _native(month, kind).collect()
            with open(path, "wb") as f:
                f.write("\ufeff".encode())  # Cost Management writes a UTF-8 BOM
                frame.write_csv(f, null_value="")
            paths.append(path)
    return sorted(paths)
