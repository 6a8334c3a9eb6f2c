"""Issue 11, tracebacks where a sentence belongs: configuration and options a user gets wrong are one line
naming what to fix, exit status 2, through the installed `finops` (`--debug` still shows the traceback)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_cli import run


def _error(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
    for n in names:
        assert n in proc.stderr
    return proc.stderr


def _config(tmp_path: Path, text: str) -> None:
    (tmp_path / "finops.toml").write_text(text)


def test_a_store_url_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    _config(tmp_path, '[store]\nurl = "afile"\n')
    err = _error(run(tmp_path, "store", "info", check=False), "finops.toml", "store.url", "is a file")
    assert len(err.strip().splitlines()) == 1
    _error(run(tmp_path, "queue", "list", check=False), "is a file")  # the ledger lives beside it
    assert (tmp_path / "afile").read_text() == "x"


def test_a_store_url_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    _config(tmp_path, '[store]\nurl = "afile/billing"\n')
    err = _error(run(tmp_path, "store", "info", check=False), "store.url", "cannot create the store folder")
    assert len(err.strip().splitlines()) == 1


def test_an_empty_store_url_is_refused_not_written_to_the_current_folder(tmp_path: Path) -> None:
    _config(tmp_path, '[store]\nurl = ""\n')
    _error(run(tmp_path, "store", "info", check=False), "store.url", "empty")
    (tmp_path / "e.csv").write_text("x")
    _error(run(tmp_path, "ingest", "e.csv", check=False), "store.url")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv", "finops.toml"]


def test_a_binary_finops_toml(tmp_path: Path) -> None:
    (tmp_path / "finops.toml").write_bytes(bytes(range(256)) * 4)
    err = _error(run(tmp_path, "store", "info", check=False), "finops.toml", "not UTF-8")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ['[store]\nurl = "s3://AKIAEXAMPLEKEY:SuperSecret123@bucket/finops"\n',
                                  '[ledger]\nurl = "postgresql://finops:SuperSecret123@db.internal/finops"\n'])
def test_credentials_in_a_url_are_refused_and_never_echoed(tmp_path: Path, text: str) -> None:
    _config(tmp_path, text)
    for args in (["store", "info"], ["--debug", "store", "info"]):
        proc = run(tmp_path, *args, check=False)
        assert proc.returncode != 0
        assert "SuperSecret123" not in proc.stderr + proc.stdout
    err = _error(run(tmp_path, "store", "info", check=False), "credentials")
    assert len(err.strip().splitlines()) == 1


def test_week_0001_w01_is_a_sentence(tmp_path: Path) -> None:
    err = _error(run(tmp_path, "report", "chargeback", "--week", "0001-W01", check=False), "--week", "0001-W01")
    assert len(err.strip().splitlines()) == 1


def test_out_pointing_at_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("keep me")
    for out in ("report.html", "report.html/sub"):
        err = _error(run(tmp_path, "report", "chargeback", "--out", out, check=False), "--out", "is a file")
        assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "report.html").read_text() == "keep me"


def test_debug_still_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    _config(tmp_path, '[store]\nurl = "afile"\n')
    proc = run(tmp_path, "--debug", "store", "info", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
