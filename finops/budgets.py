"""Team budgets and spend anomalies: what each team has spent this month, what its placed and queued work
will cost, where the month will end, and which days' spend stands out.

**Month-end forecast.** ``spent`` is the month-to-date direct spend (EffectiveCost, teams resolved by the
allocation rules; shared pools are not apportioned here). The daily run-rate is the *median* of the team's
daily spend over the last :data:`RATE_DAYS` complete days of the month (fewer early in the month; days with
no spend count as 0), so one spiky day does not move the forecast. The forecast is
``spent + placed + queued + rate × days_left``, where ``placed`` is the expected cost of the workloads that
hold a placement (placed, submitted, running; their full expected cost, a deliberate over-estimate of
what is still to be billed) and ``queued`` the last expected cost recorded for each queued workload (0
for one never placed). The band uses the spread of the same days: ``rate ± 1.4826·MAD`` per day
(clipped at 0), times the days left.

**Anomalies.** Daily spend per team and service. Each day in the last ``days`` complete days is compared
with the ``window`` days before it: robust score ``(cost − median) / (1.4826·MAD)``; a day is an anomaly
when its score is over ``threshold`` and it is above the median by at least ``min_amount`` (so tiny
series do not alarm). Where MAD is 0 (a flat series), the scale is ``max(5 % of the median,
min_amount)``. Money is in the team's currency (``[[teams]] currency``, via ``prices.rates``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from finops.config import Config, ConfigError
from finops.exprs import recode
from finops.ledger import Ledger, LedgerMissing
from finops.periods import month_bounds

RATE_DAYS = 7
"""Complete days whose median daily spend is the run-rate of the forecast."""
MAD_SCALE = 1.4826
"""MAD × this estimates the standard deviation of normally distributed data."""
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class TeamBudget:
    """One team's month: money in ``currency`` (the team's)."""

    team: str
    currency: str
    budget: Decimal | None
    spent: Decimal
    placed: Decimal
    queued: Decimal
    forecast: Decimal
    low: Decimal
    high: Decimal

    @property
    def share(self) -> float | None:
        """Forecast over budget (None without a positive budget)."""
        if self.budget is None or self.budget <= 0:
            return None
        return float(self.forecast / self.budget)


@dataclass(frozen=True)
class Anomaly:
    """A day whose spend of one team on one service is far above the days before it."""

    team: str
    service: str
    day: date
    cost: float
    median: float
    mad: float
    score: float
    currency: str

    @property
    def key(self) -> str:
        """Identifies the alert (sent once)."""
        return f"anomaly:{self.team}:{self.service}:{self.day.isoformat()}"


def usd_per(currency: str, cfg: Config, what: str) -> float:
    """USD per unit of ``currency`` (``prices.rates``); else :class:`ConfigError` naming ``what``."""
    if currency == "USD":
        return 1.0
    if currency not in cfg.prices.rates:
        raise ConfigError(f"{what} {currency}: add its rate to USD as prices.rates.{currency} in finops.toml")
    return cfg.prices.rates[currency]


def team_costs(billing: pl.LazyFrame, cfg: Config, start: datetime, end: datetime,
               by: tuple[str, ...] = (), usd: Callable[[str], float] | None = None) -> pl.DataFrame:
    """EffectiveCost in USD charged in [start, end) per owner (by the team allocation rules) and the
    extra ``by`` expressions' columns (``day``: the UTC day of ChargePeriodStart; or bill columns).
    Aggregated on the rule columns first, so tags are resolved once per distinct set (DESIGN).
    ``usd`` converts a billing currency (default: :func:`usd_per` from ``prices.rates``)."""
    from finops.allocation import resolve, rules_from_config

    rules = rules_from_config(cfg, "team")
    cols = billing.collect_schema().names()
    empty = pl.DataFrame(schema={"owner": pl.String, **{b: _by_type(b) for b in by}, "cost": pl.Float64})
    if "EffectiveCost" not in cols:
        return empty
    conv = usd or (lambda c: usd_per(c, cfg, "billing data in"))
    keep = [c for c in rules.columns if c in cols] + ["BillingCurrency"]
    extra = [pl.col("ChargePeriodStart").dt.replace_time_zone(None).dt.date().alias("day") if b == "day"
             else pl.col(b).fill_null("(none)") for b in by]
    agg = (billing.filter((pl.col("ChargePeriodStart") >= start) & (pl.col("ChargePeriodStart") < end))
           .group_by([*keep, *extra]).agg(pl.col("EffectiveCost").sum().cast(pl.Float64).alias("cost")).collect())
    if agg.is_empty():
        return empty
    rates = {c: conv(c) for c in agg["BillingCurrency"].unique().drop_nulls()}
    lf = agg.lazy().with_columns(pl.col("cost") * recode(pl.col("BillingCurrency"), rates, 1.0, pl.Float64))
    return (resolve(lf, rules).group_by("owner", *by).agg(pl.col("cost").sum())
            .filter(pl.col("owner").is_not_null()).collect())


def _by_type(name: str) -> Any:
    return pl.Date if name == "day" else pl.String


def team_spend(billing: pl.LazyFrame, cfg: Config, now: datetime,
               usd: Callable[[str], float] | None = None) -> dict[str, float]:
    """Month-to-date EffectiveCost per team in USD (direct spend, by the allocation rules)."""
    got = team_costs(billing, cfg, month_bounds(now)[0], now, usd=usd)
    return {str(o): float(c) for o, c in got.select("owner", "cost").iter_rows()}


def _month_billing(cfg: Config, now: datetime, store: Any | None) -> pl.LazyFrame:
    store = store if store is not None else cfg.open_store()
    return store.scan("billing", {"billing_period": month_bounds(now)[0].strftime("%Y-%m")})


def _ledger_costs(cfg: Config, now: datetime) -> tuple[dict[str, float], dict[str, float]]:
    """Expected cost (USD) of placed/submitted/running work and of queued work, per team."""
    try:
        led = Ledger(cfg.ledger_url(), read_only=True)
    except LedgerMissing:
        return {}, {}
    placed: dict[str, float] = {}
    for h in led.holding(since=month_bounds(now)[0]):
        placed[h.team] = placed.get(h.team, 0.0) + h.expected_cost
    queued_rows = led.list(["queued"])
    team_of = {w.id: w.team for w in queued_rows}
    last: dict[int, float] = {}
    for r in led.placements(list(team_of)) if team_of else []:  # oldest first: the last one wins
        if r.decision.placed:
            last[r.decision.workload_id] = float(getattr(r.decision, "expected_cost", 0.0) or 0.0)
    queued: dict[str, float] = {}
    for wid, cost in last.items():
        queued[team_of[wid]] = queued.get(team_of[wid], 0.0) + cost
    return placed, queued


def _money(x: float) -> Decimal:
    return Decimal(repr(round(x, 2))).quantize(_CENT)


def status(cfg: Config, now: datetime | None = None, store: Any | None = None) -> list[TeamBudget]:
    """Each configured team's month: spent, placed, queued, the month-end forecast and its band (the
    method is in the module's docstring), in the team's currency."""
    now = now or datetime.now(UTC)
    start, end = month_bounds(now)
    billing = _month_billing(cfg, now, store)
    daily = team_costs(billing, cfg, start, now, by=("day",))
    placed, queued = _ledger_costs(cfg, now)
    today = now.astimezone(UTC).date()
    days_left = (end - now).total_seconds() / 86400
    out = []
    for t in cfg.teams:
        per = 1.0 / usd_per(t.currency, cfg, f"team {t.name}'s budget is in")
        rows = daily.filter(pl.col("owner") == t.name)
        spent = float(rows["cost"].sum() or 0.0)
        by_day = dict(zip(rows["day"].to_list(), rows["cost"].to_list(), strict=True))
        full = [by_day.get(today - timedelta(days=k), 0.0) for k in range(1, RATE_DAYS + 1)
                if today - timedelta(days=k) >= start.date()]
        rate = statistics.median(full) if full else (by_day.get(today, 0.0) / max(now.hour / 24, 1 / 24))
        spread = MAD_SCALE * _mad(full) if full else 0.0
        base = spent + placed.get(t.name, 0.0) + queued.get(t.name, 0.0)
        out.append(TeamBudget(
            team=t.name, currency=t.currency, budget=t.monthly_budget, spent=_money(spent * per),
            placed=_money(placed.get(t.name, 0.0) * per), queued=_money(queued.get(t.name, 0.0) * per),
            forecast=_money((base + rate * days_left) * per),
            low=_money((base + max(rate - spread, 0.0) * days_left) * per),
            high=_money((base + (rate + spread) * days_left) * per)))
    return out


def _mad(xs: list[float]) -> float:
    if not xs:
        return 0.0
    m = statistics.median(xs)
    return statistics.median([abs(x - m) for x in xs])


def anomalies(cfg: Config, now: datetime | None = None, *, days: int = 1, window: int = 14,
              threshold: float = 3.5, min_amount: float = 1.0, store: Any | None = None) -> list[Anomaly]:
    """Days among the last ``days`` complete UTC days whose spend of a team on a service is an outlier
    against the ``window`` days before it (method in the module's docstring), largest score first."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days + window)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(today.year, today.month, today.day, tzinfo=UTC)
    store = store if store is not None else cfg.open_store()
    periods = sorted({f"{d.year:04d}-{d.month:02d}" for d in (first, today)})
    billing = store.scan("billing", {"billing_period": periods})
    if "ServiceName" not in billing.collect_schema().names():
        return []
    daily = team_costs(billing, cfg, start, end, by=("day", "ServiceName"))
    currency = {t.name: t.currency for t in cfg.teams}
    out: list[Anomaly] = []
    for (team, service), grp in daily.group_by("owner", "ServiceName"):
        cur = currency.get(str(team), "USD")
        try:
            per = 1.0 / usd_per(cur, cfg, f"team {team}'s budget is in")
        except ConfigError:
            per, cur = 1.0, "USD"
        series = dict(zip(grp["day"].to_list(), grp["cost"].to_list(), strict=True))
        for k in range(1, days + 1):
            day = today - timedelta(days=k)
            hist = [series.get(day - timedelta(days=j), 0.0) * per for j in range(1, window + 1)]
            x = series.get(day, 0.0) * per
            med, mad = statistics.median(hist), _mad(hist)
            scale = MAD_SCALE * mad if mad > 0 else max(0.05 * med, min_amount)
            score = (x - med) / scale
            if score > threshold and x - med >= min_amount:
                out.append(Anomaly(str(team), str(service), day, round(x, 2), round(med, 2), round(mad, 2),
                                   round(score, 1), cur))
    return sorted(out, key=lambda a: -a.score)
