"""The FOCUS contract: FOCUS 1.2 columns, their types, requirement levels and enumerations.

Everything written to the ``billing`` dataset has passed :func:`conform`. Inputs may be FOCUS 1.0,
1.1, 1.2 or 1.3: renamed columns are mapped onto 1.2, the literal string ``NULL`` reads as null, and
columns that FOCUS 1.2 does not define are kept with an ``x_`` prefix (FOCUS's own convention for
custom columns).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Literal

import polars as pl

Level = Literal["Mandatory", "Conditional", "Recommended"]


class Kind(StrEnum):
    """FOCUS data types."""

    STRING = "String"
    DECIMAL = "Decimal"
    DATETIME = "DateTime"
    JSON = "JSON"


MONEY_SCALE = 15
DECIMAL = pl.Decimal(38, MONEY_SCALE)
DATETIME = pl.Datetime("us", "UTC")
DTYPES: dict[Kind, pl.DataType] = {
    Kind.STRING: pl.String(),
    Kind.DECIMAL: DECIMAL,
    Kind.DATETIME: DATETIME,
    Kind.JSON: pl.String(),
}


@dataclass(frozen=True)
class Column:
    """One FOCUS column: name, type, requirement level, whether nulls are allowed, allowed values."""

    name: str
    kind: Kind
    level: Level
    nullable: bool
    allowed: tuple[str, ...] = ()

    @property
    def dtype(self) -> pl.DataType:
        return DTYPES[self.kind]


SERVICE_CATEGORIES = (
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
    "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
    "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
    "Storage", "Web", "Other",
)

# FOCUS 1.2 ServiceSubcategory values by parent ServiceCategory (the spec's fixed list).
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "AI and Machine Learning": (
        "AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
        "Other (AI and Machine Learning)",
    ),
    "Analytics": (
        "Analytics Platforms", "Business Intelligence", "Data Processing", "Search", "Streaming Analytics",
        "Other (Analytics)",
    ),
    "Business Applications": (
        "Productivity and Collaboration", "Other (Business Applications)",
    ),
    "Compute": (
        "Containers", "End User Computing", "Quantum Compute", "Serverless Compute", "Virtual Machines",
        "Other (Compute)",
    ),
    "Databases": (
        "Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases", "Relational Databases",
        "Time Series Databases", "Other (Databases)",
    ),
    "Developer Tools": (
        "Developer Platforms", "Continuous Integration and Deployment", "Development Environments",
        "Source Code Management", "Quality Assurance", "Other (Developer Tools)",
    ),
    "Identity": (
        "Identity and Access Management", "Other (Identity)",
    ),
    "Integration": (
        "API Management", "Messaging", "Workflow Orchestration", "Other (Integration)",
    ),
    "Internet of Things": (
        "IoT Analytics", "IoT Platforms", "Other (Internet of Things)",
    ),
    "Management and Governance": (
        "Architecture", "Compliance", "Cost Management", "Data Governance", "Disaster Recovery",
        "Endpoint Management", "Observability", "Support", "Other (Management and Governance)",
    ),
    "Media": (
        "Content Creation", "Gaming", "Media Streaming", "Mixed Reality", "Other (Media)",
    ),
    "Migration": (
        "Data Migration", "Resource Migration", "Other (Migration)",
    ),
    "Mobile": (
        "Other (Mobile)",
    ),
    "Multicloud": (
        "Multicloud Integration", "Other (Multicloud)",
    ),
    "Networking": (
        "Application Networking", "Content Delivery", "Network Connectivity", "Network Infrastructure",
        "Network Routing", "Network Security", "Other (Networking)",
    ),
    "Security": (
        "Secret Management", "Security Posture Management", "Threat Detection and Response",
        "Other (Security)",
    ),
    "Storage": (
        "Backup Storage", "Block Storage", "File Storage", "Object Storage", "Storage Platforms",
        "Other (Storage)",
    ),
    "Web": (
        "Application Platforms", "Other (Web)",
    ),
    "Other": (
        "Other (Other)",
    ),
}
SUBCATEGORY_PARENT: dict[str, str] = {s: c for c, subs in SUBCATEGORIES.items() for s in subs}

S, D, T, J = Kind.STRING, Kind.DECIMAL, Kind.DATETIME, Kind.JSON
M: Level = "Mandatory"
C: Level = "Conditional"
R: Level = "Recommended"

# FOCUS 1.2, in the specification's alphabetical order.
COLUMNS: tuple[Column, ...] = (
    Column("AvailabilityZone", S, R, True),
    Column("BilledCost", D, M, False),
    Column("BillingAccountId", S, M, False),
    Column("BillingAccountName", S, M, True),
    Column("BillingAccountType", S, C, True),
    Column("BillingCurrency", S, M, False),
    Column("BillingPeriodEnd", T, M, False),
    Column("BillingPeriodStart", T, M, False),
    Column("CapacityReservationId", S, C, True),
    Column("CapacityReservationStatus", S, C, True, ("Used", "Unused")),
    Column("ChargeCategory", S, M, False, ("Usage", "Purchase", "Tax", "Credit", "Adjustment")),
    Column("ChargeClass", S, M, True, ("Correction",)),
    Column("ChargeDescription", S, M, True),
    Column("ChargeFrequency", S, R, False, ("One-Time", "Recurring", "Usage-Based")),
    Column("ChargePeriodEnd", T, M, False),
    Column("ChargePeriodStart", T, M, False),
    Column("CommitmentDiscountCategory", S, C, True, ("Spend", "Usage")),
    Column("CommitmentDiscountId", S, C, True),
    Column("CommitmentDiscountName", S, C, True),
    Column("CommitmentDiscountQuantity", D, C, True),
    Column("CommitmentDiscountStatus", S, C, True, ("Used", "Unused")),
    Column("CommitmentDiscountType", S, C, True),
    Column("CommitmentDiscountUnit", S, C, True),
    Column("ConsumedQuantity", D, C, True),
    Column("ConsumedUnit", S, C, True),
    Column("ContractedCost", D, M, False),
    Column("ContractedUnitPrice", D, C, True),
    Column("EffectiveCost", D, M, False),
    Column("InvoiceId", S, R, True),
    Column("InvoiceIssuerName", S, M, False),
    Column("ListCost", D, M, False),
    Column("ListUnitPrice", D, C, True),
    Column("PricingCategory", S, C, True, ("Standard", "Dynamic", "Committed", "Other")),
    Column("PricingCurrency", S, C, True),
    Column("PricingCurrencyContractedUnitPrice", D, C, True),
    Column("PricingCurrencyEffectiveCost", D, C, True),
    Column("PricingCurrencyListUnitPrice", D, C, True),
    Column("PricingQuantity", D, M, True),
    Column("PricingUnit", S, M, True),
    Column("ProviderName", S, M, False),
    Column("PublisherName", S, M, False),
    Column("RegionId", S, C, True),
    Column("RegionName", S, C, True),
    Column("ResourceId", S, C, True),
    Column("ResourceName", S, C, True),
    Column("ResourceType", S, C, True),
    Column("ServiceCategory", S, M, False, SERVICE_CATEGORIES),
    Column("ServiceName", S, M, False),
    Column("ServiceSubcategory", S, R, True, tuple(SUBCATEGORY_PARENT)),
    Column("SkuId", S, C, True),
    Column("SkuMeter", S, C, True),
    Column("SkuPriceDetails", J, C, True),
    Column("SkuPriceId", S, C, True),
    Column("SubAccountId", S, C, True),
    Column("SubAccountName", S, C, True),
    Column("SubAccountType", S, C, True),
    Column("Tags", J, C, True),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
MANDATORY: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.level == M)
COST_COLUMNS: tuple[str, ...] = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")

# Older and newer names mapped onto FOCUS 1.2 (0.5 / 1.0-preview names, and 1.3's provider split).
RENAMES: dict[str, str] = {
    "ChargeType": "ChargeCategory",
    "AmortizedCost": "EffectiveCost",
    "UsageQuantity": "ConsumedQuantity",
    "UsageUnit": "ConsumedUnit",
    "Region": "RegionId",
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ServiceProviderName": "ProviderName",
}

NULL_STRINGS = ("NULL", "")


class FocusError(ValueError):
    """Input that cannot be conformed to FOCUS: names what is wrong and where."""


@dataclass(frozen=True)
class Problem:
    """One rule broken by a frame: the column, the rule, how many rows, and a few example values."""

    column: str
    rule: str
    rows: int
    examples: tuple[str, ...] = ()
    key: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.column}: {self.rule} in {self.rows} row(s){ex}"


@cache
def currency_codes() -> frozenset[str]:
    """ISO 4217 currency codes."""
    text = resources.files("finops.data").joinpath("iso4217.txt").read_text()
    return frozenset(line.split()[0] for line in text.splitlines() if line and not line.startswith("#"))


def rename_map(columns: Iterable[str]) -> dict[str, str]:
    """How to rename input columns onto FOCUS 1.2: old names mapped, unknown names prefixed ``x_``."""
    cols = list(columns)
    present = set(cols)
    out: dict[str, str] = {}
    for name in cols:
        target = RENAMES.get(name)
        if target and target not in present and target not in out.values():
            out[name] = target
        elif name not in BY_NAME and not name.startswith("x_"):
            out[name] = f"x_{name}"
    return out


# Datetime layouts seen in exports, tried on a sample so a whole file parses with one fixed format
# (several times faster than normalising every value first).
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
)


def sniff_datetime_formats(sample: pl.DataFrame) -> dict[str, str]:
    """For each FOCUS date/time column of ``sample`` held as text, the first of
    :data:`DATETIME_FORMATS` that parses every non-null sampled value (columns with none are left out)."""
    found: dict[str, str] = {}
    for col in COLUMNS:
        if col.kind is not Kind.DATETIME or sample.schema.get(col.name) != pl.String:
            continue
        values = sample[col.name].drop_nulls().filter(~sample[col.name].drop_nulls().is_in(NULL_STRINGS))
        for fmt in DATETIME_FORMATS:
            parsed = values.str.to_datetime(fmt, time_zone="UTC", strict=False)
            if values.len() and parsed.null_count() == 0:
                found[col.name] = fmt
                break
    return found


def parse_datetime(expr: pl.Expr, strict: bool = True) -> pl.Expr:
    """ISO 8601 or ``YYYY-MM-DD HH:MM:SS`` (UTC, optional ``Z``/``+00:00``, optional fraction) → UTC."""
    s = expr.str.strip_chars().str.replace("T", " ", literal=True).str.replace(r"(Z|[+-]00:?00)$", "")
    s = pl.when(s.str.len_bytes() == 10).then(s + " 00:00:00").otherwise(s)
    return s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_zone="UTC", strict=strict)


def _cast(col: Column, dtype: pl.DataType, strict: bool, fmt: str | None = None) -> pl.Expr:
    e = pl.col(col.name)
    if dtype == col.dtype:
        return e
    if col.kind is Kind.DATETIME:
        if isinstance(dtype, pl.Datetime):
            return e.dt.convert_time_zone("UTC") if dtype.time_zone else e.dt.replace_time_zone("UTC")
        if isinstance(dtype, pl.Date):
            return e.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        if fmt:
            return e.cast(pl.String).str.to_datetime(fmt, time_zone="UTC", strict=strict)
        return parse_datetime(e.cast(pl.String), strict)
    if col.kind is Kind.DECIMAL:
        if dtype == pl.String:
            # Strings may carry exponents (1.5e-3), which the decimal parser refuses: go through
            # float only for those, exactly otherwise.
            s = e.str.strip_chars()
            has_exp = s.str.contains("[eE]")
            return (
                pl.when(has_exp)
                .then(s.cast(pl.Float64, strict=strict).cast(DECIMAL))
                .otherwise(s.cast(DECIMAL, strict=strict))
            )
        return e.cast(DECIMAL, strict=strict)
    if isinstance(dtype, (pl.List, pl.Struct, pl.Array)):
        return e.struct.json_encode() if isinstance(dtype, pl.Struct) else _pairs_to_json(e, dtype)
    return e.cast(pl.String, strict=strict)


def _pairs_to_json(e: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    # Google's FOCUS view writes Tags as a list of {key, value} structs: fold them into a JSON object.
    def fold(pairs: pl.Series | list[dict[str, object]] | None) -> str | None:
        if isinstance(pairs, pl.Series):
            pairs = pairs.to_list()
        if not pairs:
            return None
        return json.dumps({str(p.get("key")): p.get("value") for p in pairs}, separators=(",", ":"))
    return e.map_elements(fold, return_dtype=pl.String, skip_nulls=True)


def conform(lf: pl.LazyFrame, strict: bool = True, datetime_formats: Mapping[str, str] | None = None,
            repair: bool = True) -> pl.LazyFrame:
    """Conform a frame of FOCUS 1.0–1.3 data to the FOCUS 1.2 contract.

    Renames old and new column names onto 1.2, prefixes unknown columns with ``x_``, turns the
    strings ``NULL`` and ``""`` into nulls, casts every FOCUS column to its type (strictly: a value
    that does not parse fails the query), fixes the case of enumerated values and adds absent
    optional columns as typed nulls. Raises :class:`FocusError` listing every absent mandatory
    column. With ``strict=False`` a value that does not parse becomes null instead (see
    :func:`bad_values`). ``datetime_formats`` (column → strftime format, see
    :func:`sniff_datetime_formats`) parse those columns with one fixed format. With ``repair=False``
    the null strings and the case of enumerated values are left as they are — cheaper, for callers
    that check :func:`repairs_needed` afterwards. FOCUS columns come first in specification order,
    then ``x_`` columns in input order.
    """
    schema = lf.collect_schema()
    renames = rename_map(schema.names())
    lf = lf.rename(renames) if renames else lf
    schema = lf.collect_schema()
    missing = [m for m in MANDATORY if m not in schema]
    if missing:
        raise FocusError(f"missing mandatory FOCUS column(s): {', '.join(missing)}")
    nulls = {n: pl.when(pl.col(n).is_in(NULL_STRINGS)).then(None).otherwise(pl.col(n)).alias(n)
             for n, t in schema.items() if t == pl.String}
    lf = lf.with_columns(nulls.values()) if nulls and repair else lf
    exprs: list[pl.Expr] = []
    for col in COLUMNS:
        if col.name in schema:
            e = _cast(col, schema[col.name], strict, (datetime_formats or {}).get(col.name))
            if col.allowed and repair:
                e = _canonical_case_expr(e, col.allowed)
            exprs.append(e.alias(col.name))
        else:
            exprs.append(pl.lit(None, dtype=col.dtype).alias(col.name))
    extras = [pl.col(n) for n in schema.names() if n not in BY_NAME]
    return lf.select(exprs + extras)


def repairs_needed(schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """True on a row of a frame conformed with ``repair=False`` that a repairing conform would change:
    a null string (``NULL``, ``""``) in any text column, or an enumerated value outside its list."""
    flags = [pl.col(n).is_in(NULL_STRINGS) for n, t in schema.items() if t == pl.String]
    flags += [pl.col(c.name).is_not_null() & ~pl.col(c.name).is_in(c.allowed) for c in COLUMNS
              if c.allowed and c.name in schema]
    return pl.any_horizontal(flags).fill_null(False) if flags else pl.lit(False)


def _canonical_case_expr(e: pl.Expr, allowed: tuple[str, ...]) -> pl.Expr:
    # Exports disagree on case (Oracle writes "Usage-based"); the spec's spelling is the canonical one.
    # Comparing with the usual variants keeps this cheap and streaming; `replace` with a mapping
    # (or lower-casing every value) held the whole column in memory: 3.6x the peak RSS on 1M rows.
    variants = {v: a for a in allowed for v in (a.lower(), a.upper(), a.capitalize(), a.title()) if v != a}
    out = e
    for variant, canonical in variants.items():
        out = pl.when(e == variant).then(pl.lit(canonical)).otherwise(out)
    return out


def checks(names: Iterable[str]) -> dict[str, tuple[str, str, pl.Expr]]:
    """The rules :func:`validate` applies to a frame with these columns: key → (column, rule, a
    boolean expression true on every row that breaks it)."""
    present = set(names)
    out: dict[str, tuple[str, str, pl.Expr]] = {}
    for col in COLUMNS:
        if col.name not in present:
            continue
        c = pl.col(col.name)
        if not col.nullable:
            out[f"{col.name}|null"] = (col.name, "null in a column that allows no nulls", c.is_null())
        if col.allowed:
            out[f"{col.name}|enum"] = (col.name, f"value not one of: {', '.join(col.allowed)}",
                                       c.is_not_null() & ~c.is_in(col.allowed))
    for start, end in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        if {start, end} <= present:
            out[f"{start}|order"] = (start, f"{start} not before {end}",
                                     (pl.col(start) >= pl.col(end)).fill_null(False))
    if "Tags" in present:
        out["Tags|object"] = ("Tags", "not a JSON object (FOCUS Tags are key-value JSON)",
                              tags_not_object(pl.col("Tags")))
    for cur in ("BillingCurrency", "PricingCurrency"):
        if cur in present:
            c = pl.col(cur)
            out[f"{cur}|iso"] = (cur, "not an ISO 4217 currency code",
                                 c.is_not_null() & ~c.is_in(sorted(currency_codes())))
    return out


def not_json_objects(values: Iterable[str | None]) -> set[str]:
    """The values that are not a JSON object (FOCUS Tags must be one): ``[1,2,3]``, ``{not json``, ``"x"``."""
    bad = set()
    for v in values:
        if v is None:
            continue
        try:
            ok = isinstance(json.loads(v), dict)
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            bad.add(v)
    return bad


def tags_not_object(tags: pl.Expr) -> pl.Expr:
    """True on a row whose Tags is set and not a JSON object. Parses each distinct value once per batch
    (DESIGN: work on distinct values), not every row."""
    def flag(s: pl.Series) -> pl.Series:
        return s.is_in(sorted(not_json_objects(s.unique().to_list())))

    return tags.map_batches(flag, return_dtype=pl.Boolean, is_elementwise=True)


WARNING_RULES = ("ConsumedQuantity|negative",)


def warning_checks(names: Iterable[str]) -> dict[str, tuple[str, str, pl.Expr]]:
    """Rules over single rows that real bills may break and still be the bill: reported as warnings
    (they do not refuse a file). key → (column, rule, an expression true on every row that breaks it)."""
    present = set(names)
    out: dict[str, tuple[str, str, pl.Expr]] = {}
    if {"ConsumedQuantity", "ChargeCategory"} <= present:
        out["ConsumedQuantity|negative"] = (
            "ConsumedQuantity", "negative on a Usage row",
            ((pl.col("ChargeCategory") == "Usage") & (pl.col("ConsumedQuantity") < 0)).fill_null(False))
    return out


def _pairs(lf: pl.LazyFrame, names: set[str]) -> dict[str, pl.DataFrame]:
    """The distinct (column, ServiceCategory) pairs and their rows that the rules over groups of rows
    read: small, and mergeable across any cut of the rows."""
    out = {}
    for col in ("ServiceName", "ServiceSubcategory"):
        if {col, "ServiceCategory"} <= names:
            out[col] = lf.group_by(col, "ServiceCategory").agg(pl.len().alias("rows")).collect()
    return out


def _cross_row_problems(pairs: Mapping[str, pl.DataFrame]) -> list[Problem]:
    """Rules over groups of rows, reported as warnings (real exports break them and are still the
    bill): each ServiceName maps to one ServiceCategory; each ServiceSubcategory sits under its own
    ServiceCategory."""
    out: list[Problem] = []
    if "ServiceName" in pairs:
        multi = (pairs["ServiceName"].group_by("ServiceName")
                 .agg(pl.col("ServiceCategory").n_unique().alias("n"), pl.col("rows").sum())
                 .filter(pl.col("n") > 1))
        if multi.height:
            out.append(Problem("ServiceName", "maps to more than one ServiceCategory", int(multi["rows"].sum()),
                               tuple(multi["ServiceName"].sort().head(3).to_list()), "ServiceName|category", "warning"))
    if "ServiceSubcategory" in pairs:
        bad = sorted((sub, cat, n) for sub, cat, n in pairs["ServiceSubcategory"].iter_rows()
                     if sub is not None and sub in SUBCATEGORY_PARENT and SUBCATEGORY_PARENT[sub] != cat)
        if bad:
            out.append(Problem("ServiceSubcategory", "not a subcategory of the row's ServiceCategory",
                               sum(n for *_, n in bad), tuple(f"{sub} under {cat}" for sub, cat, _ in bad[:3]),
                               "ServiceSubcategory|parent", "warning"))
    return out


def count(lf: pl.LazyFrame, flags: Mapping[str, pl.Expr]) -> dict[str, int]:
    """How many rows each boolean expression holds on (null counts as false), in one pass."""
    if not flags:
        return {}
    row = lf.select(e.fill_null(False).cast(pl.UInt32).sum().alias(k) for k, e in flags.items()).collect()
    return {k: int(v) for k, v in row.row(0, named=True).items()}


@dataclass(frozen=True)
class Tally:
    """What :func:`validate` learns from some rows, mergeable with the tallies of other rows
    (:func:`problems`): rows breaking each rule, up to three example values of each broken rule
    (the smallest, so any cut of the rows gives the same three), and the pairs the rules over groups
    of rows read."""

    columns: tuple[str, ...]
    counts: dict[str, int]
    examples: dict[str, list[str | None]]
    pairs: dict[str, pl.DataFrame]


EXAMPLES = 3


def _example_order(v: str | None) -> tuple[bool, str]:
    return v is not None, v or ""


def tally(frame: pl.LazyFrame | pl.DataFrame, counts: Mapping[str, int] | None = None) -> Tally:
    """The :class:`Tally` of ``frame``: one pass over the data (none when ``counts``, the
    :func:`count` of every rule in :func:`checks`, was taken alongside other tallies), plus one small
    query per rule broken and one for the rules over groups of rows."""
    lf = frame.lazy()
    names = lf.collect_schema().names()
    both = checks(names) | warning_checks(names)
    todo = {k: e for k, (_, _, e) in both.items() if counts is None or k not in counts}
    counts = {**{k: v for k, v in (counts or {}).items() if k in both}, **count(lf, todo)}
    examples = {}
    for key, (column, _, expr) in both.items():
        if counts[key]:
            values = (lf.filter(expr).select(pl.col(column).cast(pl.String)).unique()
                      .sort(column, nulls_last=False).limit(EXAMPLES).collect().to_series().to_list())
            examples[key] = values
    return Tally(tuple(names), counts, examples, _pairs(lf, set(names)) if both else {})


def problems(tallies: Sequence[Tally]) -> list[Problem]:
    """The problems of all the rows the ``tallies`` were taken from, as :func:`validate` of them
    together would report."""
    if not tallies:
        return []
    names = list(dict.fromkeys(c for t in tallies for c in t.columns))
    rules, warn = checks(names), warning_checks(names)
    out: list[Problem] = []
    for key, (column, rule, _) in (rules | warn).items():
        n = sum(t.counts.get(key, 0) for t in tallies)
        if n:
            ex = sorted({v for t in tallies for v in t.examples.get(key, [])}, key=_example_order)[:EXAMPLES]
            out.append(Problem(column, rule, n, tuple("null" if v is None else v for v in ex), key,
                               "warning" if key in warn else "error"))
    pairs = {}
    for col in ("ServiceName", "ServiceSubcategory"):
        frames = [t.pairs[col] for t in tallies if col in t.pairs]
        if frames:
            merged = pl.concat(frames, how="vertical_relaxed")
            pairs[col] = merged.group_by(col, "ServiceCategory").agg(pl.col("rows").sum())
    return out + _cross_row_problems(pairs)


def validate(frame: pl.LazyFrame | pl.DataFrame, counts: Mapping[str, int] | None = None) -> list[Problem]:
    """Problems in a conformed frame: nulls where FOCUS forbids them, values outside the enumerations,
    ChargePeriodStart ≥ ChargePeriodEnd (and the same for billing periods), unknown currency codes, Tags
    that are not a JSON object; and, as warnings, a negative ConsumedQuantity on a Usage row
    (:func:`warning_checks`) and the rules over groups of rows.

    Returns an empty list when the frame keeps every rule checked. Problems of severity ``warning``
    do not stop an ingest. See :func:`tally` for what it reads (``counts``)."""
    return problems([tally(frame, counts)])


# Account types as each provider's own FOCUS exports name them (used when an older export lacks them).
ACCOUNT_TYPES: dict[str, tuple[str, str]] = {
    "aws": ("Payer Account", "Linked Account"),
    "gcp": ("Billing Account", "Project"),
    "azure": ("Billing Account", "Subscription"),
    "oci": ("Tenancy", "Compartment"),
}


def upgrade(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Fill the columns FOCUS 1.1 and 1.2 added, where an older export leaves them null and FOCUS
    defines them from columns it has (nulls only; values present are kept):

    - ServiceSubcategory: ``Other (<ServiceCategory>)``, the spec's catch-all under each category;
    - BillingAccountType / SubAccountType: the provider's own names (:data:`ACCOUNT_TYPES`), the
      latter only where SubAccountId is set;
    - PricingCurrency and the PricingCurrency* prices: older FOCUS had one currency, so the billing
      currency and the billing-currency figures;
    - SkuMeter, where SkuId is set: the ServiceName, the coarsest meter there is.
    """
    from finops.providers import spellings

    bat = pl.lit("Billing Account")
    sat = pl.lit("Sub Account")
    for key, (b, sa) in ACCOUNT_TYPES.items():
        is_key = pl.col("ProviderName").is_in(spellings(key))
        bat = pl.when(is_key).then(pl.lit(b)).otherwise(bat)
        sat = pl.when(is_key).then(pl.lit(sa)).otherwise(sat)
    same_currency = pl.col("PricingCurrency").is_null()
    return lf.with_columns(
        pl.col("ServiceSubcategory").fill_null(
            pl.concat_str(pl.lit("Other ("), pl.col("ServiceCategory"), pl.lit(")"))),
        pl.col("BillingAccountType").fill_null(pl.when(pl.col("BillingAccountId").is_not_null()).then(bat)),
        pl.col("SubAccountType").fill_null(pl.when(pl.col("SubAccountId").is_not_null()).then(sat)),
        pl.col("PricingCurrency").fill_null(pl.col("BillingCurrency")),
        pl.when(same_currency).then(pl.col("PricingCurrencyEffectiveCost").fill_null(pl.col("EffectiveCost")))
        .otherwise(pl.col("PricingCurrencyEffectiveCost")).alias("PricingCurrencyEffectiveCost"),
        pl.when(same_currency).then(pl.col("PricingCurrencyListUnitPrice").fill_null(pl.col("ListUnitPrice")))
        .otherwise(pl.col("PricingCurrencyListUnitPrice")).alias("PricingCurrencyListUnitPrice"),
        pl.when(same_currency).then(pl.col("PricingCurrencyContractedUnitPrice").fill_null(pl.col("ContractedUnitPrice")))
        .otherwise(pl.col("PricingCurrencyContractedUnitPrice")).alias("PricingCurrencyContractedUnitPrice"),
        pl.col("SkuMeter").fill_null(pl.when(pl.col("SkuId").is_not_null()).then(pl.col("ServiceName"))),
    )


@dataclass(frozen=True)
class BadValue:
    """A value that does not parse as its FOCUS type: column, 0-based data row, the raw text."""

    column: str
    row: int
    value: str


def bad_values(raw: pl.LazyFrame, limit: int = 5) -> list[BadValue]:
    """Find values of ``raw`` (as read, before :func:`conform`) that conform cannot parse.

    The slow path behind a strict conform that failed: it compares a lenient conform with the raw
    text and reports the first ``limit`` failures with their row numbers.
    """
    renamed = raw.rename(rename_map(raw.collect_schema().names()))
    names = renamed.collect_schema().names()
    typed = [c for c in COLUMNS if c.name in names and c.kind in (Kind.DECIMAL, Kind.DATETIME)]
    if not typed:
        return []
    lenient = conform(renamed, strict=False)
    raw_cols = renamed.select([pl.col(c.name).cast(pl.String).alias(f"raw:{c.name}") for c in typed])
    both = pl.concat([raw_cols, lenient.select([c.name for c in typed])], how="horizontal").with_row_index("__row")
    out: list[BadValue] = []
    for c in typed:
        r = pl.col(f"raw:{c.name}")
        bad = r.is_not_null() & ~r.is_in(NULL_STRINGS) & pl.col(c.name).is_null()
        rows = both.filter(bad).select("__row", r).limit(limit).collect()
        out.extend(BadValue(c.name, int(i), str(v)) for i, v in rows.iter_rows())
    return sorted(out, key=lambda b: b.row)[:limit]


def empty_frame() -> pl.DataFrame:
    """An empty frame with the FOCUS 1.2 schema."""
    return pl.DataFrame(schema={c.name: c.dtype for c in COLUMNS})


def dumps_tags(tags: dict[str, object] | None) -> str | None:
    """Serialise a tag mapping as FOCUS key-value JSON (compact, keys sorted)."""
    return None if tags is None else json.dumps(tags, separators=(",", ":"), sort_keys=True)
