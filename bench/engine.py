"""Engine benchmark (issue 16, "Past one machine: Ray"): the same ingest and chargeback on the local
engine (polars in one process) and on a Ray cluster on this machine — a head with no CPUs for tasks and
one worker node with ``--worker-cpus`` (default 2: the same cores local polars uses).

    python bench/engine.py                                  # 10M-row ingest, 50M-row chargeback, crossover
    python bench/engine.py --rows-chargeback 20000000 --sizes 100000 1000000 --repeat 1
    python bench/engine.py --skip ingest crossover          # only the large chargeback

Measures, each in a fresh process (its own peak RSS; a Ray driver gets newly started Ray workers):

- ``connect``: ``open_engine`` alone (import Ray, connect, the version check on every node) and the
  store check (a probe file read by a task on every node): the fixed cost of every Ray command.
- ``ingest``: ``--rows-ingest`` rows of generated monthly FOCUS Parquet exports (one file per provider
  and month) into a fresh store: the local ingest, and the distributed one on Ray (a task per file,
  a file of more than ``--rows-per-task`` rows cut by row groups).
- ``chargeback``: one week's chargeback (``reports.chargeback``, no files written) over the
  ``--rows-chargeback``-row store of bench/chargeback.py (the same cached store), local and on Ray,
  twice per process: ``seconds`` is the first run (plus connecting, on Ray): what one command pays;
  ``warm_seconds`` the second.
- per task: on Ray, when each task started and ended on its worker (the engine wrapped so that each
  task reports its own clock), so the per-task seconds, the workers' start on a first run and the
  driver's share (planning, merging, committing) are measured rather than inferred; and ``piece``:
  the same cut run one task after another in this process (``LocalEngine(rows_per_task)``) with
  ``POLARS_MAX_THREADS=1``, a task's time on one core (ingest: the largest export file).
- crossover: local vs Ray chargeback over stores of ``--sizes`` rows (built and cached like the large one).

Prints one JSON line per measurement (median of ``--repeat`` runs, run round robin so that each engine
sees the same background load; ``load_average_1min`` says what that load was), then ``summary`` lines —
the Ray/local ratios, the fixed overhead — and ``projection`` lines for 1B and 10B rows on N worker
nodes: ``fixed + ceil(tasks / (N × cpus)) × seconds_per_task``. Inputs are cached in bench/out/
(deterministic from the seed).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# A script's own folder comes first on sys.path: keep bench/ from shadowing our packages (bench/placement.py).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.chargeback import CONFIG, END, OUT, make_store  # noqa: E402
from bench.ingest import peak_rss_mb  # noqa: E402

Spec = dict[str, Any]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def make_exports(rows: int, seed: int = 0) -> list[Path]:
    """Generated FOCUS Parquet exports of ``rows`` rows over 90 days, one file per provider and month
    (cached)."""
    from finops.generate import write_exports

    folder = OUT / f"engine-exports-{rows}-s{seed}"
    done = folder / "files.json"
    if done.exists():
        return [Path(p) for p in json.loads(done.read_text())]
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    files = write_exports(folder, fmt="parquet", rows=rows, days=90, end=END, seed=seed)
    done.write_text(json.dumps([str(f) for f in files]))
    print(json.dumps({"prepared": str(folder), "rows": rows, "files": len(files),
                      "generate_seconds": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
    return files


# -- one measurement, in a fresh process ------------------------------------------------------------
def _clocked(fn: Callable[[Any], Any], item: Any) -> tuple[Any, tuple[float, float]]:
    """A task that also says when it ran, by its worker's clock (the same machine's as the driver's).
    Defined in the script run as ``__main__``, so Ray ships it by value to workers that cannot import it."""
    start = time.time()
    result = fn(item)
    return result, (start, time.time())


class Clocked:
    """An engine that runs its tasks on ``inner`` and keeps when each ran (``spans``, wall clock)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.rows_per_task = inner, inner.name, inner.rows_per_task
        self.spans: list[tuple[float, float]] = []

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], **kw: Any) -> Iterator[tuple[int, Any]]:
        for i, (result, span) in self.inner.map(functools.partial(_clocked, fn), items, **kw):
            self.spans.append(span)
            yield i, result

    def check_store(self, store: Any) -> None:
        self.inner.check_store(store)

    def close(self) -> None:
        self.inner.close()


def _engine(spec: Spec) -> Any:
    from finops.config import EngineConfig
    from finops.engine import LocalEngine, open_engine

    if spec["engine"] == "local":
        return LocalEngine()
    if spec["engine"] == "piece":
        return LocalEngine(rows_per_task=spec["rows_per_task"])
    return open_engine(EngineConfig(kind="ray", address=spec["address"], rows_per_task=spec["rows_per_task"]))


def _tasks(spans: list[tuple[float, float]], t0: float, secs: float) -> dict[str, Any]:
    """Per-task figures of one run that started at ``t0`` (wall clock) and took ``secs``."""
    if not spans:
        return {}
    took = [b - a for a, b in spans]
    busy = max(b for _, b in spans) - min(a for a, _ in spans)
    return {"task_seconds_mean": round(statistics.mean(took), 3), "task_seconds_max": round(max(took), 3),
            "first_task_start_seconds": round(min(a for a, _ in spans) - t0, 3),
            "driver_seconds": round(secs - busy, 3)}  # before the first task starts and after the last ends


def _chargeback_pieces(store: Any, week: Any, rows_per_task: int) -> tuple[int, int]:
    """Tasks and rows a chargeback of ``week`` reads (the billing periods reports.chargeback filters on)."""
    from finops import reports
    from finops.engine.pieces import cut

    periods = reports.billing_periods(min(week.previous().start, week.month_start), week.end)
    files, _ = store.live("billing", {"billing_period": periods})
    return len(cut(files, rows_per_task)), sum(f.rows for f in files)


def measure(spec: Spec) -> dict[str, Any]:
    """One measurement in this process (see the module's docstring for the kinds)."""
    from collectors import distributed
    from collectors.files import ingest
    from finops import config, reports
    from finops.store import Store

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    engine = Clocked(_engine(spec))
    connect = time.perf_counter() - t0
    cluster = spec["engine"] != "local"
    try:
        if spec["kind"] == "connect":
            t1 = time.perf_counter()
            engine.check_store(Store(spec["store"]))
            check = time.perf_counter() - t1
            out = {"seconds": round(connect + check, 3), "connect_seconds": round(connect, 3),
                   "check_store_seconds": round(check, 3)}
        elif spec["kind"] == "chargeback":
            store, cfg, week = Store(spec["store"]), config.parse(CONFIG), reports.Week.parse(spec["week"])
            runs, per_task = [], []
            for _ in range(2):  # a fresh process (on Ray: newly started workers), then a warm one
                engine.spans, wall, t1 = [], time.time(), time.perf_counter()
                cb = reports.chargeback(store, cfg, week, engine=engine)
                runs.append(time.perf_counter() - t1)
                per_task.append(_tasks(engine.spans, wall, runs[-1]))
            tasks, rows = _chargeback_pieces(store, week, spec["rows_per_task"])
            out = {"seconds": round(connect + runs[0], 3), "work_seconds": round(runs[0], 3),
                   "warm_seconds": round(runs[1], 3), "reconciled": cb.reconciled, "total": str(cb.total),
                   "rows_read": rows, "tasks": tasks if cluster else 1, "first_run": per_task[0],
                   "warm_run": per_task[1]}
        else:  # ingest
            files = spec["files"]
            work = Path(tempfile.mkdtemp(prefix="engine-ingest-", dir=OUT))  # a folder every node sees
            try:
                store = Store(str(work / "store"))
                wall, t1 = time.time(), time.perf_counter()
                result = distributed.ingest(engine, store, files) if cluster else ingest(store, files)
                secs = time.perf_counter() - t1
            finally:
                shutil.rmtree(work, ignore_errors=True)
            tasks = len(distributed.plan(files, None, spec["rows_per_task"])) if cluster else 1
            out = {"seconds": round(connect + secs, 3), "work_seconds": round(secs, 3), "rows": result.rows,
                   "files": len(files), "tasks": tasks, **_tasks(engine.spans, wall, secs)}
        if spec["engine"] == "ray":
            out["connect_seconds"] = round(connect, 3)
    finally:
        engine.close()
    return {**out, "peak_rss_mb": round(peak_rss_mb(), 1), "load_average_1min": round(os.getloadavg()[0], 2)}


def child(spec: Spec) -> dict[str, Any]:
    env = {**os.environ, **RAY_ENV}
    if spec["engine"] == "piece":
        env["POLARS_MAX_THREADS"] = "1"  # a task's time on one core
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the benchmark ----------------------------------------------------------------------------------
def _median(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    best = sorted(runs, key=lambda r: float(r[key]))[len(runs) // 2]
    return {**best, "runs": [r[key] for r in runs]}


def run_round_robin(specs: dict[str, Spec], repeat: int, common: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each spec ``repeat`` times, round robin; one JSON line per spec (its median run)."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in specs}
    for _ in range(repeat):
        for name, spec in specs.items():
            runs[name].append(child(spec))
    results = {}
    for name, spec in specs.items():
        results[name] = _median(runs[name])
        shown = {k: v for k, v in spec.items() if k not in ("files", "address")}
        print(json.dumps({"measure": name, **shown, **common, **results[name]}), flush=True)
    return results


def projection(what: str, fixed: float, per_task: float, rows_per_task: int, cpus: int) -> None:
    """Time for 1B and 10B rows on N worker nodes of ``cpus`` CPUs, tasks run in waves of N × cpus."""
    for rows in (1_000_000_000, 10_000_000_000):
        tasks = math.ceil(rows / rows_per_task)
        for nodes in (1, 4, 16, 64):
            waves = math.ceil(tasks / (nodes * cpus))
            print(json.dumps({"measure": "projection", "of": what, "rows": rows, "worker_nodes": nodes,
                              "cpus_per_node": cpus, "tasks": tasks, "waves": waves,
                              "seconds_per_task": round(per_task, 2), "fixed_seconds": round(fixed, 2),
                              "seconds": round(fixed + waves * per_task, 1),
                              "formula": "fixed + ceil(tasks / (nodes * cpus)) * seconds_per_task"}), flush=True)


def _ratio(a: object, b: object) -> float:
    return round(float(a) / float(b), 2)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-ingest", type=int, default=10_000_000)
    ap.add_argument("--rows-chargeback", type=int, default=50_000_000)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000],
                    help="store sizes (rows) of the local-vs-Ray chargeback crossover")
    ap.add_argument("--week", default="2026-W47")
    ap.add_argument("--rows-per-task", type=int, default=4_000_000, help="[engine] rows_per_task")
    ap.add_argument("--worker-cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each chargeback measurement; the median is kept")
    ap.add_argument("--repeat-ingest", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], choices=["ingest", "chargeback", "crossover"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    os.environ.update(RAY_ENV)
    from tests.ray_cluster import cluster

    big = make_store(args.rows_chargeback) if "chargeback" not in args.skip else None
    small = {n: make_store(n) for n in args.sizes} if "crossover" not in args.skip else {}
    files = [str(f) for f in make_exports(args.rows_ingest)] if "ingest" not in args.skip else []
    rpt, cpus = args.rows_per_task, args.worker_cpus
    t0 = time.perf_counter()
    with cluster(workers=0, head_cpus=0) as c:
        c.add_worker(cpus=cpus)
        common = {"cluster": f"head 0 CPUs + 1 worker node {cpus} CPUs, on this machine", "cores": os.cpu_count(),
                  "rows_per_task": rpt}
        print(json.dumps({"measure": "cluster_start", "seconds": round(time.perf_counter() - t0, 1), **common}),
              flush=True)
        ray = {"engine": "ray", "address": c.address, "rows_per_task": rpt}
        probe = big or next(iter(small.values()), None) or make_store(100_000)
        conn = run_round_robin({"connect": {"kind": "connect", **ray, "store": str(probe)}}, args.repeat,
                               common)["connect"]
        per_task: dict[str, float] = {}  # seconds of a task of rows_per_task rows on Ray
        worker_start = 0.0
        if files:
            base = {"kind": "ingest", "files": files, "rows_input": args.rows_ingest}
            ing = run_round_robin({"ingest-local": {**base, "engine": "local", "rows_per_task": rpt},
                                   "ingest-ray": {**base, **ray}}, args.repeat_ingest, common)
            # A task's time on one core: the largest export file, its tasks one after another.
            one = max(files, key=lambda f: Path(f).stat().st_size)
            piece = run_round_robin({"ingest-piece": {**base, "files": [one], "engine": "piece", "rows_per_task": rpt,
                                                      "file": one}}, 1, common)["ingest-piece"]
            loc, ry = ing["ingest-local"], ing["ingest-ray"]
            rows_per_task = int(ry["rows"]) / int(ry["tasks"])
            per_task["ingest (rows ingested)"] = float(ry["task_seconds_mean"]) * rpt / rows_per_task
            print(json.dumps({
                "measure": "summary", "of": "ingest", "rows": args.rows_ingest, "local_seconds": loc["seconds"],
                "ray_seconds": ry["seconds"], "ratio_ray_to_local": _ratio(ry["seconds"], loc["seconds"]),
                "tasks": ry["tasks"], "rows_per_task_mean": round(rows_per_task),
                "ray_task_seconds_mean": ry["task_seconds_mean"], "ray_driver_seconds": ry["driver_seconds"],
                "piece_rows": piece["rows"], "piece_seconds_1cpu": piece["task_seconds_mean"],
                "ray_seconds_per_million_rows_per_task": round(float(ry["task_seconds_mean"]) / rows_per_task * 1e6, 2),
                "piece_seconds_per_million_rows_1cpu": round(float(piece["task_seconds_mean"]) / int(piece["rows"])
                                                             * int(piece["tasks"]) * 1e6, 2)}), flush=True)
        stores = {**({args.rows_chargeback: big} if big else {}), **small}
        for rows, path in sorted(stores.items()):
            base = {"kind": "chargeback", "store": str(path), "week": args.week, "rows_in_store": rows}
            specs = {"chargeback-local": {**base, "engine": "local", "rows_per_task": rpt},
                     "chargeback-ray": {**base, **ray}}
            if path == big:
                specs["chargeback-piece"] = {**base, "engine": "piece", "rows_per_task": rpt}
            res = run_round_robin(specs, args.repeat, common)
            loc, ry = res["chargeback-local"], res["chargeback-ray"]
            summary = {"measure": "summary", "of": "chargeback", "rows_in_store": rows, "rows_read": ry["rows_read"],
                       "tasks": ry["tasks"], "local_seconds": loc["seconds"], "local_warm_seconds": loc["warm_seconds"],
                       "ray_seconds": ry["seconds"], "ray_connect_seconds": ry["connect_seconds"],
                       "ray_warm_seconds": ry["warm_seconds"],
                       "ratio_ray_to_local": _ratio(ry["seconds"], loc["seconds"]),
                       "ratio_ray_warm_to_local_warm": _ratio(ry["warm_seconds"], loc["warm_seconds"]),
                       "ray_first_run": ry["first_run"], "ray_warm_run": ry["warm_run"],
                       "target": "ray <= 1.5x local at 50M rows"}
            if path == big:
                rows_per_task = int(ry["rows_read"]) / int(ry["tasks"])
                warm, first = ry["warm_run"], ry["first_run"]
                per_task["chargeback (rows read)"] = float(warm["task_seconds_mean"]) * rpt / rows_per_task
                # Ray starts a job's worker processes anew (they import polars and finops on their first
                # task): the first run's tasks start that much later than the warm run's.
                worker_start = max(0.0, float(first["first_task_start_seconds"])
                                   - float(warm["first_task_start_seconds"]))
                summary |= {"rows_per_task_mean": round(rows_per_task),
                            "piece_seconds_1cpu": res["chargeback-piece"]["warm_run"]["task_seconds_mean"]}
            print(json.dumps(summary), flush=True)
        # The fixed cost of a Ray command: connect and check the nodes, check the store, start the workers.
        fixed = float(conn["connect_seconds"]) + float(conn["check_store_seconds"]) + worker_start
        print(json.dumps({"measure": "summary", "of": "fixed", "connect_seconds": conn["connect_seconds"],
                          "check_store_seconds": conn["check_store_seconds"],
                          "worker_start_seconds": round(worker_start, 2), "fixed_seconds": round(fixed, 2)}),
              flush=True)
        for what, seconds in per_task.items():
            projection(what, fixed, seconds, rpt, cpus)


if __name__ == "__main__":
    main()
