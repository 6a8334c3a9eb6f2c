"""`finops store …` and `report chargeback --as-of`, run as a user runs them (the entry point, a subprocess)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tests.conftest import SAMPLE_10, SAMPLE_12
from tests.test_cli import run
from tests.test_store_migrate import conformed, write_old_layout


def test_an_old_store_is_refused_by_name_then_migrated(tmp_path: Path) -> None:
    write_old_layout(tmp_path / "finops-data", "billing", conformed(SAMPLE_10))
    refused = run(tmp_path, "store", "info", check=False)
    assert refused.returncode == 2 and "finops store migrate" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    migrated = json.loads(run(tmp_path, "store", "migrate", "--json").stdout)
    billing = next(d for d in migrated["datasets"] if d["dataset"] == "billing")
    info = json.loads(run(tmp_path, "store", "info", "--json").stdout)
    assert sum(p["rows"] for p in info["partitions"]) == billing["rows"] == 1000
    assert sum(Decimal(p["BilledCost"]) for p in info["partitions"]) == Decimal(billing["sums"]["BilledCost"])
    history = json.loads(run(tmp_path, "store", "history", "--json").stdout)
    assert [v["operation"] for v in history] == ["migrate"]


def test_history_and_time_travel_and_upkeep_from_the_command_line(tmp_path: Path) -> None:
    run(tmp_path, "ingest", str(SAMPLE_12))
    run(tmp_path, "ingest", str(SAMPLE_10))
    versions = json.loads(run(tmp_path, "store", "history", "--json").stdout)
    writes = [v for v in versions if v["operation"] == "replace"]  # a new column is its own schema commit
    assert [v["rows"] for v in writes] == [100, 1000] and versions[-1] == writes[-1]
    first = run(tmp_path, "store", "info", "--json").stdout
    assert sum(p["rows"] for p in json.loads(first)["partitions"]) == 1100
    optimized = json.loads(run(tmp_path, "store", "optimize", "--dataset", "billing", "--json").stdout)
    assert optimized[0]["dataset"] == "billing"
    unsafe = run(tmp_path, "store", "vacuum", "--retain-hours", "1", check=False)
    assert unsafe.returncode == 2 and "--force" in unsafe.stderr and "Traceback" not in unsafe.stderr
    kept = json.loads(run(tmp_path, "store", "vacuum", "--retain-hours", "24", "--json").stdout)
    assert kept["removed"]["billing"] == []  # every file is needed by a version of the last day
    beyond = run(tmp_path, "report", "chargeback", "--as-of", "99", check=False)
    newest = versions[-1]["version"]
    assert beyond.returncode == 2 and f"newest version is {newest}" in beyond.stderr
    assert "Traceback" not in beyond.stderr
