"""Allocation: billing rows → team (or project) costs that add up to the bill, to the cent.

Two steps, both pure functions of their inputs:

* :func:`resolve` adds an ``owner`` or a ``pool`` to every row (exactly one of them): the owner from the
  first rule kind in ``precedence`` that yields a known value — tag keys in order, the account's owner,
  patterns on a column — with values case-folded (``ML_Research`` → ``ml-research``) and aliases
  applied; a row matching a shared pool goes to that pool whatever its tags; a row no rule assigns goes
  to ``unallocated``, or to the implicit pool ``(untagged)`` / ``(credits)`` when the rules say to
  redistribute it. Tag JSON is parsed once per distinct tag set and joined back (DESIGN: work on
  distinct values), so aggregate first and resolve the aggregate when rows are many.
* :func:`apportion` turns resolved costs into integer cents per provider, component (``direct`` or a
  pool) and recipient. Largest-remainder rounding at each level — provider total, then components, then
  recipients — so every level sums exactly to the level above, and each provider to its bill rounded
  to the cent. Pools split ``even``-ly, ``proportional``-ly to each recipient's direct spend (over all
  providers; evenly when no recipient has any), or by ``fixed`` percentages; shares are exact fractions until
  the one rounding.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

import polars as pl

from finops.config import AllocationConfig, Config, SharedPool
from finops.focus import not_json_objects, tags_not_object

Dimension = Literal["team", "project"]
UNALLOCATED = "unallocated"
UNTAGGED_POOL = "(untagged)"
CREDITS_POOL = "(credits)"
DIRECT = "direct"
CREDIT_CATEGORIES = ("Credit", "Adjustment")


class AllocationError(ValueError):
    """Rules that cannot be applied to the data (e.g. no recipient for a fixed split)."""


@dataclass(frozen=True)
class Rules:
    """The allocation rules for one dimension, resolved from the configuration."""

    dimension: Dimension = "team"
    tags: tuple[str, ...] = ("finops-team", "team", "Team")
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Normalised spelling → canonical name."""
    known: frozenset[str] = frozenset()
    """Canonical names; when non-empty, any other value is not an owner (the next rule is tried)."""
    accounts: Mapping[str, str] = field(default_factory=dict)
    """SubAccountId → owner."""
    patterns: tuple[tuple[str, str, str | None], ...] = ()
    """(column, regex, fixed value or None to take the named group ``dimension``)."""
    precedence: tuple[str, ...] = ("tags", "accounts", "patterns")
    pools: tuple[SharedPool, ...] = ()
    untagged: Literal["unallocated", "even", "proportional"] = "unallocated"
    credits: Literal["proportional", "unallocated"] = "proportional"
    basis: Literal["EffectiveCost", "BilledCost"] = "EffectiveCost"

    @property
    def columns(self) -> list[str]:
        """Bill columns the rules read: what an aggregate of the bill must keep to be resolved."""
        cols = {"ProviderName", "SubAccountId", "ChargeCategory", "Tags"}
        cols |= {c for c, _, _ in self.patterns}
        for p in self.pools:
            cols |= {"SubAccountId", "SubAccountName"} if p.accounts else set()
            cols |= {"ServiceName"} if p.services else set()
            cols |= {"ServiceCategory"} if p.service_categories else set()
        return sorted(cols)


def normalise(value: str) -> str:
    """Case folding and separators: ``ML_Research`` → ``ml-research``."""
    return re.sub(r"[\s_]+", "-", value.strip().lower())


def rules_from_config(cfg: Config, dimension: Dimension = "team") -> Rules:
    """The rules ``cfg`` defines for ``dimension`` (team or project)."""
    a: AllocationConfig = cfg.allocation
    aliases: dict[str, str] = {}
    if dimension == "team":
        groups = {t.name: list(t.aliases) for t in cfg.teams}
        for name, extra in a.aliases.items():
            groups.setdefault(name, []).extend(extra)
        known = frozenset(t.name for t in cfg.teams)
        tags = a.team_tags
    else:
        groups = {n: list(v) for n, v in a.project_aliases.items()}
        known = frozenset()
        tags = a.project_tags
    for name, spellings in groups.items():
        for s in (name, *spellings):
            aliases[normalise(s)] = name
    accounts = {acc.id: getattr(acc, dimension) for p in cfg.providers.values() for acc in p.accounts
                if getattr(acc, dimension)}
    patterns = tuple((r.column, r.pattern, getattr(r, dimension)) for r in a.patterns
                     if getattr(r, dimension) or f"(?P<{dimension}>" in r.pattern)
    pools = tuple(a.shared) if dimension == "team" else tuple(_for_projects(p) for p in a.shared)
    return Rules(dimension, tuple(tags), aliases, known, accounts, patterns, tuple(a.precedence),
                 pools, a.untagged, a.credits, a.basis)


def _for_projects(pool: SharedPool) -> SharedPool:
    """A pool as it splits between projects: its project percentages, else proportionally."""
    fixed = pool.split == "fixed" and bool(pool.project_percentages)
    return pool.model_copy(update={"percentages": pool.project_percentages, "recipients": [],
                                   "split": "fixed" if fixed else
                                   ("proportional" if pool.split == "fixed" else pool.split)})


# -- resolve ---------------------------------------------------------------------------------------
def _canonical(expr: pl.Expr, rules: Rules) -> pl.Expr:
    """Normalised, aliased value; null unless known (when the rules know their names)."""
    v = expr.str.strip_chars().str.to_lowercase().str.replace_all(r"[\s_]+", "-")
    v = v.replace(dict(rules.aliases)) if rules.aliases else v
    v = pl.when(v != "").then(v)
    return pl.when(v.is_in(sorted(rules.known))).then(v) if rules.known else v


def _json_path(key: str) -> str:
    return "$[" + json.dumps(key) + "]"


def tag_owners(tags: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """``Tags`` → ``_by_tags``: the owner the tag keys name, over the distinct tag sets given."""
    found = [_canonical(pl.col("Tags").str.json_path_match(_json_path(k)), rules) for k in rules.tags]
    owner = pl.coalesce(found) if found else pl.lit(None, pl.String)
    # Tags that are not a JSON object (a store written before validate refused them) name no owner.
    owner = pl.when(tags_not_object(pl.col("Tags"))).then(pl.lit(None, pl.String)).otherwise(owner)
    return tags.unique().with_columns(owner.alias("_by_tags"))


def _pattern_owner(rules: Rules) -> pl.Expr:
    found: list[pl.Expr] = []
    for column, regex, value in rules.patterns:
        if value is not None:
            found.append(_canonical(pl.when(pl.col(column).str.contains(regex)).then(pl.lit(value)), rules))
        else:
            found.append(_canonical(pl.col(column).str.extract(regex, group_index=_group(regex, rules.dimension)),
                                    rules))
    return pl.coalesce(found) if found else pl.lit(None, pl.String)


def _group(regex: str, name: str) -> int:
    return re.compile(regex).groupindex[name]


def _account_owner(rules: Rules) -> pl.Expr:
    if not rules.accounts:
        return pl.lit(None, pl.String)
    return _canonical(pl.col("SubAccountId").replace_strict(dict(rules.accounts), default=None,
                                                            return_dtype=pl.String), rules)


def _pool_of(pool: SharedPool) -> pl.Expr:
    conds: list[pl.Expr] = []
    if pool.accounts:
        conds += [pl.col("SubAccountId").is_in(pool.accounts), pl.col("SubAccountName").is_in(pool.accounts)]
    if pool.services:
        conds.append(pl.col("ServiceName").is_in(pool.services))
    if pool.service_categories:
        conds.append(pl.col("ServiceCategory").is_in(pool.service_categories))
    if pool.charge_categories:
        conds.append(pl.col("ChargeCategory").is_in(pool.charge_categories))
    return pl.any_horizontal(conds).fill_null(False) if conds else pl.lit(False)


def resolve(lf: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Add ``owner`` and ``pool`` (exactly one non-null per row) to rows of the bill (or an aggregate of
    it that keeps :attr:`Rules.columns`)."""
    owners = tag_owners(lf.select("Tags"), rules)
    lf = lf.join(owners, on="Tags", how="left", nulls_equal=True)
    by_kind = {"tags": pl.col("_by_tags"), "accounts": _account_owner(rules), "patterns": _pattern_owner(rules)}
    owner = pl.coalesce([by_kind[k] for k in rules.precedence])
    pool: pl.Expr = pl.lit(None, pl.String)
    for p in reversed(rules.pools):  # the first matching pool wins
        pool = pl.when(_pool_of(p)).then(pl.lit(p.name)).otherwise(pool)
    credit = pl.col("ChargeCategory").is_in(CREDIT_CATEGORIES).fill_null(False)
    unowned = (pl.when(credit & pl.lit(rules.credits == "proportional")).then(pl.lit(CREDITS_POOL))
               .when(~credit & pl.lit(rules.untagged != "unallocated")).then(pl.lit(UNTAGGED_POOL)))
    return (lf.with_columns(owner.alias("_owner"), pool.alias("_pool"))
            .with_columns(pl.coalesce(pl.col("_pool"), pl.when(pl.col("_owner").is_null()).then(unowned))
                          .alias("pool"))
            .with_columns(pl.when(pl.col("pool").is_null()).then(pl.coalesce("_owner", pl.lit(UNALLOCATED)))
                          .alias("owner"))
            .drop("_by_tags", "_owner", "_pool"))


def tag_keys(tags: pl.LazyFrame) -> set[str]:
    """Every tag key that occurs in the ``Tags`` column (parsed once per distinct tag set)."""
    keys: set[str] = set()
    for t in tags.select(pl.col("Tags").unique()).collect()["Tags"]:
        if t:
            try:
                parsed = json.loads(t)
            except (ValueError, RecursionError):
                continue
            if isinstance(parsed, dict):  # anything else is malformed: see malformed_tags
                keys |= {str(k) for k in parsed}
    return keys


def malformed_tags(tags: pl.LazyFrame) -> list[str]:
    """The distinct ``Tags`` values that are not a JSON object (their rows count as untagged), sorted."""
    return sorted(not_json_objects(tags.select(pl.col("Tags").unique()).collect()["Tags"].to_list()))


def missing_tag_keys(rules: Rules, present: set[str]) -> str | None:
    """A warning when a rule names tag keys that never occur, listing the keys that do."""
    absent = [k for k in rules.tags if k not in present]
    if not absent:
        return None
    return (f"allocation.{rules.dimension}_tags: tag key(s) {', '.join(absent)} never occur in the data; "
            f"keys that do: {', '.join(sorted(present)) or '(none)'}")


# -- apportion -------------------------------------------------------------------------------------
def cents(amount: Decimal | Fraction) -> int:
    """``amount`` in cents, half away from zero (as invoices round)."""
    return int((Decimal(amount) if isinstance(amount, Decimal) else _dec(amount)).scaleb(2)
               .quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _dec(f: Fraction) -> Decimal:
    return Decimal(f.numerator) / Decimal(f.denominator)


def largest_remainder(target: int, amounts: Mapping[str, Decimal | Fraction]) -> dict[str, int]:
    """Integer cents for each amount, summing exactly to ``target``: floors, then the cents left over
    to the largest fractional remainders (ties by name, so results are deterministic)."""
    if not amounts:
        if target:
            raise AllocationError(f"{target} cents to share and no recipient")
        return {}
    scaled = {k: Fraction(v) * 100 for k, v in amounts.items()}
    out = {k: math.floor(v) for k, v in scaled.items()}
    left = target - sum(out.values())
    order = sorted(scaled, key=lambda k: (-(scaled[k] - out[k]), k))
    whole, rest = divmod(abs(left), len(order))
    step = 1 if left >= 0 else -1
    for i, k in enumerate(order if left >= 0 else reversed(order)):
        out[k] += step * (whole + (1 if i < rest else 0))
    return out


def _weights(pool: str, split: str, rules: Rules, direct: Mapping[str, Decimal]) -> dict[str, Fraction]:
    spec = next((p for p in rules.pools if p.name == pool), None)
    chosen = set(spec.recipients) if spec and spec.recipients else None
    eligible = {k: v for k, v in direct.items() if k != UNALLOCATED and (chosen is None or k in chosen)}
    if split == "fixed" and spec is not None:
        return {k: Fraction(v) for k, v in spec.percentages.items() if v}
    if split == "proportional":
        positive = {k: Fraction(v) for k, v in eligible.items() if v > 0}
        if positive:
            return positive
    if split == "even" and chosen:
        return {k: Fraction(1) for k in chosen}
    return {k: Fraction(1) for k in eligible} or {UNALLOCATED: Fraction(1)}


def _split_of(pool: str, rules: Rules) -> str:
    if pool == CREDITS_POOL:
        return "proportional"
    if pool == UNTAGGED_POOL:
        return rules.untagged
    return next(p.split for p in rules.pools if p.name == pool)


APPORTIONED = {"provider": pl.String, "recipient": pl.String, "component": pl.String, "cents": pl.Int64,
               "exact": pl.String}


def apportion(resolved: pl.LazyFrame, rules: Rules, *, cost: str = "cost") -> pl.LazyFrame:
    """Integer cents per (provider, recipient, component), from rows with ``ProviderName``, ``owner``,
    ``pool`` and a decimal ``cost`` column. Per provider the cents sum to the provider's total rounded
    to the cent; within it each component (``direct`` or a pool) sums to its own share.

    ``exact`` is the unrounded share (a decimal string) for audit."""
    g = (resolved.group_by("ProviderName", "owner", "pool").agg(pl.col(cost).sum().alias("c"))
         .collect())
    by_provider: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    direct: dict[str, Decimal] = defaultdict(Decimal)
    for prov, owner, pool, raw in g.iter_rows():
        c = Decimal(raw or 0)
        by_provider[prov][(DIRECT, owner) if pool is None else (pool, "")] = c
        if pool is None:
            direct[owner] += c
    weights = {pool: _weights(pool, _split_of(pool, rules), rules, direct)
               for comps in by_provider.values() for pool, _ in comps if pool != DIRECT}
    rows: list[tuple[str, str, str, int, str]] = []
    for prov in sorted(by_provider, key=str):
        comps = by_provider[prov]
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (comp, _), c in comps.items():
            totals[comp] += c
        comp_cents = largest_remainder(cents(sum(totals.values(), Decimal(0))), totals)
        for comp, target in comp_cents.items():
            if comp == DIRECT:
                shares: dict[str, Fraction] = {o: Fraction(c) for (k, o), c in comps.items() if k == DIRECT}
            else:
                w = weights[comp]
                total_w = sum(w.values())
                shares = {r: Fraction(totals[comp]) * wr / total_w for r, wr in w.items()}
            for r, n in largest_remainder(target, shares).items():
                rows.append((prov, r, comp, n, str(_dec(shares[r]))))
    return pl.LazyFrame(rows, schema=APPORTIONED, orient="row")


def recipients_total(apportioned: pl.LazyFrame, by: Sequence[str] = ("recipient",)) -> pl.LazyFrame:
    """Direct, shared and total cents per ``by``."""
    is_direct = pl.col("component") == DIRECT
    return (apportioned.group_by(*by)
            .agg(pl.col("cents").filter(is_direct).sum().alias("direct_cents"),
                 pl.col("cents").filter(~is_direct).sum().alias("shared_cents"),
                 pl.col("cents").sum().alias("total_cents")))


def resolve_values(values: Iterable[str | None], rules: Rules) -> list[str | None]:
    """The canonical owner each raw value names (for tests and warnings)."""
    df = pl.DataFrame({"v": list(values)}, schema={"v": pl.String})
    return df.select(_canonical(pl.col("v"), rules))["v"].to_list()
