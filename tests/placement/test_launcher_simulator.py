"""The simulated cloud: the launcher contract, its clock, the outcomes it draws, and the native billing
exports it writes (read back by the real ``finops ingest``)."""

from __future__ import annotations

import json
import math
import multiprocessing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from finops.config import Config, SimulatorTarget
from finops.learning import family
from finops.services.ingest import ingest
from placement.launchers import simulator as sim
from placement.launchers.base import LaunchError, Submission, job_name, tags

FROZEN = 1e-6  # simulated seconds per real second: the clock moves only by advance()


def _sub(i: int = 1, *, provider: str = "aws", region: str = "us-east-1", instance_type: str = "p4d.24xlarge",
         market: str = "on_demand", replicas: int = 1, runtime: float = 5.0, rate: float = 0.0,
         kind: str = "train", price: float = 10.0, team: str = "Vision") -> Submission:
    return Submission(name=job_name(f"job-{i}", i, 100 + i), workload_id=i, placement_id=100 + i, leg=0,
                      workload=f"job-{i}", team=team, kind=kind,  # type: ignore[arg-type]
                      provider=provider, region=region, zone=None, instance_type=instance_type, market=market,
                      replicas=replicas, accelerator_name="A100", accelerator_count=8.0, image=None, command=[],
                      env={}, tags=tags(team, f"job-{i}", 100 + i), runtime_hours=runtime, price_per_hour=price,
                      interruption_rate=rate)


@pytest.fixture
def target(tmp_path: Path) -> SimulatorTarget:
    return SimulatorTarget(state=str(tmp_path / "sim"), speed=FROZEN, seed=7)


def test_a_job_waits_runs_and_ends_as_drawn(target: SimulatorTarget) -> None:
    c = sim.make_client(target)
    job = sim.submit(c, target, _sub(runtime=5.0))
    assert job.state == "pending" and job.started_at is None
    drawn = sim.draw(target.seed, job.name, "train", 5.0, False, 0.0).runtime_hours
    assert 5.0 * math.exp(-4 * sim.RUNTIME_SIGMA) < drawn < 5.0 * math.exp(4 * sim.RUNTIME_SIGMA)
    sim.advance(target, sim.PENDING_HOURS + drawn / 2)
    running = sim.status(c, target, job.external_id)
    assert running.state == "running" and running.started_at is not None and running.ended_at is None
    sim.advance(target, drawn)
    done = sim.status(c, target, job.external_id)
    assert done.state == "done" and done.preemptions == 0
    assert done.ended_at is not None and done.started_at is not None
    assert abs((done.ended_at - done.started_at).total_seconds() / 3600 - drawn) < 1e-6


def test_submit_is_idempotent_by_name(target: SimulatorTarget) -> None:
    c = sim.make_client(target)
    first = sim.submit(c, target, _sub())
    sim.advance(target, 1.0)
    again = sim.submit(c, target, _sub(runtime=99.0))  # a repeated dispatch: the job that exists answers
    assert again.external_id == first.external_id and again.state == "running"
    assert len(json.loads(c.file.read_text())["jobs"]) == 1
    assert [j.name for j in sim.find(c, target, {})] == [first.name]


def test_outcomes_are_deterministic_in_seed_and_name() -> None:
    a = sim.draw(1, "finops-x-w1-p1", "train", 10.0, True, 0.3)
    assert a == sim.draw(1, "finops-x-w1-p1", "train", 10.0, True, 0.3)
    assert a != sim.draw(2, "finops-x-w1-p1", "train", 10.0, True, 0.3)
    assert a != sim.draw(1, "finops-x-w2-p2", "train", 10.0, True, 0.3)


def test_runtime_factor_and_preemptions_follow_their_laws() -> None:
    n, runtime, rate = 2000, 4.0, 0.1
    draws = [sim.draw(3, f"job-{i}", "train", runtime, True, rate) for i in range(n)]
    logs = np.log([d.runtime_hours / runtime for d in draws])
    assert abs(float(np.median(logs))) < 0.02 and abs(float(np.std(logs)) - sim.RUNTIME_SIGMA) < 0.015
    # P(preempted) = P(Exp(rate) < run) = E[1 - exp(-rate × run)]
    expected = float(np.mean([1 - math.exp(-rate * d.runtime_hours) for d in draws]))
    observed = sum(d.preempt_after < d.runtime_hours for d in draws) / n
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
    assert all(math.isinf(sim.draw(3, f"j{i}", "train", runtime, False, 5.0).preempt_after) for i in range(50))


def test_a_spot_job_is_preempted_at_its_first_interruption(target: SimulatorTarget) -> None:
    c = sim.make_client(target)
    sub = next(s for s in (_sub(i, market="spot", rate=2.0, runtime=10.0) for i in range(1, 50))
               if sim.draw(target.seed, s.name, "train", 10.0, True, 2.0).preempt_after < 5.0)
    out = sim.draw(target.seed, sub.name, "train", 10.0, True, 2.0)
    job = sim.submit(c, target, sub)
    sim.advance(target, 30.0)
    ended = sim.status(c, target, job.external_id)
    assert ended.state == "preempted" and ended.preemptions == 1
    assert ended.ended_at is not None and ended.started_at is not None
    assert abs((ended.ended_at - ended.started_at).total_seconds() / 3600 - out.preempt_after) < 1e-6


def test_capacity_errors_and_unknown_jobs_are_classified(tmp_path: Path) -> None:
    target = SimulatorTarget(state=str(tmp_path), speed=FROZEN, capacity_errors=["p4d.24xlarge"])
    c = sim.make_client(target)
    with pytest.raises(LaunchError) as e:
        sim.submit(c, target, _sub())
    assert e.value.kind == "capacity" and "p4d.24xlarge" in str(e.value)
    assert sim.submit(c, target, _sub(instance_type="p5.48xlarge")).state == "pending"
    with pytest.raises(LaunchError) as e:
        sim.status(c, target, "sim:nope")
    assert e.value.kind == "permanent" and "nope" in str(e.value)


def test_cancel_stops_a_running_job_and_is_a_no_op_after(target: SimulatorTarget) -> None:
    c = sim.make_client(target)
    serve = sim.submit(c, target, _sub(1, kind="serve"))
    sim.advance(target, 3.0)
    assert sim.status(c, target, serve.external_id).state == "running"  # serving runs until stopped
    sim.cancel(c, target, serve.external_id)
    sim.advance(target, 5.0)
    stopped = sim.status(c, target, serve.external_id)
    assert stopped.state == "cancelled" and stopped.ended_at is not None and stopped.started_at is not None
    assert abs((stopped.ended_at - stopped.started_at).total_seconds() / 3600 - (3.0 - sim.PENDING_HOURS)) < 1e-6
    train = sim.submit(c, target, _sub(2, runtime=1.0))
    sim.advance(target, 10.0)
    sim.cancel(c, target, train.external_id)
    assert sim.status(c, target, train.external_id).state == "done"


def test_real_time_runs_the_clock_at_speed(tmp_path: Path) -> None:
    target = SimulatorTarget(state=str(tmp_path), speed=3600.0 * 3600)  # a real second is 3600 simulated hours
    c = sim.make_client(target)
    job = sim.submit(c, target, _sub(runtime=2.0))
    import time

    time.sleep(0.01)  # 36 simulated hours
    assert sim.status(c, target, job.external_id).state == "done"


def _submit_many(state: str, start: int) -> None:
    target = SimulatorTarget(state=state, speed=FROZEN)
    c = sim.make_client(target)
    for i in range(start, start + 15):
        sim.submit(c, target, _sub(i))


def test_processes_submitting_at_once_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_submit_many, args=(str(tmp_path), k * 100)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    assert len(json.loads((tmp_path / "jobs.json").read_text())["jobs"]) == 60


def test_a_broken_state_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "jobs.json").write_text("{not json")
    target = SimulatorTarget(state=str(tmp_path), speed=FROZEN)
    with pytest.raises(LaunchError, match="cannot be read"):
        sim.submit(sim.make_client(target), target, _sub())


# -- billing -----------------------------------------------------------------------------------------
CLOUDS = [("aws", "us-east-1", "p4d.24xlarge"), ("gcp", "us-central1", "a2-highgpu-1g"),
          ("azure", "eastus", "Standard_NC24ads_A100_v4")]


def _ran(target: SimulatorTarget, hours: float = 30.0) -> list[Submission]:
    c = sim.make_client(target)
    subs = [_sub(i + 1, provider=p, region=r, instance_type=it, replicas=2, runtime=3.5 + i, price=12.5 + i)
            for i, (p, r, it) in enumerate(CLOUDS)]
    for s in subs:
        sim.submit(c, target, s)
    sim.advance(target, hours)
    return subs


def test_the_billing_frame_bills_each_machine_hour_at_the_billed_price(target: SimulatorTarget) -> None:
    subs = _ran(target)
    c = sim.make_client(target)
    frame = sim.billing_frame(c, c.read())
    for s in subs:
        job = sim.status(c, target, f"sim:{s.name}")
        assert job.started_at is not None and job.ended_at is not None
        # Exports carry whole seconds (as the clouds' do): the run billed is the job's, to the second.
        ran = job.ended_at.replace(microsecond=0) - job.started_at.replace(microsecond=0)
        hours = Decimal(str(ran.total_seconds() / 3600))
        rows = frame.filter(pl.col("Tags").str.contains(f'"finops-placement":"{s.placement_id}"', literal=True))
        assert rows.height == 2 * math.ceil(float(hours))  # one row per machine and (started) hour
        factor = Decimal(str(sim.billed_factor(target.seed, s.provider, family(s.provider, s.instance_type))))
        want = 2 * hours * Decimal(str(s.price_per_hour)) * factor
        assert abs(Decimal(rows["BilledCost"].sum()) - want) < Decimal("0.0001")


def test_billing_is_cut_at_until(target: SimulatorTarget) -> None:
    _ran(target)
    c = sim.make_client(target)
    full = sim.billing_frame(c, c.read())
    first = full["ChargePeriodStart"].min()
    assert isinstance(first, datetime)
    cut = first + timedelta(hours=2)
    part = sim.billing_frame(c, c.read(), until=cut)
    last = part["ChargePeriodEnd"].max()
    assert 0 < part.height < full.height and isinstance(last, datetime) and last <= cut


def test_billed_factors_vary_around_one_by_family() -> None:
    factors = [sim.billed_factor(0, "aws", f"f{i}") for i in range(400)]
    assert 1.0 < float(np.median(factors)) < 1.06 and len(set(factors)) > 300
    p4d = sim.billed_factor(0, "aws", "p4d")
    assert p4d == sim.billed_factor(0, "aws", "p4d") != sim.billed_factor(1, "aws", "p4d")


def test_exports_are_native_and_ingest_with_their_tags(target: SimulatorTarget, tmp_path: Path) -> None:
    subs = _ran(target)
    files = sim.export_billing(target)
    assert any(f.suffix == ".parquet" for f in files) and any(f.name.startswith("gcp-billing-export") for f in files)
    assert {f.name.rsplit("_", 1)[0] for f in files if "azure" in str(f)} == {"cost-details-actual",
                                                                             "cost-details-amortized"}
    c = sim.make_client(target)
    want = sim.billing_frame(c, c.read())
    cfg = Config.model_validate({"store": {"url": str(tmp_path / "store")}})
    ingest(cfg, [str(c.exports)], replace=True)
    got = cfg.open_store().scan("billing").collect()
    assert got.height == want.height
    assert Decimal(got["BilledCost"].sum()).quantize(Decimal("0.01")) == \
        Decimal(want["BilledCost"].sum()).quantize(Decimal("0.01"))
    for s in subs:  # the tags survive each cloud's syntax
        mine = got.filter(pl.col("Tags").str.contains(f'"finops-placement":"{s.placement_id}"', literal=True))
        assert mine.height == want.filter(pl.col("Tags").str.contains(
            f'"finops-placement":"{s.placement_id}"', literal=True)).height > 0
        assert set(mine["ProviderName"].unique().to_list()) == {sim._SERVICE[s.provider][1]}
        tagset = json.loads(mine["Tags"][0])
        assert tagset["finops-workload"] == s.workload and tagset["finops-team"].lower() == s.team.lower()
    # exporting again (more hours billed) replaces the files, and ingesting them replaces the rows
    sim.advance(target, 20.0)
    sim.submit(c, target, _sub(9, runtime=2.0))
    sim.advance(target, 5.0)
    sim.export_billing(target)
    ingest(cfg, [str(c.exports)], replace=True)
    again = cfg.open_store().scan("billing").collect()
    assert again.height == sim.billing_frame(c, c.read()).height == want.height + math.ceil(
        float(sim.draw(target.seed, _sub(9).name, "train", 2.0, False, 0).runtime_hours))
