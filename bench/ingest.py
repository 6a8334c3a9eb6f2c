"""Ingest benchmark: rows/s and peak RSS to ingest generated FOCUS exports (CSV and Parquet), beside
the time polars alone takes to read the same file and write it as Parquet.

    python bench/ingest.py                     # 1M and 10M rows, CSV and Parquet
    python bench/ingest.py --rows 1000000 --formats csv

Prints one JSON line per measurement. Each measurement runs in a fresh subprocess so that its peak
RSS is its own. Input files are cached in bench/out/ (they are deterministic from the seed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

# A script's own folder comes first on sys.path: keep bench/ from shadowing our packages (bench/placement.py).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
OUT = Path(__file__).parent / "out"


def make_input(rows: int, fmt: str, seed: int = 0) -> Path:
    """One export file of ``rows`` generated FOCUS rows (cached)."""
    from finops.generate import generate

    path = OUT / f"focus-{rows}-s{seed}.{fmt}"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer = None
    with open(tmp, "wb") as f:
        for i, batch in enumerate(generate(rows=rows, seed=seed, days=90)):
            if fmt == "csv":
                batch.write_csv(f, include_header=i == 0, datetime_format="%Y-%m-%dT%H:%M:%SZ")
            else:
                table = batch.to_arrow()
                writer = writer or pq.ParquetWriter(f, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=65_536)  # as finops.generate's exports
        if writer:
            writer.close()
    tmp.rename(path)
    return path


def measure(kind: str, path: Path) -> dict[str, float]:
    """Run one measurement in this process: ``ingest`` or ``baseline`` (polars read → Parquet)."""
    work = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    try:
        t0 = time.perf_counter()
        if kind == "ingest":
            from collectors.files import ingest
            from finops.store import Store

            result = ingest(Store(work / "store"), [str(path)])
            rows = result.rows
        else:
            lf = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path)
            lf.sink_parquet(work / "plain.parquet")
            rows = pq.ParquetFile(work / "plain.parquet").metadata.num_rows
        secs = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_mb = peak_rss_mb()
    return {"seconds": round(secs, 3), "rows": rows, "peak_rss_mb": round(peak_mb, 1)}


def peak_rss_mb() -> float:
    """This process's peak RSS since it started its program. VmHWM starts afresh with each exec;
    ru_maxrss would carry over the parent's peak (the input generation)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, path: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    for rows in args.rows:
        for fmt in args.formats:
            path = make_input(rows, fmt)
            base = min((child("baseline", path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
            ing = min((child("ingest", path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
            print(json.dumps({
                "bench": "ingest", "format": fmt, "rows": ing["rows"],
                "input_mb": round(path.stat().st_size / 2**20, 1),
                "seconds": ing["seconds"], "rows_per_s": round(ing["rows"] / ing["seconds"]),
                "peak_rss_mb": ing["peak_rss_mb"], "baseline_seconds": base["seconds"],
                "baseline_peak_rss_mb": base["peak_rss_mb"],
                "ratio_to_baseline": round(ing["seconds"] / base["seconds"], 2),
                "cores": os.cpu_count(), "polars": pl.__version__,
            }), flush=True)


if __name__ == "__main__":
    main()
