"""Benchmarks of the launch loop: dispatching N placed workloads, and reconciling N workloads against a
billing table of M rows.

    python bench/dispatch.py dispatch [--workloads 1000]
    python bench/dispatch.py reconcile [--rows 50000000] [--workloads 10000] [--dir bench/out/reconcile]

``dispatch``: the shipped catalog in a fresh store, N generated workloads queued and placed, then
``finops dispatch`` (launch only) timed against each target — ``dry_run``, the simulated cloud, and a
Kubernetes API server on loopback (``tests/fakes/kubernetes.py``, through the real client) — each in a
fresh process; a second dispatch (nothing left to launch) and a ``jobs sync`` of every launch are timed too.

Builds (once, kept in ``--dir``) Parquet files of FOCUS ``Tags`` / ``BilledCost`` / ``ResourceId`` / charge
period rows — a tenth of them carrying a ``finops-placement`` tag of one of the workloads, the rest other
teams' tags — then, each in a fresh process so VmHWM is its own, times :func:`finops.reconcile.reconcile`
over a scan of them and a bare filter + group-by over the same rows, printing one JSON line each and the
ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

CHUNK = 5_000_000
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM starts afresh with each exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(folder: Path, rows: int, workloads: int, seed: int = 0) -> Path:
    """Billing rows in Parquet files under ``folder`` (reused when already built for these sizes)."""
    done = folder / f"built-{rows}-{workloads}"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    rng = np.random.default_rng(seed)
    ours = [json.dumps({"finops-placement": str(p), "finops-team": f"team-{p % 40}", "finops-workload": f"w-{p}"},
                       separators=(",", ":"), sort_keys=True) for p in range(1, workloads + 1)]
    others = [json.dumps({"team": f"team-{i % 40}", "env": ("prod", "dev")[i % 2], "app": f"app-{i}"},
                         separators=(",", ":"), sort_keys=True) for i in range(2000)]
    pool = pl.Series("Tags", ours + others + [None])
    for i, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        tagged = rng.random(n) < 0.1
        idx = np.where(tagged, rng.integers(0, workloads, n), workloads + rng.integers(0, len(others) + 1, n))
        hours = rng.integers(0, 24 * 30, n)
        start_us = int(T0.timestamp() * 1_000_000)
        pl.DataFrame({
            "Tags": pool.gather(idx),
            "BilledCost": pl.Series(rng.integers(1, 50_000_000, n), dtype=pl.Int64),
            "ResourceId": pl.Series([f"i-{k}" for k in range(1000)]).gather(rng.integers(0, 1000, n)),
            "ChargePeriodStart": pl.Series(start_us + hours * 3_600_000_000, dtype=pl.Int64),
        }).with_columns(
            (pl.col("BilledCost").cast(pl.Decimal(38, 15)) / 1_000_000).cast(pl.Decimal(38, 15)),  # micro-dollars
            pl.col("ChargePeriodStart").cast(pl.Datetime("us", "UTC")),
        ).with_columns((pl.col("ChargePeriodStart") + timedelta(hours=1)).alias("ChargePeriodEnd")) \
            .write_parquet(folder / f"part-{i:04d}.parquet", compression="zstd")
    done.touch()
    return folder


def _ledger(workloads: int) -> tuple[list[Any], list[Any]]:
    from finops.ledger import Launch
    from finops.placements import Leg, Placed, Recorded

    leg = Leg(provider="aws", region="us-east-1", instance_type="p4d.24xlarge", market="on_demand", replicas=1,
              accelerator_name="A100", accelerator_count=8.0, price_per_hour=32.77)
    recorded = [Recorded(id=p, run_id="bench", decided_at=T0, decision=Placed(
        workload_id=p, name=f"w-{p}", team=f"team-{p % 40}", legs=(leg,), expected_hours=4.0, expected_cost=131.08,
        compute_cost=131.08, rework_cost=0.0, egress_cost=0.0)) for p in range(1, workloads + 1)]
    launches = [Launch(id=p, workload_id=p, placement_id=p, leg=0, attempt=1, target="sim", kind="simulator",
                       external_id=f"sim:{p}", name=f"w-{p}", provider="aws", region="us-east-1",
                       instance_type="p4d.24xlarge", market="on_demand", replicas=1, state="done", submitted_at=T0,
                       started_at=T0, ended_at=T0 + timedelta(hours=4), preemptions=0, message=None)
                for p in range(1, workloads + 1)]
    return launches, recorded


def run_child(kind: str, folder: Path, workloads: int) -> dict[str, Any]:
    lf = pl.scan_parquet(str(folder / "*.parquet"))
    t0 = time.perf_counter()
    if kind == "reconcile":
        from finops.learning import family
        from finops.reconcile import reconcile

        launches, recorded = _ledger(workloads)
        t0 = time.perf_counter()
        res = reconcile(lf, launches, recorded, family=family)
        out = {"workloads": len(res.workloads), "billed": sum(w.status == "billed" for w in res.workloads),
               "tagged_rows": res.tagged_rows, "corrections": len(res.corrections)}
    else:  # the floor: filter the tagged rows and sum them per distinct tag set
        frame = (lf.select("Tags", "BilledCost").filter(pl.col("Tags").str.contains("finops-placement", literal=True))
                 .group_by("Tags").agg(pl.col("BilledCost").sum(), pl.len()).collect())
        out = {"groups": frame.height, "tagged_rows": int(frame["len"].sum())}
    return {"kind": kind, "seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(peak_rss_mb(), 1), **out}


def reconcile_bench(rows: int, workloads: int, folder: Path) -> list[dict[str, Any]]:
    """Build (or reuse) the rows, then time reconcile and the bare filter + group-by, each in its own process."""
    t0 = time.perf_counter()
    build(folder, rows, workloads)
    built = round(time.perf_counter() - t0, 1)
    results = []
    for kind in ("filter_group_by", "reconcile"):
        proc = subprocess.run([sys.executable, __file__, "--child", kind, str(folder), str(workloads)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"rows": rows, "build_seconds": built})
    base, rec = results
    results.append({"kind": "ratio", "rows": rows, "workloads": workloads,
                    "seconds": round(rec["seconds"] / base["seconds"], 2),
                    "peak_rss": round(rec["peak_rss_mb"] / base["peak_rss_mb"], 2)})
    return results


# -- dispatching ------------------------------------------------------------------------------------
GKE_POOLS = ["a2-highgpu-1g", "a2-highgpu-2g", "a2-highgpu-4g", "a2-highgpu-8g", "a2-ultragpu-1g", "a2-ultragpu-8g",
             "a3-highgpu-8g", "g2-standard-4", "g2-standard-8", "g2-standard-24", "g2-standard-48",
             "n1-standard-8", "n1-highmem-8"]


def dispatch_child(kind: str, workloads: int) -> dict[str, Any]:
    """In a fresh process: place ``workloads`` generated workloads for target ``kind`` and time the launch."""
    import tempfile
    import tomllib

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes: the loopback servers
    from finops.config import parse
    from finops.generate.workloads import DEFAULT_TEAMS
    from finops.generate.workloads import workloads as generated
    from finops.ledger import Ledger
    from finops.services import launch, queue
    from finops.services.prices import import_catalog

    home = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    fake = None
    extra = ""
    if kind == "simulator":
        extra = f'[launch.targets.t]\nkind = "simulator"\nstate = "{home / "sim"}"\nspeed = 0.001\n'
    elif kind == "kubernetes":
        from tests.fakes.kubernetes import KubernetesFake

        fake = KubernetesFake().__enter__()
        kube = fake.kubeconfig(home / "kubeconfig", context="bench")
        pools = ", ".join(f'{{ instance_type = "{t}", spot = {str(spot).lower()} }}'
                          for t in GKE_POOLS for spot in (False, True))
        extra = (f'[launch.targets.t]\nkind = "kubernetes"\nprovider = "gcp"\nregion = "us-central1"\n'
                 f'kubeconfig = "{kube}"\ncontext = "bench"\nnode_pools = [{pools}]\n')
    default = "dry_run" if kind == "dry_run" else "t"
    text = (f'[store]\nurl = "{home / "data"}"\n[placement]\nstale = "allow"\n[launch]\ndefault = ["{default}"]\n'
            + extra)
    cfg = parse(tomllib.loads(text), str(home / "finops.toml"))
    import_catalog(cfg)
    specs = generated(workloads, seed=1, teams=list(DEFAULT_TEAMS))
    image = {"image": "ghcr.io/acme/train:1", "command": ["python", "train.py"]}
    Ledger(cfg.ledger_url()).add([(s.model_copy(update={"launch": s.launch.model_copy(update=image),
                                                         "regions": [], "residency": [], "dataset": None,
                                                         "providers": []}), "bench") for s in specs])
    t0 = time.perf_counter()
    queue.place(cfg)
    t1 = time.perf_counter()
    rep = launch.dispatch(cfg, place=False).report
    t2 = time.perf_counter()
    again = launch.dispatch(cfg, place=False).report
    t3 = time.perf_counter()
    synced = launch.sync(cfg)
    t4 = time.perf_counter()
    if fake is not None:
        fake.__exit__(None, None, None)
    launched = rep.count("submitted")
    return {"part": "dispatch", "target": kind, "workloads": workloads, "placed": len(rep.launched),
            "launched": launched, "place_seconds": round(t1 - t0, 2), "dispatch_seconds": round(t2 - t1, 2),
            "per_launch_ms": round((t2 - t1) / max(launched, 1) * 1000, 2), "again_seconds": round(t3 - t2, 2),
            "again_launched": len(again.launched), "sync_seconds": round(t4 - t3, 2),
            "synced": len(synced.synced), "peak_rss_mb": round(peak_rss_mb(), 1)}


def dispatch_bench(workloads: int) -> list[dict[str, Any]]:
    out = []
    for kind in ("dry_run", "simulator", "kubernetes"):
        proc = subprocess.run([sys.executable, __file__, "--dispatch-child", kind, str(workloads)],
                              capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--dispatch-child":
        print(json.dumps(dispatch_child(sys.argv[2], int(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("part", choices=["dispatch", "reconcile"])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--workloads", type=int, default=None, help="default: 1,000 to dispatch, 10,000 to reconcile")
    ap.add_argument("--dir", type=Path, default=Path(__file__).parent / "out" / "reconcile")
    a = ap.parse_args()
    results = (dispatch_bench(a.workloads or 1000) if a.part == "dispatch"
               else reconcile_bench(a.rows, a.workloads or 10_000, a.dir))
    for r in results:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
