"""Ledger bad input found in review: a read-only open of an empty database, ids out of the integer range,
ledger URLs that do not parse or whose server is not there — one clear LedgerError each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from finops.ledger import Ledger, LedgerError
from tests import test_ledger
from tests.test_cli import run

db_url = test_ledger.db_url  # the fixture: a fresh SQLite / PostgreSQL database


def test_a_read_only_open_of_an_empty_database_reads_as_an_empty_ledger(db_url: str) -> None:
    create_engine(db_url).connect().close()  # the database (file) exists, without the ledger's tables
    led = Ledger(db_url, read_only=True)
    assert led.empty
    assert led.list() == [] and led.placements() == [] and led.placements([1]) == [] and led.holding() == []
    assert led.history(1) == [] and led.find("sagemaker", "job-1") is None
    with pytest.raises(LedgerError, match="no workload with id 1"):
        led.get(1)
    led.engine.dispose()


def test_ids_outside_the_integer_range_are_unknown_workloads(db_url: str) -> None:
    led = Ledger(db_url)
    for wid in (2**31, 10**20, -(10**20)):
        with pytest.raises(LedgerError, match=f"no workload with id {wid}"):
            led.move([wid], "cancelled")
        with pytest.raises(LedgerError, match=f"no workload with id {wid}"):
            led.get(wid)
        assert led.placements([wid]) == [] and led.history(wid) == []
    led.engine.dispose()


@pytest.mark.parametrize("url", ["bogus://x", "notaurl", "postgresql://nobody@127.0.0.1:1/x"])
def test_a_ledger_url_that_cannot_be_used_is_one_sentence(url: str) -> None:
    with pytest.raises(LedgerError, match="ledger"):
        Ledger(url)


def test_cli_bad_ledger_input_is_one_line(tmp_path: Path) -> None:
    run(tmp_path, "init")
    (tmp_path / "finops-data").mkdir()
    (tmp_path / "finops-data" / "ledger.db").touch()  # an empty file: a database without the tables
    for args in (["placements"], ["queue", "cancel", "99999999999999999999"],
                 ["placements", "--workload", "99999999999999999999"]):
        res = run(tmp_path, *args, check=False)
        assert "Traceback" not in res.stderr, (args, res.stderr)
        assert res.returncode in (0, 2), (args, res.stderr)
    (tmp_path / "pg.toml").write_text('[ledger]\nurl = "postgresql://nobody@127.0.0.1:1/x"\n')
    res = run(tmp_path, "-c", "pg.toml", "queue", "list", check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "error:" in res.stderr, res.stderr


def test_listing_an_unknown_state_is_refused_not_an_empty_queue(db_url: str, tmp_path: Path) -> None:
    led = Ledger(db_url)
    with pytest.raises(LedgerError, match=r"unknown state 'queud'; expected one of queued, placed"):
        led.list(["queued", "queud"])
    led.engine.dispose()
    run(tmp_path, "init")
    run(tmp_path, "queue", "add", "jobs.yaml")
    res = run(tmp_path, "queue", "list", "--state", "queud", check=False)
    assert res.returncode == 2 and "unknown state 'queud'" in res.stderr and "Traceback" not in res.stderr


def test_a_spec_file_path_longer_than_the_source_column_is_kept_by_its_tail(db_url: str) -> None:
    led = Ledger(db_url)
    long = "/" + "d/" * 300 + "jobs.yaml"
    led.add([(test_ledger.SPECS[0], long)])
    got = led.list()[0].source
    assert got is not None and len(got) == 500 and got.startswith("…") and long.endswith(got[1:])
    led.engine.dispose()
