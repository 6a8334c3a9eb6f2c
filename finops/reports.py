"""Weekly chargeback (ISO weeks, UTC) that reconciles to the bill, to the cent.

One pass over the store: the rows from the earliest window needed (previous week, or the start of the
month for month-to-date) to the end of the week are aggregated to one line per distinct key (provider,
currency, account, tags, service, pricing category, SKU details, …) and window segment; rules are
resolved on those lines (:mod:`finops.allocation`), then each window is apportioned in cents. A row
counts in the window holding its ``ChargePeriodStart``.

Per team (or project): direct, shared, total, previous week and change, month-to-date against the
monthly budget, spot share and savings (ListCost − EffectiveCost on ``Dynamic`` pricing), GPU hours and TPU
chip-hours (apart);
views of top services, GPU hours and cost by accelerator, the shared pools and how each was split, the
team × provider split, and the reconciliation: per provider, the store's own total for the week (a
separate query over the raw rows, rounded to the cent) against the sum over teams.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from finops import allocation as alloc
from finops.config import Config
from finops.engine.base import Engine, LocalEngine
from finops.engine.pieces import combine, over_store
from finops.offers import canonical_accelerator, tpu_chips
from finops.periods import Week
from finops.services.progress import QUIET, Progress

MONEY = pl.Decimal(38, 2)


class ReportError(ValueError):
    """A report that cannot be built: no data for the week, currencies without rates, bad week."""


class EmptyWeek(ReportError):
    """No billing row falls in the week."""


# -- accelerators ----------------------------------------------------------------------------------
# Instance type → accelerator, for SKUs whose price details carry a GPU count but not the GPU's name.
_GPU_TYPES: tuple[tuple[str, str], ...] = (
    (r"^(ml\.)?p5", "H100"), (r"^(ml\.)?p4de", "A100-80GB"), (r"^(ml\.)?p4d", "A100-40GB"),
    (r"^(ml\.)?p3", "V100-16GB"), (r"^(ml\.)?g6e", "L40S"), (r"^(ml\.)?g6\.", "L4"), (r"^(ml\.)?g5\.", "A10G"),
    (r"^(ml\.)?g4dn", "T4"), (r"^(ml\.)?trn1", "Trainium"), (r"^(ml\.)?inf2", "Inferentia2"),
    (r"^a3-", "H100"), (r"^a2-ultragpu", "A100-80GB"), (r"^a2-", "A100-40GB"), (r"^g2-", "L4"),
    (r"H100", "H100"), (r"ND96asr_v4|ND40rs", "A100-40GB"), (r"A100", "A100-80GB"), (r"_T4_", "T4"),
    (r"_A10_", "A10"), (r"NC\d+s_v3", "V100-16GB"), (r"NC\d+s_v2", "P100"),
)
_CHIPS_WITHOUT_GPU_COUNT = {"trn1.32xlarge": 16, "trn1.2xlarge": 1, "trn1n.32xlarge": 16}


def accelerator_of(details: str | None) -> tuple[str | None, float]:
    """(accelerator, count per instance) from a row's SkuPriceDetails; (None, 0) for CPU-only SKUs."""
    try:
        d = json.loads(details) if details else {}
    except ValueError:
        return None, 0.0
    if not isinstance(d, dict):
        return None, 0.0
    itype, series = str(d.get("InstanceType") or ""), str(d.get("InstanceSeries") or "")
    if series.upper().startswith("TPU"):
        chips = tpu_chips(f"tpu-{itype}") or 1
        return canonical_accelerator(series.replace(" ", "-")), float(chips)
    count = float(d.get("GpuCount") or _CHIPS_WITHOUT_GPU_COUNT.get(itype, 0))
    if not count:
        return None, 0.0
    named = re.search(r"(\d+)x ([A-Z]\w+)", itype)  # "n1-standard-8 + 1x T4"
    if named:
        return canonical_accelerator(named.group(2)), count
    name = next((n for pat, n in _GPU_TYPES if re.search(pat, itype)), None)
    return name or f"GPU ({itype or 'unknown'})", count


_INSTANCE_TOKENS = re.compile(r"\bStandard_[A-Za-z0-9_]+|\b(?:ml\.)?[a-z][a-z0-9-]*\.(?:\d*x)?large\b"
                              r"|\b[a-z]\d[a-z]?-[a-z]+-\d+g?\b|\bv\d[a-z0-9]*-\d+\b")


def accelerator_from_text(text: str | None, specs: Mapping[str, tuple[str, float]]) -> tuple[str | None, float]:
    """(accelerator, count per instance) for rows without SKU details (native exports mapped to FOCUS):
    an instance type found in ``text`` (the ChargeDescription) looked up in ``specs`` (instance type →
    accelerator and count, from the price offers); TPU slices by name. (None, 0) when nothing is known
    — never a guess."""
    if not text:
        return None, 0.0
    named = re.search(r"\+ (\d+)x ([A-Z]\w+)", text)  # "n1-standard-8 + 1x T4"
    if named:
        return canonical_accelerator(named.group(2)), float(named.group(1))
    for token in _INSTANCE_TOKENS.findall(text):
        found = specs.get(token) or specs.get(token.removeprefix("ml."))
        if found:
            return found
        if "TPU" in text.upper() and re.fullmatch(r"v\d[a-z0-9]*-\d+", token):
            chips = tpu_chips(f"tpu-{token}")
            name = canonical_accelerator(f"tpu-{token}")
            if chips and name and name.startswith("TPU"):
                return name, float(chips)
    return None, 0.0


# -- the report ------------------------------------------------------------------------------------
@dataclass
class Chargeback:
    """The week's chargeback: one frame per view, money as ``Decimal(38, 2)``."""

    week: Week
    dimension: str
    currency: str
    basis: str
    summary: pl.DataFrame
    shared: pl.DataFrame
    providers: pl.DataFrame
    services: pl.DataFrame
    gpus: pl.DataFrame
    reconciliation: pl.DataFrame
    warnings: list[str] = field(default_factory=list)
    part_week_until: datetime | None = None
    """Set when the week was still in progress: the time the report's data stops (a part-week report)."""

    def views(self) -> dict[str, pl.DataFrame]:
        """Each view by name, in display order."""
        return {self.dimension + "s": self.summary, "shared": self.shared, "providers": self.providers,
                "services": self.services, "gpus": self.gpus, "reconciliation": self.reconciliation}

    @property
    def total(self) -> Decimal:
        return Decimal(self.reconciliation.filter(pl.col("provider") == "total")["allocated"].item())

    @property
    def reconciled(self) -> bool:
        return bool((self.reconciliation["difference"] == 0).all())

    def to_json(self) -> dict[str, Any]:
        return {"week": self.week.label, "start": self.week.start.date().isoformat(),
                "end": self.week.end.date().isoformat(), "dimension": self.dimension, "currency": self.currency,
                "basis": self.basis, "reconciled": self.reconciled, "warnings": self.warnings,
                "part_week_until": None if self.part_week_until is None else self.part_week_until.isoformat(),
                **{k: _jsonable(v) for k, v in self.views().items()}}


def _jsonable(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in df.iter_rows(named=True)]


def billing_periods(start: datetime, end: datetime) -> list[str]:
    """Billing periods that can hold charges of [start, end): their months and the one after."""
    out, y, m = [], start.year, start.month
    last = (end - timedelta(microseconds=1))
    stop = (last.year, last.month + 1) if last.month < 12 else (last.year + 1, 1)
    while (y, m) <= stop:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m + 1) if m < 12 else (y + 1, 1)
    return out


def chargeback(store: Any, cfg: Config, week: Week, dimension: alloc.Dimension = "team",
               as_of: int | datetime | None = None, engine: Engine | None = None,
               progress: Progress = QUIET) -> Chargeback:
    """The chargeback for ``week`` from the billing rows in ``store`` under ``cfg``'s rules; with
    ``as_of`` (a store version or an aware datetime), from the bill as the store held it then. The
    rows are aggregated by ``engine`` (default: in this process), the rules applied here."""
    start = min(week.previous().start, week.month_start)
    filters = {"billing_period": billing_periods(start, week.end)}
    rules, cuts = alloc.rules_from_config(cfg, dimension), _segments(week)
    try:
        fn = functools.partial(_partial, rules=rules, cuts=cuts)
        parts = over_store(engine or LocalEngine(), store, "billing", fn, filters=filters, as_of=as_of,
                           what="chargeback", progress=progress)
        if not any(p is not None for p in parts):
            raise EmptyWeek(f"no billing rows in {week.label} ({_span(week)})")
        cb = assemble(merge_partials(parts), cfg, week, dimension, instance_specs(store))
    except EmptyWeek as e:
        periods = sorted({m.partition["billing_period"] for m in store.manifests("billing", as_of=as_of)})
        held = f"billing periods {periods[0]} to {periods[-1]}" if periods else "no billing data (the store is empty)"
        raise EmptyWeek(f"{str(e).split(';')[0]}; the store holds {held}") from None
    now = as_of if isinstance(as_of, datetime) else datetime.now(UTC)
    if week.end > now:
        mark_part_week(cb, now)
    return cb


def mark_part_week(cb: Chargeback, until: datetime) -> None:
    """Say that ``cb`` covers its week only up to ``until`` (the week was still in progress)."""
    cb.part_week_until = until
    cb.warnings.insert(0, f"part-week report: {cb.week.label} ({_span(cb.week)}) was still in progress at "
                          f"{until.astimezone(UTC):%a %d %b %H:%M} UTC; the figures are the charges billed so far, "
                          "not the whole week")


def instance_specs(store: Any) -> dict[str, tuple[str, float]]:
    """Instance type → (accelerator, count), from the price offers in ``store`` (empty without them)."""
    from finops.offers import latest_offers

    try:
        df = (latest_offers(store).filter(pl.col("accelerator_name").is_not_null())
              .select("instance_type", "accelerator_name", "accelerator_count").unique("instance_type").collect())
    except Exception:  # noqa: BLE001 (no offers yet, or an older offers layout: GPU rows then stay unnamed)
        return {}
    return {r[0]: (r[1], float(r[2] or 0)) for r in df.iter_rows() if r[2]}


def _span(week: Week) -> str:
    return f"{week.start:%Y-%m-%d} to {week.end - timedelta(days=1):%Y-%m-%d}"


def _segments(week: Week) -> list[datetime]:
    return sorted({week.previous().start, week.start, week.month_start, week.end})


def _windows(week: Week, cuts: Sequence[datetime]) -> dict[str, list[int]]:
    """The segments (indexes into ``cuts``) that make up the week, the previous week and month to date."""
    def segs(lo: datetime, hi: datetime) -> list[int]:
        return [i for i, c in enumerate(cuts[:-1]) if lo <= c < hi]

    return {"week": segs(week.start, week.end), "previous": segs(week.previous().start, week.start),
            "mtd": segs(week.month_start, week.end)}


def build(lf: pl.LazyFrame, cfg: Config, week: Week, dimension: alloc.Dimension = "team",
          specs: Mapping[str, tuple[str, float]] | None = None) -> Chargeback:
    """The chargeback for ``week`` over FOCUS rows ``lf`` (pure: reads only ``lf``). ``specs`` (instance
    type → accelerator and count) names the accelerators of rows whose SkuPriceDetails say nothing."""
    rules = alloc.rules_from_config(cfg, dimension)
    try:
        return assemble(merge_partials([_partial(lf, rules, _segments(week))]), cfg, week, dimension, specs)
    except EmptyWeek as e:
        raise EmptyWeek(f"{e}; {_held(lf)}") from None


# Partial aggregates: (lines, reconciliation) per piece of the rows, None for a piece with no columns.
Partial = tuple[pl.DataFrame, pl.DataFrame] | None
LINE_VALUES = ("cost", "list_cost", "effective_cost", "hours", "rows")
RECON_VALUES = ("store_total", "rows", "rows_excluded", "purchases_billed")


def _partial(lf: pl.LazyFrame, rules: alloc.Rules, cuts: Sequence[datetime]) -> Partial:
    """What a piece of the rows contributes to a chargeback (runs on a cluster's workers)."""
    if not lf.collect_schema().names():
        return None
    return _aggregate(lf, rules, cuts)


def merge_partials(parts: Sequence[Partial]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pieces' partial aggregates as one: the same lines whatever the cut of the rows."""
    present = [p for p in parts if p is not None]
    if not present:
        return pl.DataFrame(schema={"_seg": pl.Int32}), pl.DataFrame()
    return (combine([p[0] for p in present], LINE_VALUES), combine([p[1] for p in present], RECON_VALUES))


def assemble(partials: tuple[pl.DataFrame, pl.DataFrame], cfg: Config, week: Week,
             dimension: alloc.Dimension = "team", specs: Mapping[str, tuple[str, float]] | None = None) -> Chargeback:
    """The chargeback from the merged partial aggregates: the rules, apportioning and views."""
    specs = specs or {}
    rules = alloc.rules_from_config(cfg, dimension)
    rep = cfg.reports
    cuts = _segments(week)
    lines, recon_raw = partials
    seg = _windows(week, cuts)
    if lines.is_empty() or lines.filter(pl.col("_seg").is_in(seg["week"])).is_empty():
        raise EmptyWeek(f"no billing rows in {week.label} ({_span(week)})")
    lines, recon_raw = _convert(lines, recon_raw, rep.currency, rep.rates)
    warnings = _warnings(lines, rules, cfg)
    resolved = alloc.resolve(lines.lazy(), rules).collect()
    parts = {k: alloc.apportion(resolved.lazy().filter(pl.col("_seg").is_in(v)), rules).collect()
             for k, v in seg.items()}
    this = resolved.filter(pl.col("_seg").is_in(seg["week"]))
    return Chargeback(
        week, dimension, rep.currency, rules.basis,
        _summary(parts, this, cfg, dimension, rep.rates, specs),
        _shared(parts["week"]).rename({"recipient": dimension}),
        _providers(parts["week"]).rename({"recipient": dimension}),
        _services(this, rep.top_services).rename({"owner": dimension}),
        _gpus(this, specs).rename({"owner": dimension}), _reconciliation(parts["week"], recon_raw), warnings)


def _aggregate(lf: pl.LazyFrame, rules: alloc.Rules, cuts: Sequence[datetime]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One line per distinct key and segment; and, by a separate query over the raw rows, the store's
    own per-provider totals for the week (for the reconciliation).

    The week (the last 7 days of ``cuts``) keeps every key its views need; the earlier segments (the
    previous week, month to date) only what the rules read, which is what makes them cheap."""
    basis = rules.basis
    ts = pl.col("ChargePeriodStart")
    week_start, week_end = cuts[-1] - timedelta(days=7), cuts[-1]
    purchase = (pl.col("ChargeCategory") == "Purchase") & pl.col("CommitmentDiscountId").is_not_null()
    # Commitment purchases stay out of the amortised view: their cost is in the covered usage.
    excluded = purchase if basis == "EffectiveCost" else pl.lit(False)
    inner = [(ts >= c).cast(pl.Int32) for c in cuts[1:-1]]
    seg = (pl.sum_horizontal(inner) if inner else pl.lit(0, pl.Int32)).cast(pl.Int32).alias("_seg")
    rule_keys = sorted(set(rules.columns) | {"ProviderName", "BillingCurrency"})
    keys = sorted(set(rule_keys) | {"SubAccountId", "ServiceName", "ChargeCategory", "PricingCategory",
                                    "SkuPriceDetails"})
    hours = ((pl.col("ConsumedUnit") == "Hours") & (pl.col("ChargeCategory") == "Usage")
             & (pl.col("CommitmentDiscountStatus").fill_null("") != "Unused"))
    aggs = [pl.col(basis).sum().alias("cost"), pl.col("ListCost").sum().alias("list_cost"),
            pl.col("EffectiveCost").sum().alias("effective_cost"),
            pl.col("ConsumedQuantity").filter(hours).sum().alias("hours"), pl.len().alias("rows")]
    kept = (ts >= week_start) & (ts < week_end) & ~excluded
    # Usage hours without SkuPriceDetails (native exports): the description names the instance type.
    # Their own query, so the long descriptions are read for those rows only.
    bare = (pl.col("SkuPriceDetails").is_null() & hours).fill_null(False)
    week = lf.filter(kept & ~bare).with_columns(seg).group_by("_seg", *keys).agg(aggs)
    described = (lf.filter(kept & bare).with_columns(seg, pl.col("ChargeDescription").alias("_desc"))
                 .group_by("_seg", "_desc", *keys).agg(aggs))
    before = (lf.filter((ts >= cuts[0]) & (ts < week_start) & ~excluded).with_columns(seg)
              .group_by("_seg", *rule_keys).agg(pl.col(basis).sum().alias("cost"), pl.len().alias("rows")))
    in_week = (ts >= week_start) & (ts < week_end)  # every row, for the reconciliation
    recon = (lf.filter(in_week).group_by("ProviderName", "BillingCurrency")
             .agg(pl.col(basis).filter(~excluded).sum().alias("store_total"), pl.len().alias("rows"),
                  excluded.sum().alias("rows_excluded")))
    # Own query: the reader then decodes BilledCost only for the few purchase rows.
    bought = (lf.filter(in_week & purchase).group_by("ProviderName", "BillingCurrency")
              .agg(pl.col("BilledCost").sum().alias("purchases_billed")))
    w, d, b, r, p = pl.collect_all([week, described, before, recon, bought])
    r = r.join(p, on=["ProviderName", "BillingCurrency"], how="left", nulls_equal=True)
    return pl.concat([w, d, b], how="diagonal_relaxed"), r


def _held(lf: pl.LazyFrame) -> str:
    ts = pl.col("ChargePeriodStart")
    span = lf.select(ts.min().alias("a"), ts.max().alias("b")).collect()
    a, b = span.row(0)
    return "the store is empty" if a is None else f"the store holds charges from {a:%Y-%m-%d} to {b:%Y-%m-%d}"


_MONEY_COLS = ("cost", "list_cost", "effective_cost")


def _convert(lines: pl.DataFrame, recon: pl.DataFrame, currency: str,
             rates: Mapping[str, Decimal]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Amounts in the report currency; a billing currency without a rate is an error, never 1:1."""
    found = sorted(c for c in lines["BillingCurrency"].unique().to_list() if c is not None)
    missing = [c for c in found if c != currency and c not in rates]
    if missing:
        raise ReportError(f"billing currencies {', '.join(missing)} have no rate to {currency}: add them to "
                          f"[reports] rates (e.g. rates = {{ {missing[0]} = 1.08 }}) or set [reports] currency")
    if found == [currency]:
        return lines, recon
    rate = pl.col("BillingCurrency").replace_strict({**{c: str(r) for c, r in rates.items()}, currency: "1"},
                                                    default="1").cast(pl.Decimal(38, 15))

    def conv(df: pl.DataFrame, cols: Sequence[str]) -> pl.DataFrame:
        return df.with_columns([(pl.col(c) * rate).cast(pl.Decimal(38, 15)).alias(c) for c in cols])

    return conv(lines, _MONEY_COLS), conv(recon, ("store_total", "purchases_billed"))


def _warnings(lines: pl.DataFrame, rules: alloc.Rules, cfg: Config) -> list[str]:
    out: list[str] = []
    bad = alloc.malformed_tags(lines.lazy())
    if bad:
        out.append(f"Tags that are not a JSON object (those rows count as untagged): {len(bad)} distinct "
                   f"value(s), e.g. {', '.join(repr(b[:60]) for b in bad[:3])}")
    keys = alloc.tag_keys(lines.lazy())
    w = alloc.missing_tag_keys(rules, keys)
    if w:
        out.append(w)
    if rules.known:
        loose = alloc.Rules(rules.dimension, rules.tags, rules.aliases)
        named = alloc.tag_owners(lines.lazy().select("Tags"), loose).collect()["_by_tags"]
        unknown = sorted({v for v in named.to_list() if v and v not in rules.known})
        if unknown:
            out.append(f"tag values that name no configured {rules.dimension} (those rows fall to the next rule): "
                       f"{', '.join(unknown)}")
    for p in rules.pools:
        stray = sorted(set(p.percentages) - set(rules.known)) if rules.known else []
        if stray:
            out.append(f"allocation.shared {p.name!r}: percentages name unknown {rules.dimension}s: {', '.join(stray)}")
    return out


def _money(cents: int | None) -> Decimal:
    return Decimal(int(cents or 0)).scaleb(-2)


def _pct(part: Decimal, whole: Decimal) -> float | None:
    return None if not whole else round(float(part / whole * 100), 1)


def _round(v: Any) -> Decimal:
    return Decimal(v or 0).quantize(Decimal("0.01"))


def _summary(parts: Mapping[str, pl.DataFrame], this: pl.DataFrame, cfg: Config, dim: str,
             rates: Mapping[str, Decimal], specs: Mapping[str, tuple[str, float]]) -> pl.DataFrame:
    tot = {k: {r["recipient"]: r for r in alloc.recipients_total(v.lazy()).collect().iter_rows(named=True)}
           for k, v in parts.items()}
    direct = this.filter(pl.col("owner").is_not_null())
    spot = (direct.group_by("owner")
            .agg(pl.col("cost").filter(pl.col("PricingCategory") == "Dynamic").sum().alias("spot"),
                 (pl.col("list_cost") - pl.col("effective_cost")).filter(pl.col("PricingCategory") == "Dynamic")
                 .sum().alias("savings"),
                 pl.col("cost").sum().alias("direct")))
    spot_by = {r["owner"]: r for r in spot.iter_rows(named=True)}
    acc_hours = {r["owner"]: r for r in _gpus(this, specs).group_by("owner")
                 .agg(pl.col("gpu_hours").sum(), pl.col("tpu_chip_hours").sum()).iter_rows(named=True)}
    budgets = {t.name: (t.monthly_budget, t.currency) for t in cfg.teams} if dim == "team" else {}
    names = sorted(set(tot["week"]) | {n for n in tot["previous"] if n != alloc.UNALLOCATED},
                   key=lambda n: (n == alloc.UNALLOCATED, n))
    rows = []
    for n in names:
        w, p, m = tot["week"].get(n, {}), tot["previous"].get(n), tot["mtd"].get(n, {})
        total, prev = _money(w.get("total_cents")), (_money(p["total_cents"]) if p else None)
        budget, cur = budgets.get(n, (None, cfg.reports.currency))
        if budget is not None and cur != cfg.reports.currency:
            budget = budget * rates[cur] if cur in rates else None
        mtd = _money(m.get("total_cents"))
        s = spot_by.get(n, {})
        rows.append({dim: n, "direct": _money(w.get("direct_cents")), "shared": _money(w.get("shared_cents")),
                     "total": total, "previous_week": prev, "change": None if prev is None else total - prev,
                     "change_pct": None if prev is None else _pct(total - prev, prev),
                     "month_to_date": mtd, "monthly_budget": None if budget is None else _round(budget),
                     "budget_used_pct": None if budget is None else _pct(mtd, Decimal(budget)),
                     "spot_cost": _round(s.get("spot")), "spot_share_pct": _pct(Decimal(s.get("spot") or 0),
                                                                                  Decimal(s.get("direct") or 0)),
                     "spot_savings": _round(s.get("savings")),
                     "gpu_hours": round(acc_hours.get(n, {}).get("gpu_hours", 0.0), 2),
                     "tpu_chip_hours": round(acc_hours.get(n, {}).get("tpu_chip_hours", 0.0), 2)})
    schema: dict[str, pl.DataType] = {
        dim: pl.String(), "direct": MONEY, "shared": MONEY, "total": MONEY, "previous_week": MONEY,
        "change": MONEY, "change_pct": pl.Float64(), "month_to_date": MONEY, "monthly_budget": MONEY,
        "budget_used_pct": pl.Float64(), "spot_cost": MONEY, "spot_share_pct": pl.Float64(),
        "spot_savings": MONEY, "gpu_hours": pl.Float64(), "tpu_chip_hours": pl.Float64()}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _from_cents(c: str | pl.Expr) -> pl.Expr:
    e = pl.col(c) if isinstance(c, str) else c
    return (e.cast(MONEY) / pl.lit(Decimal(100))).cast(MONEY)


def _cents_frame(df: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    return (df.group_by(*by).agg(pl.col("cents").sum()).sort(*by)
            .with_columns(_from_cents("cents").alias("amount"))
            .drop("cents"))


def _shared(week: pl.DataFrame) -> pl.DataFrame:
    """Each shared pool: its total per provider and what each recipient got."""
    pools = week.filter(pl.col("component") != alloc.DIRECT).rename({"component": "pool"})
    return _cents_frame(pools, ("pool", "provider", "recipient"))


def _providers(week: pl.DataFrame) -> pl.DataFrame:
    is_direct = pl.col("component") == alloc.DIRECT
    g = (week.group_by("recipient", "provider")
         .agg(pl.col("cents").filter(is_direct).sum().alias("d"), pl.col("cents").filter(~is_direct).sum().alias("s"))
         .sort("recipient", "provider"))
    return g.select("recipient", "provider", _from_cents("d").alias("direct"), _from_cents("s").alias("shared"),
                    _from_cents(pl.col("d") + pl.col("s")).alias("total"))


def _services(this: pl.DataFrame, top: int) -> pl.DataFrame:
    """Each owner's top services by direct cost."""
    g = (this.filter(pl.col("owner").is_not_null()).group_by("owner", "ServiceName")
         .agg(pl.col("cost").sum().alias("cost"))
         .sort(["owner", "cost", "ServiceName"], descending=[False, True, False])
         .with_columns(pl.int_range(1, pl.len() + 1).over("owner").alias("rank"))
         .filter(pl.col("rank") <= top))
    return g.select("owner", "rank", pl.col("ServiceName").alias("service"), pl.col("cost").round(2).cast(MONEY))


def _gpus(this: pl.DataFrame, specs: Mapping[str, tuple[str, float]]) -> pl.DataFrame:
    """GPU hours and TPU chip-hours, apart (instance hours × accelerators per instance), and cost, by owner
    and accelerator."""
    skus = this.select("SkuPriceDetails", "_desc").unique()
    acc = [accelerator_of(s) if s else accelerator_from_text(d, specs) for s, d in skus.iter_rows()]
    table = skus.with_columns(pl.Series("accelerator", [a for a, _ in acc], dtype=pl.String),
                              pl.Series("per_instance", [c for _, c in acc], dtype=pl.Float64))
    g = (this.filter(pl.col("owner").is_not_null())
         .join(table, on=["SkuPriceDetails", "_desc"], how="inner", nulls_equal=True)
         .filter(pl.col("accelerator").is_not_null())
         .group_by("owner", "accelerator")
         .agg((pl.col("hours").cast(pl.Float64) * pl.col("per_instance")).sum().round(2).alias("_h"),
              pl.col("cost").sum().round(2).cast(MONEY).alias("cost"))
         .sort("owner", "accelerator"))
    tpu = is_tpu(pl.col("accelerator"))
    return g.select("owner", "accelerator", pl.when(~tpu).then(pl.col("_h")).otherwise(0.0).alias("gpu_hours"),
                    pl.when(tpu).then(pl.col("_h")).otherwise(0.0).alias("tpu_chip_hours"), "cost")


def is_tpu(accelerator: pl.Expr) -> pl.Expr:
    """True for Google TPUs (counted in chip-hours, apart from GPU hours)."""
    return accelerator.str.to_uppercase().str.starts_with("TPU").fill_null(False)


def _reconciliation(week: pl.DataFrame, raw: pl.DataFrame) -> pl.DataFrame:
    """Per provider: the store's total (its own query, rounded to the cent) beside the sum over teams."""
    store = raw.group_by("ProviderName").agg(pl.col("store_total").sum(), pl.col("rows").sum(),
                                             pl.col("purchases_billed").sum(), pl.col("rows_excluded").sum())
    allocated = {r["provider"]: r["cents"] for r in week.group_by("provider").agg(pl.col("cents").sum())
                 .iter_rows(named=True)}
    rows = []
    for r in store.sort("ProviderName").iter_rows(named=True):
        exact = Decimal(r["store_total"] or 0)
        got = allocated.get(r["ProviderName"], 0)
        rows.append({"provider": r["ProviderName"], "rows": r["rows"], "store_total_exact": str(exact),
                     "store_total": _money(alloc.cents(exact)), "allocated": _money(got),
                     "difference": _money(got - alloc.cents(exact)),
                     "commitment_purchases_excluded": _round(r["purchases_billed"] if r["rows_excluded"] else 0)})
    tot = {"provider": "total", "rows": sum(r["rows"] for r in rows),
           "store_total_exact": str(sum((Decimal(r["store_total_exact"]) for r in rows), Decimal(0))),
           **{k: sum((r[k] for r in rows), Decimal("0.00")) for k in ("store_total", "allocated", "difference",
                                                                       "commitment_purchases_excluded")}}
    schema: dict[str, pl.DataType] = {
        "provider": pl.String(), "rows": pl.Int64(), "store_total_exact": pl.String(), "store_total": MONEY,
        "allocated": MONEY, "difference": MONEY, "commitment_purchases_excluded": MONEY}
    return pl.DataFrame([*rows, tot], schema=schema, orient="row")
