"""Compare-and-swap with real processes: two processes (spawned, each with its own engine and
connections) race to launch the same placed workloads, on a SQLite file and on PostgreSQL. For every
workload exactly one wins; the other gets LedgerConflict naming the state it found; one launch recorded."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from finops.ledger import Ledger, LedgerConflict, LedgerError
from finops.workloads import loads
from tests import test_ledger

db_url = test_ledger.db_url  # the fixture: a fresh SQLite / PostgreSQL database

ROUNDS = 5


def _launch(url: str, ids: list[int], who: str, barrier: Any, results: Any) -> None:
    """In a child process: for each workload, wait for the other process, then try placed → submitted."""
    out: list[tuple[int, str]] = []
    try:
        ledger = Ledger(url)
        for wid in ids:
            barrier.wait(timeout=60)
            try:
                ledger.transition(wid, "placed", "submitted", target="simulator", external_id=f"{who}-{wid}")
                out.append((wid, "won"))
            except LedgerConflict as e:
                out.append((wid, str(e)))
        results.put((who, out))
    except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the test with it)
        results.put((who, f"{type(e).__name__}: {e}"))


def test_two_processes_launch_the_same_workload_exactly_one_wins(db_url: str) -> None:
    ledger = Ledger(db_url)
    specs = loads("\n".join(f"- {{name: w{i}, team: nlp, accelerators: {{name: T4}}, runtime_hours: 1}}"
                            for i in range(ROUNDS)))
    ids = ledger.add([(s, None) for s in specs])
    ledger.move(ids, "placed")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_launch, args=(db_url, ids, who, barrier, results)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(v, list) for v in got.values()), got
    for n, wid in enumerate(ids):
        outcomes = {who: got[who][n][1] for who in got}
        winners = [who for who, o in outcomes.items() if o == "won"]
        assert len(winners) == 1, outcomes
        (loser,) = set(outcomes) - set(winners)
        assert outcomes[loser] == f"workload {wid} was moved to submitted by another process (expected placed)"
        w = ledger.get(wid)
        assert (w.state, w.attempt, w.external_id) == ("submitted", 1, f"{winners[0]}-{wid}")
        assert [(t.old_state, t.new_state) for t in ledger.history(wid)] == [("queued", "placed"),
                                                                            ("placed", "submitted")]
    ledger.engine.dispose()


def _add(url: str, who: str, barrier: Any, results: Any) -> None:
    """In a child process: queue the same workload name as the other process, at the same moment."""
    try:
        ledger = Ledger(url)
        barrier.wait(timeout=60)
        try:
            ledger.add([(loads("{name: same, team: nlp, runtime_hours: 1}")[0], who)])
            results.put((who, "added"))
        except LedgerError as e:
            results.put((who, str(e)))
    except Exception as e:  # noqa: BLE001  (reported to the parent, which fails the test with it)
        results.put((who, f"{type(e).__name__}: {e}"))


def test_two_processes_queue_the_same_name_once(db_url: str) -> None:
    Ledger(db_url).engine.dispose()  # migrated before the race: this test is about add
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_add, args=(db_url, who, barrier, results)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert sorted(got.values()) == ["added", "already in the queue (cancel it first or rename): same"], got
    ledger = Ledger(db_url)
    assert [w.name for w in ledger.list()] == ["same"]
    ledger.engine.dispose()
