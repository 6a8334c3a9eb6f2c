"""The scheduler's state in the ledger: the leader's lease, the run log and the alerts already sent.

**Lease.** One row per lease name holds who leads and until when. Taking or renewing it is one
compare-and-swap inside a write transaction (SQLite's write lock; on PostgreSQL the row update is
atomic): a holder renews its own row; anyone may take a row that has expired. So of two schedulers on
one ledger at most one holds the lease at a time, and when the leader dies the other takes over once
the lease expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from finops.ledger import Ledger, alerts_sent, scheduler_lease, scheduler_runs

LEASE = "scheduler"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(d: datetime | None) -> datetime | None:
    return None if d is None else (d if d.tzinfo else d.replace(tzinfo=UTC))


def acquire(led: Ledger, holder: str, seconds: float, name: str = LEASE) -> bool:
    """Take or renew the lease ``name`` for ``seconds``; True if ``holder`` now holds it."""
    now = _now()
    until = now + timedelta(seconds=seconds)
    with led._write() as c:
        row = c.execute(select(scheduler_lease).where(scheduler_lease.c.name == name)).mappings().first()
        if row is None:
            try:
                c.execute(insert(scheduler_lease).values(name=name, holder=holder, expires_at=until, acquired_at=now))
            except IntegrityError:  # another process inserted it first
                return False
            return True
        expires = _aware(row["expires_at"])
        if row["holder"] != holder and expires is not None and expires > now:
            return False
        got = c.execute(update(scheduler_lease)
                        .where(scheduler_lease.c.name == name, scheduler_lease.c.holder == row["holder"],
                               scheduler_lease.c.expires_at == row["expires_at"])
                        .values(holder=holder, expires_at=until,
                                acquired_at=row["acquired_at"] if row["holder"] == holder else now))
        return got.rowcount == 1


def release(led: Ledger, holder: str, name: str = LEASE) -> None:
    """Give the lease up (a clean stop): a standby takes over at once."""
    with led._write() as c:
        c.execute(update(scheduler_lease).where(scheduler_lease.c.name == name, scheduler_lease.c.holder == holder)
                  .values(expires_at=_now()))


@dataclass(frozen=True)
class Leader:
    holder: str
    expires_at: datetime

    @property
    def live(self) -> bool:
        return self.expires_at > _now()


def leader(led: Ledger, name: str = LEASE) -> Leader | None:
    """Who holds (or last held) the lease."""
    if led.empty:
        return None
    with led.engine.connect() as c:
        row = c.execute(select(scheduler_lease).where(scheduler_lease.c.name == name)).mappings().first()
    return None if row is None else Leader(row["holder"], _aware(row["expires_at"]) or _now())


# -- run log -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    id: int
    job: str
    holder: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    counts: dict[str, Any]
    error: str | None


def start(led: Ledger, job: str, holder: str) -> int:
    with led._write() as c:
        return int(c.execute(insert(scheduler_runs).values(job=job, holder=holder, started_at=_now(),
                                                           outcome="running").returning(scheduler_runs.c.id))
                   .scalar_one())


def end(led: Ledger, run_id: int, outcome: str, counts: dict[str, Any] | None = None,
        error: str | None = None) -> None:
    with led._write() as c:
        c.execute(update(scheduler_runs).where(scheduler_runs.c.id == run_id)
                  .values(ended_at=_now(), outcome=outcome, counts=counts or {}, error=error))


def interrupted(led: Ledger, holder: str) -> list[str]:
    """Runs left ``running`` by another holder (killed mid-job): marked ``interrupted``; their jobs,
    each once, to run again."""
    with led._write() as c:
        rows = c.execute(select(scheduler_runs.c.id, scheduler_runs.c.job)
                         .where(scheduler_runs.c.outcome == "running", scheduler_runs.c.holder != holder)).all()
        if rows:
            c.execute(update(scheduler_runs).where(scheduler_runs.c.id.in_([r[0] for r in rows]))
                      .values(outcome="interrupted", ended_at=_now(), error="the scheduler stopped mid-run"))
    return list(dict.fromkeys(r[1] for r in rows))


def runs(led: Ledger, job: str | None = None, limit: int = 1000) -> list[Run]:
    """The run log, newest first."""
    if led.empty:
        return []
    q = select(scheduler_runs).order_by(scheduler_runs.c.id.desc()).limit(limit)
    if job is not None:
        q = q.where(scheduler_runs.c.job == job)
    with led.engine.connect() as c:
        return [Run(r["id"], r["job"], r["holder"], _aware(r["started_at"]) or _now(), _aware(r["ended_at"]),
                    r["outcome"], dict(r["counts"] or {}), r["error"]) for r in c.execute(q).mappings()]


# -- alerts sent once ------------------------------------------------------------------------------------
def claim_alert(led: Ledger, key: str, message: str) -> bool:
    """Record alert ``key`` as sent; False if it already was (by any process)."""
    try:
        with led._write() as c:
            if c.execute(select(alerts_sent.c.key).where(alerts_sent.c.key == key)).first() is not None:
                return False
            c.execute(insert(alerts_sent).values(key=key, sent_at=_now(), message=message))
    except IntegrityError:
        return False
    return True


def unclaim_alert(led: Ledger, key: str) -> None:
    """Forget ``key`` (its delivery failed): the next run tries again."""
    with led._write() as c:
        c.execute(alerts_sent.delete().where(alerts_sent.c.key == key))
