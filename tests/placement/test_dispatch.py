"""Dispatch and sync on the ``dry_run`` target, in process: what is launched, what is recorded, what a
second run does, and how a crash between a provider's answer and the ledger write is repaired."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from finops.config import Config, parse
from finops.ledger import Ledger
from finops.services import launch, queue
from finops.services.prices import import_catalog
from placement.launchers import dry_run
from placement.launchers.base import PLACEMENT_TAG

QUEUE = """\
workloads:
  - {name: pretrain, team: nlp, accelerators: {name: H100, count: 8}, runtime_hours: 20, checkpoint_minutes: 30,
     launch: {image: "ghcr.io/acme/train:1", command: [python, train.py], env: {EPOCHS: "3"}}}
  - {name: eu-finetune, team: nlp, accelerators: {min_memory_gb: 40}, runtime_hours: 5, residency: [EU]}
"""


def _config(home: Path, extra: str = "") -> Config:
    text = f"""
[store]
url = "{home / 'data'}"
[placement]
stale = "allow"
[[teams]]
name = "nlp"
monthly_budget = 100000
{extra}
"""
    return parse(tomllib.loads(text), str(home / "finops.toml"))


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the shipped price catalog, made once and copied per test."""
    home = tmp_path_factory.mktemp("priced")
    import_catalog(_config(home))
    return home / "data"


@pytest.fixture
def home(tmp_path: Path, priced: Path) -> Path:
    shutil.copytree(priced, tmp_path / "data")
    (tmp_path / "q.yaml").write_text(QUEUE)
    return tmp_path


def test_dispatch_places_and_records_each_submission_with_its_tags(home: Path) -> None:
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    rep = launch.dispatch(cfg).report
    assert [x.outcome for x in rep.launched] == ["submitted", "submitted"]
    led = Ledger(cfg.ledger_url())
    assert [w.state for w in led.list()] == ["submitted", "submitted"]
    launches = led.launches()
    records = {r["name"]: r for r in dry_run.make_client(launch.Clients(cfg).resolved("dry_run")).records()}
    assert set(records) == {x.name for x in launches}
    for lau, rec in zip(launches, led.placements(), strict=True):
        sub = records[lau.name]
        assert lau.placement_id == rec.id and lau.external_id == f"dry-run:{lau.name}"
        assert sub["tags"] == {"finops-team": "nlp", "finops-workload": rec.decision.name, PLACEMENT_TAG: str(rec.id)}
        assert (sub["provider"], sub["instance_type"], sub["market"]) == (
            rec.decision.legs[0].provider, rec.decision.legs[0].instance_type, rec.decision.legs[0].market)
    first = records[launches[0].name]
    assert first["image"] == "ghcr.io/acme/train:1" and first["command"] == ["python", "train.py"]
    assert first["env"] == {"EPOCHS": "3"} and first["checkpoint_key"] == "finops-pretrain-w1"
    # Nothing is placed any more: a second dispatch launches nothing and records nothing.
    again = launch.dispatch(cfg).report
    assert again.launched == [] and len(dry_run.make_client(launch.Clients(cfg).resolved("dry_run")).records()) == 2


def test_a_dry_run_dispatch_changes_nothing(home: Path) -> None:
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    res = launch.dispatch(cfg, dry_run=True)
    assert [x.outcome for x in res.report.launched] == ["would submit", "would submit"]
    assert [s.instance_type for x in res.report.launched for s in x.submissions]
    assert [w.state for w in Ledger(cfg.ledger_url()).list()] == ["queued", "queued"]
    assert not (launch.dry_run_folder(cfg) / "submissions.jsonl").exists()


def test_a_job_submitted_before_a_crash_is_adopted_not_launched_twice(home: Path) -> None:
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    queue.place(cfg)
    led = Ledger(cfg.ledger_url())
    from placement.dispatch import submissions

    # What a dispatcher killed after the provider's answer and before its ledger write leaves behind: the
    # job exists on the target, the ledger still says placed.
    w, rec = led.launchable()[0]
    client = launch.Clients(cfg)("dry_run")
    for _, tcfg, sub in submissions(cfg, w, rec):
        dry_run.submit(client, tcfg, sub)
    rep = launch.dispatch(cfg, place=False).report
    assert {x.name: x.outcome for x in rep.launched} == {"pretrain": "adopted", "eu-finetune": "submitted"}
    assert len(client.records()) == 2
    assert [w.state for w in led.list()] == ["submitted", "submitted"]


def test_a_container_target_refuses_a_spec_without_an_image_and_fails_only_that_workload(home: Path) -> None:
    extra = """
[launch]
default = ["gke"]
[launch.targets.gke]
kind = "kubernetes"
provider = "gcp"
region = "us-central1"
kubeconfig = "/nonexistent/kubeconfig"
node_pools = [{ instance_type = "a2-ultragpu-1g" }, { instance_type = "a3-highgpu-8g", spot = true }]
"""
    cfg = _config(home, extra)
    queue.add(cfg, [home / "q.yaml"])
    queue.place(cfg)
    led = Ledger(cfg.ledger_url())
    no_image = [w for w, _ in led.launchable() if not w.spec.launch.image]
    rep = launch.dispatch(cfg, place=False).report
    got = {x.workload_id: x for x in rep.launched}
    for w in no_image:
        assert got[w.id].outcome == "failed" and "has no launch.image" in (got[w.id].message or "")
        assert led.get(w.id).state == "failed" and "launch.image" in (led.get(w.id).last_error or "")


def test_sync_of_dry_run_launches_changes_nothing_and_finds_no_orphans(home: Path) -> None:
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    launch.dispatch(cfg)
    rep = launch.sync(cfg)
    assert [s.state for s in rep.synced] == ["pending", "pending"] and rep.errors == [] and rep.orphans == []
    jobs = launch.jobs(cfg)
    assert [(r.workload.state, len(r.launches)) for r in jobs.rows] == [("submitted", 1), ("submitted", 1)]


def test_a_job_with_our_tags_the_ledger_does_not_know_is_reported_not_touched(home: Path) -> None:
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    launch.dispatch(cfg)
    client = launch.Clients(cfg)("dry_run")
    stray = {**client.records()[0], "name": "finops-stray-w99-p99", "tags": {"finops-team": "x",
                                                                             "finops-workload": "stray",
                                                                             PLACEMENT_TAG: "99"}}
    import json

    with client.file.open("a") as f:
        f.write(json.dumps(stray) + "\n")
    rep = launch.sync(cfg)
    assert [(t, j.name) for t, j in rep.orphans] == [("dry_run", "finops-stray-w99-p99")]
    assert len(client.records()) == 3


def test_a_dispatcher_killed_between_submit_and_ledger_write_is_repaired_by_the_next_run(home: Path) -> None:
    """A real crash at the worst moment: the test holds the ledger's write lock, so the dispatcher
    (a real ``finops dispatch`` process) submits to the target and then waits to record it; it is killed
    with SIGKILL there. The next dispatch finds the job by its tags and records it: one job, not two."""
    import os
    import signal
    import sqlite3
    import subprocess
    import time

    from tests.test_cli import FINOPS

    (home / "finops.toml").write_text(f'[store]\nurl = "{home / "data"}"\n[placement]\nstale = "allow"\n'
                                      '[[teams]]\nname = "nlp"\nmonthly_budget = 100000\n')
    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    queue.place(cfg)
    records = launch.dry_run_folder(cfg) / "submissions.jsonl"
    lock = sqlite3.connect(home / "data" / "ledger.db", timeout=5)
    lock.execute("BEGIN IMMEDIATE")  # the dispatcher can read the ledger but not write to it
    env = {k: v for k, v in os.environ.items() if k != "FINOPS_CONFIG"}
    proc = subprocess.Popen([*FINOPS, "dispatch", "--no-place"], cwd=home, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 25
        while not (records.exists() and records.read_text().strip()) and time.monotonic() < deadline:
            assert proc.poll() is None, "the dispatcher ended before it could be killed"
            time.sleep(0.05)
        assert records.exists(), "the dispatcher never submitted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        lock.rollback()
        lock.close()
        if proc.poll() is None:
            proc.kill()
    led = Ledger(cfg.ledger_url())
    assert [w.state for w in led.list()] == ["placed", "placed"] and led.launches() == []
    submitted_before = {r["name"] for r in dry_run.Client(records.parent).records()}
    rep = launch.dispatch(cfg, place=False).report
    outcomes = {x.name: x.outcome for x in rep.launched}
    assert sorted(outcomes.values()) == sorted(["adopted"] * len(submitted_before)
                                               + ["submitted"] * (2 - len(submitted_before)))
    names = [r["name"] for r in dry_run.Client(records.parent).records()]
    assert len(names) == len(set(names)) == 2  # each job once
    assert [w.state for w in led.list()] == ["submitted", "submitted"]


# -- on the simulated cloud ----------------------------------------------------------------------------
def _simulated(home: Path, capacity: list[str] | None = None) -> str:
    return f"""
[launch]
default = ["sim"]
[launch.targets.sim]
kind = "simulator"
state = "{home / 'sim'}"
speed = 0.001
capacity_errors = {capacity or []}
"""


def test_a_capacity_answer_blocks_the_offer_and_the_workload_is_placed_on_the_next_best(home: Path) -> None:
    cfg = _config(home, _simulated(home))
    queue.add(cfg, [home / "q.yaml"])
    first = {x.name: x.submissions[0].instance_type for x in launch.dispatch(cfg, dry_run=True).report.launched}
    refused = first["pretrain"]
    cfg = _config(home, _simulated(home, [refused]))
    rep = launch.dispatch(cfg).report
    led = Ledger(cfg.ledger_url())
    pre = next(w for w in led.list() if w.name == "pretrain")
    assert pre.state == "submitted" and rep.rounds == 2
    [lau] = led.launches(workload_ids=[pre.id])
    assert lau.instance_type != refused
    assert [(b.instance_type, b.target) for b in led.blocks()] == [(refused, "sim")]
    moves = [(t.old_state, t.new_state) for t in led.history(pre.id)]
    assert moves == [("queued", "placed"), ("placed", "queued"), ("queued", "placed"), ("placed", "submitted")]
    assert "capacity" in (led.history(pre.id)[1].error or "")
    # The block holds for the next placement too: nothing goes back to the refused offer meanwhile.
    assert all(leg.instance_type != refused for r in led.placements([pre.id])[1:]
               for leg in r.decision.legs)  # type: ignore[union-attr]


def test_a_spot_preemption_requeues_the_workload_and_teaches_the_interruption_rate(home: Path) -> None:
    from finops.learning import blend, family
    from placement.launchers import simulator

    many = "workloads:\n" + "".join(
        f"  - {{name: long-{i}, team: nlp, accelerators: {{name: A100, count: 8}}, runtime_hours: 6000, "
        f"spot: required, checkpoint_minutes: 30}}\n" for i in range(3))
    (home / "q.yaml").write_text(many)
    cfg = _config(home, _simulated(home))
    queue.add(cfg, [home / "q.yaml"])
    launch.dispatch(cfg)
    led = Ledger(cfg.ledger_url())
    before = {r.decision.workload_id: r.decision.legs[0] for r in led.placements()}  # type: ignore[union-attr]
    target = cfg.launch.target("sim")
    simulator.advance(target, 7000)  # type: ignore[arg-type]  (the catalog rates are ~1 per 2,000 hours)
    rep = launch.sync(cfg)
    preempted = [s for s in rep.synced if s.state == "preempted"]
    assert preempted, "no run was preempted in 7,000 simulated hours of three spot machines"
    for s in preempted:
        assert s.workload_state == "queued" and led.get(s.launch.workload_id).state == "queued"
        assert led.launches(workload_ids=[s.launch.workload_id])[0].preemptions == 1
    runs = {(r.provider, r.region, r.family): r for r in led.run_hours()}
    assert sum(r.preemptions for r in runs.values()) == len(preempted)
    assert all(r.hours > 0 for r in runs.values())
    # The next placement of a preempted workload costs its offer at the blended rate.
    s = preempted[0]
    old = before[s.launch.workload_id]
    launch.dispatch(cfg)
    latest = led.placements([s.launch.workload_id])[-1].decision
    leg = latest.legs[0]  # type: ignore[union-attr]
    key = (leg.provider, leg.region, family(leg.provider, leg.instance_type))
    # Placed again on the offer the runs were learnt on (still the cheapest), at the blended rate.
    assert key == (old.provider, old.region, family(old.provider, old.instance_type))
    r = runs[key]
    prior = old.interruption_rate or 0.0
    assert leg.interruption_rate == pytest.approx(blend(prior, r.hours, r.preemptions,
                                                        cfg.launch.interruption_prior_hours))
    seen = r.preemptions / r.hours  # the rate moved from the configured one towards what was observed
    assert min(prior, seen) <= leg.interruption_rate <= max(prior, seen) and leg.interruption_rate != prior
    assert led.get(s.launch.workload_id).state == "submitted" and led.get(s.launch.workload_id).attempt == 2


def test_a_placement_whose_offer_was_withdrawn_is_placed_again_not_launched(home: Path) -> None:
    """The price list no longer has the offer a workload was placed on (a retired instance type): the
    workload goes back to the queue with the reason and is placed on what is offered now."""
    import polars as pl

    from finops import offers

    cfg = _config(home)
    queue.add(cfg, [home / "q.yaml"])
    queue.place(cfg)
    led = Ledger(cfg.ledger_url())
    w, rec = next((w, r) for w, r in led.launchable() if w.name == "pretrain")
    leg = rec.decision.legs[0]  # type: ignore[union-attr]
    # A new store holding every offer but that one: what the clouds list now.
    store = cfg.open_store()
    kept = offers.latest_offers(store).filter(~((pl.col("provider") == leg.provider)
                                                & (pl.col("instance_type") == leg.instance_type))).collect()
    for dataset in ("offers", "prices"):
        shutil.rmtree(home / "data" / dataset, ignore_errors=True)
    offers.record(cfg.open_store(), kept.select(offers.SCHEMA.names()))
    rep = launch.dispatch(cfg, place=True).report
    got = next(x for x in rep.launched if x.workload_id == w.id)
    assert got.outcome == "submitted" and rep.rounds == 2
    moves = led.history(w.id)
    assert ("placed", "queued") in [(t.old_state, t.new_state) for t in moves]
    assert any("offer withdrawn" in (t.error or "") for t in moves)
    [lau] = led.launches(workload_ids=[w.id])
    assert lau.instance_type != leg.instance_type
