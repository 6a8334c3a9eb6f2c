"""The queue and the ledger: workloads and the placements decided for them, in SQL (SQLAlchemy Core).

SQLite by default (:meth:`finops.config.Config.ledger_url`), PostgreSQL by URL. A workload moves
queued → placed → submitted → running → done | failed | cancelled (placed can go back to queued when
re-planned). Every change that touches several rows runs in one transaction: a batch that fails part
way leaves the tables as they were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text,
                        create_engine, event, func, insert, select, update)
from sqlalchemy.engine import Engine

from finops.workloads import WorkloadSpec, dumps, from_json

STATES = ("queued", "placed", "submitted", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "placed", "submitted", "running")
HOLDING = ("placed", "submitted", "running")
"""States whose placement holds capacity and budget."""
TRANSITIONS: dict[str, set[str]] = {
    "queued": {"placed", "cancelled"},
    "placed": {"submitted", "queued", "cancelled"},
    "submitted": {"running", "failed", "cancelled"},
    "running": {"done", "failed", "cancelled"},
    "done": set(), "failed": set(), "cancelled": set(),
}

metadata = MetaData()
workloads = Table(
    "workloads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("team", String(200), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("spec", Text, nullable=False),
    Column("source", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
placements = Table(
    "placements", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False, index=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("placed", Integer, nullable=False),   # 1 placed, 0 unplaced
    Column("provider", String(10)), Column("region", String(60)), Column("zone", String(60)),
    Column("instance_type", String(120)), Column("market", String(12)),
    Column("accelerator_name", String(40)), Column("accelerator_count", Float),
    Column("replicas", Integer),
    Column("price_per_hour", Float), Column("price_observed_at", DateTime(timezone=True)),
    Column("expected_hours", Float), Column("expected_cost", Float),
    Column("compute_cost", Float), Column("rework_cost", Float), Column("egress_cost", Float),
    Column("baseline_cost", Float), Column("saving", Float),
    Column("legs", JSON), Column("runner_up", JSON), Column("reason", Text),
)


class LedgerError(ValueError):
    """A queue operation that cannot be done (unknown id, a move the state machine forbids, …)."""


@dataclass(frozen=True)
class QueuedWorkload:
    id: int
    name: str
    team: str
    kind: str
    priority: int
    state: str
    spec: WorkloadSpec
    source: str | None
    created_at: datetime
    updated_at: datetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Ledger:
    """The queue and placement ledger at ``url`` (tables created on first use)."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            db = self.engine.url.database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    # -- queue ---------------------------------------------------------------------------------
    def add(self, specs: Sequence[tuple[WorkloadSpec, str | None]]) -> list[int]:
        """Queue ``specs`` (spec, source file) all or none; a name already active in the queue is
        refused, naming the workload."""
        now = _now()
        with self.engine.begin() as c:
            names = [s.name for s, _ in specs]
            active = set(c.scalars(select(workloads.c.name).where(workloads.c.name.in_(names),
                                                                  workloads.c.state.in_(ACTIVE))))
            dup = sorted({n for n, k in Counter(names).items() if k > 1} | active)
            if dup:
                raise LedgerError(f"already in the queue (cancel it first or rename): {', '.join(dup)}")
            ids = []
            for spec, source in specs:
                ids.append(c.execute(insert(workloads).values(
                    name=spec.name, team=spec.team, kind=spec.kind, priority=spec.priority, state="queued",
                    spec=dumps(spec), source=source, created_at=now, updated_at=now)).inserted_primary_key[0])
            return ids

    def list(self, states: Iterable[str] | None = None) -> list[QueuedWorkload]:
        q = select(workloads).order_by(workloads.c.id)
        if states is not None:
            q = q.where(workloads.c.state.in_(list(states)))
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q).mappings()]

    def get(self, wid: int) -> QueuedWorkload:
        with self.engine.connect() as c:
            r = c.execute(select(workloads).where(workloads.c.id == wid)).mappings().first()
        if r is None:
            raise LedgerError(f"no workload with id {wid} in the queue")
        return _row(r)

    def move(self, ids: Sequence[int], state: str) -> None:
        """Move every workload in ``ids`` to ``state``, all or none."""
        if state not in STATES:
            raise LedgerError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        with self.engine.begin() as c:
            self._move(c, ids, state)

    def _move(self, c: Any, ids: Sequence[int], state: str) -> None:
        rows = {r.id: r.state for r in c.execute(select(workloads.c.id, workloads.c.state)
                                                   .where(workloads.c.id.in_(list(ids))))}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise LedgerError(f"no workload with id {', '.join(map(str, missing))} in the queue")
        bad = [f"{i} ({rows[i]} → {state})" for i in ids if state not in TRANSITIONS[rows[i]]]
        if bad:
            raise LedgerError(f"not allowed: {', '.join(bad)}")
        if ids:
            c.execute(update(workloads).where(workloads.c.id.in_(list(ids))).values(state=state, updated_at=_now()))

    def cancel(self, wid: int) -> None:
        self.move([wid], "cancelled")

    # -- placements ----------------------------------------------------------------------------
    def record(self, run_id: str, decisions: Sequence[Mapping[str, Any]]) -> None:
        """Record one placement run: a row per decision (placed or not, with the prices used) and
        each placed workload moved to ``placed``; one transaction."""
        now = _now()
        cols = {c.name for c in placements.columns} - {"id", "run_id", "decided_at"}
        with self.engine.begin() as c:
            ids = {int(d["workload_id"]) for d in decisions}
            known = set(c.scalars(select(workloads.c.id).where(workloads.c.id.in_(list(ids)))))
            if ids - known:
                raise LedgerError(f"no workload with id {', '.join(map(str, sorted(ids - known)))} in the queue")
            for d in decisions:
                row = {k: d.get(k) for k in cols}
                row["placed"] = int(bool(d.get("placed")))
                c.execute(insert(placements).values(run_id=run_id, decided_at=now, **row))
            self._move(c, [int(d["workload_id"]) for d in decisions if d.get("placed")], "placed")

    def placements(self, workload_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        q = select(placements).order_by(placements.c.id)
        if workload_ids is not None:
            q = q.where(placements.c.workload_id.in_(list(workload_ids)))
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def holding(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """The latest placement of each workload that holds capacity and budget (placed, submitted,
        running), decided at or after ``since``: team, provider, region, accelerator, cost."""
        latest = (select(placements.c.workload_id, func.max(placements.c.id).label("pid"))
                  .where(placements.c.placed == 1).group_by(placements.c.workload_id).subquery())
        q = (select(workloads.c.team, placements.c.provider, placements.c.region, placements.c.accelerator_name,
                    placements.c.accelerator_count, placements.c.replicas, placements.c.expected_cost,
                    placements.c.legs, placements.c.decided_at)
             .join(latest, latest.c.workload_id == workloads.c.id)
             .join(placements, placements.c.id == latest.c.pid)
             .where(workloads.c.state.in_(HOLDING)))
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        if since is not None:
            rows = [r for r in rows if _aware(r["decided_at"]) >= since]
        return rows


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _row(r: Mapping[str, Any]) -> QueuedWorkload:
    return QueuedWorkload(r["id"], r["name"], r["team"], r["kind"], r["priority"], r["state"], from_json(r["spec"]),
                          r["source"], _aware(r["created_at"]), _aware(r["updated_at"]))


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()

