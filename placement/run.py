"""``finops place``: read the queue, the latest offers, the month's spend and unused commitments, the
capacity left; plan; record the decisions (with the prices used) in the ledger."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from finops import config as config_mod
from finops import offers as offers_mod
from finops.config import Config
from finops.exprs import recode
from finops.ledger import Ledger
from finops.periods import month_bounds, month_hours_left
from finops.placements import Decision, Unplaced
from finops.workloads import WorkloadSpec, configured_teams, unknown_team
from placement import candidates, costing
from placement.plan import Limits, Plan, plan


def usd_per(currency: str, cfg: Config, what: str) -> float:
    """USD per unit of ``currency`` (``prices.rates``); budgets and spend are compared in USD, as prices are."""
    if currency == "USD":
        return 1.0
    if currency not in cfg.prices.rates:
        raise candidates.PlacementError(f"{what} {currency}: add its rate to USD as prices.rates.{currency} in "
                                        f"finops.toml to compare it with prices")
    return cfg.prices.rates[currency]


def team_spend(billing: pl.LazyFrame, cfg: Config, now: datetime) -> dict[str, float]:
    """Month-to-date EffectiveCost per team (direct spend, by the allocation rules)."""
    from finops.allocation import resolve, rules_from_config

    rules = rules_from_config(cfg, "team")
    cols = billing.collect_schema().names()
    if "EffectiveCost" not in cols:
        return {}
    start = month_bounds(now)[0]
    keep = [c for c in rules.columns if c in cols] + ["BillingCurrency"]
    agg = (billing.filter((pl.col("ChargePeriodStart") >= start) & (pl.col("ChargePeriodStart") < now))
           .group_by(keep).agg(pl.col("EffectiveCost").sum().cast(pl.Float64).alias("cost")).collect())
    rates = {c: usd_per(c, cfg, "billing data in") for c in agg["BillingCurrency"].unique().drop_nulls()}
    usd = agg.lazy().with_columns(pl.col("cost") * recode(pl.col("BillingCurrency"), rates, 1.0, pl.Float64))
    owned = resolve(usd, rules).group_by("owner").agg(pl.col("cost").sum()).collect()
    return {o: c for o, c in owned.iter_rows() if o is not None}


def unused_commitments(billing: pl.LazyFrame, offers: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Commitment pools from the bill's ``Unused`` rows counted in hours: the latest charge period's
    unused instances of each commitment, over the hours left this month, on the instance type named
    in the commitment (matched against the offers of its provider and region)."""
    empty = Limits().pools
    cols = billing.collect_schema().names()
    if "CommitmentDiscountStatus" not in cols:
        return empty
    rows = (billing.filter((pl.col("CommitmentDiscountStatus") == "Unused")
                           & (pl.col("CommitmentDiscountUnit") == "Hours")
                           & pl.col("RegionId").is_not_null())
            .sort("ChargePeriodStart").group_by("CommitmentDiscountId").last()
            .select("CommitmentDiscountId", "CommitmentDiscountName", "ProviderName", "RegionId",
                    "ChargePeriodStart", "ChargePeriodEnd", pl.col("PricingQuantity").cast(pl.Float64))
            .collect())
    if rows.is_empty():
        return empty
    from finops import providers

    types = offers.filter(pl.col("market") == "on_demand").select("provider", "region", "instance_type").unique()
    out = []
    left = month_hours_left(now)
    for cid, name, prov, region, start, end, qty in rows.iter_rows():
        p = providers.slug(prov)
        hours = max((end - start).total_seconds() / 3600, 1.0)
        names = types.filter((pl.col("provider") == p) & (pl.col("region") == region))["instance_type"].to_list()
        text = f"{name} {cid}".lower()
        hits = sorted((t for t in names if re.search(rf"(?<![a-z0-9.]){re.escape(t.lower())}(?![a-z0-9.])", text)),
                      key=len)
        if hits and qty and qty > 0:
            out.append({"pool": cid, "provider": p, "region": region, "instance_type": hits[-1],
                        "hours": qty / hours * left})
    return pl.DataFrame(out, schema=empty.schema) if out else empty


def gather(cfg: Config, store: Any, ledger: Ledger, now: datetime) -> tuple[pl.DataFrame, Limits]:
    """Offers ready for the join and the limits left (capacity, budgets, commitments)."""
    pc = cfg.placement
    lf = offers_mod.latest_offers(store, now=now, max_age=timedelta(hours=cfg.prices.max_age_hours),
                                  rates=cfg.prices.rates)
    # spot is costed at no less than its recent level (a dip is not banked), from the price history
    lf = offers_mod.spot_risk(lf, offers_mod.spot_history(store, now=now, rates=cfg.prices.rates), now=now)
    offers = candidates.prepare_offers(lf, blocked=pc.blocked, stale=pc.stale)
    billing = store.scan("billing", {"billing_period": month_bounds(now)[0].strftime("%Y-%m")})
    spend = team_spend(billing, cfg, now)
    holding = ledger.holding(since=month_bounds(now)[0])
    committed: dict[str, float] = {}
    teams = configured_teams(cfg)
    for h in holding:
        team = (teams(h.team) if teams else None) or h.team  # a row queued before teams were checked
        committed[team] = committed.get(team, 0.0) + h.expected_cost
    budgets = {t.name: float(t.monthly_budget) * usd_per(t.currency, cfg, f"team {t.name}'s budget is in")
               - spend.get(t.name, 0.0) - committed.get(t.name, 0.0)
               for t in cfg.teams if t.monthly_budget is not None}
    capacity = []
    held = ledger.holding() if pc.capacity else []
    for lim in pc.capacity:
        used = 0.0
        for h in held:
            for leg in h.legs:
                if all(pat in ("*", val) for pat, val in ((lim.provider, leg.provider), (lim.region, leg.region),
                                                          (lim.accelerator, leg.accelerator_name))):
                    used += leg.accelerators
        capacity.append((lim.provider, lim.region, lim.accelerator, max(lim.limit - used, 0.0)))
    pools = unused_commitments(billing, offers, now)
    return offers, Limits(capacity, budgets, pools)


def _stale_note(cfg: Config, store: Any, now: datetime) -> str:
    """A hint for unplaced workloads when stale offers were left out."""
    if cfg.placement.stale != "exclude":
        return ""
    lf = offers_mod.latest_offers(store, now=now, max_age=timedelta(hours=cfg.prices.max_age_hours))
    n = lf.filter(pl.col("stale")).select(pl.len()).collect().item()
    return (f"; {n:,} offers were left out as stale (older than {cfg.prices.max_age_hours:g} h): "
            "run `finops collect prices`, or set placement.stale = \"allow\"") if n else ""


def egress_rates(cfg: Config) -> costing.EgressRates:
    pc = cfg.placement
    return costing.EgressRates(pc.egress_internet, pc.egress_inter_region,
                               {(e.source, e.destination): e.per_gb for e in pc.egress})


def place(cfg: Config, store: Any, ledger: Ledger, *, dry_run: bool = False, now: datetime | None = None,
          force_milp: bool = False, home: dict[str, str | None] | None = None) -> tuple[str, Plan]:
    """Plan every queued workload and, unless ``dry_run``, record the decisions (one transaction)."""
    now = now or datetime.now(UTC)
    queued, unreadable = ledger.read(["queued"])
    # Checked again here, not only at `queue add`: a row queued by an older finops (or before [[teams]]
    # were listed) must not get past the budgets under a spelling no budget is kept for.
    teams = configured_teams(cfg)
    refused: list[Decision] = [Unplaced(workload_id=u.id, name=u.name, team=u.team, reason=u.problem)
                               for u in unreadable]
    specs: list[tuple[int, WorkloadSpec]] = []
    for q in queued:
        team = teams(q.spec.team) if teams else q.spec.team
        if team is None:
            refused.append(Unplaced(workload_id=q.id, name=q.name, team=q.team,
                                    reason=f"{unknown_team(q.spec.team, cfg)}: cancel it (`finops queue cancel "
                                           f"{q.id}`) and queue it again with a configured team"))
        else:
            specs.append((q.id, q.spec if team == q.spec.team else q.spec.model_copy(update={"team": team})))
    offers, limits = gather(cfg, store, ledger, now)
    home = {**(home or {}), **{t.name: t.home_provider for t in cfg.teams if t.home_provider}}
    p = plan(specs, offers, limits, home=home, now=now,
             restart_hours=cfg.placement.restart_overhead_minutes / 60, egress=egress_rates(cfg),
             time_limit=cfg.placement.time_limit_seconds, mip_rel_gap=cfg.placement.mip_rel_gap,
             force_milp=force_milp)
    stale = _stale_note(cfg, store, now)
    if stale:
        p.decisions = [replace(d, reason=d.reason + stale)
                       if isinstance(d, Unplaced) and d.reason.startswith("no offer fits") else d
                       for d in p.decisions]
    if refused:
        order = {q: i for i, q in enumerate(sorted([q.id for q in queued] + [u.id for u in unreadable]))}
        p.decisions = sorted([*p.decisions, *refused], key=lambda d: order.get(d.workload_id, len(order)))
    run_id = uuid.uuid4().hex[:12]
    if not dry_run and p.decisions:
        ledger.record(run_id, p.decisions)
    return run_id, p


def demo(cfg: Config, store: Any, *, n: int = 200, seed: int = 0, teams: int = 6,
         now: datetime | None = None) -> tuple[str, Plan]:
    """``make demo``: queue ``n`` generated workloads for the generated organisation's teams and place
    them. The demo's prices are the shipped catalog snapshot, so stale prices are used (and said so)."""
    from finops.generate import PROVIDER_KEYS, make_org
    from finops.generate.workloads import workloads

    ledger = Ledger(cfg.ledger_url())
    org = make_org(teams, seed)
    names = [t.name for t in org.teams]
    homes: dict[str, str | None] = {t.name: PROVIDER_KEYS[max(range(3), key=lambda i: t.provider_pref[i])]
                                    for t in org.teams}  # the cloud each generated team uses most
    earlier = [w.id for w in ledger.list(["queued", "placed"]) if w.source == "demo"]
    if earlier:  # a demo run again re-plans its own workloads rather than piling up copies
        ledger.move(earlier, "cancelled")
    active = {w.name for w in ledger.list(["queued", "placed", "submitted", "running"])}
    specs = [s for s in workloads(n, seed=seed, teams=names, now=now) if s.name not in active]
    if specs:
        ledger.add([(s, "demo") for s in specs])
    known = configured_teams(cfg)
    extra = [config_mod.Team(name=n) for n in names if known is not None and known(n) is None]
    relaxed = cfg.model_copy(update={"placement": cfg.placement.model_copy(update={"stale": "allow"}),
                                     "teams": [*cfg.teams, *extra]})  # the generated teams are the demo's own
    return place(relaxed, store, ledger, now=now, home=homes)
