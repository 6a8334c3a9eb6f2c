"""The queue and the ledger: workloads, the placements decided for them and every move they make, in SQL
(SQLAlchemy Core).

SQLite by default (:meth:`finops.config.Config.ledger_url`), PostgreSQL by URL. The schema is kept by
Alembic migrations shipped in ``finops/migrations``: :class:`Ledger` upgrades the database to the head
revision when it opens it (one process at a time: ``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
PostgreSQL), recognises a database made before migrations as revision 0001, and refuses one newer than
this code.

A workload moves queued → placed → submitted → running → done | failed | cancelled (placed can go back
to queued when re-planned). Every move is a compare-and-swap — ``UPDATE … WHERE id = :id AND state =
:old`` — so of two processes moving the same workload from the same state exactly one wins and the
other gets :class:`LedgerConflict`; a batch moves all its workloads or none. Each move is written to
``transitions`` in the same transaction.
"""

from __future__ import annotations

import builtins
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from finops.config import field_path
from finops.placements import Decision, Leg, Recorded
from finops.workloads import WorkloadSpec, dumps, from_json

STATES = ("queued", "placed", "submitted", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "placed", "submitted", "running")
HOLDING = ("placed", "submitted", "running")
"""States whose placement holds capacity and budget."""
# placed → queued / submitted → queued: a capacity or quota answer, re-placed elsewhere; running → queued:
# a spot preemption, resumed from its checkpoint by the next placement; placed → failed: a launch the
# provider refused for good.
TRANSITIONS: dict[str, set[str]] = {
    "queued": {"placed", "cancelled"},
    "placed": {"submitted", "queued", "failed", "cancelled"},
    "submitted": {"running", "queued", "failed", "cancelled"},
    "running": {"done", "failed", "queued", "cancelled"},
    "done": set(), "failed": set(), "cancelled": set(),
}
STAMP = {"placed": "placed_at", "submitted": "submitted_at", "running": "running_at",
         "done": "ended_at", "failed": "ended_at", "cancelled": "ended_at"}
"""The column holding when a workload last entered each state."""

MIGRATIONS = Path(__file__).parent / "migrations"
LEGACY_REVISION = "0001"
"""The schema ``metadata.create_all`` made before migrations existed."""
# PostgreSQL advisory lock keys (SQLite needs none: BEGIN IMMEDIATE already lets one writer in at a time).
_PG_LOCK_KEY = 0x66696E6F70735F6C  # "finops_l": migrating the ledger
_PG_ADD_KEY = 0x66696E6F70735F71   # "finops_q": adding to the queue

# The schema at the head revision; the migrations make it, the schema test compares them.
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
    Column("target", String(40)),          # launch target (sagemaker, vertex, …) of the current attempt
    Column("external_id", String(500)),    # the provider's job id of the current attempt
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("placed_at", DateTime(timezone=True)), Column("submitted_at", DateTime(timezone=True)),
    Column("running_at", DateTime(timezone=True)), Column("ended_at", DateTime(timezone=True)),
    Index("ux_workloads_target_external_id", "target", "external_id", unique=True),
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
transitions = Table(
    "transitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("old_state", String(12), nullable=False),
    Column("new_state", String(12), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("target", String(40)), Column("external_id", String(500)), Column("error", Text),
    Column("placement_id", Integer),
)
# The scheduler (finops/scheduler.py): the leader's lease, one row per job run, alerts already sent.
# APScheduler keeps its own ``apscheduler_jobs`` table in the same database; it is not the ledger's.
scheduler_lease = Table(
    "scheduler_lease", metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)
scheduler_runs = Table(
    "scheduler_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(40), nullable=False, index=True),
    Column("holder", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("outcome", String(12), nullable=False),   # running, ok, failed, interrupted
    Column("counts", JSON), Column("error", Text),
)
alerts_sent = Table(
    "alerts_sent", metadata,
    Column("key", String(300), primary_key=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
)
launches = Table(
    "launches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False, index=True),
    Column("placement_id", Integer, ForeignKey("placements.id"), nullable=False),
    Column("leg", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("target", String(80), nullable=False),          # the configured target's name
    Column("kind", String(20), nullable=False),            # its kind: sagemaker, vertex, kubernetes, …
    Column("external_id", String(500), nullable=False),
    Column("name", String(100), nullable=False),
    Column("provider", String(10), nullable=False), Column("region", String(60), nullable=False),
    Column("instance_type", String(120), nullable=False), Column("market", String(12), nullable=False),
    Column("replicas", Integer, nullable=False),
    Column("state", String(12), nullable=False, index=True),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)), Column("ended_at", DateTime(timezone=True)),
    Column("preemptions", Integer, nullable=False, server_default="0"),
    Column("message", Text),
    Column("nodes", JSON),                                 # where its pods ran (Kubernetes): see Launch.nodes
    UniqueConstraint("target", "external_id", name="ux_launches_target_external_id"),
    UniqueConstraint("placement_id", "leg", name="ux_launches_placement_leg"),
)
blocks = Table(
    "blocks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(10), nullable=False), Column("region", String(60), nullable=False),
    Column("instance_type", String(120), nullable=False), Column("market", String(12), nullable=False),
    Column("target", String(80), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
interruptions = Table(
    "interruptions", metadata,
    Column("provider", String(10), primary_key=True), Column("region", String(60), primary_key=True),
    Column("family", String(60), primary_key=True),
    Column("hours", Float, nullable=False), Column("preemptions", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
corrections = Table(
    "corrections", metadata,
    Column("provider", String(10), primary_key=True), Column("target", String(20), primary_key=True),
    Column("family", String(60), primary_key=True),
    Column("predicted", Float, nullable=False), Column("billed", Float, nullable=False),
    Column("workloads", Integer, nullable=False), Column("factor", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class LedgerError(ValueError):
    """A queue operation that cannot be done (unknown id, a move the state machine forbids, …)."""


class LedgerMissing(LedgerError):
    """A read-only open of a SQLite ledger that does not exist yet (nothing was ever queued there)."""


class LedgerConflict(LedgerError):
    """Another process moved the workload first (the compare-and-swap found another state): nothing
    was changed; re-read the workload and decide again."""


@dataclass(frozen=True)
class QueuedWorkload:
    """A workload in the queue. ``target``, ``external_id`` and ``attempt`` describe its latest launch
    (attempt counts placed → submitted moves); ``*_at`` when it last entered each state (``ended_at``:
    done, failed or cancelled)."""

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
    target: str | None = None
    external_id: str | None = None
    attempt: int = 0
    last_error: str | None = None
    placed_at: datetime | None = None
    submitted_at: datetime | None = None
    running_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A queued row whose stored spec this finops cannot load any more (written by an older version that
    accepted, say, ``runtime_hours: .inf``): shown and skipped, never a crash. ``problem`` says why and what
    to do."""

    id: int
    name: str
    team: str
    state: str
    problem: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded move of a workload (``attempt`` as it stood after the move)."""

    workload_id: int
    at: datetime
    old_state: str
    new_state: str
    attempt: int
    target: str | None
    external_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Holding:
    """The latest placement of a workload that holds capacity and budget (placed, submitted, running)."""

    workload_id: int
    team: str
    expected_cost: float
    legs: tuple[Leg, ...]
    decided_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLaunch:
    """A leg of a placement as submitted to a target: the row :meth:`Ledger.submit` writes."""

    placement_id: int
    leg: int
    target: str
    kind: str
    external_id: str
    name: str
    provider: str
    region: str
    instance_type: str
    market: str
    replicas: int
    state: str = "pending"
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """A submitted leg and what the provider last said of it (``state``: pending, running, done, failed,
    preempted, cancelled)."""

    id: int
    workload_id: int
    placement_id: int
    leg: int
    attempt: int
    target: str
    kind: str
    external_id: str
    name: str
    provider: str
    region: str
    instance_type: str
    market: str
    replicas: int
    state: str
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    preemptions: int
    message: str | None
    nodes: tuple[dict[str, Any], ...] = ()
    """Where its pods ran, as the launcher last reported them (Kubernetes; one record per pod:
    :meth:`placement.launchers.base.NodeUse.to_record`); empty elsewhere."""

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed", "preempted", "cancelled")


@dataclass(frozen=True, slots=True)
class Block:
    """An offer kept out of placement until ``until`` (a capacity or quota answer)."""

    provider: str
    region: str
    instance_type: str
    market: str
    target: str
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class RunHours:
    """Hours our runs ran on spot and the preemptions they met, per provider, region and instance family."""

    provider: str
    region: str
    family: str
    hours: float
    preemptions: int


@dataclass(frozen=True, slots=True)
class Correction:
    """Billed over predicted cost of reconciled workloads, per provider, target kind and instance family."""

    provider: str
    target: str
    family: str
    predicted: float
    billed: float
    workloads: int
    factor: float


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The queue and placement ledger at ``url``, migrated to the head revision on open."""

    def __init__(self, url: str, engine: Engine | None = None, *, read_only: bool = False) -> None:
        """``read_only``: open a SQLite file without creating it (:class:`LedgerMissing` when there is none)
        or writing to it, unless its schema is older than this code's (then it is upgraded, as on any open)."""
        self.url = url
        try:
            self.engine = engine or create_engine(url)
        except (ArgumentError, ImportError) as e:  # a URL that does not parse, an unknown dialect or driver
            raise LedgerError(f"[ledger] url is not a database URL finops can use ({e}): expected e.g. "
                              "sqlite:///path/ledger.db or postgresql://user@host/db") from None
        self.where = self.engine.url.render_as_string(hide_password=True)
        self.empty = False
        """Read-only, on a database without the ledger's tables yet: lists are empty."""
        if self.engine.dialect.name == "sqlite":
            db = self.engine.url.database
            if db and db != ":memory:" and not db.startswith("file:"):
                if read_only and engine is None:
                    if not Path(db).is_file():
                        raise LedgerMissing(f"no ledger at {db} yet")
                    self.engine = create_engine(f"sqlite:///file:{quote(str(Path(db).resolve()))}?mode=ro&uri=true")
                else:
                    try:
                        Path(db).parent.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise LedgerError(f"cannot create the folder of the ledger {db}: {e.strerror or e}: "
                                          "point [ledger] url or [store] url elsewhere") from None
            _sqlite_transactions(self.engine)
        # Writes take SQLite's write lock when they begin (BEGIN IMMEDIATE) so concurrent writers queue
        # on busy_timeout instead of failing to upgrade a read lock part way; PostgreSQL ignores it.
        self._writer = self.engine.execution_options(finops_write=True)
        with self._sql_errors():
            if read_only:
                with self.engine.connect() as c:
                    rev = current_revision(c)
                _require_known_revision(rev, head_revision(), self.engine)
                if rev is None:
                    self.empty, self.revision = True, head_revision()
                elif rev != head_revision():  # older: upgraded with a writable connection, as any open does
                    self.engine = create_engine(url)
                    if self.engine.dialect.name == "sqlite":
                        _sqlite_transactions(self.engine)
                    self._writer = self.engine.execution_options(finops_write=True)
                    self.revision = migrate(self.engine)
                else:
                    self.revision = rev
            else:
                self.revision = migrate(self.engine)

    @contextmanager
    def _sql_errors(self) -> Iterator[None]:
        """A ledger file that cannot be written or opened, as one sentence (:class:`LedgerError`)."""
        try:
            yield
        except OperationalError as e:
            msg = str(e.orig) if e.orig is not None else str(e)
            if "readonly" in msg or "read-only" in msg:
                raise LedgerError(f"the ledger {self.where} is read-only ({msg}): make it writable, or point "
                                  "[ledger] url at one that is") from None
            if "unable to open database file" in msg:
                raise LedgerError(f"cannot open the ledger {self.where} ({msg}): check that its folder exists "
                                  "and can be written") from None
            if "file is not a database" in msg:
                raise LedgerError(f"{self.where} is not a SQLite database: point [ledger] url elsewhere") from None
            first = (msg.strip().splitlines() or [type(e).__name__])[0]
            raise LedgerError(f"cannot use the ledger {self.where}: {first}") from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._sql_errors(), self._writer.begin() as c:
            yield c

    # -- queue ---------------------------------------------------------------------------------
    def add(self, specs: Sequence[tuple[WorkloadSpec, str | None]]) -> builtins.list[int]:
        """Queue ``specs`` (spec, source file) all or none; a name already active in the queue is
        refused, naming the workload."""
        now = _now()
        with self._write() as c:
            _lock(c, _PG_ADD_KEY)  # the name check below holds only if adds do not interleave
            names = [s.name for s, _ in specs]
            active = set(c.scalars(select(workloads.c.name).where(workloads.c.name.in_(names),
                                                                  workloads.c.state.in_(ACTIVE))))
            dup = sorted({n for n, k in Counter(names).items() if k > 1} | active)
            if dup:
                raise LedgerError(f"already in the queue (cancel it first or rename): {', '.join(dup)}")
            ids: builtins.list[int] = []
            for spec, source in specs:
                row = insert(workloads).values(
                    name=spec.name, team=spec.team, kind=spec.kind, priority=spec.priority, state="queued",
                    spec=dumps(spec), source=_fit_source(source), created_at=now, updated_at=now)
                ids.append(c.execute(row.returning(workloads.c.id)).scalar_one())
            return ids

    def list(self, states: Iterable[str] | None = None) -> builtins.list[QueuedWorkload]:
        """Workloads (in ``states`` only, if given), oldest first; rows whose spec no longer loads are
        left out (:meth:`read` returns them too)."""
        return self.read(states)[0]

    def read(self, states: Iterable[str] | None = None
             ) -> tuple[builtins.list[QueuedWorkload], builtins.list[Unreadable]]:
        """Workloads (in ``states`` only, if given), oldest first, and the rows among them whose stored
        spec this finops cannot load (written by an older version): those are reported, not raised."""
        states = None if states is None else builtins.list(states)
        for s in states or ():
            if s not in STATES:
                raise LedgerError(f"unknown state {s!r}; expected one of {', '.join(STATES)}")
        if self.empty:
            return [], []
        q = select(workloads).order_by(workloads.c.id)
        if states is not None:
            q = q.where(workloads.c.state.in_(states))
        good: builtins.list[QueuedWorkload] = []
        bad: builtins.list[Unreadable] = []
        with self.engine.connect() as c:
            for r in c.execute(q).mappings():
                problem = _spec_problem(r)
                if problem is None:
                    good.append(_row(r))
                else:
                    bad.append(Unreadable(r["id"], r["name"], r["team"], r["state"], problem))
        return good, bad

    def get(self, wid: int) -> QueuedWorkload:
        if self.empty or not _fits(wid):
            raise LedgerError(f"no workload with id {wid} in the queue")
        with self.engine.connect() as c:
            r = c.execute(select(workloads).where(workloads.c.id == wid)).mappings().first()
        if r is None:
            raise LedgerError(f"no workload with id {wid} in the queue")
        return _checked_row(r)

    def find(self, target: str, external_id: str) -> QueuedWorkload | None:
        """The workload whose latest launch is job ``external_id`` on ``target``, if any."""
        if self.empty:
            return None
        with self.engine.connect() as c:
            r = c.execute(select(workloads).where(workloads.c.target == target,
                                                  workloads.c.external_id == external_id)).mappings().first()
        return _checked_row(r) if r is not None else None

    def history(self, wid: int) -> builtins.list[Transition]:
        """Every recorded move of workload ``wid``, oldest first."""
        if self.empty or not _fits(wid):
            return []
        q = select(transitions).where(transitions.c.workload_id == wid).order_by(transitions.c.id)
        with self.engine.connect() as c:
            return [Transition(r["workload_id"], _aware(r["at"]), r["old_state"], r["new_state"], r["attempt"],
                               r["target"], r["external_id"], r["error"]) for r in c.execute(q).mappings()]

    def move(self, ids: Sequence[int], state: str) -> None:
        """Move every workload in ``ids`` from the state it is in to ``state``, all or none; each must
        still be in the state read when the update lands (else :class:`LedgerConflict`)."""
        if state not in STATES:
            raise LedgerError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        ids = list(dict.fromkeys(ids))
        with self._write() as c:
            current = _states(c, ids)
            _require_known(ids, current)
            bad = [f"{i} ({current[i]} → {state})" for i in ids if state not in TRANSITIONS[current[i]]]
            if bad:
                raise LedgerError(f"not allowed: {', '.join(bad)}")
            _swap(c, [(i, current[i]) for i in ids], state)

    def transition(self, wid: int, old: str, new: str, *, target: str | None = None,
                   external_id: str | None = None, error: str | None = None) -> QueuedWorkload:
        """Move workload ``wid`` from ``old`` to ``new`` if it is still in ``old``; else
        :class:`LedgerConflict` and nothing changes. Returns the workload after the move.

        placed → submitted is a launch: it needs ``target`` and ``external_id`` (the provider's job
        id, unique per target), adds one to ``attempt`` and keeps both on the workload. ``error`` is
        kept as ``last_error`` (a failed launch: submitted → failed, or placed → queued to re-plan).
        Every move stamps the time of the new state and is written to :meth:`history`."""
        for s in (old, new):
            if s not in STATES:
                raise LedgerError(f"unknown state {s!r}; expected one of {', '.join(STATES)}")
        if new not in TRANSITIONS[old]:
            raise LedgerError(f"not allowed: {wid} ({old} → {new})")
        launch = (old, new) == ("placed", "submitted")
        if launch and not (target and external_id):
            raise LedgerError(f"workload {wid}: placed → submitted needs the launch target and the job's external id")
        if not launch and (target or external_id):
            raise LedgerError(f"workload {wid}: target and external id are set on submit (placed → submitted) only")
        try:
            with self._write() as c:
                _swap(c, [(wid, old)], new, target=target, external_id=external_id, error=error)
        except IntegrityError as e:
            holder = self.find(target or "", external_id or "")
            if holder is None:
                raise
            raise LedgerError(f"job {external_id} on {target} is already recorded for workload {holder.id}") from e
        return self.get(wid)

    def cancel(self, wid: int) -> None:
        self.move([wid], "cancelled")

    # -- placements ----------------------------------------------------------------------------
    def record(self, run_id: str, decisions: Sequence[Decision]) -> None:
        """Record one placement run: a row per decision (placed or not, with the prices used) and
        each placed workload moved queued → placed; one transaction. A placed workload no longer
        queued (cancelled, or placed by another run meanwhile) fails the whole run with
        :class:`LedgerConflict`."""
        now = _now()
        with self._write() as c:
            ids = list(dict.fromkeys(d.workload_id for d in decisions))
            _require_known(ids, set(c.scalars(select(workloads.c.id).where(workloads.c.id.in_(
                [i for i in ids if _fits(i)])))))
            if decisions:  # one executemany: every row needs every column
                cols = [col.name for col in placements.columns if col.name not in ("id", "run_id", "decided_at")]
                rows = [{"run_id": run_id, "decided_at": now, **{k: r.get(k) for k in cols}}
                        for r in (d.row() for d in decisions)]
                c.execute(insert(placements), rows)
            _swap(c, [(d.workload_id, "queued") for d in decisions if d.placed], "placed")

    def placements(self, workload_ids: Iterable[int] | None = None) -> builtins.list[Recorded]:
        """Recorded decisions, oldest first (of ``workload_ids`` only, if given)."""
        if self.empty:
            return []
        q = (select(placements, workloads.c.name, workloads.c.team)
             .join(workloads, workloads.c.id == placements.c.workload_id).order_by(placements.c.id))
        if workload_ids is not None:
            q = q.where(placements.c.workload_id.in_([i for i in workload_ids if _fits(i)]))
        with self.engine.connect() as c:
            return [Recorded(id=r["id"], run_id=r["run_id"], decided_at=_aware(r["decided_at"]),
                             decision=Decision.from_row(r)) for r in c.execute(q).mappings()]

    def holding(self, since: datetime | None = None) -> builtins.list[Holding]:
        """The latest placement of each workload that holds capacity and budget (placed, submitted,
        running), decided at or after ``since``."""
        if self.empty:
            return []
        latest = (select(placements.c.workload_id, func.max(placements.c.id).label("pid"))
                  .where(placements.c.placed == 1).group_by(placements.c.workload_id).subquery())
        q = (select(workloads.c.id, workloads.c.team, placements.c.expected_cost, placements.c.legs,
                    placements.c.decided_at)
             .join(latest, latest.c.workload_id == workloads.c.id)
             .join(placements, placements.c.id == latest.c.pid)
             .where(workloads.c.state.in_(HOLDING)).order_by(workloads.c.id))
        with self.engine.connect() as c:
            rows = [Holding(r["id"], r["team"], float(r["expected_cost"] or 0.0),
                            tuple(Leg.from_json(x) for x in r["legs"] or ()), _aware(r["decided_at"]))
                    for r in c.execute(q).mappings()]
        # Compared here, not in SQL: SQLite hands back naive UTC datetimes.
        return [h for h in rows if since is None or h.decided_at >= since]

    # -- launches ------------------------------------------------------------------------------
    def launchable(self) -> builtins.list[tuple[QueuedWorkload, Recorded]]:
        """Placed workloads with the placement that put them there (their latest placed decision)."""
        placed, _ = self.read(["placed"])
        latest = {r.decision.workload_id: r for r in self.placements([w.id for w in placed]) if r.decision.placed}
        return [(w, latest[w.id]) for w in placed if w.id in latest]

    def submit(self, wid: int, legs: Sequence[NewLaunch], error: str | None = None) -> QueuedWorkload:
        """Workload ``wid`` launched: placed → submitted (CAS) with the first leg's target and job id, and a
        :class:`Launch` row per leg, in one transaction; :class:`LedgerConflict` if it was moved meanwhile."""
        if not legs:
            raise LedgerError(f"workload {wid}: a launch needs at least one leg")
        main, now = legs[0], _now()
        try:
            with self._write() as c:
                _swap(c, [(wid, "placed")], "submitted", target=main.target, external_id=main.external_id,
                      error=error, placement_id=main.placement_id)
                attempt = c.scalar(select(workloads.c.attempt).where(workloads.c.id == wid))
                c.execute(insert(launches), [{"workload_id": wid, "attempt": attempt, "submitted_at": now,
                                              "preemptions": 0, **_launch_values(x)} for x in legs])
        except IntegrityError as e:
            raise LedgerError(f"workload {wid}: job {main.external_id} on {main.target} or placement "
                              f"{main.placement_id} is already recorded as launched") from e
        return self.get(wid)

    def launches(self, states: Iterable[str] | None = None,
                 workload_ids: Iterable[int] | None = None) -> builtins.list[Launch]:
        """Launch rows (in ``states`` / of ``workload_ids`` only, when given), oldest first."""
        if self.empty:
            return []
        q = select(launches).order_by(launches.c.id)
        if states is not None:
            q = q.where(launches.c.state.in_(list(states)))
        if workload_ids is not None:
            q = q.where(launches.c.workload_id.in_([i for i in workload_ids if _fits(i)]))
        with self.engine.connect() as c:
            return [_launch(r) for r in c.execute(q).mappings()]

    def update_launch(self, launch: Launch, state: str, *, message: str | None = None,
                      started_at: datetime | None = None, ended_at: datetime | None = None,
                      preemptions: int | None = None, move: tuple[str, str] | None = None,
                      run: RunHours | None = None, placement_id: int | None = None) -> None:
        """What a provider said of ``launch``, in one transaction: its new ``state`` (only from the state it
        was read in: else :class:`LedgerConflict`), optionally its workload's ``move`` (old, new) with
        ``message`` as the error, and ``run``'s hours and preemptions added to what we learnt."""
        values: dict[str, Any] = {"state": state} | {
            col: v for col, v in (("message", message), ("started_at", started_at), ("ended_at", ended_at),
                                  ("preemptions", preemptions)) if v is not None}
        with self._write() as c:
            done = c.execute(update(launches).where(launches.c.id == launch.id, launches.c.state == launch.state)
                             .values(values))
            if done.rowcount != 1:
                raise LedgerConflict(f"launch {launch.name} was updated by another process")
            if move is not None:
                _swap(c, [(launch.workload_id, move[0])], move[1],
                      error=message if move[1] in ("queued", "failed") else None,
                      placement_id=placement_id or launch.placement_id)
            if run is not None:
                _add_run(c, run)

    def record_nodes(self, launch: Launch, nodes: Sequence[Mapping[str, Any]]) -> bool:
        """Add what a launcher reported of the nodes ``launch``'s pods ran on (records keyed by ``pod``: a
        pod reported again replaces its record, pods no longer listed — deleted after they ended — keep
        theirs). Returns whether anything changed (nothing is written otherwise). The records are merged
        with the row as it is inside the write (locked on PostgreSQL; SQLite writers are serial), so two
        syncs at once both land."""
        with self._write() as c:
            row = select(launches.c.nodes).where(launches.c.id == launch.id).with_for_update()
            current = [dict(r) for r in (c.scalar(row) or [])]
            merged = {str(r["pod"]): r for r in current}
            merged.update({str(r["pod"]): dict(r) for r in nodes})
            records = sorted(merged.values(), key=lambda r: (str(r.get("started_at") or ""), str(r["pod"])))
            if records == current:
                return False
            c.execute(update(launches).where(launches.c.id == launch.id).values(nodes=records))
        return True

    # -- blocks, what runs and bills taught us ----------------------------------------------
    def block(self, b: Block) -> None:
        with self._write() as c:
            c.execute(insert(blocks).values(provider=b.provider, region=b.region, instance_type=b.instance_type,
                                            market=b.market, target=b.target, until=b.until, reason=b.reason,
                                            created_at=_now()))

    def blocks(self, now: datetime | None = None) -> builtins.list[Block]:
        """Offers blocked at ``now`` (default: now)."""
        if self.empty:
            return []
        at = now or _now()
        with self.engine.connect() as c:
            rows = [Block(r.provider, r.region, r.instance_type, r.market, r.target, _aware(r.until), r.reason)
                    for r in c.execute(select(blocks).order_by(blocks.c.id))]
        return [b for b in rows if b.until > at]  # compared here: SQLite hands back naive UTC datetimes

    def run_hours(self) -> builtins.list[RunHours]:
        if self.empty:
            return []
        with self.engine.connect() as c:
            return [RunHours(r.provider, r.region, r.family, r.hours, r.preemptions)
                    for r in c.execute(select(interruptions).order_by(*interruptions.primary_key.columns))]

    def save_corrections(self, rows: Sequence[Correction]) -> None:
        """Replace the learnt cost corrections with ``rows`` (they are recomputed from every reconciled
        workload each time)."""
        now = _now()
        with self._write() as c:
            c.execute(corrections.delete())
            if rows:
                c.execute(insert(corrections), [{"provider": x.provider, "target": x.target, "family": x.family,
                                                 "predicted": x.predicted, "billed": x.billed,
                                                 "workloads": x.workloads, "factor": x.factor, "updated_at": now}
                                                for x in rows])

    def corrections(self) -> builtins.list[Correction]:
        if self.empty:
            return []
        with self.engine.connect() as c:
            return [Correction(r.provider, r.target, r.family, r.predicted, r.billed, r.workloads, r.factor)
                    for r in c.execute(select(corrections).order_by(*corrections.primary_key.columns))]


def _launch_values(x: NewLaunch) -> dict[str, Any]:
    return {k: getattr(x, k) for k in ("placement_id", "leg", "target", "kind", "external_id", "name", "provider",
                                       "region", "instance_type", "market", "replicas", "state", "message")}


def _launch(r: Mapping[Any, Any]) -> Launch:
    return Launch(id=r["id"], workload_id=r["workload_id"], placement_id=r["placement_id"], leg=r["leg"],
                  attempt=r["attempt"], target=r["target"], kind=r["kind"], external_id=r["external_id"],
                  name=r["name"], provider=r["provider"], region=r["region"], instance_type=r["instance_type"],
                  market=r["market"], replicas=r["replicas"], state=r["state"], submitted_at=_aware(r["submitted_at"]),
                  started_at=_opt_aware(r["started_at"]), ended_at=_opt_aware(r["ended_at"]),
                  preemptions=r["preemptions"], message=r["message"],
                  nodes=tuple(r.get("nodes") or ()))


def _add_run(c: Connection, run: RunHours) -> None:
    key = (interruptions.c.provider == run.provider) & (interruptions.c.region == run.region) \
        & (interruptions.c.family == run.family)
    done = c.execute(update(interruptions).where(key).values(
        hours=interruptions.c.hours + run.hours, preemptions=interruptions.c.preemptions + run.preemptions,
        updated_at=_now()))
    if done.rowcount == 0:
        c.execute(insert(interruptions).values(provider=run.provider, region=run.region, family=run.family,
                                               hours=run.hours, preemptions=run.preemptions, updated_at=_now()))


# -- compare-and-swap --------------------------------------------------------------------------
def _swap(c: Connection, moves: Sequence[tuple[int, str]], new: str, *, target: str | None = None,
          external_id: str | None = None, error: str | None = None, placement_id: int | None = None) -> None:
    """Move each (id, expected state) in ``moves`` to ``new`` inside ``c``'s transaction, one UPDATE
    per expected state guarded by ``state = expected``; if any row was not where expected, raise (the
    caller's transaction then rolls back, so a batch moves all or none)."""
    if not moves:
        return
    _require_known([wid for wid, _ in moves], [wid for wid, _ in moves if _fits(wid)])
    now = _now()
    values: dict[str, Any] = {"state": new, "updated_at": now}
    if new in STAMP:
        values[STAMP[new]] = now
    if new == "submitted":
        values |= {"attempt": workloads.c.attempt + 1, "target": target, "external_id": external_id}
    if error is not None:
        values["last_error"] = error
    by_old: dict[str, list[int]] = defaultdict(list)
    for wid, old in moves:
        by_old[old].append(wid)
    for old, ids in by_old.items():
        done = c.execute(update(workloads).where(workloads.c.id.in_(ids), workloads.c.state == old).values(values))
        if done.rowcount != len(ids):
            _raise_lost(c, ids, old)
    ids = [wid for wid, _ in moves]
    q = select(workloads.c.id, workloads.c.attempt).where(workloads.c.id.in_(ids))
    attempts = {r.id: r.attempt for r in c.execute(q)}
    c.execute(insert(transitions), [
        {"workload_id": wid, "at": now, "old_state": old, "new_state": new, "attempt": attempts[wid],
         "target": target, "external_id": external_id, "error": error, "placement_id": placement_id}
        for wid, old in moves])


def _raise_lost(c: Connection, ids: Sequence[int], expected: str) -> None:
    """Say which of ``ids`` were not in ``expected`` any more (a lost compare-and-swap)."""
    now = _states(c, ids)
    _require_known(ids, now)
    lost = [f"workload {i} was moved to {now[i]} by another process (expected {expected})"
            for i in ids if now[i] != expected]
    raise LedgerConflict("; ".join(lost) or f"workloads {', '.join(map(str, ids))} changed meanwhile")


def _fit_source(source: str | None) -> str | None:
    """The spec file's path as the ``source`` column holds it: a path longer than the column (PostgreSQL
    enforces it) keeps its tail, the file name, behind an ellipsis."""
    limit = 500  # String(500), as the table says
    return source if source is None or len(source) <= limit else "…" + source[-(limit - 1):]


def _fits(wid: int) -> bool:
    """Whether ``wid`` fits the id column (PostgreSQL's 32-bit integer): any other id names no workload,
    and the database would refuse it as a parameter rather than find nothing."""
    return -(2**31) <= wid < 2**31


def _states(c: Connection, ids: Sequence[int]) -> dict[int, str]:
    q = select(workloads.c.id, workloads.c.state).where(workloads.c.id.in_([i for i in ids if _fits(i)]))
    return {r.id: r.state for r in c.execute(q)}


def _require_known(ids: Iterable[int], known: Iterable[int]) -> None:
    missing = sorted(set(ids) - set(known))
    if missing:
        raise LedgerError(f"no workload with id {', '.join(map(str, missing))} in the queue")


# -- schema ------------------------------------------------------------------------------------
def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for the migrations shipped in finops (no alembic.ini): ``connection``,
    if given, is the one the migrations run on (``config.attributes["connection"]``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations under {MIGRATIONS}"
    return head


def current_revision(c: Connection) -> str | None:
    """The database's revision: from ``alembic_version``; :data:`LEGACY_REVISION` for a ledger made
    before migrations (its tables, no version); None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    rev = MigrationContext.configure(c).get_current_revision()
    if rev is not None:
        return rev
    have = {t for t in ("workloads", "placements") if inspect(c).has_table(t)}
    if have == {"workloads", "placements"}:
        return LEGACY_REVISION
    if have:
        raise LedgerError(f"the database has a {have.pop()} table but is not a finops ledger (its other tables "
                          "are missing): point [ledger] url at another database")
    return None


def migrate(engine: Engine) -> str:
    """Upgrade the ledger at ``engine`` to the head revision; return it. Safe when several processes
    open the same database at once: the upgrade runs under a lock, and whoever comes second finds
    the work done. A database at a revision this code does not know (made by a newer finops) is
    refused, unchanged."""
    head = head_revision()
    with engine.connect() as c:
        rev = current_revision(c)
    _require_known_revision(rev, head, engine)
    if rev == head:
        return head
    with _migration_lock(engine) as c:
        rev = current_revision(c)  # again: another process may have upgraded it while we waited
        _require_known_revision(rev, head, engine)
        if rev != head:
            _upgrade(c, rev)
    return head


def _upgrade(c: Connection, rev: str | None) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(c)
    if rev == LEGACY_REVISION and MigrationContext.configure(c).get_current_revision() is None:
        command.stamp(cfg, LEGACY_REVISION)  # made by create_all before migrations: it is 0001
    command.upgrade(cfg, "head")


def _require_known_revision(rev: str | None, head: str, engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    if rev is None or rev == head:
        return
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if rev not in known:
        where = engine.url.render_as_string(hide_password=True)
        raise LedgerError(f"the ledger at {where} is at schema revision {rev}, which this finops does not know "
                          f"(it knows up to {head}): it was upgraded by a newer finops; upgrade finops to use it")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the ledger's migration lock until it ends: SQLite's write lock
    (``BEGIN IMMEDIATE``, waiting up to busy_timeout), a transaction-scoped advisory lock on
    PostgreSQL. DDL is transactional on both, so a failed upgrade leaves the old schema."""
    with engine.execution_options(finops_write=True).begin() as c:
        _lock(c, _PG_LOCK_KEY)
        yield c


def _lock(c: Connection, key: int) -> None:
    """On PostgreSQL, hold advisory lock ``key`` until ``c``'s transaction ends."""
    if c.dialect.name == "postgresql":
        c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# -- rows and connections ----------------------------------------------------------------------
def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _opt_aware(d: datetime | None) -> datetime | None:
    return None if d is None else _aware(d)


def _spec_problem(r: Mapping[Any, Any]) -> str | None:
    """Why the row's stored spec does not load any more (None: it loads)."""
    from pydantic import ValidationError

    try:
        from_json(r["spec"])
    except ValidationError as e:
        why = "; ".join(f"{field_path(err['loc']) or '(spec)'}: {str(err['msg']).removeprefix('Value error, ')}"
                        for err in e.errors())
        todo = (f": cancel it (`finops queue cancel {r['id']}`) and queue a corrected spec"
                if r["state"] in ACTIVE else "")
        return f"workload {r['id']} ({r['name']}, {r['state']}): its stored spec no longer loads ({why}); skipped{todo}"
    return None


def _checked_row(r: Mapping[Any, Any]) -> QueuedWorkload:
    problem = _spec_problem(r)
    if problem is not None:
        raise LedgerError(problem)
    return _row(r)


def _row(r: Mapping[Any, Any]) -> QueuedWorkload:
    return QueuedWorkload(r["id"], r["name"], r["team"], r["kind"], r["priority"], r["state"], from_json(r["spec"]),
                          r["source"], _aware(r["created_at"]), _aware(r["updated_at"]), r["target"],
                          r["external_id"], r["attempt"], r["last_error"], _opt_aware(r["placed_at"]),
                          _opt_aware(r["submitted_at"]), _opt_aware(r["running_at"]), _opt_aware(r["ended_at"]))


def _sqlite_transactions(engine: Engine) -> None:
    """Real transactions on SQLite. Python's sqlite3 module opens a transaction only before DML, so a
    read-then-write or DDL would run outside it; here the driver stays in autocommit and SQLAlchemy's
    begin emits BEGIN itself (SQLAlchemy's documented pysqlite recipe) — IMMEDIATE for writers."""
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("finops_write") else "BEGIN")
