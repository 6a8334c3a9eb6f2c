"""Budget and anomaly alerts: checked by the scheduler's ``budget`` job, delivered by e-mail and webhook
(``[reports.email]`` / ``[reports.webhook]``), each alert once (remembered in the ledger)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from finops import budgets, delivery, leader
from finops.config import Config
from finops.services.queue import ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    key: str
    """Identifies the alert: the same condition in the same month (or day) is sent once."""
    text: str


def pending(cfg: Config, now: datetime | None = None) -> list[Alert]:
    """Every alert the data calls for now (sent or not): budget shares over each threshold, a forecast
    over budget, spend anomalies of yesterday."""
    now = now or datetime.now(UTC)
    month = now.strftime("%Y-%m")
    sc = cfg.scheduler
    out: list[Alert] = []
    for b in budgets.status(cfg, now):
        if not b.budget or b.budget <= 0:
            continue
        used = b.spent + b.placed + b.queued
        for t in sorted(sc.alert_thresholds):
            if used >= b.budget * type(b.budget)(str(t)):
                out.append(Alert(f"budget:{b.team}:{month}:{t:g}",
                                 f"Team {b.team} has used {float(used / b.budget):.0%} of its {month} budget "
                                 f"({b.currency} {used:,.2f} of {b.budget:,.2f}: spent {b.spent:,.2f}, "
                                 f"placed {b.placed:,.2f}, queued {b.queued:,.2f}); threshold {t:.0%}"))
        if sc.alert_forecast and b.forecast > b.budget:
            out.append(Alert(f"forecast:{b.team}:{month}",
                             f"Team {b.team} is forecast to end {month} at {b.currency} {b.forecast:,.2f} "
                             f"(band {b.low:,.2f}–{b.high:,.2f}), over its budget of {b.budget:,.2f}"))
    for a in budgets.anomalies(cfg, now, threshold=sc.anomaly_threshold, min_amount=sc.anomaly_min_amount):
        out.append(Alert(a.key, f"Spend anomaly: team {a.team} spent {a.currency} {a.cost:,.2f} on {a.service} "
                                f"on {a.day:%Y-%m-%d}, against a median of {a.median:,.2f} (robust score {a.score:g})"))
    return out


def check(cfg: Config, now: datetime | None = None) -> list[Alert]:
    """Deliver the alerts not sent yet; returns those delivered. One that cannot be delivered is
    forgotten again (tried at the next run) and named in the error raised after the others were tried."""
    rep = cfg.reports
    alerts = pending(cfg, now)
    if rep.email is None and rep.webhook is None:
        for a in alerts:
            log.warning("alert (no [reports.email] / [reports.webhook] configured): %s", a.text)
        return []
    led = ledger(cfg)
    sent, failed = [], []
    for a in alerts:
        if not leader.claim_alert(led, a.key, a.text):
            continue
        try:
            if rep.email is not None:
                delivery.send_text(f"finops alert: {a.text[:80]}", a.text, rep.email)
            if rep.webhook is not None:
                delivery.post_text(a.text, rep.webhook)
        except delivery.DeliveryError as e:
            leader.unclaim_alert(led, a.key)
            failed.append(str(e))
            continue
        sent.append(a)
    if failed:
        raise delivery.DeliveryError(f"{len(failed)} alert(s) not delivered: {failed[0]}")
    return sent
