"""Issue 11, the queue: one spec cannot break it, teams are configured teams, reading it writes nothing.
Each test is one of the issue's bug reports, run through the installed `finops` as a user meets it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import FINOPS, run

CONFIG = """
[store]
url = "./data"

[placement]
stale = "allow"

[[teams]]
name = "vision"
monthly_budget = 1

[[teams]]
name = "ml-research"
monthly_budget = 100000
aliases = ["research"]
"""
GOOD = "workloads:\n  - {name: ok, team: ml-research, accelerators: {name: H100}, runtime_hours: 5}\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "finops.toml").write_text(CONFIG)
    return tmp_path


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:")
    return proc.stderr


def _old_row(home: Path, name: str, team: str, spec: dict[str, Any]) -> None:
    """A queued row as an older finops wrote it (no checks on numbers or teams)."""
    now = datetime.now(UTC).isoformat(" ")
    with sqlite3.connect(home / "data" / "ledger.db") as c:
        c.execute("INSERT INTO workloads (name, team, kind, priority, state, spec, source, created_at, updated_at, "
                  "attempt) VALUES (?, ?, 'train', 5, 'queued', ?, 'old', ?, ?, 0)",
                  (name, team, json.dumps({"name": name, "team": team, **spec}), now, now))


@pytest.mark.parametrize(("value", "says"), [(".inf", "finite"), (".nan", "finite"), ("1e308", "less than or equal"),
                                             ("1.0e+308", "less than or equal")])
def test_runtime_hours_must_be_finite_and_bounded_at_queue_add(home: Path, value: str, says: str) -> None:
    (home / "q.yaml").write_text(f"name: big\nteam: vision\naccelerators: {{name: H100}}\nruntime_hours: {value}\n")
    err = _one_line_error(run(home, "queue", "add", "q.yaml", check=False))
    assert "q.yaml:4: runtime_hours:" in err and says in err
    assert json.loads(run(home, "queue", "list", "--json").stdout) == []


def test_a_queued_spec_that_no_longer_loads_is_skipped_with_a_note_not_a_crash(home: Path) -> None:
    (home / "q.yaml").write_text(GOOD)
    run(home, "queue", "add", "q.yaml")
    # `runtime_hours: .inf` as an older finops stored it (JSON null), and 1e308 (now over the maximum)
    _old_row(home, "poison-inf", "vision", {"accelerators": {"name": "H100"}, "runtime_hours": None})
    _old_row(home, "poison-big", "vision", {"accelerators": {"name": "H100"}, "runtime_hours": 1e308})
    listed = run(home, "queue", "list", "--json")
    assert [w["name"] for w in json.loads(listed.stdout)] == ["ok"]
    assert "poison-inf" in listed.stderr and "poison-big" in listed.stderr and "queue cancel 2" in listed.stderr
    run(home, "prices", "import-catalog")
    plan = json.loads(run(home, "place", "--dry-run", "--json").stdout)
    by_name = {d["name"]: d for d in plan["decisions"]}
    assert by_name["ok"]["placed"]
    assert not by_name["poison-inf"]["placed"] and "no longer loads" in by_name["poison-inf"]["reason"]
    assert not by_name["poison-big"]["placed"] and "runtime_hours" in by_name["poison-big"]["reason"]
    assert plan["summary"]["expected_cost"] < 1e6
    run(home, "queue", "cancel", "2", "3")  # cancelling works, and afterwards nothing is in the way
    assert "Traceback" not in run(home, "queue", "list").stderr
    run(home, "place")


def test_workload_teams_are_configured_teams_normalised_at_queue_add(home: Path) -> None:
    (home / "q.yaml").write_text(
        "workloads:\n"
        "  - {name: a, team: Vision, accelerators: {name: H100}, runtime_hours: 5}\n"
        "  - {name: b, team: ml_research, accelerators: {name: H100}, runtime_hours: 5}\n"
        "  - {name: c, team: Research, accelerators: {name: H100}, runtime_hours: 5}\n")
    (home / "bad.yaml").write_text("workloads:\n  - {name: d, team: nobody, accelerators: {name: H100}, "
                                   "runtime_hours: 5}\n")
    err = _one_line_error(run(home, "queue", "add", "q.yaml", "bad.yaml", check=False))
    assert "bad.yaml:2: workloads[0].team: unknown team 'nobody'" in err and "vision, ml-research" in err
    assert json.loads(run(home, "queue", "list", "--json").stdout) == []  # all or none
    queued = json.loads(run(home, "queue", "add", "q.yaml", "--json").stdout)["queued"]
    assert [q["team"] for q in queued] == ["vision", "ml-research", "ml-research"]
    assert [w["team"] for w in json.loads(run(home, "queue", "list", "--json").stdout)] == \
        ["vision", "ml-research", "ml-research"]


def test_an_old_row_with_a_misspelt_or_unknown_team_cannot_get_past_budgets(home: Path) -> None:
    (home / "q.yaml").write_text(GOOD)
    run(home, "queue", "add", "q.yaml")  # makes the ledger
    run(home, "prices", "import-catalog")
    spec = {"accelerators": {"name": "H100", "count": 8}, "runtime_hours": 100}
    _old_row(home, "big-vision", "Vision", spec)        # vision's budget is $1
    _old_row(home, "big-ml", "ML_Research", {**spec, "runtime_hours": 1})
    _old_row(home, "big-nobody", "nobody", spec)
    plan = {d["name"]: d for d in json.loads(run(home, "place", "--dry-run", "--json").stdout)["decisions"]}
    assert not plan["big-vision"]["placed"] and "budget" in plan["big-vision"]["reason"]
    assert plan["big-vision"]["team"] == "vision"
    assert plan["big-ml"]["placed"] and plan["big-ml"]["team"] == "ml-research"
    assert not plan["big-nobody"]["placed"] and "unknown team 'nobody'" in plan["big-nobody"]["reason"]


def test_queue_list_creates_no_ledger_where_it_runs(tmp_path: Path) -> None:
    proc = run(tmp_path, "queue", "list", "--json")
    assert json.loads(proc.stdout) == [] and "no ledger" in proc.stderr and "queue is empty" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_ledger_is_one_line_exit_2(home: Path) -> None:
    (home / "q.yaml").write_text(GOOD)
    run(home, "queue", "add", "q.yaml")
    (home / "q2.yaml").write_text(GOOD.replace("name: ok", "name: ok2"))
    ledger = home / "data" / "ledger.db"
    ledger.chmod(0o444)
    cmd = [*FINOPS, "queue", "add", "q2.yaml"]
    if os.geteuid() == 0:  # root writes read-only files: run as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        for p in (home, *home.parents):
            p.chmod(p.stat().st_mode | 0o555)
        for p in home.rglob("*"):
            p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
        (home / "data").chmod(0o777)  # only the ledger file itself is read-only
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {k: v for k, v in os.environ.items() if k != "FINOPS_CONFIG"} | {"COLUMNS": "200"}
    proc = subprocess.run(cmd, cwd=home, capture_output=True, text=True, env=env, timeout=300, check=False)
    err = _one_line_error(proc)
    assert "read-only" in err and len(err.strip().splitlines()) == 1
    ledger.chmod(0o644)
    assert [w["name"] for w in json.loads(run(home, "queue", "list", "--json").stdout)] == ["ok"]


def test_a_read_only_open_never_creates_and_reads_what_is_there(tmp_path: Path) -> None:
    from finops.ledger import Ledger, LedgerMissing
    from finops.workloads import loads

    url = f"sqlite:///{tmp_path / 'sub' / 'ledger.db'}"
    with pytest.raises(LedgerMissing):
        Ledger(url, read_only=True)
    assert list(tmp_path.iterdir()) == []
    Ledger(url).add([(loads(GOOD)[0], "q.yaml")])
    ro = Ledger(url, read_only=True)
    assert [w.name for w in ro.list()] == ["ok"]
    from finops.ledger import LedgerError

    with pytest.raises(LedgerError, match="read-only"):
        ro.move([1], "cancelled")
