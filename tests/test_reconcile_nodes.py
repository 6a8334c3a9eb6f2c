"""Kubernetes workloads billed by node share, end to end: launches whose pods' nodes the dispatcher recorded
(``launches.nodes``), billing rows of those nodes in the store, ``finops reconcile`` — billed = the node's cost
× the pod's share of its accelerators × the part of each billed hour it ran, to the cent; a pod sharing a node
with another workload pays its share only; tagged rows, where they exist, win over the node share."""

from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from finops import focus
from finops.config import Config, parse
from finops.ledger import Ledger
from finops.reconcile import PodRun, node_key, shared_cost
from finops.services import reconcile as svc
from placement.launchers.base import NodeUse
from tests import test_ledger
from tests.conftest import SAMPLE_10
from tests.test_cli import run
from tests.test_ledger_migrations import _alembic
from tests.test_reconcile import _launched, _leg, _set

T0 = datetime(2026, 11, 2, tzinfo=UTC)
NODE_A, NODE_B = "i-0a1b2c3d4e5f60718", "i-0fedcba9876543210"
NODE_B_ARN = f"arn:aws:ec2:us-east-1:123456789012:instance/{NODE_B}"  # the bill may name an instance by ARN
H = timedelta(hours=1)
db_url = test_ledger.db_url  # the fixture: a fresh SQLite / PostgreSQL database


def _home(tmp: Path) -> Config:
    (tmp / "finops.toml").write_text(f'[store]\nurl = "{tmp / "finops-data"}"\n')
    return parse(tomllib.loads((tmp / "finops.toml").read_text()), str(tmp / "finops.toml"))


Row = tuple[str, datetime, datetime, str, str | None]


def _rows(rows: list[Row]) -> pl.DataFrame:
    """FOCUS rows (a real AWS sample row with ResourceId, charge period, BilledCost and Tags replaced)."""
    mine = pl.DataFrame({"ResourceId": [r[0] for r in rows], "ChargePeriodStart": [r[1] for r in rows],
                         "ChargePeriodEnd": [r[2] for r in rows], "BilledCost": [Decimal(r[3]) for r in rows],
                         "Tags": [r[4] for r in rows]})
    sample = focus.conform(pl.scan_csv(SAMPLE_10, infer_schema=False)).filter(pl.col("ProviderName") == "AWS")
    template = sample.head(1).collect()
    out = template.drop(mine.columns).join(mine, how="cross").with_columns(
        pl.lit(rows[0][1].replace(day=1, hour=0)).alias("BillingPeriodStart"),
        pl.lit(rows[0][1].replace(day=1, hour=0) + timedelta(days=31)).alias("BillingPeriodEnd"))
    return out.select(template.columns).cast(template.schema)


def _hourly(resource: str, t0: datetime, hours: int, cost: str) -> list[Row]:
    return [(resource, t0 + h * H, t0 + (h + 1) * H, cost, None) for h in range(hours)]


def _pod(pod: str, resource: str | None, gpus: float, start: datetime, end: datetime | None) -> dict[str, object]:
    return NodeUse(pod=pod, node=f"node-{resource}", provider_id=None if resource is None else "aws:///x/y",
                   resource_id=resource, accelerators=gpus, node_accelerators=8, started_at=start,
                   ended_at=end).to_record()


def test_kubernetes_workloads_are_billed_their_share_of_the_nodes_they_ran_on(tmp_path: Path) -> None:
    cfg = _home(tmp_path)
    led = Ledger(cfg.ledger_url())
    p4d = _leg("aws", "p4d.24xlarge", 32.8)
    pid = _launched(led, [(p4d, 40.0, "kubernetes"), (p4d, 240.0, "kubernetes"), (p4d, 30.0, "kubernetes"),
                          (p4d, 30.0, "kubernetes")])
    w1, w2, w3, w4 = sorted(pid)
    for w in (w1, w2, w3, w4):
        _set(led, w, "done")
    by_wid = {x.workload_id: x for x in led.launches()}
    # the bill's hours from the hour the launches were submitted (reconcile reads rows from a day before)
    t0 = min(x.submitted_at for x in by_wid.values()).replace(minute=0, second=0, microsecond=0)
    # w1: 2 of node A's 8 GPUs 01:30–05:30, and all 8 of node B 02:00–03:15
    led.record_nodes(by_wid[w1], [_pod("w1-a", NODE_A, 2, t0 + 1.5 * H, t0 + 5.5 * H),
                                  _pod("w1-b", NODE_B, 8, t0 + 2 * H, t0 + 3.25 * H)])
    # w2: the other 6 GPUs of node A for all ten billed hours
    led.record_nodes(by_wid[w2], [_pod("w2-a", NODE_A, 6, t0, t0 + 10 * H)])
    # w3: on node A too, but its cluster's bill splits pods out and tags them: those rows are its cost
    led.record_nodes(by_wid[w3], [_pod("w3-a", NODE_A, 2, t0, t0 + 2 * H)])
    # w4: a node finops could not read (no bill id): nothing to share, and the report says so
    led.record_nodes(by_wid[w4], [_pod("w4-a", None, 8, t0, t0 + H)])
    tag = json.dumps({"finops-placement": str(pid[w3]), "finops-team": "vision"})
    billing = (_hourly(NODE_A, t0, 10, "32.8") + _hourly(NODE_B_ARN, t0, 4, "10")
               + [(NODE_A, t0 + 30 * H, t0 + 31 * H, "999", None),  # the node's later hours: nobody's run
                  ("i-0999999999999999f", t0, t0 + H, "555", None),  # another node
                  ("eks-split", t0, t0 + H, "3.1", tag), ("eks-split", t0 + H, t0 + 2 * H, "4.67", tag)])
    cfg.open_store().write("billing", _rows(billing))

    res = svc.reconcile(cfg, save=False)
    by = {w.workload_id: w for w in res.workloads}
    # 32.8 × (½ + 3 + ½) h × 2/8 + 10 × 1.25 h × 8/8
    assert by[w1].billed == Decimal("45.30") and by[w1].method == "node share" and by[w1].status == "billed"
    assert by[w2].billed == Decimal("246.00") and by[w2].method == "node share"  # 32.8 × 10 h × 6/8: its share only
    assert by[w3].billed == Decimal("7.77") and by[w3].method == "tagged" and by[w3].rows == 2
    assert by[w4].billed is None and by[w4].status == "pending" and by[w4].method is None
    shared_note = next(n for n in res.notes if "share of the nodes" in n)
    assert f"{w1} done-job" in shared_note and f"{w2} live-job" in shared_note and "quiet-job" not in shared_note
    assert any("own cost the bill does not give" in n and "job-" + str(w4) in n for n in res.notes)

    # the CLI says the same: a method per workload in --json, the node-share mark in the table
    out = json.loads(run(tmp_path, "reconcile", "--json", "--no-save").stdout)
    got = {w["workload_id"]: (w["billed"], w["method"]) for w in out["workloads"]}
    assert got == {w1: ("45.30", "node share"), w2: ("246.00", "node share"), w3: ("7.77", "tagged"),
                   w4: (None, None)}
    assert any("share of the nodes" in n for n in out["notes"])
    table = run(tmp_path, "reconcile", "--no-save").stdout
    assert "45.30 *" in table and "246.00 *" in table and "7.77 *" not in table


def test_a_pod_still_running_counts_until_now_and_rows_beyond_its_run_are_not_read() -> None:
    rows = pl.DataFrame({"ResourceId": [NODE_A.upper(), "x", NODE_A], "ChargePeriodStart": [T0, T0, T0 + 5 * H],
                         "ChargePeriodEnd": [T0 + H, T0 + H, T0 + 6 * H],
                         "BilledCost": [Decimal(8), Decimal(1), Decimal(8)]},
                        schema={"ResourceId": pl.String, "ChargePeriodStart": focus.DATETIME,
                                "ChargePeriodEnd": focus.DATETIME, "BilledCost": pl.Decimal(38, 15)})
    # node ids match whatever the case (Azure lower-cases ARM ids in exports) and an EC2 ARN names its instance
    assert node_key(NODE_A.upper()) == node_key(NODE_A) and node_key(NODE_B_ARN) == NODE_B
    assert shared_cost(rows, [PodRun(1, NODE_A, 4, 8, T0 + 0.25 * H, T0 + 2 * H)]) == {1: Decimal(3)}
    # a run none of the node's billed hours overlaps is not billed yet: absent, not zero
    assert shared_cost(rows, [PodRun(2, NODE_A, 4, 8, T0 + 2 * H, T0 + 3 * H)]) == {}


@pytest.mark.parametrize("ended", [True, False])
def test_pod_runs_end_with_the_pod_else_the_launch_else_now(tmp_path: Path, ended: bool) -> None:
    led = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    pid = _launched(led, [(_leg("aws", "p4d.24xlarge", 32.8), 40.0, "kubernetes")] * 4)  # _launched takes 4
    w = min(pid)
    _set(led, w, "running")
    lau = next(x for x in led.launches() if x.workload_id == w)
    led.record_nodes(lau, [_pod("a", NODE_A, 2, T0, None), _pod("b", NODE_A, 2, T0, T0 + H),
                           _pod("never", NODE_A, 2, T0, None) | {"started_at": None}])
    if ended:
        lau = next(x for x in led.launches() if x.workload_id == w)
        led.update_launch(lau, "done", ended_at=T0 + 3 * H, move=("running", "done"))
    lau = next(x for x in led.launches() if x.workload_id == w)
    runs, unknown = svc.kubernetes_pods([lau], now=T0 + 7 * H)
    assert unknown == []
    scale_set = ("/subscriptions/s/resourcegroups/mc_rg/providers/microsoft.compute/virtualmachinescalesets/"
                 "aks-gpu-vmss")
    led.record_nodes(lau, [_pod("vmss", scale_set, 2, T0, T0 + H)])
    aks = next(x for x in led.launches() if x.workload_id == w)
    assert svc.kubernetes_pods([aks], now=T0 + 7 * H)[1] == [aks]  # billed with its whole scale set: reported
    assert sorted((r.start, r.end) for r in runs) == [(T0, T0 + H), (T0, T0 + (3 if ended else 7) * H)]


def _launch_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("launches")}
    finally:
        engine.dispose()


def test_revision_0005_adds_the_nodes_column_and_its_downgrade_removes_it(db_url: str) -> None:
    Ledger(db_url).engine.dispose()
    assert "nodes" in _launch_columns(db_url)
    _alembic(db_url, command.downgrade, "0004")
    assert "nodes" not in _launch_columns(db_url) and "message" in _launch_columns(db_url)
    _alembic(db_url, command.upgrade, "0005")
    assert "nodes" in _launch_columns(db_url)


def test_two_syncs_recording_nodes_at_once_both_land(db_url: str) -> None:
    """Each sync merges its pods into the row as it is when it writes, not into the launch it read:
    two syncs of one launch from the same (stale) snapshot, in threads with ledgers of their own, keep
    both pods (on PostgreSQL the row is locked; SQLite writers queue)."""
    led = Ledger(db_url)
    pid = _launched(led, [(_leg("aws", "p4d.24xlarge", 32.8), 40.0, "kubernetes")] * 4)
    w = min(pid)
    _set(led, w, "running")
    stale = next(x for x in led.launches() if x.workload_id == w)
    pods = [_pod(f"p{i}", NODE_A, 1, T0 + i * H, None) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda p: Ledger(db_url).record_nodes(stale, [p]), pods))
    assert all(done)
    now = next(x for x in Ledger(db_url).launches() if x.workload_id == w)
    assert sorted(str(r["pod"]) for r in now.nodes) == [f"p{i}" for i in range(8)]
    assert not Ledger(db_url).record_nodes(stale, pods[:1])  # nothing new: nothing written
