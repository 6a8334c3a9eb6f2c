"""The scheduler with real processes on one SQLite ledger: jobs run on time by one leader, the survivor takes
over after ``kill -9``, SIGTERM stops cleanly, a failing job is logged and the others keep running, an
alert is delivered once to a real local HTTP server, bad configuration is refused naming the job."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest

from finops import config, leader
from finops.config import SCHEDULER_DEFAULTS, ConfigError
from finops.ledger import Ledger
from finops.scheduler import JOBS
from tests import test_ledger
from tests.fakes.server import QuietHandler

db_url = test_ledger.db_url  # the fixture: a fresh SQLite / PostgreSQL database

OFF = "".join(f"[scheduler.jobs.{n}]\nenabled = false\n" for n in SCHEDULER_DEFAULTS if n != "maintenance")


def _write(tmp: Path, extra: str = "") -> Path:
    cfg = tmp / "finops.toml"
    cfg.write_text(f'[store]\nurl = "{tmp / "data"}"\n{extra}\n')
    return cfg


def _finops(cfg: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "finops.cli", "-c", str(cfg), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _runs(tmp: Path, url: str | None = None) -> list[leader.Run]:
    led = Ledger(url or f"sqlite:///{tmp / 'data' / 'ledger.db'}")
    try:
        return list(reversed(leader.runs(led)))
    finally:
        led.engine.dispose()


def test_every_job_has_a_default_trigger() -> None:
    assert set(JOBS) == set(SCHEDULER_DEFAULTS)


@pytest.mark.parametrize(("text", "said"), [
    ('[scheduler.jobs.prices]\ncron = "99 * * * *"', "scheduler.jobs.prices.cron: '99 * * * *' is not a cron"),
    ("[scheduler.jobs.pricez]\nseconds = 5", "unknown job(s) 'pricez'"),
    ('[scheduler.jobs.billing]\ncron = "0 * * * *"\nseconds = 5', "scheduler.jobs.billing: give cron or seconds"),
    ("[scheduler.jobs.sync]\nseconds = 0", "scheduler.jobs.sync.seconds"),
])
def test_bad_triggers_are_refused_naming_the_job(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.load(_write(tmp_path, text))
    assert said in str(e.value)


def test_two_schedulers_one_leader_takeover_after_kill_and_clean_sigterm(tmp_path: Path, db_url: str) -> None:
    cfg = _write(tmp_path, f'[ledger]\nurl = "{db_url}"\n[scheduler]\nport = 0\nlease_seconds = 2\n'
                           f"[scheduler.jobs.maintenance]\nseconds = 1\n{OFF}")
    a = _finops(cfg, "scheduler", "run")
    time.sleep(1.5)  # a leads
    b = _finops(cfg, "scheduler", "run")
    try:
        time.sleep(5)
        before = _runs(tmp_path, db_url)
        assert len(before) >= 3, before
        assert {r.holder.rsplit(":", 1)[1] for r in before} == {str(a.pid)}  # the standby ran nothing
        for x, y in itertools.pairwise(before):  # never two at once
            assert x.ended_at is not None and x.ended_at <= y.started_at
        assert all(r.outcome == "ok" for r in before)
        a.kill()  # kill -9
        a.wait()
        time.sleep(6)  # lease 2 s + renewal every 2/3 s
        after = _runs(tmp_path, db_url)[len(before):]
        took = [r for r in after if r.holder.endswith(f":{b.pid}")]
        assert len(took) >= 2, after
        b.send_signal(signal.SIGTERM)
        out, _ = b.communicate(timeout=30)
        assert b.returncode == 0, out
        led = Ledger(db_url)
        lead = leader.leader(led)
        led.engine.dispose()
        assert lead is not None and not lead.live  # released on a clean stop
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()


def test_a_failing_job_is_logged_and_the_others_keep_running(tmp_path: Path) -> None:
    off = "".join(f"[scheduler.jobs.{n}]\nenabled = false\n" for n in SCHEDULER_DEFAULTS
                  if n not in ("maintenance", "billing"))
    cfg = _write(tmp_path, f'[[providers.azure.billing]]\nkind = "cost-details"\nlocation = "{tmp_path / "nowhere"}"\n'
                           f"[scheduler]\nport = 0\n[scheduler.jobs.maintenance]\nseconds = 1\n"
                           f"[scheduler.jobs.billing]\nseconds = 1\n{off}")
    p = _finops(cfg, "scheduler", "run")
    try:
        time.sleep(5)
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    runs = _runs(tmp_path)
    failed = [r for r in runs if r.job == "billing"]
    assert failed and all(r.outcome == "failed" and r.error for r in failed)
    assert len([r for r in runs if r.job == "maintenance" and r.outcome == "ok"]) >= 2


def test_health_and_metrics_are_served(tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _write(tmp_path, f"[scheduler]\nport = {port}\n[scheduler.jobs.maintenance]\nseconds = 1\n{OFF}")
    p = _finops(cfg, "scheduler", "run")
    try:
        deadline = time.time() + 20
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if 'finops_job_last_success_timestamp_seconds{job="maintenance"}' in metrics:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "no metrics"
            time.sleep(0.3)
        assert health["ok"] is True
        assert "finops_scheduler_leader 1.0" in metrics
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)


class _Hook(QuietHandler):
    got: ClassVar[list[dict[str, Any]]] = []
    fail = False

    def do_POST(self) -> None:  # noqa: N802 (http.server names it)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.fail:
            self.send_error(503)
            return
        _Hook.got.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_a_budget_alert_is_delivered_once(tmp_path: Path) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Hook.got, _Hook.fail = [], True
    try:
        # threshold 0 %: the team's (empty) month already reaches it, so exactly one alert is due
        cfg = _write(tmp_path, '[[teams]]\nname = "nlp"\nmonthly_budget = 100\n'
                               "[scheduler]\nalert_thresholds = [0.0]\nalert_forecast = false\n"
                               f'[reports.webhook]\nurl = "http://127.0.0.1:{srv.server_address[1]}/hook"\n')
        env = {**os.environ}
        refused = subprocess.run([sys.executable, "-m", "finops.cli", "-c", str(cfg), "scheduler", "run-once",
                                  "budget"], check=False, capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 2 and "HTTP 503" in refused.stderr  # a refusing target: named, not lost
        _Hook.fail = False
        for _ in range(2):
            ok = subprocess.run([sys.executable, "-m", "finops.cli", "-c", str(cfg), "scheduler", "run-once",
                                 "budget"], check=False, capture_output=True, text=True, env=env, timeout=120)
            assert ok.returncode == 0, ok.stderr
        assert len(_Hook.got) == 1
        assert "Team nlp has used 0% of its" in _Hook.got[0]["text"]
    finally:
        srv.shutdown()


def test_kill_9_mid_job_then_restart_gives_one_rerun_and_no_duplicate_rows(tmp_path: Path) -> None:
    from finops.services.demo import generate as gen
    from finops.store import Store

    gen(tmp_path / "ex", days=240, teams=12, fmt="native")  # a bill big enough for a run of ~2 s
    off = "".join(f"[scheduler.jobs.{n}]\nenabled = false\n" for n in SCHEDULER_DEFAULTS if n != "billing")
    cfg = _write(tmp_path, f'[[providers.azure.billing]]\nkind = "cost-details"\n'
                           f'location = "{tmp_path / "ex" / "azure-cost-details"}"\n'
                           f"[scheduler]\nport = 0\nlease_seconds = 2\n[scheduler.jobs.billing]\nseconds = 1\n{off}")
    a = _finops(cfg, "scheduler", "run")
    b = None
    try:
        deadline = time.time() + 60
        while not any(r.outcome == "running" for r in _runs(tmp_path) if r.job == "billing"):
            assert time.time() < deadline, "the billing job never started"
            time.sleep(0.05)
        a.kill()  # kill -9 in the middle of the job
        a.wait()
        assert [r.outcome for r in _runs(tmp_path)] == ["running"]
        b = _finops(cfg, "scheduler", "run")
        deadline = time.time() + 60
        while not any(r.outcome == "ok" for r in _runs(tmp_path)):
            assert time.time() < deadline, "no run after the restart"
            time.sleep(0.2)
        b.send_signal(signal.SIGTERM)
        b.communicate(timeout=60)
        runs = _runs(tmp_path)
        assert [r.outcome for r in runs].count("interrupted") == 1 and runs[0].outcome == "interrupted"
        assert all(r.holder.endswith(f":{b.pid}") for r in runs[1:])
        assert any(r.outcome == "ok" for r in runs)
        # the bill once, however the runs split it: as many rows as one clean collection into a fresh store
        clean = tmp_path / "clean"
        clean.mkdir()
        ref = _write(clean, f'[[providers.azure.billing]]\nkind = "cost-details"\n'
                            f'location = "{tmp_path / "ex" / "azure-cost-details"}"\n')
        assert _finops(ref, "scheduler", "run-once", "billing").wait(timeout=120) == 0
        rows = Store(tmp_path / "data").scan("billing").select(pl.len()).collect().item()
        assert rows == Store(clean / "data").scan("billing").select(pl.len()).collect().item() > 0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()


def test_the_demo_runs_the_scheduler_without_the_jobs_that_call_the_clouds() -> None:
    from finops.services.scheduler import CLOUD_JOBS, without_cloud_jobs

    cfg = config.parse({"scheduler": {"jobs": {"prices": {"cron": "5 * * * *"}, "place": {"seconds": 60}}}})
    demo = without_cloud_jobs(cfg)
    on = {n for n, t in demo.scheduler.triggers().items() if t.enabled}
    assert on == set(config.SCHEDULER_DEFAULTS) - set(CLOUD_JOBS) and set(CLOUD_JOBS) == {"prices", "billing"}
    assert demo.scheduler.triggers()["prices"].cron == "5 * * * *"  # the user's timetable kept, only switched off
    assert demo.scheduler.triggers()["place"].seconds == 60
    assert all(t.enabled for t in cfg.scheduler.triggers().values())  # the configuration itself is unchanged
