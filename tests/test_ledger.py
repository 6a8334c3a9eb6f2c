"""The queue and ledger on real SQLite and PostgreSQL: states, all-or-nothing batches, recorded placements."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from finops.ledger import Ledger, LedgerError, placements, workloads
from finops.workloads import loads

SPECS = loads("""
- {name: a, team: nlp, accelerators: {name: H100, count: 8}, runtime_hours: 10}
- {name: b, team: vision, accelerators: {name: T4}, runtime_hours: 2, spot: never}
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The ledger on SQLite (the default) and on PostgreSQL (by URL), each test on a fresh database."""
    if request.param == "sqlite":
        yield Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        return
    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("postgres_url")
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    ledger = Ledger(base.rsplit("/", 1)[0] + f"/{name}")
    yield ledger
    ledger.engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()


def _counts(ledger: Ledger) -> tuple[int, int]:
    with ledger.engine.connect() as c:
        return (c.scalar(select(func.count()).select_from(workloads)),
                c.scalar(select(func.count()).select_from(placements)))


def test_add_list_cancel_round_trip(ledger: Ledger) -> None:
    ids = ledger.add([(s, "q.yaml") for s in SPECS])
    got = ledger.list()
    assert [w.id for w in got] == ids and [w.state for w in got] == ["queued", "queued"]
    assert got[0].spec == SPECS[0] and got[0].source == "q.yaml" and got[1].team == "vision"
    ledger.cancel(ids[0])
    assert [w.state for w in ledger.list(["queued"])] == ["queued"]
    assert ledger.get(ids[0]).state == "cancelled"
    with pytest.raises(LedgerError, match=r"not allowed: .*cancelled → cancelled"):
        ledger.cancel(ids[0])
    with pytest.raises(LedgerError, match="no workload with id 999"):
        ledger.cancel(999)
    # a cancelled name can be queued again
    ledger.add([(SPECS[0], None)])
    assert len(ledger.list(["queued"])) == 2


def test_a_failing_batch_add_leaves_the_queue_unchanged(ledger: Ledger) -> None:
    ledger.add([(SPECS[0], None)])
    before = ledger.list()
    with pytest.raises(LedgerError, match="already in the queue.*a"):
        ledger.add([(SPECS[1], None), (SPECS[0], None)])  # b would go in first, then a clashes
    assert ledger.list() == before
    assert _counts(ledger) == (1, 0)


def test_state_machine(ledger: Ledger) -> None:
    (i,) = ledger.add([(SPECS[0], None)])
    with pytest.raises(LedgerError, match="queued → running"):
        ledger.move([i], "running")
    for state in ("placed", "submitted", "running", "done"):
        ledger.move([i], state)
    with pytest.raises(LedgerError, match="unknown state"):
        ledger.move([i], "paused")
    (j,) = ledger.add([(SPECS[1], None)])
    with pytest.raises(LedgerError, match=f"{i} \\(done → cancelled\\)"):
        ledger.move([j, i], "cancelled")  # j could be cancelled, i not: neither is
    assert ledger.get(j).state == "queued" and ledger.get(i).state == "done"


def test_record_is_one_transaction(ledger: Ledger) -> None:
    a, b = ledger.add([(s, None) for s in SPECS])
    good = {"workload_id": a, "placed": True, "provider": "aws", "region": "us-east-1", "instance_type": "p5.48xlarge",
            "market": "spot", "accelerator_name": "H100", "accelerator_count": 8.0, "replicas": 1,
            "price_per_hour": 30.0, "expected_cost": 300.0, "team": "nlp",
            "legs": [{"provider": "aws", "region": "us-east-1", "accelerator_name": "H100", "accelerator_count": 8.0,
                      "replicas": 1}]}
    missing = {"workload_id": 12345, "placed": True, "provider": "gcp"}
    with pytest.raises(LedgerError):
        ledger.record("run1", [good, missing])
    assert _counts(ledger) == (2, 0) and ledger.get(a).state == "queued"
    ledger.record("run2", [good, {"workload_id": b, "placed": False, "reason": "budget: team vision"}])
    assert ledger.get(a).state == "placed" and ledger.get(b).state == "queued"
    rows = ledger.placements()
    assert [(r["workload_id"], r["placed"], r["price_per_hour"]) for r in rows] == [(a, 1, 30.0), (b, 0, None)]
    assert rows[1]["reason"] == "budget: team vision"
    held = ledger.holding()
    assert len(held) == 1 and held[0]["team"] == "nlp" and held[0]["expected_cost"] == 300.0
    assert held[0]["legs"][0]["accelerator_name"] == "H100"
