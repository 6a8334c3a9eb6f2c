"""The Cloud Billing BigQuery export (standard and detailed/resource-level) mapped to FOCUS 1.2.

Two input forms reach :func:`to_focus_frame`:

* **nested**: rows as the BigQuery API returns them (``service``, ``project``, ``usage`` … as RECORDs;
  ``labels``, ``credits`` … as REPEATED RECORDs), e.g. from :mod:`collectors.gcp.bigquery` or JSON lines;
* **flattened**: the CSV form (dotted column names ``service.id``; ``labels``/``credits`` as JSON or as
  Python ``repr`` text, as tools that flatten the export write them), registered in :data:`FORMATS`.

Both are first brought to one canonical flat frame (:data:`RAW_COLUMNS`, dotted names, typed), then
:data:`MAPPING` — FOCUS column → polars expression, meant to be read and reviewed — makes the FOCUS
rows, which go through :func:`finops.focus.conform`.

**Credits.** The export nets nothing: each row has ``cost`` and a list of ``credits`` (negative).
Google's own FOCUS view adds every credit into BilledCost and EffectiveCost of the row. FOCUS 1.2
distinguishes two things (Discount Handling / Credit Handling attributes, ChargeCategory "Credit"):
a *discount* is a reduced price applied to the row it pertains to and must not be negated in a
separate row; a reduction awarded after the fact (promotions, free tier, a reduced rate after a usage
threshold) is a *credit*, preferably itemised as its own row with ChargeCategory "Credit". So:

* credit types in :data:`NETTED_CREDITS` (committed use discounts, negotiated/spend-based discounts,
  subscription benefits, fee offsets, reseller margin) are **netted** into the row's BilledCost and
  EffectiveCost (ContractedCost and ListCost stay the price before them); committed use discounts also
  fill the CommitmentDiscount* columns;
* every other credit (PROMOTION, FREE_TIER, SUSTAINED_USAGE_DISCOUNT, and types Google adds later)
  becomes **its own Credit row**, itemised: it keeps the charge's account, project, service, SKU,
  resource, region and tags, with BilledCost = EffectiveCost = ListCost = ContractedCost = the amount.

Either way the totals reconcile: ``sum(BilledCost) == sum(cost) + sum(credits.amount)``.

Other choices: BillingPeriodStart/End are the invoice month in Pacific time (Google's invoice months
are Pacific), written in UTC; EffectiveCost equals BilledCost (the export carries no amortisation of
commitment fees); commitment fee SKUs ("Commitment v1: …") stay ChargeCategory Usage with
ChargeFrequency Recurring, as in Google's view — GCP bills the fee for the period it covers, and a FOCUS
Purchase must have EffectiveCost 0, which without amortised usage rows would lose the fee; unit prices
are derived as cost / pricing quantity so that price × quantity = cost holds; prices are in USD
(Google's price list currency; ``currency_conversion_rate`` converts them into the billing currency).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import polars as pl
from polars.datatypes import DataTypeClass

from collectors.files import IngestError
from collectors.formats import NativeFormat
from finops import focus
from finops.exprs import recode

PROVIDER = "Google Cloud"
INVOICE_TZ = "America/Los_Angeles"
PRICE_CURRENCY = "USD"

S, DEC, TS = pl.String(), focus.DECIMAL, focus.DATETIME
LABELS = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
TAGS = pl.List(pl.Struct({"key": pl.String, "value": pl.String, "inherited": pl.Boolean, "namespace": pl.String}))
CREDITS = pl.List(pl.Struct({"name": pl.String, "amount": DEC, "full_name": pl.String, "id": pl.String,
                             "type": pl.String}))

RAW_COLUMNS: dict[str, pl.DataType] = {
    "billing_account_id": S, "service.id": S, "service.description": S, "sku.id": S, "sku.description": S,
    "usage_start_time": TS, "usage_end_time": TS,
    "project.id": S, "project.number": S, "project.name": S, "project.labels": LABELS,
    "project.ancestry_numbers": S, "labels": LABELS, "system_labels": LABELS, "tags": TAGS,
    "location.location": S, "location.country": S, "location.region": S, "location.zone": S,
    "resource.name": S, "resource.global_name": S, "export_time": TS,
    "cost": DEC, "currency": S, "currency_conversion_rate": DEC, "cost_at_list": DEC,
    "usage.amount": DEC, "usage.unit": S, "usage.amount_in_pricing_units": DEC, "usage.pricing_unit": S,
    "credits": CREDITS, "invoice.month": S, "cost_type": S,
    "price.effective_price": DEC, "price.tier_start_amount": DEC, "price.unit": S, "price.pricing_unit_quantity": DEC,
    "adjustment_info.id": S, "adjustment_info.description": S, "adjustment_info.mode": S, "adjustment_info.type": S,
    "transaction_type": S, "seller_name": S, "subscription.instance_id": S,
}
"""The canonical flat frame: every field of the export we read, flattened with dotted names."""

REQUIRED = ("billing_account_id", "service.description", "usage_start_time", "usage_end_time", "cost",
            "currency", "invoice.month")
"""Columns a file must have (and rows must fill) to be read as a BigQuery billing export."""
LIST_COLUMNS = ("project.labels", "labels", "system_labels", "tags", "credits")

NETTED_CREDITS = frozenset({
    "COMMITTED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE", "DISCOUNT", "SUBSCRIPTION_BENEFIT",
    "FEE_UTILIZATION_OFFSET", "RESELLER_MARGIN",
})
"""Credit types that are price reductions applied to the row itself (FOCUS discounts)."""
CUD_CATEGORY = {"COMMITTED_USAGE_DISCOUNT": "Usage", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Spend"}

COST_TYPES = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}

# ServiceName → (ServiceCategory, ServiceSubcategory); anything else is Other / Other (Other).
SERVICES: dict[str, tuple[str, str]] = {
    "Compute Engine": ("Compute", "Virtual Machines"),
    "Cloud TPU": ("Compute", "Virtual Machines"),
    "Kubernetes Engine": ("Compute", "Containers"),
    "Cloud Run": ("Compute", "Serverless Compute"),
    "Cloud Functions": ("Compute", "Serverless Compute"),
    "App Engine": ("Web", "Application Platforms"),
    "Vertex AI": ("AI and Machine Learning", "Machine Learning"),
    "Gemini API": ("AI and Machine Learning", "Generative AI"),
    "Cloud Storage": ("Storage", "Object Storage"),
    "Filestore": ("Storage", "File Storage"),
    "BigQuery": ("Databases", "Data Warehouses"),
    "BigQuery Storage API": ("Databases", "Data Warehouses"),
    "Cloud SQL": ("Databases", "Relational Databases"),
    "Cloud Spanner": ("Databases", "Relational Databases"),
    "Cloud Firestore": ("Databases", "NoSQL Databases"),
    "Cloud Bigtable": ("Databases", "NoSQL Databases"),
    "Cloud Memorystore for Redis": ("Databases", "Caching"),
    "Dataflow": ("Analytics", "Data Processing"),
    "Cloud Dataproc": ("Analytics", "Data Processing"),
    "Cloud Pub/Sub": ("Integration", "Messaging"),
    "Networking": ("Networking", "Network Connectivity"),
    "Cloud DNS": ("Networking", "Network Infrastructure"),
    "Cloud Logging": ("Management and Governance", "Observability"),
    "Stackdriver Logging": ("Management and Governance", "Observability"),
    "Cloud Monitoring": ("Management and Governance", "Observability"),
    "Stackdriver Monitoring": ("Management and Governance", "Observability"),
    "Support": ("Management and Governance", "Support"),
    "Security Command Center": ("Security", "Security Posture Management"),
    "Secret Manager": ("Security", "Secret Management"),
    "Cloud Key Management Service (KMS)": ("Security", "Secret Management"),
    "Cloud Build": ("Developer Tools", "Continuous Integration and Deployment"),
    "Artifact Registry": ("Developer Tools", "Other (Developer Tools)"),
    "Tax": ("Other", "Other (Other)"),
}

REGION_NAMES: dict[str, str] = {
    "us-central1": "Iowa", "us-east1": "South Carolina", "us-east4": "Northern Virginia", "us-east5": "Columbus",
    "us-south1": "Dallas", "us-west1": "Oregon", "us-west2": "Los Angeles", "us-west3": "Salt Lake City",
    "us-west4": "Las Vegas", "northamerica-northeast1": "Montréal", "northamerica-northeast2": "Toronto",
    "southamerica-east1": "São Paulo", "southamerica-west1": "Santiago", "europe-west1": "Belgium",
    "europe-west2": "London", "europe-west3": "Frankfurt", "europe-west4": "Netherlands", "europe-west6": "Zurich",
    "europe-west8": "Milan", "europe-west9": "Paris", "europe-west10": "Berlin", "europe-west12": "Turin",
    "europe-north1": "Finland", "europe-central2": "Warsaw", "europe-southwest1": "Madrid",
    "asia-east1": "Taiwan", "asia-east2": "Hong Kong", "asia-northeast1": "Tokyo", "asia-northeast2": "Osaka",
    "asia-northeast3": "Seoul", "asia-south1": "Mumbai", "asia-south2": "Delhi", "asia-southeast1": "Singapore",
    "asia-southeast2": "Jakarta", "australia-southeast1": "Sydney", "australia-southeast2": "Melbourne",
    "me-central1": "Doha", "me-central2": "Dammam", "me-west1": "Tel Aviv", "africa-south1": "Johannesburg",
}

# The export's units (usage.unit, usage.pricing_unit, price.unit) in FOCUS unit format.
UNITS: dict[str, str] = {
    "bytes": "B", "byte": "B", "byte-seconds": "B-Seconds", "kibibyte": "KiB", "mebibyte": "MiB",
    "gibibyte": "GiB", "tebibyte": "TiB", "pebibyte": "PiB", "gibibyte hour": "GiB-Hours",
    "gibibyte month": "GiB-Months", "gibibyte second": "GiB-Seconds", "tebibyte month": "TiB-Months",
    "mebibyte second": "MiB-Seconds", "seconds": "Seconds", "second": "Seconds", "hour": "Hours",
    "hours": "Hours", "minute": "Minutes", "minutes": "Minutes", "month": "Months", "day": "Days",
    "requests": "Requests", "request": "Requests", "count": "Count", "1000 requests": "1000 Requests",
    "1000000 requests": "1000000 Requests",
}


class ExportError(IngestError):
    """A BigQuery billing export that cannot be read: names the file or call, the row and the column."""


# -- reading: both forms to the canonical flat frame --------------------------------------------
def flatten(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Nested rows (RECORD columns as structs) → dotted column names; REPEATED columns stay lists."""
    schema = lf.collect_schema()
    exprs: list[pl.Expr] = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Struct):
            exprs += [pl.col(name).struct.field(f.name).alias(f"{name}.{f.name}") for f in dtype.fields]
        else:
            exprs.append(pl.col(name))
    out = lf.select(exprs)
    return flatten(out) if any(isinstance(t, pl.Struct) for t in out.collect_schema().dtypes()) else out


def _money(e: pl.Expr, dtype: pl.DataType | DataTypeClass) -> pl.Expr:
    # Floats go through their shortest text (5e-06 → "5e-6" → 0.000005): a binary cast would keep the
    # float's error in the 15th decimal.
    if dtype == DEC:
        return e
    if dtype.is_float():
        return e.cast(pl.String).cast(DEC)
    if dtype == pl.String:
        return e.str.strip_chars().cast(DEC)
    return e.cast(DEC)


def _cast(name: str, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    e = pl.col(name)
    if dtype == target:
        return e
    if target == DEC:
        return _money(e, dtype)
    if target == TS:
        if isinstance(dtype, pl.Datetime):
            return e.dt.convert_time_zone("UTC") if dtype.time_zone else e.dt.replace_time_zone("UTC")
        if dtype.is_integer():  # BigQuery's int64 microseconds
            return e.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return focus.parse_datetime(e.cast(pl.String).str.replace(r" UTC$", ""))  # BigQuery's JSON: "… UTC"
    if isinstance(target, pl.List):
        if dtype == pl.String:
            return e  # parsed from text by _parse_lists
        inner = target.inner
        assert isinstance(inner, pl.Struct)
        fields = {f.name: f.dtype for f in inner.fields}
        have = {f.name: f.dtype for f in dtype.inner.fields} if isinstance(dtype, pl.List) and isinstance(
            dtype.inner, pl.Struct) else {}
        parts = [(_money(pl.element().struct.field(k), have[k]) if t == DEC else pl.element().struct.field(k).cast(t))
                 .alias(k) if k in have else pl.lit(None, dtype=t).alias(k) for k, t in fields.items()]
        return e.list.eval(pl.struct(parts))
    return e.cast(target)


def _parse_list_text(text: str | None) -> list[dict[str, object]] | None:
    """``[{'key': 'a', 'value': 'b'}]`` (Python repr, as flattening tools write it) or JSON → list."""
    if text is None or not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        value = ast.literal_eval(text)  # repr text: single quotes and None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"not a list of records: {text[:80]!r}")
    return [{k: (None if v is None else str(v) if not isinstance(v, bool) else v) for k, v in item.items()}
            for item in value]


def _text_type(col: str) -> pl.DataType:
    # The list's type with amounts as text: _cast turns them into exact decimals afterwards.
    inner = RAW_COLUMNS[col].inner  # type: ignore[attr-defined]
    return pl.List(pl.Struct({f.name: (pl.String if f.dtype == DEC else f.dtype) for f in inner.fields}))


def _parse_lists(lf: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """Text list columns → typed lists, parsed once per distinct value (they repeat a lot)."""
    schema = lf.collect_schema()
    cols = [c for c in LIST_COLUMNS if schema.get(c) == pl.String]
    # JSON text is decoded natively; Python repr text (single quotes, None) once per distinct value.
    is_repr = {c: pl.col(c).str.starts_with("[{'").any().alias(c) for c in cols}
    # A file is written by one tool, so its first rows tell (a full pass would read the file twice).
    repr_cols = [c for c, v in lf.head(10_000).select(is_repr.values()).collect().row(0, named=True).items() if v]
    for col in cols:
        if col not in repr_cols:
            lf = lf.with_columns(pl.col(col).str.json_decode(_text_type(col)))
    uniques = lf.select(pl.col(c).unique().implode() for c in repr_cols).collect() if repr_cols else None
    for col in repr_cols:
        assert uniques is not None
        distinct = uniques[col][0].to_list()
        parsed = []
        for text in distinct:
            try:
                parsed.append(_parse_list_text(text))
            except (ValueError, SyntaxError) as e:
                row = lf.filter(pl.col(col) == text).select("_row").first().collect().item()
                raise ExportError(f"{name}: row {row}, column {col}: cannot parse {text[:80]!r} ({e})") from None
        table = pl.DataFrame({"__text": distinct, "__parsed": parsed},
                             schema={"__text": pl.String, "__parsed": _text_type(col)}, strict=False)
        lf = (lf.join(table.lazy(), left_on=col, right_on="__text", how="left", maintain_order="left",
                      nulls_equal=True)
              .with_columns(pl.col("__parsed").alias(col)).drop("__parsed"))
    return lf


def canonical(lf: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """Either form → the canonical flat frame (:data:`RAW_COLUMNS`, plus ``_row``: the source row, from 1).

    Raises :class:`ExportError` naming ``name`` when a required column is absent.
    """
    lf = flatten(lf)
    schema = lf.collect_schema()
    missing = [c for c in REQUIRED if c not in schema]
    if missing:
        raise ExportError(f"{name}: not a BigQuery billing export: missing column(s) {', '.join(missing)}")
    lf = lf.with_row_index("_row", offset=1)
    if pl.String in [schema.get(c) for c in LIST_COLUMNS]:
        lf = _parse_lists(lf, name)
        schema = lf.collect_schema()
    exprs = [pl.col("_row")]
    for col, target in RAW_COLUMNS.items():
        if col in schema:
            e = pl.col(col)
            if schema[col] == pl.String and col not in LIST_COLUMNS:
                # CSV nulls: empty text; typed columns also "NULL"/"None" as flatteners write them
                empty = ["", "NULL", "None"] if target != pl.String else [""]
                exprs.append(pl.when(e.str.strip_chars().is_in(empty)).then(None).otherwise(e).alias(col))
            else:
                exprs.append(e)
        else:
            exprs.append(pl.lit(None, dtype=target).alias(col))
    lf = lf.select(exprs)
    schema = lf.collect_schema()
    return lf.with_columns(_cast(c, schema[c], t).alias(c) for c, t in RAW_COLUMNS.items())


def check(raw: pl.LazyFrame, name: str) -> pl.DataFrame:
    """Collect the canonical frame, failing with the first malformed row named: a value that does not
    parse, a required value missing, an unknown ``cost_type`` or an ``invoice.month`` not ``YYYYMM``."""
    df = raw.collect()
    rules = {c: pl.col(c).is_null() for c in REQUIRED}
    rules["invoice.month"] = ~pl.col("invoice.month").str.contains(r"^\d{4}(0[1-9]|1[0-2])$").fill_null(False)
    rules["cost_type"] = pl.col("cost_type").is_not_null() & ~pl.col("cost_type").str.to_lowercase().is_in(
        list(COST_TYPES))
    counts = df.select(bad.sum().alias(col) for col, bad in rules.items()).row(0, named=True)  # one pass
    for col, n in counts.items():
        if n:
            row = df.filter(rules[col]).select("_row", col).row(0, named=True)
            value = row[col]
            what = "missing" if value is None else f"bad value {value!r}"
            raise ExportError(f"{name}: row {row['_row']}, column {col}: {what} ({n} row(s))")
    return df


def _text_cast_errors(lf: pl.LazyFrame) -> tuple[str, int, str] | None:
    """(column, row, value) of the first scalar text value that does not parse as its type."""
    schema = lf.collect_schema()
    for col, target in RAW_COLUMNS.items():
        if schema.get(col) != pl.String or target == pl.String() or isinstance(target, pl.List):
            continue
        e = pl.col(col)
        parsed = (e.str.strip_chars().cast(DEC, strict=False) if target == DEC
                  else focus.parse_datetime(e, strict=False))
        bad = e.is_not_null() & ~e.str.strip_chars().is_in(["", "NULL", "None"]) & parsed.is_null()
        hit = lf.with_row_index("__row", offset=1).filter(bad).select("__row", col).first().collect()
        if hit.height:
            return col, int(hit["__row"][0]), str(hit[col][0])
    return None


def read(lf: pl.LazyFrame, name: str) -> pl.DataFrame:
    """Either form → the checked canonical frame (collected)."""
    raw = canonical(lf, name)
    try:
        return check(raw, name)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is reported with its row
        found = _text_cast_errors(flatten(lf))
        if found:
            col, row, value = found
            raise ExportError(f"{name}: row {row}, column {col}: cannot parse {value!r}") from None
        raise ExportError(f"{name}: {str(e).splitlines()[0]}") from None


# -- credits: netted or their own rows -----------------------------------------------------------
def expand_credits(df: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """One ``charge`` row per export row (BilledCost basis ``cost`` + netted credits, CUD details),
    followed by one ``credit`` row per credit not in :data:`NETTED_CREDITS` (``_credit.*`` set)."""
    lf = df.lazy()
    fields = ("name", "amount", "full_name", "id", "type")
    credit_rows = (lf.select("_row", "credits").explode("credits").drop_nulls("credits")
                   .select("_row", *[pl.col("credits").struct.field(f).alias(f"_credit.{f}") for f in fields])
                   .with_columns(pl.col("_credit.type").fill_null("UNKNOWN")))
    netted_flag = pl.col("_credit.type").is_in(list(NETTED_CREDITS))
    netted = (credit_rows.filter(netted_flag).group_by("_row")
              .agg(pl.col("_credit.amount").sum().alias("_netted"),
                   pl.col("_credit.type").filter(pl.col("_credit.type").is_in(list(CUD_CATEGORY))).first()
                   .alias("_cud.type"),
                   pl.col("_credit.id").filter(pl.col("_credit.type").is_in(list(CUD_CATEGORY))).first()
                   .alias("_cud.id"),
                   pl.coalesce("_credit.full_name", "_credit.name")
                   .filter(pl.col("_credit.type").is_in(list(CUD_CATEGORY))).first().alias("_cud.name")))
    charges = (lf.join(netted, on="_row", how="left", maintain_order="left")
               .with_columns(pl.col("_netted").fill_null(pl.lit(0).cast(DEC)), pl.lit("charge").alias("_kind")))
    itemised = (lf.join(credit_rows.filter(~netted_flag), on="_row", how="inner", maintain_order="right")
                .with_columns(pl.lit(0).cast(DEC).alias("_netted"), pl.lit(None, pl.String).alias("_cud.type"),
                              pl.lit(None, pl.String).alias("_cud.id"), pl.lit(None, pl.String).alias("_cud.name"),
                              pl.lit("credit").alias("_kind")))
    charges = charges.with_columns(pl.lit(None, dtype=t).alias(f"_credit.{k}") for k, t in
                                   (("name", pl.String), ("amount", DEC), ("full_name", pl.String),
                                    ("id", pl.String), ("type", pl.String)))
    cols = charges.collect_schema().names()
    return pl.concat([charges, itemised.select(cols)], how="vertical").drop("credits")


# -- the mapping -----------------------------------------------------------------------------------
def _c(name: str) -> pl.Expr:
    return pl.col(name)


_credit = _c("_kind") == "credit"
_cost_type = _c("cost_type").str.to_lowercase().fill_null("regular")
_commitment_fee = _c("sku.description").str.starts_with("Commitment")
_category = pl.when(_credit).then(pl.lit("Credit")).otherwise(recode(_cost_type, COST_TYPES, default="Adjustment"))
_priced = _category.is_in(["Usage", "Purchase"])
_usage = _category == "Usage"
_quantity = pl.when(_priced).then(pl.coalesce("price.pricing_unit_quantity", "usage.amount_in_pricing_units",
                                              "usage.amount"))
_billed = pl.when(_credit).then(_c("_credit.amount")).otherwise(_c("cost") + _c("_netted"))
_list_cost = pl.when(_credit).then(_c("_credit.amount")).otherwise(pl.coalesce("cost_at_list", "cost"))
_contracted_cost = pl.when(_credit).then(_c("_credit.amount")).otherwise(_c("cost"))
_rate = pl.coalesce(_c("currency_conversion_rate"), pl.lit(1).cast(DEC))


def _unit_price(cost: pl.Expr) -> pl.Expr:
    q = _quantity
    return (pl.when(q.is_null()).then(None)
            .when(q != 0).then(cost / q)
            .when(cost == 0).then(pl.lit(0).cast(DEC)))


def _unit(e: pl.Expr) -> pl.Expr:
    return recode(e, UNITS, default=e)


_month_start = (pl.concat_str(_c("invoice.month"), pl.lit("01")).str.to_date("%Y%m%d")
                .cast(pl.Datetime("us")).dt.replace_time_zone(INVOICE_TZ))
_period_start = _month_start.dt.convert_time_zone("UTC")
_period_end = _month_start.dt.offset_by("1mo").dt.convert_time_zone("UTC")
_service = _c("service.description")
_region = _c("location.region")
_resource_path = _c("resource.global_name").str.strip_prefix("//")
_resource_type = pl.when(_resource_path.str.count_matches("/") >= 2).then(
    pl.concat_str(_resource_path.str.extract(r"^([^./]+)"), pl.lit("."),
                  _resource_path.str.extract(r"([^/]+)/[^/]+$"))
).otherwise(_resource_path.str.extract(r"^([^./]+)"))
_cud = _c("_cud.type").is_not_null() & _usage

MAPPING: dict[str, pl.Expr] = {
    "AvailabilityZone": _c("location.zone"),
    "BilledCost": _billed,
    "BillingAccountId": _c("billing_account_id"),
    "BillingAccountName": _c("billing_account_id"),  # replaced by the account's display name when known
    "BillingAccountType": pl.lit("Billing Account"),
    "BillingCurrency": _c("currency"),
    "BillingPeriodEnd": _period_end,
    "BillingPeriodStart": _period_start,
    "ChargeCategory": _category,
    # A correction of an earlier, already invoiced month: an adjustment whose usage predates the invoice.
    "ChargeClass": pl.when(pl.any_horizontal(_c("adjustment_info.id").is_not_null(),
                                             _c("adjustment_info.type").is_not_null())
                           & (_c("usage_start_time") < _period_start)).then(pl.lit("Correction")),
    "ChargeDescription": pl.when(_credit).then(pl.coalesce("_credit.full_name", "_credit.name", "_credit.type"))
    .otherwise(_c("sku.description")),
    "ChargeFrequency": pl.when(_category.is_in(["Tax", "Adjustment"])).then(pl.lit("One-Time"))
    .when(_commitment_fee & ~_credit).then(pl.lit("Recurring")).otherwise(pl.lit("Usage-Based")),
    "ChargePeriodEnd": _c("usage_end_time"),
    "ChargePeriodStart": _c("usage_start_time"),
    "CommitmentDiscountCategory": pl.when(_cud).then(recode(_c("_cud.type"), CUD_CATEGORY)),
    "CommitmentDiscountId": pl.when(_cud).then(pl.coalesce("subscription.instance_id", "_cud.id")),
    "CommitmentDiscountName": pl.when(_cud).then(_c("_cud.name")),
    "CommitmentDiscountStatus": pl.when(_cud).then(pl.lit("Used")),
    "CommitmentDiscountType": pl.when(_cud).then(pl.lit("Committed Use Discount")),
    "ConsumedQuantity": pl.when(_usage).then(_c("usage.amount")),
    "ConsumedUnit": pl.when(_usage & _c("usage.amount").is_not_null()).then(_unit(_c("usage.unit"))),
    "ContractedCost": _contracted_cost,
    "ContractedUnitPrice": _unit_price(_contracted_cost),
    "EffectiveCost": _billed,
    "InvoiceId": pl.lit(None, pl.String),  # the export names the invoice month, not the invoice
    "InvoiceIssuerName": pl.lit(PROVIDER),
    "ListCost": _list_cost,
    "ListUnitPrice": _unit_price(_list_cost),
    "PricingCategory": pl.when(_cud).then(pl.lit("Committed"))
    .when(_usage & _c("sku.description").str.contains("(?i)preemptible|spot")).then(pl.lit("Dynamic"))
    .when(_priced).then(pl.lit("Standard")),
    "PricingCurrency": pl.lit(PRICE_CURRENCY),
    "PricingCurrencyContractedUnitPrice": _unit_price(_contracted_cost) / _rate,
    "PricingCurrencyEffectiveCost": _billed / _rate,
    "PricingCurrencyListUnitPrice": _unit_price(_list_cost) / _rate,
    "PricingQuantity": _quantity,
    "PricingUnit": pl.when(_quantity.is_not_null()).then(_unit(pl.coalesce(
        pl.when(_c("price.pricing_unit_quantity").is_not_null()).then(_c("price.unit")),
        pl.when(_c("usage.amount_in_pricing_units").is_not_null()).then(_c("usage.pricing_unit")),
        _c("usage.unit")))),
    "ProviderName": pl.lit(PROVIDER),
    "PublisherName": pl.when(_c("transaction_type").is_in(["THIRD_PARTY_RESELLER", "THIRD_PARTY_AGENCY"]))
    .then(pl.coalesce("seller_name", pl.lit(PROVIDER))).otherwise(pl.lit(PROVIDER)),
    "RegionId": _region,
    "RegionName": pl.when(_region.is_not_null()).then(recode(_region, REGION_NAMES, default=_region)),
    "ResourceId": _c("resource.global_name"),
    "ResourceName": _c("resource.name"),
    "ResourceType": _resource_type,
    "ServiceCategory": recode(_service, {k: v[0] for k, v in SERVICES.items()}, default="Other"),
    "ServiceName": _service,
    "ServiceSubcategory": recode(_service, {k: v[1] for k, v in SERVICES.items()}, default="Other (Other)"),
    "SkuId": pl.when(_category != "Tax").then(_c("sku.id")),
    "SkuMeter": pl.when((_category != "Tax") & _c("sku.id").is_not_null()).then(_c("sku.description")),
    "SkuPriceDetails": pl.lit(None, pl.String),
    "SkuPriceId": pl.when(_category != "Tax").then(_c("sku.id")),
    "SubAccountId": _c("project.id"),
    "SubAccountName": _c("project.name"),
    "SubAccountType": pl.when(_c("project.id").is_not_null()).then(pl.lit("Project")),
    "Tags": _c("_tags"),
    "x_ServiceId": _c("service.id"),
    "x_CostType": _c("cost_type"),
    "x_CreditType": _c("_credit.type"),
    "x_CreditId": _c("_credit.id"),
    "x_CurrencyConversionRate": _c("currency_conversion_rate"),
    "x_Location": _c("location.location"),
    "x_ExportTime": _c("export_time"),
}
"""FOCUS column → expression over the canonical frame after :func:`expand_credits` (and ``_tags``)."""


def _tags_json(record: Mapping[str, list[Mapping[str, Any]] | None]) -> str | None:
    """Project labels < tags < labels < system labels (later wins); valueless tags are ``true``."""
    out: dict[str, object] = {}
    for col in ("project.labels", "tags", "labels", "system_labels"):
        for item in record.get(col) or []:
            key = item.get("key")
            if col == "tags" and item.get("namespace"):
                key = f"{item['namespace']}/{key}"
            if key is not None:
                value = item.get("value")
                out[str(key)] = True if value is None else value
    return focus.dumps_tags(out) if out else None


def _with_tags(lf: pl.LazyFrame) -> pl.LazyFrame:
    # Tag sets repeat across rows: build each distinct set's JSON once and join it back.
    cols = ["project.labels", "tags", "labels", "system_labels"]
    key = pl.struct(cols).alias("_tagkey")
    lf = lf.with_columns(key)
    distinct = lf.select("_tagkey").unique().collect()
    tags = [_tags_json(r) for r in distinct["_tagkey"].to_list()]
    table = distinct.with_columns(pl.Series("_tags", tags, dtype=pl.String))
    return (lf.join(table.lazy(), on="_tagkey", how="left", maintain_order="left", nulls_equal=True)
            .drop("_tagkey"))


def to_focus_frame(raw: pl.DataFrame | pl.LazyFrame, account_names: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """The canonical frame (from :func:`read`) → FOCUS 1.2 rows through :func:`finops.focus.conform`."""
    lf = _with_tags(expand_credits(raw))
    exprs = [e.alias(k) for k, e in MAPPING.items()]
    if account_names:
        account_id = _c("billing_account_id")
        exprs[list(MAPPING).index("BillingAccountName")] = (
            recode(account_id, dict(account_names), default=account_id).alias("BillingAccountName"))
    return focus.conform(lf.select(exprs))


def normalize(lf: pl.LazyFrame, name: str, account_names: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """Either form of the export → checked FOCUS 1.2 rows (collected once, returned lazy)."""
    return to_focus_frame(read(lf, name), account_names).collect().lazy()


def source_totals(raw: pl.DataFrame) -> dict[str, Decimal]:
    """What the export itself says the rows cost: ``cost`` plus every credit (the BilledCost to expect)."""
    credit_total = raw.select(pl.col("credits").explode().struct.field("amount").sum()).item()
    cost = raw.select(pl.col("cost").sum()).item()
    return {"BilledCost": Decimal(cost or 0) + Decimal(credit_total or 0)}


# -- native format registry ------------------------------------------------------------------------
def _matches_flat(columns: Sequence[str]) -> bool:
    cols = set(columns)
    return {"billing_account_id", "service.description", "sku.id", "usage_start_time", "cost",
            "invoice.month"} <= cols


def _matches_nested(columns: Sequence[str]) -> bool:
    cols = set(columns)
    return {"billing_account_id", "service", "sku", "usage_start_time", "cost", "invoice"} <= cols


def _to_focus(raw: pl.LazyFrame, name: str) -> pl.LazyFrame:
    return normalize(raw, name)


FORMATS: list[NativeFormat] = [
    NativeFormat("gcp-bigquery-export", "gcp", _matches_flat, _to_focus),
    NativeFormat("gcp-bigquery-export-nested", "gcp", _matches_nested, _to_focus),
]
"""The export flattened to CSV (dotted names) and nested (JSON lines / Parquet with structs)."""
