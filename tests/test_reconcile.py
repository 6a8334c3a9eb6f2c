"""Reconciliation: billed cost from tagged rows (exact), pending / running / billed workloads, Kubernetes node
shares, the corrections learnt — and the whole loop through the simulated cloud, ``finops ingest`` and the CLI."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops import focus
from finops.config import Config, SimulatorTarget, parse
from finops.learning import family
from finops.ledger import Ledger, NewLaunch
from finops.placements import Leg, Placed
from finops.reconcile import PodRun, reconcile, shared_cost, tagged_cost
from finops.services import reconcile as svc
from finops.services.ingest import ingest
from finops.workloads import loads
from placement.launchers import simulator as sim
from placement.launchers.base import Submission, job_name, tags
from tests.test_cli import run

T0 = datetime(2026, 11, 2, tzinfo=UTC)
MONEY = pl.Decimal(38, 15)


def _billing(rows: Sequence[tuple[str | None, Decimal]]) -> pl.LazyFrame:
    return pl.LazyFrame({"Tags": [t for t, _ in rows], "BilledCost": [c for _, c in rows]},
                        schema={"Tags": pl.String, "BilledCost": MONEY})


# -- billed = Σ tagged rows, exactly ----------------------------------------------------------------------
_values = st.one_of(st.integers(1, 6).map(str), st.sampled_from(["0012", "12abc", "", "x", '5"']), st.text(max_size=8))
_tags = st.one_of(st.none(), st.dictionaries(st.sampled_from(["finops-placement", "finops-team", "note", "Finops"]),
                                             _values, max_size=3).map(json.dumps))
_costs = st.decimals(min_value=Decimal(-500), max_value=Decimal(5000), places=6, allow_nan=False)


def _placement_of(tags_json: str | None) -> int | None:
    if tags_json is None:
        return None
    v = json.loads(tags_json).get("finops-placement")
    return int(v) if isinstance(v, str) and v.isascii() and v.isdigit() else None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_tags, _costs), max_size=60))
def test_billed_is_the_sum_of_the_tagged_rows_to_the_cent(rows: list[tuple[str | None, Decimal]]) -> None:
    want: dict[int, Decimal] = {}
    count: dict[int, int] = {}
    for t, c in rows:
        p = _placement_of(t)
        if p is not None:
            want[p] = want.get(p, Decimal(0)) + c
            count[p] = count.get(p, 0) + 1
    got = tagged_cost(_billing(rows))
    assert {int(p): Decimal(b) for p, b in zip(got["placement_id"], got["billed"], strict=True)} == want
    assert dict(zip(got["placement_id"].to_list(), got["rows"].to_list(), strict=True)) == count


def test_only_the_placements_asked_for_are_returned() -> None:
    rows = [(json.dumps({"finops-placement": str(i % 3)}), Decimal("1.10")) for i in range(9)]
    got = tagged_cost(_billing(rows), [1, 2, 7])
    assert got["placement_id"].to_list() == [1, 2] and [Decimal(b) for b in got["billed"]] == [Decimal("3.30")] * 2


# -- Kubernetes: a share of the nodes ----------------------------------------------------------------------
def _node_rows(node: str, hours: int, cost: str) -> list[dict[str, object]]:
    return [{"ResourceId": node, "ChargePeriodStart": T0 + timedelta(hours=h),
             "ChargePeriodEnd": T0 + timedelta(hours=h + 1), "BilledCost": Decimal(cost)} for h in range(hours)]


def _nodes(*parts: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame([r for p in parts for r in p], schema={"ResourceId": pl.String,
                                                              "ChargePeriodStart": focus.DATETIME,
                                                              "ChargePeriodEnd": focus.DATETIME, "BilledCost": MONEY})


def test_a_pod_pays_its_share_of_the_node_over_the_hours_it_ran() -> None:
    nodes = _nodes(_node_rows("node-a", 4, "10"), _node_rows("node-b", 4, "99"))
    pod = PodRun(7, "node-a", 2, 8, T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    cpu = PodRun(8, "node-b", 0, 0, T0 + timedelta(hours=3), T0 + timedelta(hours=9))  # no accelerators: all of it
    assert shared_cost(nodes, [pod, cpu]) == {7: Decimal("3.75"), 8: Decimal(99)}  # 10 × (0.5 + 1) × 2/8


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=6), st.integers(1, 5),
       st.decimals(min_value=Decimal("0.01"), max_value=Decimal(90), places=2))
def test_pods_filling_a_node_share_all_of_its_cost(gpus: list[int], hours: int, price: Decimal) -> None:
    total = sum(gpus)
    nodes = _nodes(_node_rows("n", hours, str(price)))
    pods = [PodRun(i, "n", g, total, T0, T0 + timedelta(hours=hours)) for i, g in enumerate(gpus)]
    shares = shared_cost(nodes, pods)
    assert abs(sum(shares.values()) - price * hours) <= Decimal("1e-9") * len(gpus)


# -- per workload, with a real ledger ------------------------------------------------------------------
SPECS = loads("""
- {name: done-job, team: nlp, accelerators: {name: A100, count: 8}, runtime_hours: 4}
- {name: live-job, team: nlp, accelerators: {name: A100, count: 8}, runtime_hours: 4}
- {name: quiet-job, team: vision, accelerators: {name: A100, count: 8}, runtime_hours: 4}
- {name: pod-job, team: vision, accelerators: {name: A100, count: 2}, runtime_hours: 4}
""")


def _leg(provider: str, instance_type: str, price: float, region: str = "us-east-1") -> Leg:
    return Leg(provider=provider, region=region, instance_type=instance_type, market="on_demand", replicas=1,
               accelerator_name="A100", accelerator_count=8.0, price_per_hour=price, observed_at=T0)


def _decision(wid: int, name: str, team: str, leg: Leg, cost: float) -> Placed:
    return Placed(workload_id=wid, name=name, team=team, legs=(leg,), expected_hours=4.0, expected_cost=cost,
                  compute_cost=cost, rework_cost=0.0, egress_cost=0.0)


def _launched(led: Ledger, legs: list[tuple[Leg, float, str]]) -> dict[int, int]:
    """Queue, place and launch one workload per leg; returns workload id → placement id."""
    ids = led.add([(s, None) for s in SPECS[:len(legs)]])
    led.record("run-1", [_decision(w, s.name, s.team, leg, cost)
                         for w, s, (leg, cost, _) in zip(ids, SPECS, legs, strict=True)])
    pid = {r.decision.workload_id: r.id for r in led.placements()}
    for w, (leg, _, kind) in zip(ids, legs, strict=True):
        led.submit(w, [NewLaunch(placement_id=pid[w], leg=0, target=f"my-{kind}", kind=kind, external_id=f"x-{w}",
                                 name=f"job-{w}", provider=leg.provider, region=leg.region,
                                 instance_type=leg.instance_type, market=leg.market, replicas=1)])
    return pid


def _set(led: Ledger, wid: int, state: str) -> None:
    launch = next(x for x in led.launches() if x.workload_id == wid)
    led.update_launch(launch, "running", move=("submitted", "running"))
    if state != "running":
        launch = next(x for x in led.launches() if x.workload_id == wid)
        led.update_launch(launch, state, move=("running", "done" if state == "done" else "queued"))


def test_workloads_are_billed_running_or_pending_and_teach_corrections(tmp_path: Path) -> None:
    led = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    legs = [(_leg("aws", "p4d.24xlarge", 30.0), 120.0, "sagemaker"), (_leg("aws", "p4d.24xlarge", 30.0), 120.0,
                                                                      "sagemaker"),
            (_leg("gcp", "a2-highgpu-8g", 28.0), 112.0, "vertex"), (_leg("aws", "p4d.24xlarge", 30.0), 30.0,
                                                                    "kubernetes")]
    pid = _launched(led, legs)
    w1, w2, w3, w4 = sorted(pid)
    _set(led, w1, "done")
    _set(led, w2, "running")
    _set(led, w4, "done")
    _set(led, w3, "preempted")  # back in the queue: its bill so far covers part of the run
    tag = lambda p: json.dumps({"finops-placement": str(pid[p]), "finops-team": "nlp"})  # noqa: E731
    rows = [(tag(w1), Decimal("33.333333")) for _ in range(4)] + [(tag(w2), Decimal(30))] + \
           [(tag(w3), Decimal(50)), (json.dumps({"finops-placement": "999"}), Decimal(7))]  # 999: not ours
    billing = _billing(rows).with_columns(pl.lit(None, pl.String).alias("ResourceId"),
                                          pl.lit(T0, focus.DATETIME).alias("ChargePeriodStart"),
                                          pl.lit(T0 + timedelta(hours=1), focus.DATETIME).alias("ChargePeriodEnd"))
    nodes = _nodes(_node_rows("i-node", 4, "32.8")).lazy()
    billing = pl.concat([billing, nodes.with_columns(pl.lit(None, pl.String).alias("Tags"))], how="diagonal")
    pods = [PodRun(pid[w4], "i-node", 2, 8, T0, T0 + timedelta(hours=4))]
    res = reconcile(billing, led.launches(), led.placements(), family=family, pods=pods)
    by = {w.workload_id: w for w in res.workloads}
    assert by[w1].status == "billed" and by[w1].billed == Decimal("133.333332") and by[w1].rows == 4
    assert by[w1].variance == Decimal("13.333332") and round(by[w1].variance_pct or 0, 2) == 11.11
    assert by[w2].status == "running" and by[w2].billed == Decimal(30)
    assert by[w3].status == "billed" and by[w3].billed == Decimal(50) and not by[w3].complete
    assert by[w4].status == "billed" and by[w4].shared and by[w4].billed == Decimal("32.8")  # 32.8 × 4 h × 2/8
    assert by[w1].team == "nlp" and by[w1].target == "my-sagemaker" and by[w1].family == "p4d"
    # Corrections: billed workloads only, per (provider, target kind, family)
    got = {(c.provider, c.target, c.family): c for c in res.corrections}
    assert set(got) == {("aws", "sagemaker", "p4d"), ("aws", "kubernetes", "p4d")}
    c = got[("aws", "sagemaker", "p4d")]
    assert (c.workloads, c.predicted, c.billed) == (1, 120.0, 133.333332)
    assert c.factor == pytest.approx(133.333332 / 120)
    assert got[("aws", "kubernetes", "p4d")].factor == pytest.approx(32.8 / 30)
    assert res.tagged_rows == 6


# -- the loop: simulated cloud → native exports → finops ingest → reconcile ----------------------------------
CLOUDS = [("aws", "us-east-1", "p4d.24xlarge", 32.77), ("gcp", "us-central1", "a2-highgpu-8g", 29.39),
          ("azure", "eastus", "Standard_NC24ads_A100_v4", 3.67)]


def _home(tmp: Path) -> Config:
    (tmp / "finops.toml").write_text(f'[store]\nurl = "{tmp / "finops-data"}"\n'
                                     f'[launch.targets.sim]\nkind = "simulator"\nstate = "{tmp / "sim"}"\n'
                                     'speed = 0.000001\nseed = 4\n')
    return parse(tomllib.loads((tmp / "finops.toml").read_text()), str(tmp / "finops.toml"))


def _loop(cfg: Config) -> tuple[Ledger, SimulatorTarget, dict[int, int]]:
    target = cfg.launch.target("sim")
    assert isinstance(target, SimulatorTarget)
    led = Ledger(cfg.ledger_url())
    client = sim.make_client(target)
    ids = led.add([(s, None) for s in SPECS[:3]])
    decisions = [_decision(w, s.name, s.team, _leg(p, it, price, r), price * 4)
                 for w, s, (p, r, it, price) in zip(ids, SPECS[:3], CLOUDS, strict=True)]
    led.record("run-1", decisions)
    pid = {r.decision.workload_id: r.id for r in led.placements()}
    for d in decisions:
        leg = d.legs[0]
        sub = Submission(name=job_name(d.name, d.workload_id, pid[d.workload_id]), workload_id=d.workload_id,
                         placement_id=pid[d.workload_id], leg=0, workload=d.name, team=d.team, kind="train",
                         provider=leg.provider, region=leg.region, zone=None, instance_type=leg.instance_type,
                         market="on_demand", replicas=1, accelerator_name="A100", accelerator_count=8.0, image=None,
                         command=[], env={}, tags=tags(d.team, d.name, pid[d.workload_id]), runtime_hours=4.0,
                         price_per_hour=leg.price_per_hour)
        job = sim.submit(client, target, sub)
        led.submit(d.workload_id, [NewLaunch(placement_id=pid[d.workload_id], leg=0, target="sim", kind="simulator",
                                             external_id=job.external_id, name=job.name, provider=leg.provider,
                                             region=leg.region, instance_type=leg.instance_type, market="on_demand",
                                             replicas=1)])
    return led, target, pid


def test_the_loop_bills_every_workload_from_its_tagged_rows(tmp_path: Path) -> None:
    cfg = _home(tmp_path)
    led, target, pid = _loop(cfg)
    client = sim.make_client(target)
    sim.advance(target, 10.0)
    for x in led.launches():
        job = sim.status(client, target, x.external_id)
        led.update_launch(x, "running", move=("submitted", "running"))
        now = next(y for y in led.launches() if y.id == x.id)
        led.update_launch(now, job.state, started_at=job.started_at, ended_at=job.ended_at, move=("running", "done"))
    sim.export_billing(target)
    ingest(cfg, [str(client.exports)], replace=True)
    res = svc.reconcile(cfg)
    store_rows = cfg.open_store().scan("billing").select("Tags", "BilledCost").collect()
    assert len(res.workloads) == 3 and all(w.status == "billed" for w in res.workloads)
    for w in res.workloads:  # billed = Σ of the store's rows carrying the placement tag, to the cent
        want = sum((Decimal(c) for t, c in store_rows.iter_rows()
                    if t and json.loads(t).get("finops-placement") == str(pid[w.workload_id])), Decimal(0))
        assert w.billed is not None and w.billed.quantize(Decimal("0.01")) == want.quantize(Decimal("0.01")) > 0
        drawn = sim.draw(target.seed, job_name(w.name, w.workload_id, pid[w.workload_id]), "train", 4.0, False, 0)
        factor = sim.billed_factor(target.seed, w.provider, family(w.provider, w.instance_type))
        assert float(w.billed) == pytest.approx(float(w.predicted) * drawn.runtime_hours / 4.0 * factor, rel=1e-4)
    saved = {(c.provider, c.family): c.factor for c in Ledger(cfg.ledger_url()).corrections()}
    assert saved == {(c.provider, c.family): c.factor for c in res.corrections} and len(saved) == 3
    # the CLI prints the same, as JSON and as tables
    out = json.loads(run(tmp_path, "reconcile", "--json", "--no-save").stdout)
    assert [w["billed"] for w in out["workloads"]] == [str(w.billed.quantize(Decimal("0.01")))
                                                       for w in res.workloads if w.billed is not None]
    table = run(tmp_path, "reconcile").stdout
    assert "Corrections learnt" in table and "done-job" in table and "NCads_A100_v4" in table


def test_a_workload_without_billing_rows_is_pending_not_zero(tmp_path: Path) -> None:
    cfg = _home(tmp_path)
    led, target, _ = _loop(cfg)
    sim.advance(target, 10.0)
    sim.export_billing(target)
    ingest(cfg, [str(sim.make_client(target).exports)], replace=True)
    late = led.add([(SPECS[3], None)])[0]  # launched after the bill was exported
    led.record("run-2", [_decision(late, "pod-job", "vision", _leg("aws", "p4d.24xlarge", 30.0), 120.0)])
    p = next(r.id for r in led.placements() if r.decision.workload_id == late)
    led.submit(late, [NewLaunch(placement_id=p, leg=0, target="sim", kind="simulator", external_id="sim:late",
                                name="late", provider="aws", region="us-east-1", instance_type="p4d.24xlarge",
                                market="on_demand", replicas=1)])
    out = json.loads(run(tmp_path, "reconcile", "--json").stdout)
    by = {w["name"]: w for w in out["workloads"]}
    assert by["pod-job"]["status"] == "pending" and by["pod-job"]["billed"] is None
    assert by["pod-job"]["predicted"] == "120.00" and by["pod-job"]["variance"] is None
    # the ledger has not heard the jobs ended (no sync yet): billed so far, not learnt from
    assert {by[n]["status"] for n in ("done-job", "live-job", "quiet-job")} == {"running"}
    assert out["corrections"] == [] and Ledger(cfg.ledger_url()).corrections() == []


def test_no_billing_yet_is_one_sentence(tmp_path: Path) -> None:
    cfg = _home(tmp_path)
    _loop(cfg)
    missing = run(tmp_path, "reconcile", check=False)
    assert missing.returncode == 2 and "holds no billing yet" in missing.stderr and "Traceback" not in missing.stderr


def test_no_ledger_is_one_sentence(tmp_path: Path) -> None:
    _home(tmp_path)
    res = run(tmp_path, "reconcile", check=False)
    assert res.returncode == 2 and "nothing was launched" in res.stderr and "Traceback" not in res.stderr
