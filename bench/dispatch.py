"""Benchmark of the launch loop's bill side: reconciling N workloads against a billing table of M rows.

    python bench/dispatch.py reconcile [--rows 50000000] [--workloads 10000] [--dir bench/out/reconcile]

Builds (once, kept in ``--dir``) Parquet files of FOCUS ``Tags`` / ``BilledCost`` / ``ResourceId`` / charge
period rows — a tenth of them carrying a ``finops-placement`` tag of one of the workloads, the rest other
teams' tags — then, each in a fresh process so VmHWM is its own, times :func:`finops.reconcile.reconcile`
over a scan of them and a bare filter + group-by over the same rows, printing one JSON line each and the
ratio. (The dispatching part is added beside :func:`reconcile_bench`.)
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(run_child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("part", choices=["reconcile"])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--workloads", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=Path(__file__).parent / "out" / "reconcile")
    a = ap.parse_args()
    for r in reconcile_bench(a.rows, a.workloads, a.dir):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
