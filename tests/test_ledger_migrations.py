"""Ledger migrations on real SQLite and PostgreSQL: from empty and from the schema made before migrations
(by ``create_all``), head equal to the code's tables, a round trip down and up, a newer database refused,
and two processes opening a fresh database at once."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    inspect,
    select,
    text,
)

from finops.ledger import Ledger, LedgerError, alembic_config, head_revision, metadata
from finops.workloads import dumps, loads
from tests import test_ledger

db_url = test_ledger.db_url  # the fixture: a fresh SQLite / PostgreSQL database

# The schema as finops made it with `metadata.create_all` before migrations (revision 0001), copied here so
# the test keeps describing those databases whatever the code's tables become.
OLD = MetaData()
OLD_WORKLOADS = Table(
    "workloads", OLD,
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
OLD_PLACEMENTS = Table(
    "placements", OLD,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", Integer, ForeignKey("workloads.id"), nullable=False, index=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("placed", Integer, nullable=False),
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
# The newest migration file's revision (files are numbered in order): what the code's schema must be.
HEAD = max(p.name[:4] for p in (Path(__file__).parents[1] / "finops" / "migrations" / "versions").glob("0*.py"))
SPEC = loads("{name: a, team: nlp, accelerators: {name: H100, count: 8}, runtime_hours: 10}")[0]
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
LEG = {"provider": "aws", "region": "us-east-1", "zone": None, "instance_type": "p5.48xlarge", "market": "spot",
       "replicas": 1, "accelerator_name": "H100", "accelerator_count": 8.0, "price_per_hour": 30.0,
       "observed_at": "2026-05-01 11:00:00+00:00", "pool": None}


def _diff(url: str, target: MetaData) -> list[Any]:
    """What differs between the database and ``target`` (tables, columns, types, indexes, keys)."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            diffs = compare_metadata(MigrationContext.configure(c), target)
    finally:
        engine.dispose()
    return [d for d in diffs
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


def _version(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return list(c.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def _alembic(url: str, fn: Any, rev: str) -> None:
    """Run an alembic command (upgrade, downgrade) on ``url`` as finops does: the connection passed in."""
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            fn(alembic_config(c), rev)
    finally:
        engine.dispose()


def test_an_empty_database_is_migrated_to_the_code_s_tables(db_url: str) -> None:
    ledger = Ledger(db_url)
    ledger.engine.dispose()
    assert ledger.revision == head_revision() == HEAD
    assert _version(db_url) == [HEAD]
    assert _diff(db_url, metadata) == []


def test_revision_0001_is_the_schema_create_all_made(db_url: str) -> None:
    _alembic(db_url, command.upgrade, "0001")
    assert _diff(db_url, OLD) == []


def test_a_ledger_made_before_migrations_is_stamped_and_upgraded_keeping_its_rows(db_url: str) -> None:
    engine = create_engine(db_url)
    OLD.create_all(engine)
    with engine.begin() as c:
        for wid, state in ((1, "placed"), (2, "queued"), (3, "cancelled")):
            c.execute(insert(OLD_WORKLOADS).values(id=wid, name=f"w{wid}", team="nlp", kind="train", priority=5,
                                                   state=state, spec=dumps(SPEC), source="q.yaml", created_at=T0,
                                                   updated_at=T0))
        c.execute(insert(OLD_PLACEMENTS).values(workload_id=1, run_id="r", decided_at=T0, placed=1, provider="aws",
                                                expected_cost=300.0, legs=[LEG]))
    engine.dispose()
    ledger = Ledger(db_url)
    assert _version(db_url) == [HEAD] and _diff(db_url, metadata) == []
    w = {x.id: x for x in ledger.list()}
    assert [(x.name, x.state, x.attempt) for x in w.values()] == [("w1", "placed", 0), ("w2", "queued", 0),
                                                                  ("w3", "cancelled", 0)]
    # the time of each current state is the last update; earlier ones are unknown
    assert (w[1].placed_at, w[2].placed_at, w[3].ended_at, w[3].placed_at) == (T0, None, T0, None)
    (held,) = ledger.holding()
    assert (held.workload_id, held.expected_cost, held.legs[0].instance_type) == (1, 300.0, "p5.48xlarge")
    ledger.transition(1, "placed", "submitted", target="simulator", external_id="sim-1")
    ledger.engine.dispose()


def test_downgrade_and_upgrade_round_trip(db_url: str) -> None:
    ledger = Ledger(db_url)
    (wid,) = ledger.add([(SPEC, None)])
    ledger.move([wid], "placed")
    ledger.engine.dispose()
    _alembic(db_url, command.downgrade, "0001")
    assert _diff(db_url, OLD) == [] and _version(db_url) == ["0001"]
    _alembic(db_url, command.upgrade, "head")
    assert _diff(db_url, metadata) == []
    _alembic(db_url, command.downgrade, "base")
    engine = create_engine(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_a_database_newer_than_the_code_is_refused_unchanged(db_url: str) -> None:
    Ledger(db_url).engine.dispose()
    engine = create_engine(db_url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(LedgerError, match=rf"schema revision 0099, which this finops does not know \(it knows up to "
                                          rf"{HEAD}\).*upgrade finops"):
        Ledger(db_url)
    assert _version(db_url) == ["0099"]


def test_a_database_with_only_part_of_a_ledger_is_refused(db_url: str) -> None:
    engine = create_engine(db_url)
    OLD_WORKLOADS.create(engine)
    engine.dispose()
    with pytest.raises(LedgerError, match="has a workloads table but is not a finops ledger"):
        Ledger(db_url)


def _open(url: str, barrier: Any, results: Any) -> None:
    """In a child process: open (and so migrate) the ledger when the other one does."""
    try:
        barrier.wait(timeout=60)
        ledger = Ledger(url)
        results.put(("ok", ledger.revision))
    except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the test with it)
        results.put(("error", f"{type(e).__name__}: {e}"))


def test_two_processes_opening_a_fresh_database_at_once_both_succeed(db_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(db_url, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert got == [("ok", HEAD), ("ok", HEAD)]
    assert _version(db_url) == [HEAD] and _diff(db_url, metadata) == []
    engine = create_engine(db_url)
    with engine.connect() as c:
        assert c.scalar(select(text("count(*)")).select_from(text("workloads"))) == 0
    engine.dispose()
