"""The Ray engine on a real cluster on this machine: a head and worker nodes started as their own processes
with ``ray start`` (:mod:`tests.ray_cluster`), the store on local disk both see, and on moto's S3.

The same generated store and exports as ``test_engine.py`` give the same ingest manifests and data,
chargeback (to the cent), validation, reconciliation sums and rollups as the in-process engine; a
worker killed mid-ingest (a real ``SIGKILL`` of its node's processes) either fails the run with
nothing written (no retries) or is retried without double counting; a store the workers cannot see, a
cluster running another finops, an address where nothing answers and a machine without Ray are each
one clear error before any work is sent.

Ray names its nodes by the host's address even when started on 127.0.0.1 (the driver connects to the
head on 127.0.0.1; all traffic stays on this machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collectors import distributed
from collectors.files import ingest as ingest_files
from finops import config, focus, reconcile, reports
from finops.config import Config
from finops.engine import Engine, EngineError, open_engine
from finops.engine.pieces import over_store
from finops.rollups import Rollups
from finops.services import ingest as ingest_svc
from finops.services.engine import engine_for
from finops.store import Store
from tests.ray_cluster import Cluster, cluster
from tests.test_cli import run
from tests.test_engine import (  # noqa: F401 (module fixtures: each test names the ones it uses)
    FOCUS_SCHEMA,
    _snapshot,
    bill,
    clean_bill,
    exports,
    ingested_here,
    store,
    whole_chargeback,
)
from tests.test_reports import CFG, WEEK

pytestmark = pytest.mark.xdist_group("ray")  # one cluster at a time on the two cores


def _cfg(address: str, store_url: str = "unused", **engine: object) -> Config:
    return config.parse({**CFG, "store": {"url": store_url},
                         "engine": {"kind": "ray", "address": address, "rows_per_task": 1_000, **engine}})


@pytest.fixture(scope="module")
def ray_cluster(s3_server: str) -> Iterator[Cluster]:
    """A head (no CPUs for tasks) and one worker node; started after the S3 test credentials are in the
    environment, so the workers read the S3 store with them as a node's credential chain would."""
    with cluster(workers=1) as c:
        yield c


@pytest.fixture
def engine(ray_cluster: Cluster) -> Iterator[Engine]:
    e = open_engine(_cfg(ray_cluster.address).engine)
    yield e
    e.close()


# -- the same answers ------------------------------------------------------------------------------
def test_chargeback_validation_reconciliation_and_rollups_match_the_local_engine(
        engine: Engine, store: Store, whole_chargeback: dict, bill: pl.DataFrame, tmp_path: Path) -> None:
    cfg = config.parse(CFG)
    assert reports.chargeback(store, cfg, WEEK, engine=engine).to_json() == whole_chargeback
    tallies = over_store(engine, store, "billing", focus.tally, schema=FOCUS_SCHEMA)
    assert len(tallies) > 1  # cut into tasks
    assert focus.problems(tallies) == focus.validate(store.scan("billing", schema=FOCUS_SCHEMA))
    sums = over_store(engine, store, "billing", reconcile.tag_sums)
    assert_frame_equal(reconcile.tagged_cost(pl.concat(sums), summed=True), reconcile.tagged_cost(bill.lazy()))
    here = Rollups(store, cfg, tmp_path / "a").billing().frame
    there = Rollups(store, cfg, tmp_path / "b", engine=engine).billing().frame
    keys = [c for c in here.columns if here.schema[c] != pl.Decimal]
    assert_frame_equal(here.sort(keys, nulls_last=True), there.sort(keys, nulls_last=True))


def test_through_ray_client_as_from_outside_the_cluster(ray_cluster: Cluster, store: Store,
                                                       whole_chargeback: dict) -> None:
    """``address = "ray://host:10001"``: the Ray Client server a KubeRay head service exposes."""
    eng = open_engine(_cfg(ray_cluster.client_address).engine)
    try:
        got = reports.chargeback(store, config.parse(CFG), WEEK, engine=eng).to_json()
    finally:
        eng.close()
    assert got == whole_chargeback


def test_a_client_session_the_head_cannot_start_is_one_error_and_the_next_connection_works(
        ray_cluster: Cluster, store: Store, whole_chargeback: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head's Ray Client server answers but fails to start this driver's session (here: it waits no
    time for the session server). Each failed attempt leaves nothing half set up in this process: the
    second attempt fails the same way (not on a Ray assertion), the error says so with the reason the
    driver was given, and the next engine connects as usual."""
    monkeypatch.setenv("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "0")  # Ray's client: 30 s less per refusal
    # The server's reason (a RuntimeError) when its answer comes first; Ray's "already disconnected" when the
    # channel closes first: both are one refusal, asked again.
    refused = (r"could not start a session for this driver "
               r"\((.*RuntimeError: |.*already been disconnected).*; 2 attempts\)")
    with (cluster(workers=0, head_env={"RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "0"}) as busy,
          pytest.raises(EngineError, match=refused)):
        open_engine(_cfg(busy.client_address, connect_tries=2).engine)
    eng = open_engine(_cfg(ray_cluster.address).engine)
    try:
        assert reports.chargeback(store, config.parse(CFG), WEEK, engine=eng).to_json() == whole_chargeback
    finally:
        eng.close()


def test_ingest_on_ray_writes_what_local_ingest_writes(engine: Engine, exports: list[Path], ingested_here: tuple,
                                                      tmp_path: Path) -> None:
    target = Store(tmp_path / "store")
    res = distributed.ingest(engine, target, exports)
    assert res.rows == ingested_here[1].height and len(target.history("billing")) == 1
    manifests, data = _snapshot(target)
    assert manifests == ingested_here[0]
    assert_frame_equal(data, ingested_here[1])


def test_the_commands_run_on_ray(ray_cluster: Cluster, exports: list[Path], ingested_here: tuple,
                                 tmp_path: Path) -> None:
    """`finops ingest --engine ray` and `finops report chargeback --engine ray` through the installed CLI."""
    (tmp_path / "finops.toml").write_text(f'[store]\nurl = "store"\n[engine]\naddress = "{ray_cluster.address}"\n'
                                          f'rows_per_task = 1000\n')
    run(tmp_path, "ingest", *map(str, exports), "--engine", "ray")
    assert _snapshot(Store(tmp_path / "store"))[0] == ingested_here[0]
    ray_json = run(tmp_path, "report", "chargeback", "--week", WEEK.label, "--engine", "ray", "--json",
                   "--out", "r1").stdout
    local_json = run(tmp_path, "report", "chargeback", "--week", WEEK.label, "--json", "--out", "r1").stdout
    assert ray_json == local_json
    assert run(tmp_path, "validate", "--engine", "ray").stdout == run(tmp_path, "validate").stdout


def test_a_store_on_s3(ray_cluster: Cluster, s3_server: str, s3_bucket: str, exports: list[Path],
                       ingested_here: tuple, whole_chargeback: dict) -> None:
    cfg = config.parse({**CFG, "store": {"url": f"s3://{s3_bucket}/finops", "endpoint_url": s3_server,
                                         "region": "us-east-1"},
                        "engine": {"kind": "ray", "address": ray_cluster.address, "rows_per_task": 1_000}})
    done = ingest_svc.ingest(cfg, [str(p) for p in exports])
    assert _snapshot(cfg.open_store())[0] == ingested_here[0]
    assert done.result.rows == ingested_here[1].height
    on_s3 = cfg.open_store()
    with engine_for(cfg) as eng:
        got = reports.chargeback(on_s3, cfg, WEEK, engine=eng).to_json()
    local = reports.chargeback(on_s3, cfg, WEEK).to_json()
    assert got == local


# -- a worker lost -----------------------------------------------------------------------------------
def test_a_worker_killed_mid_ingest_leaves_the_store_whole_and_a_rerun_completes(
        exports: list[Path], ingested_here: tuple, tmp_path: Path) -> None:
    target = Store(tmp_path / "store")
    ingest_files(target, exports[:2])  # the store already holds something
    before = (target.history("billing"), _snapshot(target))
    with cluster(workers=2) as c:
        killed: list[str] = []

        def kill_a_worker(path: str, state: str) -> None:
            if state == "staged" and not killed:
                c.kill(c.workers[len(killed)])
                killed.append(path)

        eng = open_engine(_cfg(c.address, retries=0).engine)
        try:
            with pytest.raises(EngineError, match="nothing was written"):
                distributed.ingest(eng, target, exports, progress=kill_a_worker, replace=True)
        finally:
            eng.close()
        assert killed
        assert target.history("billing") == before[0]
        assert _snapshot(target)[0] == before[1][0]
        assert_frame_equal(_snapshot(target)[1], before[1][1])

        c.add_worker()  # the lost node comes back; this time one more is lost and its tasks retried
        killed.clear()
        eng = open_engine(_cfg(c.address, retries=3).engine)
        try:
            res = distributed.ingest(eng, target, exports, progress=kill_a_worker, replace=True)
        finally:
            eng.close()
    assert killed and res.rows == ingested_here[1].height
    assert _snapshot(target)[0] == ingested_here[0]  # every task's rows once: none lost, none counted twice
    assert_frame_equal(_snapshot(target)[1], ingested_here[1])


# -- bad set-ups: one clear error, before any work ---------------------------------------------------
def _can_unshare() -> bool:
    return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True,
                          check=False).returncode == 0


def test_a_store_the_workers_cannot_see_is_refused_before_any_work(exports: list[Path], tmp_path: Path) -> None:
    if not _can_unshare():
        pytest.skip("needs `unshare --mount --map-root-user` to hide the store from the worker node")
    shared = tmp_path / "shared"
    shared.mkdir()
    target = Store(shared / "store")
    ingest_files(target, exports[:1])
    before = (target.history("billing"), sorted(p.relative_to(shared) for p in shared.rglob("*")))
    with cluster(workers=0) as c:
        # The worker node sees an empty folder where the store is: as on a machine without the mount.
        c.add_worker(wrap=["unshare", "--mount", "--map-root-user", "sh", "-c",
                           f'mount -t tmpfs none "{shared}" && exec "$0" "$@"'])
        cfg = _cfg(c.address, str(shared / "store"))
        with pytest.raises(EngineError, match=r"cannot be used from Ray node .*object storage"):
            ingest_svc.ingest(cfg, [str(p) for p in exports], replace=True)
    assert (target.history("billing"), sorted(p.relative_to(shared) for p in shared.rglob("*"))) == before


def test_a_cluster_running_another_finops_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site" / "finops-9.9.9.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: finops\nVersion: 9.9.9\n")
    with cluster(workers=0) as c:
        c.add_worker(env={"PYTHONPATH": str(site.parent)})  # the worker node's Python finds finops 9.9.9
        # Through the CLI from a folder of its own: Ray puts the driver's folder first on the workers' path,
        # and this checkout's folder holds the real finops's metadata.
        (tmp_path / "finops.toml").write_text(f'[engine]\nkind = "ray"\naddress = "{c.address}"\n')
        proc = run(tmp_path, "validate", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"finops 9\.9\.9 there, \S+ here.*same finops", proc.stderr), proc.stderr


def test_an_address_where_nothing_answers(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"no Ray cluster answers at 127\.0\.0\.1:9"):
        open_engine(_cfg("127.0.0.1:9", connect_timeout=2).engine)
    (tmp_path / "finops.toml").write_text('[store]\nurl = "store"\n[engine]\nkind = "ray"\naddress = "127.0.0.1:9"\n')
    (tmp_path / "e.csv").write_text("x")
    proc = run(tmp_path, "ingest", "e.csv", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no Ray cluster answers at 127.0.0.1:9" in proc.stderr
    assert not (tmp_path / "store" / "billing").exists()


def test_without_ray_installed_the_message_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "finops.toml").write_text('[store]\nurl = "store"\n')
    # A fresh interpreter in which `import ray` fails, as where the extra is not installed.
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['finops', *sys.argv[1:]]; "
            "from finops.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "validate", "--engine", "ray"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "FINOPS_CONFIG"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'finops[ray]'" in proc.stderr
