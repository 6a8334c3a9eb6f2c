"""``finops place``: read the queue, the latest offers, the month's spend and unused commitments, the
capacity left and what was learnt from earlier runs; plan; record the decisions (with the prices used) in
the ledger.

What was learnt (:mod:`finops.learning`) is applied to the offers here: a spot offer's interruption rate
becomes the blend of its configured rate with the preemptions our runs met per hour on its (provider,
region, family); an offer's compute and rework cost is multiplied by the correction learnt for its
(provider, target kind, family), clamped to ``launch.correction_bounds``."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from finops import budgets, learning
from finops import config as config_mod
from finops import offers as offers_mod
from finops.config import Config
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
    """Month-to-date EffectiveCost per team in USD (direct spend, by the allocation rules)."""
    return budgets.team_spend(billing, cfg, now, usd=lambda c: usd_per(c, cfg, "billing data in"))


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
    blocks = [(b.provider, b.region, b.instance_type, b.market, b.target) for b in ledger.blocks(now)]
    offers = candidates.prepare_offers(lf, blocked=pc.blocked, stale=pc.stale, targets=cfg.launch.all_targets(),
                                       blocks=blocks)
    offers = learn(offers, ledger, cfg.launch)
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


def learn(offers: pl.DataFrame, ledger: Ledger, launch: config_mod.LaunchConfig) -> pl.DataFrame:
    """``offers`` (prepared) with learnt interruption rates and cost corrections applied."""
    seen = learning.observed(ledger.run_hours())
    if seen:
        spot = offers.filter(pl.col("market") == "spot").select(
            "provider", "region", "instance_type", pl.col("interruption_rate").fill_null(0.0)).unique()
        rows = []
        for p, r, it, prior in spot.iter_rows():
            obs = seen.get((p, r, learning.family(p, it)))
            if obs is not None:
                rows.append((p, r, it, learning.blend(prior, obs.hours, obs.preemptions,
                                                      launch.interruption_prior_hours)))
        rates = pl.DataFrame(rows, schema=["provider", "region", "instance_type", "interruption_rate"],
                             orient="row")
        offers = costing.with_learnt_rates(offers, rates)
    learnt = learning.corrections(ledger.corrections(), launch.correction_bounds)
    if learnt:
        rows_c = []
        for p, kind, it in offers.select("provider", "target_kind", "instance_type").unique().iter_rows():
            got = learnt.get((p, kind, learning.family(p, it)))
            if got is not None:
                rows_c.append((p, kind, it, got.factor, got.note()))
        factors = pl.DataFrame(rows_c, schema=["provider", "target_kind", "instance_type", "factor", "note"],
                               orient="row")
        offers = costing.with_corrections(offers, factors)
    return offers


def workload_targets(spec: WorkloadSpec, cfg: Config) -> tuple[list[str], list[str]]:
    """The launch targets a workload may use — its spec's ``launch.targets``, else its team's
    ``launch_targets``, else ``launch.default`` — and those of its spec's names that are not configured."""
    known = cfg.launch.all_targets()
    if spec.launch.targets:
        return [t for t in spec.launch.targets if t in known], [t for t in spec.launch.targets if t not in known]
    team = next((t for t in cfg.teams if t.name == spec.team), None)
    return list(team.launch_targets if team and team.launch_targets else cfg.launch.default), []


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
    allowed: dict[int, list[str]] = {}
    for q in queued:
        team = teams(q.spec.team) if teams else q.spec.team
        if team is None:
            refused.append(Unplaced(workload_id=q.id, name=q.name, team=q.team,
                                    reason=f"{unknown_team(q.spec.team, cfg)}: cancel it (`finops queue cancel "
                                           f"{q.id}`) and queue it again with a configured team"))
            continue
        spec = q.spec if team == q.spec.team else q.spec.model_copy(update={"team": team})
        ok, unknown = workload_targets(spec, cfg)
        if unknown:
            refused.append(Unplaced(workload_id=q.id, name=q.name, team=q.team,
                                    reason=f"launch.targets names unknown target(s) {', '.join(map(repr, unknown))} "
                                           f"(configured: {', '.join(cfg.launch.all_targets())}): cancel it and "
                                           "queue it again with configured targets"))
            continue
        specs.append((q.id, spec))
        allowed[q.id] = ok
    offers, limits = gather(cfg, store, ledger, now)
    home = {**(home or {}), **{t.name: t.home_provider for t in cfg.teams if t.home_provider}}
    p = plan(specs, offers, limits, home=home, now=now,
             restart_hours=cfg.placement.restart_overhead_minutes / 60, egress=egress_rates(cfg),
             time_limit=cfg.placement.time_limit_seconds, mip_rel_gap=cfg.placement.mip_rel_gap,
             force_milp=force_milp, targets=allowed)
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
    return place(demo_config(cfg, names), store, ledger, now=now, home=homes)


def demo_config(cfg: Config, teams: list[str]) -> Config:
    """``cfg`` as the demo places with it: stale prices allowed (the shipped snapshot) and the generated
    ``teams`` known beside any configured ones (the generated workloads are theirs)."""
    known = configured_teams(cfg)
    extra = [config_mod.Team(name=n) for n in teams if known is not None and known(n) is None]
    return cfg.model_copy(update={"placement": cfg.placement.model_copy(update={"stale": "allow"}),
                                  "teams": [*cfg.teams, *extra]})
