"""Generated FOCUS rows written back as a native AWS CUR 2.0 (Data Exports) delivery, for the demo.

:func:`write_cur2` lays files out as AWS delivers them to S3::

    <out>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-00001.snappy.parquet
    <out>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json

so the folder can be uploaded to a bucket as is (the manifest's ``dataFiles`` name
``s3://<bucket>/<export>/data/…``) or its Parquet files ingested directly.

The reverse of ``collectors.aws.cur``'s mapping, chosen so that reading the export back gives the same
BilledCost and EffectiveCost per account and period: covered usage becomes ``DiscountedUsage`` /
``SavingsPlanCoveredUsage`` with the effective cost in the reservation / savings-plan column; the
unused part of a commitment (a FOCUS Usage row with status ``Unused``) becomes a zero-cost
``RIFee`` / ``SavingsPlanRecurringFee`` carrying it as unused fee; purchases become fees; spot usage
gets a ``SpotUsage`` usage type. Tags go into the ``resource_tags`` map as ``user_<key>``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from finops import focus

DEFAULT_EXPORT = "finops-demo-cur2"
DEFAULT_BUCKET = "finops-demo-billing"


def _line_item_type() -> pl.Expr:
    cat, cdi, typ = pl.col("ChargeCategory"), pl.col("CommitmentDiscountId"), pl.col("CommitmentDiscountType")
    ri = cdi.is_not_null() & (typ != "Savings Plan")
    sp = cdi.is_not_null() & (typ == "Savings Plan")
    status, freq = pl.col("CommitmentDiscountStatus"), pl.col("ChargeFrequency")
    return (pl.when((cat == "Usage") & ri & (status == "Unused")).then(pl.lit("RIFee"))
            .when((cat == "Usage") & sp & (status == "Unused")).then(pl.lit("SavingsPlanRecurringFee"))
            .when((cat == "Usage") & ri).then(pl.lit("DiscountedUsage"))
            .when((cat == "Usage") & sp).then(pl.lit("SavingsPlanCoveredUsage"))
            .when(cat == "Usage").then(pl.lit("Usage"))
            .when((cat == "Purchase") & ri & (freq == "Recurring")).then(pl.lit("RIFee"))
            .when((cat == "Purchase") & sp & (freq == "Recurring")).then(pl.lit("SavingsPlanRecurringFee"))
            .when((cat == "Purchase") & sp).then(pl.lit("SavingsPlanUpfrontFee"))
            .when(cat == "Purchase").then(pl.lit("Fee"))
            .when(cat == "Tax").then(pl.lit("Tax"))
            .when(cat == "Credit").then(pl.lit("Credit"))
            .otherwise(pl.lit("Refund")))


def to_cur2(frame: pl.LazyFrame) -> pl.LazyFrame:
    """FOCUS rows (AWS) as CUR 2.0 columns; ``resource_tags``/``product`` still JSON text here."""
    c = pl.col
    t = c("__type")
    zero = pl.lit(0, dtype=focus.DECIMAL)
    unused = c("CommitmentDiscountStatus") == "Unused"
    is_ri = c("CommitmentDiscountId").is_not_null() & (c("CommitmentDiscountType") != "Savings Plan")
    is_sp = c("CommitmentDiscountId").is_not_null() & (c("CommitmentDiscountType") == "Savings Plan")
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    cost = lambda e: e.cast(pl.Float64)  # noqa: E731 - CUR 2.0 Parquet holds costs as doubles
    return frame.with_columns(_line_item_type().alias("__type")).select(
        pl.int_range(pl.len()).cast(pl.String).alias("identity_line_item_id"),
        pl.concat_str(c("ChargePeriodStart").dt.strftime(fmt), c("ChargePeriodEnd").dt.strftime(fmt),
                      separator="/").alias("identity_time_interval"),
        c("InvoiceId").alias("bill_invoice_id"),
        pl.lit("Amazon Web Services, Inc.").alias("bill_invoicing_entity"),
        pl.lit("AWS").alias("bill_billing_entity"),
        pl.lit("Anniversary").alias("bill_bill_type"),
        c("BillingAccountId").alias("bill_payer_account_id"),
        c("BillingAccountName").alias("bill_payer_account_name"),
        c("BillingPeriodStart").alias("bill_billing_period_start_date"),
        c("BillingPeriodEnd").alias("bill_billing_period_end_date"),
        c("SubAccountId").alias("line_item_usage_account_id"),
        c("SubAccountName").alias("line_item_usage_account_name"),
        t.alias("line_item_line_item_type"),
        c("ChargePeriodStart").alias("line_item_usage_start_date"),
        c("ChargePeriodEnd").alias("line_item_usage_end_date"),
        c("ServiceName").str.replace_all(r"[^A-Za-z0-9]", "").alias("line_item_product_code"),
        pl.when(c("PricingCategory") == "Dynamic").then(pl.lit("SpotUsage:") + c("SkuMeter").fill_null(""))
        .otherwise(c("SkuMeter")).alias("line_item_usage_type"),
        c("AvailabilityZone").alias("line_item_availability_zone"),
        c("ResourceId").alias("line_item_resource_id"),
        cost(c("PricingQuantity").fill_null(zero)).alias("line_item_usage_amount"),
        c("BillingCurrency").alias("line_item_currency_code"),
        cost(c("ContractedUnitPrice")).alias("line_item_unblended_rate"),
        cost(c("BilledCost")).alias("line_item_unblended_cost"),
        cost(c("BilledCost")).alias("line_item_blended_cost"),
        cost(c("ContractedUnitPrice")).alias("line_item_net_unblended_rate"),
        cost(c("ContractedCost")).alias("line_item_net_unblended_cost"),
        c("ChargeDescription").alias("line_item_line_item_description"),
        pl.when(t == "Tax").then(pl.lit("Sales Tax")).alias("line_item_tax_type"),
        c("SkuId").alias("product_sku"),
        c("ServiceName").str.replace_all(r"[^A-Za-z0-9]", "").alias("product_servicecode"),
        c("RegionId").alias("product_region_code"),
        c("RegionName").alias("product_location"),
        c("ResourceType").alias("product_product_family"),
        c("ServiceName").alias("__product_name"),
        cost(c("ListCost")).alias("pricing_public_on_demand_cost"),
        cost(c("ListUnitPrice")).alias("pricing_public_on_demand_rate"),
        c("PricingUnit").alias("pricing_unit"),
        c("SkuPriceId").alias("pricing_rate_code"),
        c("PricingCurrency").alias("pricing_currency"),
        pl.when(c("PricingCategory") == "Committed").then(pl.lit("Reserved"))
        .when(c("PricingCategory") == "Standard").then(pl.lit("OnDemand")).alias("pricing_term"),
        pl.when(is_ri).then(c("CommitmentDiscountId")).alias("reservation_reservation_a_r_n"),
        cost(pl.when(is_ri & (t == "DiscountedUsage")).then(c("EffectiveCost")).otherwise(zero))
        .alias("reservation_effective_cost"),
        cost(pl.when(is_ri & unused).then(c("EffectiveCost")).otherwise(zero))
        .alias("reservation_unused_recurring_fee"),
        cost(zero).alias("reservation_unused_amortized_upfront_fee_for_billing_period"),
        pl.when(is_sp).then(c("CommitmentDiscountId")).alias("savings_plan_savings_plan_a_r_n"),
        cost(pl.when(is_sp & (t == "SavingsPlanCoveredUsage")).then(c("EffectiveCost")).otherwise(zero))
        .alias("savings_plan_savings_plan_effective_cost"),
        cost(pl.when(is_sp & unused).then(c("EffectiveCost")).otherwise(zero))
        .alias("savings_plan_total_commitment_to_date"),
        cost(zero).alias("savings_plan_used_commitment"),
        c("Tags").alias("__tags"),
    )


def _map_column(values: list[dict[str, str] | None]) -> pa.Array:
    return pa.array([None if v is None else list(v.items()) for v in values], type=pa.map_(pa.string(), pa.string()))


def _arrow(df: pl.DataFrame) -> pa.Table:
    """The CUR 2.0 frame with ``resource_tags`` and ``product`` as real Parquet maps, as AWS writes them."""
    tags = [None if s is None else {f"user_{k}": str(v) for k, v in sorted(json.loads(s).items())}
            for s in df["__tags"].to_list()]
    product = [{"product_name": n} if n is not None else None for n in df["__product_name"].to_list()]
    table = df.drop("__tags", "__product_name").to_arrow()
    return table.append_column("resource_tags", _map_column(tags)).append_column("product", _map_column(product))


def write_cur2(frames: pl.DataFrame | pl.LazyFrame | Iterable[pl.DataFrame], out_dir: Path, *,
               export: str = DEFAULT_EXPORT, bucket: str = DEFAULT_BUCKET, prefix: str = "",
               provider: str = "AWS") -> list[Path]:
    """Write the ``provider`` rows of FOCUS frames as a CUR 2.0 Data Exports delivery under
    ``out_dir/<prefix>/<export>`` (laid out as in ``s3://<bucket>/<prefix>/<export>``); return the paths
    written (data files, then manifests), one data file and manifest per billing period."""
    if isinstance(frames, (pl.DataFrame, pl.LazyFrame)):
        frames = [frames.lazy().collect()]
    parts = [f.filter(pl.col("ProviderName") == provider) for f in frames]
    parts = [p for p in parts if p.height]
    out_dir = Path(out_dir)
    if not parts:
        return []
    base = f"{prefix.strip('/')}/{export}".lstrip("/")
    cur2 = to_cur2(pl.concat(parts, how="vertical_relaxed").lazy()).collect()
    period_of = cur2["bill_billing_period_start_date"].dt.strftime("%Y-%m")
    written: list[Path] = []
    manifests: list[Path] = []
    for period in sorted(period_of.unique().to_list()):
        part = cur2.filter(period_of == period)
        rel = f"{base}/data/BILLING_PERIOD={period}/{export}-00001.snappy.parquet"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        table = _arrow(part)
        pq.write_table(table, path, compression="snappy")
        written.append(path)
        manifests.append(_write_manifest(out_dir / base, export, bucket, period, rel, table.schema, part))
    return written + manifests


def _write_manifest(export_dir: Path, export: str, bucket: str, period: str, rel: str, schema: pa.Schema,
                    part: pl.DataFrame) -> Path:
    start = part["bill_billing_period_start_date"].min()
    end = part["bill_billing_period_end_date"].max()
    assert isinstance(start, dt.datetime) and isinstance(end, dt.datetime)
    payer = str(part["bill_payer_account_id"][0])
    manifest = {
        "version": "2", "executionId": f"{export}-{period}", "bucket": bucket,
        "exportName": export, "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{payer}:export/{export}",
        "billingPeriod": {"start": f"{start:%Y-%m-%dT%H:%M:%S.000Z}", "end": f"{end:%Y-%m-%dT%H:%M:%S.000Z}"},
        "dataFiles": [f"s3://{bucket}/{rel}"],
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
    }
    path = export_dir / "metadata" / f"BILLING_PERIOD={period}" / f"{export}-Manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1))
    return path
