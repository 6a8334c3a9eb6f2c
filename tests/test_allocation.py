"""Allocation rules: resolution of owners and pools, and apportionment in cents that conserves money.

The property tests compare against a plain-Python reference of the rules (json.loads per row, dict
lookups), not against the code under test.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops import allocation as alloc
from finops import config, focus

TEAMS = ["ml-research", "vision", "nlp"]
SPELLINGS = ["ML-Research", "ml_research", "ML Research", "ml-research", "Vision", "VISION", "nlp", "Nlp",
             "growth", "", "research"]
TAG_KEYS = ["team", "Team", "finops-team", "owner"]
ACCOUNTS = ["a1", "a2", "a3", "shared-acc"]
SCHEMA = {"ProviderName": pl.String, "SubAccountId": pl.String, "SubAccountName": pl.String,
          "ServiceName": pl.String, "ServiceCategory": pl.String, "ChargeCategory": pl.String,
          "ResourceName": pl.String, "Tags": pl.String, "cost": focus.DECIMAL}
POOL_SPECS = [{"name": "platform", "accounts": ["shared-acc"]},
              {"name": "net", "service_categories": ["Networking"]},
              {"name": "tax", "charge_categories": ["Tax"]}]


# -- a reference implementation of the rules, row by row ------------------------------------------
def _canon(v: Any, aliases: dict[str, str], known: set[str]) -> str | None:
    if v is None:
        return None
    s = re.sub(r"[\s_]+", "-", str(v).strip().lower())
    s = aliases.get(s, s)
    if not s or (known and s not in known):
        return None
    return s


def reference(row: dict[str, Any], cfg: config.Config) -> tuple[str | None, str | None]:
    a = cfg.allocation
    aliases = {re.sub(r"[\s_]+", "-", s.strip().lower()): t.name for t in cfg.teams for s in (t.name, *t.aliases)}
    known = {t.name for t in cfg.teams}
    for p in a.shared:
        if ((row["SubAccountId"] in p.accounts or row["SubAccountName"] in p.accounts)
                or row["ServiceName"] in p.services or row["ServiceCategory"] in p.service_categories
                or row["ChargeCategory"] in p.charge_categories):
            return None, p.name
    tags = json.loads(row["Tags"]) if row["Tags"] else {}
    by_tags = next((c for k in a.team_tags if k in tags for c in [_canon(tags[k], aliases, known)] if c), None)
    accounts = {acc.id: acc.team for prov in cfg.providers.values() for acc in prov.accounts}
    by_account = _canon(accounts.get(row["SubAccountId"]), aliases, known)
    by_pattern = None
    for r in a.patterns:
        m = re.search(r.pattern, row[r.column] or "")
        if m:
            by_pattern = _canon(r.team or m.group("team"), aliases, known)
            if by_pattern:
                break
    cands = {"tags": by_tags, "accounts": by_account, "patterns": by_pattern}
    owner = next((cands[k] for k in a.precedence if cands[k]), None)
    if owner:
        return owner, None
    credit = row["ChargeCategory"] in ("Credit", "Adjustment")
    if credit and a.credits == "proportional":
        return None, alloc.CREDITS_POOL
    if not credit and a.untagged != "unallocated":
        return None, alloc.UNTAGGED_POOL
    return alloc.UNALLOCATED, None


# -- strategies -----------------------------------------------------------------------------------
@st.composite
def percentages(draw: st.DrawFn) -> dict[str, int]:
    chosen = draw(st.lists(st.sampled_from(TEAMS), min_size=1, max_size=3, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(chosen) - 1, max_size=len(chosen) - 1)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return dict(zip(chosen, parts, strict=True))


@st.composite
def rule_sets(draw: st.DrawFn) -> config.Config:
    pools = []
    for spec in draw(st.lists(st.sampled_from(POOL_SPECS), max_size=3, unique_by=lambda p: p["name"])):
        split = draw(st.sampled_from(["even", "proportional", "fixed"]))
        pools.append({**spec, "split": split, **({"percentages": draw(percentages())} if split == "fixed" else {})})
    patterns = [{"pattern": r"^(?P<team>[a-z]+)-res"}] if draw(st.booleans()) else []
    account_teams = draw(st.dictionaries(st.sampled_from(ACCOUNTS[:3]), st.sampled_from([*TEAMS, "Vision"]),
                                         max_size=3))
    return config.parse({
        "teams": [{"name": "ml-research", "aliases": ["research"]}, {"name": "vision"}, {"name": "nlp"}],
        "providers": {"aws": {"accounts": [{"id": k, "team": v} for k, v in account_teams.items()]}},
        "allocation": {
            "team_tags": draw(st.lists(st.sampled_from(TAG_KEYS), min_size=1, max_size=3, unique=True)),
            "precedence": draw(st.permutations(["tags", "accounts", "patterns"])),
            "patterns": patterns, "shared": pools,
            "untagged": draw(st.sampled_from(["unallocated", "even", "proportional"])),
            "credits": draw(st.sampled_from(["proportional", "unallocated"]))}})


@st.composite
def bills(draw: st.DrawFn, negative: bool = True) -> pl.DataFrame:
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        cat = draw(st.sampled_from(["Usage", "Usage", "Usage", "Tax"] + (["Credit", "Adjustment"] if negative else [])))
        micros = draw(st.integers(0, 5_000_000_000))
        if cat in ("Credit", "Adjustment"):
            micros = -micros
        tags = draw(st.none() | st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(SPELLINGS), max_size=3))
        acc = draw(st.sampled_from(ACCOUNTS))
        rows.append({"ProviderName": draw(st.sampled_from(["AWS", "Google Cloud", "Microsoft"])),
                     "SubAccountId": acc, "SubAccountName": f"name of {acc}",
                     "ServiceName": draw(st.sampled_from(["EC2", "S3", "Data Transfer"])),
                     "ServiceCategory": draw(st.sampled_from(["Compute", "Storage", "Networking"])),
                     "ChargeCategory": cat,
                     "ResourceName": draw(st.sampled_from(["vision-res-1", "nlp-res-2", "Growth-res", "misc", None])),
                     "Tags": focus.dumps_tags(tags), "cost": Decimal(micros).scaleb(-6)})
    return pl.DataFrame(rows, schema=SCHEMA)


def _exact_direct(df: pl.DataFrame, cfg: config.Config) -> dict[str, Fraction]:
    out: dict[str, Fraction] = defaultdict(Fraction)
    for r in df.iter_rows(named=True):
        owner, pool = reference(r, cfg)
        if pool is None:
            out[owner] += Fraction(r["cost"])
    return out


# -- properties -----------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), bills())
def test_every_row_gets_exactly_one_owner_or_pool_as_the_rules_say(cfg: config.Config, df: pl.DataFrame) -> None:
    rules = alloc.rules_from_config(cfg)
    res = alloc.resolve(df.lazy().with_row_index("i"), rules).collect().sort("i")
    assert res.height == df.height
    assert (res["owner"].is_null() ^ res["pool"].is_null()).all()
    expected = [reference(r, cfg) for r in df.iter_rows(named=True)]
    assert list(zip(res["owner"], res["pool"], strict=True)) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), bills())
def test_money_is_conserved_to_the_cent_per_provider_and_overall(cfg: config.Config, df: pl.DataFrame) -> None:
    rules = alloc.rules_from_config(cfg)
    ap = alloc.apportion(alloc.resolve(df.lazy(), rules), rules).collect()
    for prov, part in df.group_by("ProviderName"):
        exact = sum(part["cost"].to_list(), Decimal(0))
        got = ap.filter(pl.col("provider") == prov[0])["cents"].sum()
        assert got == int((exact * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert set(ap["provider"]) <= set(df["ProviderName"])
    # each team's direct share is its exact direct cost to within one cent
    direct = ap.filter(pl.col("component") == alloc.DIRECT).group_by("provider", "recipient").agg(pl.col("cents").sum())
    for prov, part in df.group_by("ProviderName"):
        exact = _exact_direct(part, cfg)
        for owner, value in exact.items():
            got = direct.filter((pl.col("provider") == prov[0]) & (pl.col("recipient") == owner))["cents"].sum()
            assert abs(got - value * 100) < 1, (prov, owner)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), bills(negative=False))
def test_shares_are_non_negative_where_costs_are_and_splits_follow_their_rule(cfg: config.Config,
                                                                               df: pl.DataFrame) -> None:
    rules = alloc.rules_from_config(cfg)
    ap = alloc.apportion(alloc.resolve(df.lazy(), rules), rules).collect()
    assert (ap["cents"] >= 0).all()
    direct = _exact_direct(df, cfg)
    pools = {p.name: p for p in cfg.allocation.shared}
    for (_prov, comp), part in ap.filter(pl.col("component") != alloc.DIRECT).group_by("provider", "component"):
        shares = dict(zip(part["recipient"], part["cents"], strict=True))
        total = sum(shares.values())
        split = pools[comp].split if comp in pools else ("proportional" if comp == alloc.CREDITS_POOL
                                                         else cfg.allocation.untagged)
        if split == "fixed":
            for team, pct in pools[comp].percentages.items():
                if pct:
                    assert abs(shares[team] - Fraction(total) * Fraction(pct) / 100) <= 1
        elif split == "even":
            assert max(shares.values()) - min(shares.values()) <= 1
        elif alloc.UNALLOCATED not in shares:
            weights = {t: direct[t] for t in shares}
            if sum(weights.values()) <= 0:  # no recipient has direct spend: the pool splits evenly
                assert max(shares.values()) - min(shares.values()) <= 1
                continue
            for team, got in shares.items():
                assert abs(got - Fraction(total) * weights[team] / sum(weights.values())) <= 1


@given(st.integers(-10**9, 10**9), st.lists(st.fractions(-10**6, 10**6), min_size=1, max_size=12))
def test_largest_remainder_hits_any_target(target: int, amounts: list[Fraction]) -> None:
    got = alloc.largest_remainder(target, {f"k{i}": a for i, a in enumerate(amounts)})
    assert sum(got.values()) == target


# -- examples -------------------------------------------------------------------------------------
def test_case_folding_and_aliases() -> None:
    cfg = config.parse({"teams": [{"name": "ml-research", "aliases": ["research"]}, {"name": "vision"}]})
    rules = alloc.rules_from_config(cfg)
    assert alloc.resolve_values(["ML-Research", "ml_research", " ML Research ", "Research", "vision", "growth", ""],
                            rules) == ["ml-research"] * 4 + ["vision", None, None]


def test_even_and_fixed_splits_to_the_cent() -> None:
    cfg = config.parse({"allocation": {"shared": [
        {"name": "support", "services": ["Support"], "split": "even"},
        {"name": "net", "services": ["Net"], "split": "fixed", "percentages": {"a": 50, "b": 30, "c": 20}}]}})
    rows = [("a", "EC2", "10"), ("b", "EC2", "20"), ("c", "EC2", "30"), (None, "Support", "100"),
            (None, "Net", "0.07")]
    df = pl.DataFrame([{"ProviderName": "AWS", "SubAccountId": "x", "SubAccountName": "x", "ServiceName": s,
                        "ServiceCategory": "Other", "ChargeCategory": "Usage", "ResourceName": None,
                        "Tags": focus.dumps_tags({"team": t} if t else None), "cost": Decimal(c)}
                       for t, s, c in rows], schema=SCHEMA)
    rules = alloc.rules_from_config(cfg)
    ap = alloc.apportion(alloc.resolve(df.lazy(), rules), rules).collect()
    got = {(r["component"], r["recipient"]): r["cents"] for r in ap.iter_rows(named=True)}
    assert sorted(v for (c, _), v in got.items() if c == "support") == [3333, 3333, 3334]
    assert {k[1]: v for k, v in got.items() if k[0] == "net"} == {"a": 4, "b": 2, "c": 1}  # 3.5, 2.1, 1.4
    assert sum(got.values()) == 6000 + 10000 + 7


def test_patterns_capture_the_team_from_names() -> None:
    cfg = config.parse({"allocation": {"team_tags": ["team"], "patterns": [
        {"column": "SubAccountName", "pattern": r"^(?P<team>[a-z-]+)-(prod|nonprod)$"},
        {"column": "ResourceName", "pattern": "^gpu-", "team": "ml-research"}]}})
    df = pl.DataFrame([{"ProviderName": "AWS", "SubAccountId": "1", "SubAccountName": san, "ServiceName": "EC2",
                        "ServiceCategory": "Compute", "ChargeCategory": "Usage", "ResourceName": rn, "Tags": None,
                        "cost": Decimal(1)} for san, rn in (("vision-prod", "x"), ("Platform", "gpu-1"),
                                                             ("Platform", "cpu-1"))], schema=SCHEMA)
    res = alloc.resolve(df.lazy(), alloc.rules_from_config(cfg)).collect()
    assert res["owner"].to_list() == ["vision", "ml-research", alloc.UNALLOCATED]


def test_percentages_not_summing_to_100_name_the_key() -> None:
    with pytest.raises(config.ConfigError, match=r"allocation\.shared\[0\]\.percentages: .*sum to 100 \(got 90\)"):
        config.parse({"allocation": {"shared": [{"name": "p", "split": "fixed", "percentages": {"a": 50, "b": 40}}]}})
    with pytest.raises(config.ConfigError, match=r"allocation\.shared\[0\].*needs percentages"):
        config.parse({"allocation": {"shared": [{"name": "p", "split": "fixed"}]}})


def test_a_tag_key_that_never_occurs_is_reported_with_the_keys_that_do() -> None:
    rules = alloc.rules_from_config(config.parse({"allocation": {"team_tags": ["cost-center", "team"]}}))
    tags = pl.LazyFrame({"Tags": ['{"team":"a","env":"prod"}', None, '{"project":"p"}']})
    msg = alloc.missing_tag_keys(rules, alloc.tag_keys(tags))
    assert msg is not None and "cost-center" in msg and "env, project, team" in msg
    assert alloc.missing_tag_keys(alloc.rules_from_config(config.parse({"allocation": {"team_tags": ["team"]}})),
                              alloc.tag_keys(tags)) is None


def test_secrets_stay_out_but_environment_variable_names_are_allowed() -> None:
    ok = config.parse({"reports": {"email": {"host": "h", "sender": "a@b", "to": ["c@d"],
                                             "password_env": "FINOPS_SMTP_PASSWORD"}}})
    assert ok.reports.email is not None and ok.reports.email.password_env == "FINOPS_SMTP_PASSWORD"
    with pytest.raises(config.ConfigError, match="credentials do not belong"):
        config.parse({"reports": {"email": {"host": "h", "sender": "a@b", "to": ["c@d"], "password": "x"}}})
