"""`finops queue …` and `finops place`, run as a user runs them (the installed entry point, a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run

CONFIG = """
[store]
url = "./data"

[placement]
stale = "allow"          # the shipped catalog snapshot is older than max_age_hours
capacity = [{ provider = "gcp", accelerator = "H100", limit = 8 }]

[[teams]]
name = "nlp"
monthly_budget = 100000
home_provider = "aws"

[[teams]]
name = "vision"
monthly_budget = 1
home_provider = "gcp"
"""
QUEUE = """\
workloads:
  - {name: pretrain, team: nlp, accelerators: {name: H100, count: 8}, runtime_hours: 20, checkpoint_minutes: 30}
  - {name: eu-finetune, team: nlp, accelerators: {min_memory_gb: 40}, runtime_hours: 5, residency: [EU]}
  - {name: vision-train, team: vision, accelerators: {name: A100}, runtime_hours: 5}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "finops.toml").write_text(CONFIG)
    (tmp_path / "q.yaml").write_text(QUEUE)
    return tmp_path


def _queue(home: Path) -> list[dict]:
    return json.loads(run(home, "queue", "list", "--json").stdout)


def test_queue_add_list_cancel(home: Path) -> None:
    added = json.loads(run(home, "queue", "add", "q.yaml", "--json").stdout)["queued"]
    assert [q["name"] for q in added] == ["pretrain", "eu-finetune", "vision-train"]
    rows = _queue(home)
    assert [(r["name"], r["state"]) for r in rows] == [(q["name"], "queued") for q in added]
    assert rows[0]["accelerators"] == "H100 x8"
    run(home, "queue", "cancel", str(added[2]["id"]))
    assert [r["state"] for r in _queue(home)] == ["queued", "queued", "cancelled"]
    again = run(home, "queue", "cancel", str(added[2]["id"]), check=False)
    assert again.returncode == 2 and "cancelled → cancelled" in again.stderr and "Traceback" not in again.stderr
    table = run(home, "queue", "list").stdout
    assert "pretrain" in table and "cancelled" in table


def test_bad_specs_name_file_and_line_and_leave_the_queue_unchanged(home: Path) -> None:
    (home / "bad.yaml").write_text("- name: x\n  team: nlp\n  accelerators: {name: A100}\n  runtime_hours: -2\n")
    proc = run(home, "queue", "add", "q.yaml", "bad.yaml", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.yaml:4: [0].runtime_hours" in proc.stderr
    assert _queue(home) == []
    run(home, "queue", "add", "q.yaml")
    clash = run(home, "queue", "add", "q.yaml", check=False)  # the same names again: refused whole
    assert clash.returncode == 2 and "already in the queue" in clash.stderr
    assert len(_queue(home)) == 3


def test_place_dry_run_then_record(home: Path) -> None:
    run(home, "prices", "import-catalog")
    run(home, "queue", "add", "q.yaml")
    dry = json.loads(run(home, "place", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and dry["summary"]["workloads"] == 3
    assert {r["state"] for r in _queue(home)} == {"queued"}
    res = json.loads(run(home, "place", "--json").stdout)
    d = {x["name"]: x for x in res["decisions"]}
    assert d["pretrain"]["placed"] and d["pretrain"]["price_per_hour"] > 0 and d["pretrain"]["runner_up"]
    assert d["pretrain"]["baseline_cost"] >= d["pretrain"]["expected_cost"]  # vs aws on demand
    assert d["eu-finetune"]["placed"]
    assert not d["vision-train"]["placed"] and d["vision-train"]["reason"].startswith("budget: team vision")
    states = {r["name"]: r["state"] for r in _queue(home)}
    assert states == {"pretrain": "placed", "eu-finetune": "placed", "vision-train": "queued"}
    # the table form, and nothing left to place but the one over budget
    table = run(home, "place", "--dry-run").stdout
    assert "vision-train" in table and "budget" in table and "pretrain" not in table


def test_place_without_prices_is_a_clear_error(home: Path) -> None:
    run(home, "queue", "add", "q.yaml")
    proc = run(home, "place", check=False)
    assert proc.returncode == 2 and "price table is empty" in proc.stderr and "Traceback" not in proc.stderr
    assert {r["state"] for r in _queue(home)} == {"queued"}


def test_demo_queues_and_places_generated_workloads(tmp_path: Path) -> None:
    res = json.loads(run(tmp_path, "demo", "--days", "3", "--teams", "3", "--json").stdout)
    s = res["placement"]
    assert s["workloads"] == 200 and s["placed"] >= 150 and s["expected_cost"] > 0
    assert s["saving_vs_home_on_demand"] > 0
    states = [r["state"] for r in _queue(tmp_path)]
    # Every placed workload was launched on the simulated cloud, and the trained ones ran to the end.
    assert len(states) == 200 and res["launch"]["launched"] == s["placed"] and "done" in states
    assert set(states) <= {"submitted", "running", "done", "queued", "placed", "failed"}
    again = json.loads(run(tmp_path, "demo", "--days", "3", "--teams", "3", "--json").stdout)["placement"]
    assert again["workloads"] == 200  # the demo re-plans its own workloads instead of piling up copies
    first = [r["state"] for r in _queue(tmp_path)][:200]
    assert set(first) <= {"done", "cancelled", "failed"}  # what the first run launched was stopped


def test_placements_shows_recorded_decisions_and_filters(home: Path) -> None:
    before = run(home, "placements")  # nothing placed, no ledger: said so, and no ledger created
    assert before.returncode == 0 and "nothing was placed here yet" in before.stderr
    assert not (home / "data" / "ledger.db").exists()
    run(home, "prices", "import-catalog")
    run(home, "queue", "add", "q.yaml")
    run(home, "place", "--dry-run")
    assert json.loads(run(home, "placements", "--json").stdout) == []  # a dry run records nothing
    first = json.loads(run(home, "place", "--json").stdout)
    second = json.loads(run(home, "place", "--json").stdout)  # only vision-train is still queued
    rows = json.loads(run(home, "placements", "--json").stdout)
    assert [r["run_id"] for r in rows] == [first["run_id"]] * 3 + [second["run_id"]]
    by_name = {r["name"]: r for r in rows if r["run_id"] == first["run_id"]}
    assert by_name["pretrain"]["placed"] and by_name["pretrain"]["price_observed_at"].startswith("2026-04-02")
    assert not by_name["vision-train"]["placed"] and by_name["vision-train"]["reason"].startswith("budget:")
    wid = by_name["vision-train"]["workload_id"]
    mine = json.loads(run(home, "placements", "--workload", str(wid), "--json").stdout)
    assert [r["run_id"] for r in mine] == [first["run_id"], second["run_id"]]
    one_run = json.loads(run(home, "placements", "--run", second["run_id"], "--json").stdout)
    assert [r["name"] for r in one_run] == ["vision-train"]
    table = run(home, "placements").stdout
    assert "pretrain" in table and "unplaced" in table and first["run_id"] in table
    none = run(home, "placements", "--run", "nope")
    assert none.returncode == 0 and "no recorded placements in run nope" in none.stderr


def test_init_writes_an_example_queue_that_loads(tmp_path: Path) -> None:
    proc = run(tmp_path, "init")
    assert "wrote finops.toml" in proc.stderr and "wrote jobs.yaml" in proc.stderr
    queued = json.loads(run(tmp_path, "queue", "add", "jobs.yaml", "--json").stdout)["queued"]
    assert {q["team"] for q in queued} == {"ml-research", "vision"}
    (tmp_path / "jobs.yaml").write_text("# mine\n")
    again = run(tmp_path, "init", "--force")
    assert "kept" in again.stderr and (tmp_path / "jobs.yaml").read_text() == "# mine\n"
