"""AWS Cost and Usage Reports mapped to FOCUS 1.2: legacy CUR and CUR 2.0 (Data Exports).

Three spellings of the same columns exist and all are read:

- legacy CUR CSV: ``lineItem/UnblendedCost``, ``bill/PayerAccountId``, ``resourceTags/user:team`` …
- legacy CUR Parquet (the Athena integration): ``line_item_unblended_cost``, ``resource_tags_user_team`` …
- CUR 2.0: the same snake_case names, ``reservation_reservation_a_r_n``, and maps
  ``resource_tags`` / ``product`` (Parquet map columns, or JSON text in CSV).

:func:`canonical` turns every header into the snake_case spelling; :func:`inputs` reads the columns
used, typed once; :func:`mapping` then says, for each FOCUS column, which polars expression makes it —
the table to review. Line item types decide the charge:

==========================  ==============  =========  ==================================================
lineItem/LineItemType       ChargeCategory  Frequency  EffectiveCost
==========================  ==============  =========  ==================================================
Usage                       Usage           Usage-Based  unblended cost
DiscountedUsage             Usage           Usage-Based  reservation/EffectiveCost (RI-covered)
SavingsPlanCoveredUsage     Usage           Usage-Based  savingsPlan/SavingsPlanEffectiveCost
SavingsPlanNegation         Usage           Usage-Based  0 (the offset is in the covered row's cost)
RIFee                       Purchase        Recurring    0 (+ a row for the unused part, below)
SavingsPlanRecurringFee     Purchase        Recurring    0 (+ a row for the unused part, below)
SavingsPlanUpfrontFee       Purchase        One-Time     0 (amortised into covered usage)
Fee                         Purchase        One-Time     0 with a reservation (RI upfront), else unblended
Tax                         Tax             One-Time     unblended cost
Credit, *Discount           Credit          One-Time     unblended cost
Refund                      Adjustment      One-Time     unblended cost
anything else               Adjustment      One-Time     unblended cost
==========================  ==============  =========  ==================================================

BilledCost is always ``lineItem/UnblendedCost``, so the FOCUS total equals the CUR's total to the
cent. Commitments follow FOCUS: a purchase's EffectiveCost is 0 and the commitment's cost reaches
EffectiveCost through the usage it covers; the part not used in the period (RIFee:
``reservation/UnusedAmortizedUpfrontFeeForBillingPeriod + reservation/UnusedRecurringFee``;
SavingsPlanRecurringFee: ``savingsPlan/TotalCommitmentToDate - savingsPlan/UsedCommitment``) becomes an
extra Usage row with CommitmentDiscountStatus ``Unused``, BilledCost 0 and that EffectiveCost — so
the EffectiveCost total equals the CUR's amortised cost (AWS's own amortised-cost formula).

Tags: user tags lose their ``user:`` (``user_``) prefix (``resourceTags/user:team`` → ``team``), AWS
tags keep theirs (``aws:createdBy``), as FOCUS asks for provider tags. InvoiceIssuerName is ``AWS``
(the legal entity that invoices goes to ``x_InvoicingEntity``: a different issuer would read as a
marketplace charge to FOCUS validators).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import polars as pl

from collectors.aws import services
from collectors.files import IngestError
from collectors.formats import NativeFormat
from finops import focus
from finops.exprs import recode

PROVIDER = "AWS"


class CurError(IngestError):
    """A CUR file that cannot be mapped: names the file and the columns."""


# -- column names ----------------------------------------------------------------------------------
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Legacy categories whose fields are single names (a "/" inside one means a broken header).
PLAIN_CATEGORIES = ("identity", "bill", "lineItem", "product", "pricing", "reservation", "savingsPlan",
                    "discount", "splitLineItem")


def _snake(s: str) -> str:
    return _CAMEL.sub("_", s).lower()


def canonical(name: str) -> str:
    """The CUR 2.0 (snake_case) spelling of a column of any CUR generation.

    Legacy tag and cost-category columns keep their key as written: ``resource_tags/user:team``.
    """
    if "/" in name:
        cat, field = name.split("/", 1)
        if cat == "resourceTags":
            return f"resource_tags/{field}"
        if cat == "costCategory":
            return f"cost_category/{field}"
        return f"{_snake(cat)}_{_snake(field)}"
    return name.lower().replace("_a_r_n", "_arn")


REQUIRED: tuple[str, ...] = (
    "bill_payer_account_id", "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_line_item_type", "line_item_usage_start_date", "line_item_usage_end_date",
    "line_item_unblended_cost", "line_item_currency_code", "line_item_usage_account_id",
    "line_item_product_code",
)
"""What a CUR must have (CUR 2.0 spelling); everything else is optional."""

DECIMALS: frozenset[str] = frozenset({
    "line_item_unblended_cost", "line_item_unblended_rate", "line_item_net_unblended_cost",
    "line_item_net_unblended_rate", "line_item_usage_amount", "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate", "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost", "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment", "savings_plan_savings_plan_rate",
})

UNITS: dict[str, str] = {
    "Hrs": "Hours", "Hour": "Hours", "hours": "Hours", "GB-Mo": "GB-Months", "GB-Month": "GB-Months",
    "GB-month": "GB-Months", "Request": "Requests", "API Request": "Requests", "API Requests": "Requests",
    "Count": "Count", "Keys": "Keys", "Secrets": "Secrets", "Dashboards": "Dashboards",
    "Events": "Events", "Operations": "Operations", "Lambda-GB-Second": "GB-Seconds",
    "Lambda-GB-Seconds": "GB-Seconds", "vCPU-Hours": "vCPU-Hours", "GiB-Hours": "GiB-Hours",
    "DPU-Hour": "DPU-Hours", "Instance-hrs": "Instance-Hours",
}
"""CUR pricing units in FOCUS unit format (plural, ``-``-joined); others pass through as written."""


def unit_expr(e: pl.Expr) -> pl.Expr:
    """A CUR unit in FOCUS unit format: known spellings from :data:`UNITS`, then ``-Mo``/``-Hrs``/``-Second``
    suffixes as plural time units, then a hyphen inside the counted unit as a space
    (``Lambda-GB-Second`` → ``Lambda GB-Seconds``)."""
    e = recode(e, UNITS, default=e)
    e = e.str.replace(r"-(?:Mo|Month|month|months|Mos)$", "-Months")
    e = e.str.replace(r"-(?:Hrs|Hr|hrs|hr|Hour|hour|hours)$", "-Hours")
    e = e.str.replace(r"-(?:Second|second|seconds|Secs|secs|Sec)$", "-Seconds")
    return e.str.replace(r"^([^-]+)-([^-]+)-(Months|Hours|Seconds|Days)$", "$1 $2-$3")


class Cols:
    """Column access by canonical name over one raw frame: typed decimals, text, or typed nulls."""

    def __init__(self, schema: Mapping[str, pl.DataType]) -> None:
        self.schema = dict(schema)
        self.names: dict[str, str] = {}
        for n in schema:
            self.names.setdefault(canonical(n), n)

    def has(self, key: str) -> bool:
        return key in self.names

    def raw(self, key: str) -> pl.Expr:
        return pl.col(self.names[key]) if key in self.names else pl.lit(None, dtype=pl.String)

    def text(self, key: str) -> pl.Expr:
        """Text, with the empty string as null (CURs write both for "none")."""
        if key not in self.names:
            return pl.lit(None, dtype=pl.String)
        e = pl.col(self.names[key])
        if self.schema[self.names[key]] != pl.String:
            e = e.cast(pl.String)
        return pl.when(e.str.len_bytes() > 0).then(e)

    def dec(self, key: str) -> pl.Expr:
        """A cost/quantity column as Decimal(38,15). Text is parsed exactly (exponents too); a double
        (CUR 2.0 Parquet) goes through its shortest text, so it is read as the decimal AWS wrote
        (``0.1``, not ``0.1000000000000000055``). A direct cast is 6× faster but keeps the binary error
        (1e-12 on a value of 10 000), which breaks exact totals."""
        if key not in self.names:
            return pl.lit(None, dtype=focus.DECIMAL)
        if isinstance(self.schema[self.names[key]], pl.Decimal):
            return pl.col(self.names[key]).cast(focus.DECIMAL)
        return self.text(key).cast(focus.DECIMAL)

    def zero(self, key: str) -> pl.Expr:
        return self.dec(key).fill_null(pl.lit(0, dtype=focus.DECIMAL))


# -- checks ---------------------------------------------------------------------------------------
def check_columns(columns: Sequence[str], name: str) -> None:
    """Raise :class:`CurError` naming the file and columns when the header is broken or incomplete."""
    fused = [c for c in columns if "/" in c and c.split("/", 1)[0] in PLAIN_CATEGORIES
             and "/" in c.split("/", 1)[1]]
    if fused:
        raise CurError(f"{name}: malformed CUR header: column(s) {', '.join(map(repr, fused))} are two names "
                       "run together, so the header does not line up with the rows")
    have = {canonical(c) for c in columns}
    missing = [k for k in REQUIRED if k not in have]
    if missing:
        legacy = any("/" in c for c in columns)
        shown = [_legacy_name(k) if legacy else k for k in missing]
        raise CurError(f"{name}: not a complete AWS CUR: missing column(s) {', '.join(shown)}")


def _legacy_name(key: str) -> str:
    for cat in PLAIN_CATEGORIES:
        snake = _snake(cat)
        if key.startswith(snake + "_"):
            field = key[len(snake) + 1:]
            return f"{cat}/" + "".join(w.capitalize() for w in field.split("_"))
    return key


# -- the mapping ----------------------------------------------------------------------------------
COMMIT_USAGE = ("DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation")
FEES = ("RIFee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "Fee")
CREDITS = ("Credit", "BundledDiscount", "EdpDiscount", "PrivateRateDiscount", "DistributorDiscount", "Discount",
           "SppDiscount")


def _charge_category(t: pl.Expr) -> pl.Expr:
    return (pl.when(t.is_in(("Usage", *COMMIT_USAGE))).then(pl.lit("Usage"))
            .when(t.is_in(FEES)).then(pl.lit("Purchase"))
            .when(t == "Tax").then(pl.lit("Tax"))
            .when(t.is_in(CREDITS)).then(pl.lit("Credit"))
            .otherwise(pl.lit("Adjustment")))


def _frequency(t: pl.Expr) -> pl.Expr:
    return (pl.when(t.is_in(("Usage", *COMMIT_USAGE))).then(pl.lit("Usage-Based"))
            .when(t.is_in(("RIFee", "SavingsPlanRecurringFee"))).then(pl.lit("Recurring"))
            .otherwise(pl.lit("One-Time")))


def _tag_columns(c: Cols) -> list[str]:
    """The raw columns the tags come from."""
    legacy = [c.names[k] for k in c.names if k.startswith("resource_tags/")
              or (k.startswith("resource_tags_") and k != "resource_tags")]
    return legacy or ([c.names["resource_tags"]] if c.has("resource_tags") else [])


def _tags(c: Cols) -> pl.Expr:
    """FOCUS Tags JSON from legacy tag columns or the CUR 2.0 ``resource_tags`` map."""
    legacy = sorted((k.split("/", 1)[1], c.names[k]) for k in c.names if k.startswith("resource_tags/"))
    legacy += sorted((k[len("resource_tags_"):], c.names[k]) for k in c.names
                     if k.startswith("resource_tags_") and k != "resource_tags")
    if legacy:
        parts = []
        for key, col in legacy:
            v = pl.col(col).cast(pl.String).str.strip_chars()
            parts.append(pl.when(v.is_not_null() & (v != ""))
                         .then(pl.lit(json.dumps(tag_key(key)) + ':"') + _escape(v) + pl.lit('"')))
        body = pl.concat_str(parts, separator=",", ignore_nulls=True)
        return pl.when(body != "").then(pl.lit("{") + body + pl.lit("}"))
    if c.has("resource_tags"):
        col = c.names["resource_tags"]
        dtype = c.schema[col]
        if isinstance(dtype, (pl.Map, pl.List)):  # a Parquet map (or its list-of-{key, value} reading)
            entries = pl.col(col).map.entries() if isinstance(dtype, pl.Map) else pl.col(col)
            k, v = pl.element().struct.field("key"), pl.element().struct.field("value").cast(pl.String)
            focus_key = (pl.when(k.str.starts_with("user_") | k.str.starts_with("user:")).then(k.str.slice(5))
                         .when(k.str.starts_with("aws_")).then(pl.lit("aws:") + k.str.slice(4)).otherwise(k))
            item = pl.when(v.is_not_null() & (v != "")).then(pl.lit('"') + _escape(focus_key) + pl.lit('":"')
                                                             + _escape(v) + pl.lit('"'))
            body = entries.list.eval(item.drop_nulls().sort()).list.join(",")
            return pl.when(body.str.len_bytes() > 0).then(pl.lit("{") + body + pl.lit("}"))
        return pl.col(col).cast(pl.String).map_elements(_fold_json, return_dtype=pl.String, skip_nulls=True)
    return pl.lit(None, dtype=pl.String)


def _tags_key(c: Cols) -> pl.Expr:
    cols = _tag_columns(c)
    if not cols:
        return pl.lit(0, dtype=pl.UInt64)
    return pl.struct(cols).hash() if len(cols) > 1 else pl.col(cols[0]).hash()


def _select_with_tags(c: Cols, raw: pl.LazyFrame, exprs: dict[str, pl.Expr]) -> pl.LazyFrame:
    """``raw.select(exprs)`` plus ``_tags``. From the ``resource_tags`` map (CUR 2.0) the JSON is built
    once per distinct tag set (a few hundred in a file of millions of rows) and joined back on the tag
    set's hash: 3× faster than per row. Legacy tag columns are plain text, cheap per row (and a CSV read
    twice would cost more than that)."""
    if not c.has("resource_tags") or _tag_columns(c) != [c.names["resource_tags"]]:
        return raw.select([e.alias(k) for k, e in exprs.items()] + [_tags(c).alias("_tags")])
    staged = raw.select([e.alias(k) for k, e in exprs.items()] + [_tags_key(c).alias("_tags_key")])
    distinct = (raw.select(_tags_key(c).alias("_tags_key"), c.raw("resource_tags")).unique("_tags_key")
                .select("_tags_key", _tags(c).alias("_tags")))
    return staged.join(distinct, on="_tags_key", how="left", maintain_order="left").drop("_tags_key")


def _escape(e: pl.Expr) -> pl.Expr:
    """Text as the inside of a JSON string (tag values are plain text; control characters are not
    allowed in AWS tags)."""
    return e.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)


def tag_key(key: str) -> str:
    """A CUR tag key as FOCUS Tags key: user tags lose their prefix, provider tags keep it."""
    for p in ("user:", "user_"):
        if key.startswith(p):
            return key[len(p):]
    if key.startswith("aws_"):
        return "aws:" + key[4:]
    return key


def _fold(items: Sequence[tuple[str, object]]) -> str | None:
    out = {tag_key(str(k)): v for k, v in items if v not in (None, "")}
    return json.dumps(dict(sorted(out.items())), separators=(",", ":")) if out else None


def _fold_json(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    return _fold(list(json.loads(text).items()))


def _product_attr(c: Cols, key: str) -> pl.Expr:
    """``product_<key>``, else the CUR 2.0 ``product`` map's ``<key>`` (Parquet map or JSON text)."""
    if c.has(f"product_{key}"):
        return c.text(f"product_{key}")
    if c.has("product"):
        col = c.names["product"]
        if isinstance(c.schema[col], pl.Map):
            return pl.col(col).map.get(key)
        if isinstance(c.schema[col], pl.List):
            return (pl.col(col).list.eval(pl.element().filter(pl.element().struct.field("key") == key)
                                          .struct.field("value")).list.first())
        return pl.col(col).cast(pl.String).str.json_path_match(f"$.{key}")
    return pl.lit(None, dtype=pl.String)


def inputs(c: Cols) -> dict[str, pl.Expr]:
    """Stage 1: the CUR columns the mapping reads, typed and cleaned once (``_``-prefixed)."""
    return {
        "_t": c.text("line_item_line_item_type"),
        "_billed": c.zero("line_item_unblended_cost"),
        "_ri_arn": c.text("reservation_reservation_arn"),
        "_sp_arn": c.text("savings_plan_savings_plan_arn"),
        "_usage_type": c.text("line_item_usage_type"),
        "_term": c.text("pricing_term"),
        "_ri_effective": c.zero("reservation_effective_cost"),
        "_sp_effective": c.zero("savings_plan_savings_plan_effective_cost"),
        "_usage": c.dec("line_item_usage_amount"),
        "_unit": unit_expr(c.text("pricing_unit")),
        "_unblended_rate": c.dec("line_item_unblended_rate"),
        "_net_rate": c.dec("line_item_net_unblended_rate"),
        "_net_cost": c.dec("line_item_net_unblended_cost"),
        "_list_rate": c.dec("pricing_public_on_demand_rate"),
        "_list_cost": c.dec("pricing_public_on_demand_cost"),
        "_code": c.text("line_item_product_code"),
        "_service": pl.coalesce(_product_attr(c, "product_name"), c.text("product_servicename"),
                                c.text("line_item_product_code")),
        "_family": c.text("product_product_family"),
        "_region": pl.coalesce(c.text("product_region_code"), c.text("product_region")),
        "_location": c.text("product_location"),
        "_resource": c.text("line_item_resource_id"),
        "_payer": c.text("bill_payer_account_id"),
        "_payer_name": c.text("bill_payer_account_name"),
        "_account": c.text("line_item_usage_account_id"),
        "_account_name": c.text("line_item_usage_account_name"),
        "_currency": c.text("line_item_currency_code"),
        "_sku": c.text("product_sku"),
        "_rate_code": c.text("pricing_rate_code"),
        "_period_start": c.raw("bill_billing_period_start_date"),
        "_period_end": c.raw("bill_billing_period_end_date"),
        "_usage_start": c.raw("line_item_usage_start_date"),
        "_usage_end": c.raw("line_item_usage_end_date"),
        "_zone": c.text("line_item_availability_zone"),
        "_invoice": c.text("bill_invoice_id"),
        "_description": c.text("line_item_line_item_description"),
        "_billing_entity": c.text("bill_billing_entity"),
        "_invoicing_entity": c.text("bill_invoicing_entity"),
        "_operation": c.text("line_item_operation"),
        # For the unused-commitment rows (see _unused_rows).
        "_ri_unused": c.zero("reservation_unused_amortized_upfront_fee_for_billing_period")
        + c.zero("reservation_unused_recurring_fee"),
        "_sp_unused": c.zero("savings_plan_total_commitment_to_date") - c.zero("savings_plan_used_commitment"),
    }


def derived() -> dict[str, pl.Expr]:
    """Stage 2: what several FOCUS columns share, computed once from :func:`inputs`."""
    t, col = pl.col("_t"), pl.col
    zero = pl.lit(0, dtype=focus.DECIMAL)
    category = _charge_category(t)
    commit_id = pl.when(t.is_in(COMMIT_USAGE + FEES)).then(pl.coalesce(col("_ri_arn"), col("_sp_arn")))
    svc_cat, svc_sub = services.category_exprs(col("_code"), col("_service"))
    return {
        "_category": category,
        "_commit_id": commit_id,
        "_is_ri": commit_id.is_not_null() & col("_ri_arn").is_not_null(),
        "_spot": col("_usage_type").str.contains("SpotUsage", literal=True).fill_null(False) | (col("_term") == "Spot"),
        "_effective": (pl.when(t == "DiscountedUsage").then(col("_ri_effective"))
                       .when(t == "SavingsPlanCoveredUsage").then(col("_sp_effective"))
                       .when(t.is_in(("SavingsPlanNegation", "RIFee", "SavingsPlanRecurringFee",
                                      "SavingsPlanUpfrontFee"))).then(zero)
                       .when((t == "Fee") & col("_ri_arn").is_not_null()).then(zero)
                       .otherwise(col("_billed"))),
        "_contracted_rate": pl.coalesce(col("_net_rate"), col("_unblended_rate")),
        "_svc_category": svc_cat,
        "_svc_subcategory": svc_sub,
    }


def mapping() -> dict[str, pl.Expr]:
    """FOCUS column → polars expression over :func:`inputs` and :func:`derived`: the reviewable mapping."""
    col, t = pl.col, pl.col("_t")
    category = col("_category")
    is_tax = t == "Tax"
    usage = category == "Usage"
    priced = category.is_in(("Usage", "Purchase"))
    zero = pl.lit(0, dtype=focus.DECIMAL)
    has_commit, is_ri = col("_commit_id").is_not_null(), col("_is_ri")
    quantity = pl.when(priced).then(col("_usage").fill_null(zero))
    contracted_rate = (pl.when(priced & (col("_contracted_rate") >= 0)).then(col("_contracted_rate"))
                       .when(priced).then(zero))
    list_rate = pl.when(~is_tax & (col("_list_rate") >= 0)).then(col("_list_rate"))
    has_sku = ~is_tax & col("_sku").is_not_null()
    sp_quantity = (pl.when(t == "SavingsPlanCoveredUsage").then(col("_sp_effective"))
                   .when(t == "SavingsPlanNegation").then(zero).otherwise(col("_billed").abs()))
    return {
        "AvailabilityZone": col("_zone"),
        "BilledCost": col("_billed"),
        "BillingAccountId": col("_payer"),
        "BillingAccountName": pl.coalesce(col("_payer_name"), col("_payer")),
        "BillingAccountType": pl.lit("Payer Account"),
        "BillingCurrency": col("_currency"),
        "BillingPeriodEnd": col("_period_end"),
        "BillingPeriodStart": col("_period_start"),
        "ChargeCategory": category,
        "ChargeClass": pl.lit(None, dtype=pl.String),
        "ChargeDescription": col("_description"),
        "ChargeFrequency": _frequency(t),
        "ChargePeriodEnd": col("_usage_end"),
        "ChargePeriodStart": col("_usage_start"),
        "CommitmentDiscountCategory": pl.when(has_commit).then(pl.when(is_ri).then(pl.lit("Usage"))
                                                               .otherwise(pl.lit("Spend"))),
        "CommitmentDiscountId": col("_commit_id"),
        "CommitmentDiscountName": pl.lit(None, dtype=pl.String),
        "CommitmentDiscountQuantity": pl.when(has_commit).then(pl.when(is_ri).then(col("_usage").fill_null(zero))
                                                               .otherwise(sp_quantity)),
        "CommitmentDiscountStatus": pl.when(has_commit & usage).then(pl.lit("Used")),
        "CommitmentDiscountType": pl.when(has_commit).then(pl.when(is_ri).then(pl.lit("Reserved Instance"))
                                                           .otherwise(pl.lit("Savings Plan"))),
        "CommitmentDiscountUnit": pl.when(has_commit).then(pl.when(is_ri).then(col("_unit").fill_null(pl.lit("Hours")))
                                                           .otherwise(col("_currency"))),
        "ConsumedQuantity": pl.when(usage).then(pl.when(t == "SavingsPlanNegation").then(zero)
                                                .otherwise(col("_usage").fill_null(zero))),
        "ConsumedUnit": pl.when(usage).then(col("_unit").fill_null(pl.lit("Units"))),
        "ContractedCost": pl.coalesce(col("_net_cost"), col("_billed")),
        "ContractedUnitPrice": contracted_rate,
        "EffectiveCost": col("_effective"),
        "InvoiceId": col("_invoice"),
        "InvoiceIssuerName": pl.lit(PROVIDER),
        "ListCost": pl.coalesce(col("_list_cost"), col("_billed")),
        "ListUnitPrice": list_rate,
        "PricingCategory": (pl.when(~priced).then(None)
                            .when(category == "Purchase").then(pl.lit("Standard"))
                            .when(t.is_in(COMMIT_USAGE)).then(pl.lit("Committed"))
                            .when(col("_spot")).then(pl.lit("Dynamic"))
                            .otherwise(pl.lit("Standard"))),
        "PricingCurrency": col("_currency"),
        "PricingCurrencyContractedUnitPrice": contracted_rate,
        "PricingCurrencyEffectiveCost": col("_effective"),
        "PricingCurrencyListUnitPrice": list_rate,
        "PricingQuantity": quantity,
        "PricingUnit": pl.when(priced).then(col("_unit").fill_null(pl.lit("Units"))),
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": pl.coalesce(col("_billing_entity"), pl.lit(PROVIDER)),
        "RegionId": col("_region"),
        "RegionName": pl.when(col("_region").is_not_null()).then(pl.coalesce(col("_location"), col("_region"))),
        "ResourceId": col("_resource"),
        "ResourceName": col("_resource"),
        "ResourceType": pl.when(col("_resource").is_not_null()).then(pl.coalesce(col("_family"), col("_service"))),
        "ServiceCategory": col("_svc_category"),
        "ServiceName": col("_service"),
        "ServiceSubcategory": col("_svc_subcategory"),
        "SkuId": pl.when(~is_tax).then(col("_sku")),
        "SkuMeter": pl.when(has_sku).then(pl.coalesce(col("_usage_type"), col("_service"))),
        "SkuPriceDetails": pl.lit(None, dtype=pl.String),
        "SkuPriceId": pl.when(has_sku).then(col("_rate_code")),
        "SubAccountId": col("_account"),
        "SubAccountName": pl.coalesce(col("_account_name"), col("_account")),
        "SubAccountType": pl.when(col("_account").is_not_null()).then(pl.lit("Linked Account")),
        "Tags": col("_tags"),
        # Extensions kept for allocation and audit (FOCUS's x_ convention).
        "x_LineItemType": t,
        "x_UsageType": col("_usage_type"),
        "x_Operation": col("_operation"),
        "x_InvoicingEntity": col("_invoicing_entity"),
    }


def _unused_overrides() -> list[pl.Expr]:
    """How the second copy of a commitment fee row (``_variant`` 1) becomes the Usage row of the part of
    the commitment left unused in the period (FOCUS's CommitmentDiscountStatus ``Unused``): BilledCost 0,
    EffectiveCost the unused amortised cost."""
    unused_row = pl.col("_variant") == 1
    zero = pl.lit(0, dtype=focus.DECIMAL)
    values: dict[str, pl.Expr] = {
        "ChargeCategory": pl.lit("Usage"), "ChargeFrequency": pl.lit("Usage-Based"),
        "CommitmentDiscountStatus": pl.lit("Unused"), "PricingCategory": pl.lit("Committed"),
        "BilledCost": zero, "ListCost": zero, "ContractedCost": zero,
        "EffectiveCost": pl.col("_unused"), "PricingCurrencyEffectiveCost": pl.col("_unused"),
        "ConsumedQuantity": pl.lit(None, dtype=focus.DECIMAL), "ConsumedUnit": pl.lit(None, dtype=pl.String),
        "ChargeDescription": pl.lit("Unused commitment: ") + pl.col("ChargeDescription").fill_null(""),
        "x_LineItemType": pl.col("x_LineItemType") + pl.lit(":Unused"),
    }
    return [pl.when(unused_row).then(e).otherwise(pl.col(k)).alias(k) for k, e in values.items()]


def to_focus(raw: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """A CUR (any generation, CSV as text or Parquet) as a frame of FOCUS-named columns, ready for
    :func:`finops.focus.conform`. Raises :class:`CurError` naming ``name`` and the columns when the
    header is malformed or a required column is missing."""
    schema = raw.collect_schema()
    check_columns(schema.names(), name)
    c = Cols(schema)
    staged = _select_with_tags(c, raw, inputs(c))
    # A fee row with an unused part is doubled (explode of [0, 1]) and its copy becomes the unused row:
    # one pass, where a concat of a filtered second branch read and mapped the input twice.
    t = pl.col("_t")
    unused = (pl.when(t == "RIFee").then(pl.col("_ri_unused")).when(t == "SavingsPlanRecurringFee")
              .then(pl.col("_sp_unused")).otherwise(pl.lit(0, dtype=focus.DECIMAL)))
    has_commit = pl.coalesce(pl.col("_ri_arn"), pl.col("_sp_arn")).is_not_null()
    staged = (staged.with_columns(unused.alias("_unused"))
              .with_columns(pl.when(has_commit & (pl.col("_unused") != 0)).then(pl.lit([0, 1], dtype=pl.List(pl.Int8)))
                            .otherwise(pl.lit([0], dtype=pl.List(pl.Int8))).alias("_variant"))
              .explode("_variant"))
    staged = staged.with_columns([e.alias(k) for k, e in derived().items()])
    mapped = staged.select([e.alias(k) for k, e in mapping().items()] + [pl.col("_variant"), pl.col("_unused")])
    return mapped.with_columns(_unused_overrides()).drop("_variant", "_unused")


def normalise(raw: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """:func:`to_focus`, conformed to FOCUS 1.2 and filled where FOCUS derives a column (lazy)."""
    return focus.conform(to_focus(raw, name), repair=False)


def raw_total(raw: pl.LazyFrame, column: str = "line_item_unblended_cost") -> pl.Expr:
    """The expression summing a CUR cost column as the CUR itself states it (for source totals)."""
    c = Cols(raw.collect_schema())
    return c.zero(column).sum()


def bad_values(raw: pl.LazyFrame, limit: int = 5) -> list[tuple[str, int, str]]:
    """(column, 0-based row, text) of cost/quantity values that do not parse as numbers."""
    c = Cols(raw.collect_schema())
    out: list[tuple[str, int, str]] = []
    for key in sorted(DECIMALS & set(c.names)):
        if isinstance(c.schema[c.names[key]], (pl.Decimal, pl.Float64, pl.Float32)):
            continue
        txt = c.text(key)
        rows = (raw.select(txt.alias("v"), txt.cast(focus.DECIMAL, strict=False).alias("d")).with_row_index("row")
                .filter(pl.col("v").is_not_null() & pl.col("d").is_null()).limit(limit).collect())
        out.extend((c.names[key], int(r), str(v)) for r, v, _ in rows.iter_rows())
    return sorted(out, key=lambda b: b[1])[:limit]


# -- recognition ----------------------------------------------------------------------------------
def _matches_legacy(columns: Sequence[str]) -> bool:
    cols = set(columns)
    return "lineItem/UnblendedCost" in cols and "lineItem/LineItemType" in cols


def _matches_snake(columns: Sequence[str]) -> bool:
    cols = set(columns)
    return "line_item_unblended_cost" in cols and "line_item_line_item_type" in cols


FORMATS: list[NativeFormat] = [
    NativeFormat("aws-cur", "aws", _matches_legacy, to_focus, bad_values=bad_values),
    NativeFormat("aws-cur2", "aws", _matches_snake, to_focus, bad_values=bad_values),
]
"""Legacy CUR (``lineItem/…`` headers) and snake_case CURs (CUR 2.0 Data Exports, legacy Parquet)."""

