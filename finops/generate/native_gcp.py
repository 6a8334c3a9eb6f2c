"""Generated FOCUS rows written back as the Cloud Billing BigQuery export, flattened to CSV.

The demo ingests GCP billing the way an organisation gets it: export rows (dotted column names as the
export's CSV flattening writes them; labels and credits as JSON lists), one file per invoice month.
Reading them back (``collectors.gcp.bigquery_export``) gives FOCUS rows with the same BilledCost,
ListCost and ContractedCost totals. How each FOCUS row becomes an export row:

* ``cost`` is the ContractedCost and ``cost_at_list`` the ListCost; where BilledCost differs from
  ContractedCost the difference is a credit on the row — ``COMMITTED_USAGE_DISCOUNT`` when a
  commitment applies, ``DISCOUNT`` otherwise — which the reader nets back into BilledCost;
* a FOCUS Credit row becomes an export row costing 0 with one ``PROMOTION`` credit (the reader makes
  it a zero Usage row plus its Credit row);
* Tax and Adjustment rows become ``cost_type`` ``tax`` and ``adjustment``; a Purchase is a regular row
  whose SKU is a "Commitment" (how Google bills commitment fees), which reads back as a recurring
  Usage row (see ``collectors.gcp.bigquery_export``);
* Tags become ``labels``; SubAccount is the project; the invoice month is the billing period's month.

EffectiveCost is not carried: the export has no amortisation, so read back it equals BilledCost.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from finops import providers

COLUMNS = (
    "billing_account_id", "service.id", "service.description", "sku.id", "sku.description", "usage_start_time",
    "usage_end_time", "project.id", "project.name", "project.labels", "project.ancestry_numbers", "labels",
    "system_labels", "location.location", "location.country", "location.region", "location.zone", "export_time",
    "cost", "currency", "currency_conversion_rate", "usage.amount", "usage.unit", "usage.amount_in_pricing_units",
    "usage.pricing_unit", "credits", "invoice.month", "cost_type", "resource.name", "resource.global_name",
    "cost_at_list", "subscription.instance_id",
)
"""The detailed export's columns as its CSV flattening names them (the real samples' order)."""

_TS = "%Y-%m-%d %H:%M:%S+00:00"


def _service_id(name: str | None) -> str | None:
    if name is None:
        return None
    h = hashlib.sha1(name.encode()).hexdigest().upper()
    return f"{h[0:4]}-{h[4:8]}-{h[8:12]}"


def _labels(tags: str | None) -> str:
    if not tags:
        return "[]"
    return json.dumps([{"key": k, "value": None if v is True else str(v)} for k, v in json.loads(tags).items()])


def _credits(amount: str | None, kind: str | None, ident: str | None) -> str:
    if amount is None:
        return "[]"
    # The amount is written as the exact decimal text (json.dumps would go through a float).
    return (f'[{{"name": {json.dumps(ident or kind)}, "amount": {amount}, "full_name": null, '
            f'"id": {json.dumps(ident)}, "type": {json.dumps(kind)}}}]')


def to_export_rows(focus_frame: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """The Google Cloud rows of a FOCUS frame as flattened BigQuery export rows (all text, as in a CSV)."""
    lf = focus_frame.lazy().filter(pl.col("ProviderName").is_in(providers.spellings("gcp")))
    c = pl.col
    cat = c("ChargeCategory")
    credit_row = cat == "Credit"
    diff = c("BilledCost") - c("ContractedCost")
    credit_amount = (pl.when(credit_row).then(c("BilledCost"))
                     .when(diff != 0).then(diff)).cast(pl.String)
    credit_type = (pl.when(credit_row).then(pl.lit("PROMOTION"))
                   .when(c("CommitmentDiscountId").is_not_null()).then(pl.lit("COMMITTED_USAGE_DISCOUNT"))
                   .otherwise(pl.lit("DISCOUNT")))
    credit_id = pl.when(credit_row).then(pl.lit("promotion")).otherwise(c("CommitmentDiscountId"))
    desc = pl.coalesce("ChargeDescription", "SkuMeter", "ServiceName")
    money = lambda e: e.cast(pl.String)  # noqa: E731 - Decimal(38,15) as plain text, exact
    rows = lf.select(
        c("BillingAccountId").alias("billing_account_id"),
        c("ServiceName").map_elements(_service_id, return_dtype=pl.String).alias("service.id"),
        c("ServiceName").alias("service.description"),
        c("SkuId").alias("sku.id"),
        pl.when((cat == "Purchase") & ~desc.str.starts_with("Commitment"))
        .then(pl.concat_str(pl.lit("Commitment: "), desc)).otherwise(desc).alias("sku.description"),
        c("ChargePeriodStart").dt.strftime(_TS).alias("usage_start_time"),
        c("ChargePeriodEnd").dt.strftime(_TS).alias("usage_end_time"),
        c("SubAccountId").alias("project.id"),
        c("SubAccountName").alias("project.name"),
        pl.lit("[]").alias("project.labels"),
        pl.lit(None, pl.String).alias("project.ancestry_numbers"),
        c("Tags").map_elements(_labels, return_dtype=pl.String, skip_nulls=False).alias("labels"),
        pl.lit("[]").alias("system_labels"),
        pl.coalesce("AvailabilityZone", "RegionId").alias("location.location"),
        pl.lit(None, pl.String).alias("location.country"),
        c("RegionId").alias("location.region"),
        c("AvailabilityZone").alias("location.zone"),
        c("ChargePeriodEnd").dt.strftime(_TS).alias("export_time"),
        pl.when(credit_row).then(pl.lit("0")).otherwise(money(c("ContractedCost"))).alias("cost"),
        c("BillingCurrency").alias("currency"),
        pl.lit("1.0").alias("currency_conversion_rate"),
        money(c("ConsumedQuantity")).alias("usage.amount"),
        c("ConsumedUnit").alias("usage.unit"),
        money(c("PricingQuantity")).alias("usage.amount_in_pricing_units"),
        c("PricingUnit").alias("usage.pricing_unit"),
        pl.struct(credit_amount.alias("a"), credit_type.alias("t"), credit_id.alias("i"))
        .map_elements(lambda s: _credits(s["a"], s["t"], s["i"]), return_dtype=pl.String).alias("credits"),
        c("BillingPeriodStart").dt.strftime("%Y%m").alias("invoice.month"),
        cat.replace_strict({"Tax": "tax", "Adjustment": "adjustment"}, default="regular").alias("cost_type"),
        c("ResourceName").alias("resource.name"),
        c("ResourceId").alias("resource.global_name"),
        pl.when(credit_row).then(pl.lit("0")).otherwise(money(c("ListCost"))).alias("cost_at_list"),
        pl.when(cat == "Purchase").then(c("CommitmentDiscountId")).alias("subscription.instance_id"),
    )
    return rows.select(COLUMNS).collect()


def write_bigquery_export(focus_frame: pl.LazyFrame | pl.DataFrame, out_dir: Path) -> list[Path]:
    """Write the Google Cloud rows of ``focus_frame`` as flattened BigQuery export CSVs, one per invoice
    month (``gcp-billing-export_<YYYYMM>.csv``); returns the files written (none without GCP rows)."""
    rows = to_export_rows(focus_frame)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (month,), part in sorted(rows.partition_by("invoice.month", as_dict=True).items()):
        path = out_dir / f"gcp-billing-export_{month}.csv"
        part.write_csv(path)
        paths.append(path)
    return paths
