"""The queue and ledger on real SQLite and PostgreSQL: states, compare-and-swap moves, launches, all-or-nothing
batches, recorded placements."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from finops.ledger import Holding, Ledger, LedgerConflict, LedgerError, placements, workloads
from finops.placements import Leg, Placed, RunnerUp, Unplaced
from finops.workloads import loads

SPECS = loads("""
- {name: a, team: nlp, accelerators: {name: H100, count: 8}, runtime_hours: 10}
- {name: b, team: vision, accelerators: {name: T4}, runtime_hours: 2, spot: never}
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file (the default) or a PostgreSQL database (by URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:  # FORCE: a test's engines may still hold pooled connections
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    """The ledger on SQLite and on PostgreSQL, each test on a fresh database."""
    ledger = Ledger(db_url)
    yield ledger
    ledger.engine.dispose()


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
    with pytest.raises(LedgerError, match=r"already in the queue.*a"):
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


T0 = datetime(2026, 11, 20, 4, tzinfo=UTC)


def _placed(wid: int, name: str = "a", team: str = "nlp") -> Placed:
    leg = Leg(provider="aws", region="us-east-1", zone="us-east-1a", instance_type="p5.48xlarge", market="spot",
              replicas=1, accelerator_name="H100", accelerator_count=8.0, price_per_hour=30.0, observed_at=T0)
    return Placed(workload_id=wid, name=name, team=team, legs=(leg,), expected_hours=10.0, expected_cost=300.0,
                  compute_cost=290.0, rework_cost=6.0, egress_cost=4.0, baseline_cost=980.0,
                  runner_up=RunnerUp(provider="gcp", region="us-east4", instance_type="a3-highgpu-8g", market="spot",
                                     price_per_hour=31.0, expected_cost=310.0))


def test_record_is_one_transaction(ledger: Ledger) -> None:
    a, b = ledger.add([(s, None) for s in SPECS])
    good = _placed(a)
    missing = Unplaced(workload_id=12345, name="x", team="t", reason="no offer fits")
    with pytest.raises(LedgerError):
        ledger.record("run1", [good, missing])
    assert _counts(ledger) == (2, 0) and ledger.get(a).state == "queued"
    unplaced = Unplaced(workload_id=b, name="b", team="vision", reason="budget: team vision", baseline_cost=5.0)
    ledger.record("run2", [good, unplaced])
    assert ledger.get(a).state == "placed" and ledger.get(b).state == "queued"
    rows = ledger.placements()
    assert [(r.run_id, r.decision) for r in rows] == [("run2", good), ("run2", unplaced)]  # typed, as recorded
    assert rows[0].decided_at.tzinfo is not None and rows[0].id < rows[1].id
    assert ledger.placements([b])[0].decision == unplaced
    with ledger.engine.connect() as c:  # the headline columns are the main leg's, for SQL readers
        row = c.execute(select(placements).where(placements.c.workload_id == a)).mappings().one()
    assert (row["provider"], row["price_per_hour"], row["replicas"], row["saving"]) == ("aws", 30.0, 1, 680.0)
    held = ledger.holding()
    assert held == [Holding(a, "nlp", 300.0, good.legs, rows[0].decided_at)]
    assert ledger.holding(since=rows[0].decided_at + timedelta(seconds=1)) == []


def test_record_loses_whole_when_a_placed_workload_moved_meanwhile(ledger: Ledger) -> None:
    a, b = ledger.add([(s, None) for s in SPECS])
    ledger.cancel(b)  # e.g. `finops queue cancel` while `finops place` was deciding
    with pytest.raises(LedgerConflict, match=f"workload {b} was moved to cancelled by another process "
                                             r"\(expected queued\)"):
        ledger.record("run", [_placed(a), _placed(b, "b", "vision")])
    assert ledger.get(a).state == "queued" and _counts(ledger) == (2, 0) and ledger.history(a) == []


def test_a_launch_records_target_job_attempt_and_times(ledger: Ledger) -> None:
    (i,) = ledger.add([(SPECS[0], None)])
    ledger.record("run", [_placed(i)])
    with pytest.raises(LedgerError, match="needs the launch target and the job's external id"):
        ledger.transition(i, "placed", "submitted", target="sagemaker")
    with pytest.raises(LedgerError, match=f"not allowed: {i} \\(placed → running\\)"):
        ledger.transition(i, "placed", "running")
    w = ledger.transition(i, "placed", "submitted", target="sagemaker", external_id="finops-a-1")
    assert (w.state, w.target, w.external_id, w.attempt) == ("submitted", "sagemaker", "finops-a-1", 1)
    assert w.placed_at is not None and w.submitted_at is not None and w.placed_at <= w.submitted_at
    assert ledger.find("sagemaker", "finops-a-1") == w and ledger.find("vertex", "finops-a-1") is None
    # the same move again is a lost compare-and-swap, not a second launch
    with pytest.raises(LedgerConflict, match=f"workload {i} was moved to submitted by another process "
                                             r"\(expected placed\)"):
        ledger.transition(i, "placed", "submitted", target="sagemaker", external_id="finops-a-2")
    w = ledger.transition(i, "submitted", "failed", error="ResourceLimitExceeded: ml.p5.48xlarge")
    assert (w.state, w.last_error, w.attempt, w.external_id) == ("failed", "ResourceLimitExceeded: ml.p5.48xlarge",
                                                                1, "finops-a-1")
    assert w.ended_at is not None and w.running_at is None
    moves = [(t.old_state, t.new_state, t.attempt, t.external_id, t.error) for t in ledger.history(i)]
    assert moves == [("queued", "placed", 0, None, None), ("placed", "submitted", 1, "finops-a-1", None),
                     ("submitted", "failed", 1, None, "ResourceLimitExceeded: ml.p5.48xlarge")]


def test_a_failed_submit_goes_back_to_the_queue_and_job_ids_are_unique_per_target(ledger: Ledger) -> None:
    a, b = ledger.add([(s, None) for s in SPECS])
    ledger.record("run1", [_placed(a), _placed(b, "b", "vision")])
    ledger.transition(a, "placed", "submitted", target="kubernetes", external_id="job-1")
    with pytest.raises(LedgerError, match=f"job job-1 on kubernetes is already recorded for workload {a}"):
        ledger.transition(b, "placed", "submitted", target="kubernetes", external_id="job-1")
    assert ledger.get(b).state == "placed" and ledger.get(b).attempt == 0
    # a submit that failed before the provider took it: back to the queue with the error, re-placed, resubmitted
    w = ledger.transition(b, "placed", "queued", error="throttled by the API (3 tries)")
    assert (w.state, w.last_error) == ("queued", "throttled by the API (3 tries)")
    with pytest.raises(LedgerError, match="set on submit"):
        ledger.transition(b, "queued", "placed", target="kubernetes")
    ledger.record("run2", [_placed(b, "b", "vision")])
    w = ledger.transition(b, "placed", "submitted", target="vertex", external_id="job-1")  # another target: fine
    assert (w.attempt, w.target) == (1, "vertex")
    w = ledger.transition(b, "submitted", "running")
    assert w.running_at is not None and w.running_at >= w.submitted_at  # type: ignore[operator]
