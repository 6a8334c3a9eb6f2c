"""Billing collector benchmark: rows/s normalising native exports to FOCUS into the store, beside a plain
polars read + Parquet write of the same files, and the FinOps Foundation's focus-converter on the legacy
CUR sample.

    python bench/native_exports.py                      # all inputs, default sizes
    python bench/native_exports.py --inputs cur-legacy --rows 200000 2000000
    python bench/native_exports.py --focus-converter bench/out/.venv-focus-converter/bin/focus-converter

Inputs: ``cur2`` (CUR 2.0 Parquet written from generated FOCUS data), ``azure`` (Azure cost-details
CSV, actual cost, from generated data), ``cur-legacy`` (the real anonymised legacy CUR CSV from
``../shared/data/raw/aws``, or tests/data/raw/aws, repeated to the row count). Each measurement runs in
a fresh subprocess (bench/ingest.py's runner) so its peak RSS is its own. Inputs are cached in bench/out.

focus-converter 1.0.0 installs on Python 3.11 only with ``multimethod<1.11`` and ``click<8.2``:
``python3.11 -m venv bench/out/.venv-focus-converter && bench/out/.venv-focus-converter/bin/pip install
focus-converter==1.0.0 'multimethod<1.11' 'click<8.2'``. It hangs after any error, so it runs under a
timeout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
# A script's folder comes first on sys.path, and bench/placement.py would shadow the placement package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_ingest", HERE / "ingest.py")
_ingest = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_ingest)  # type: ignore[union-attr]
OUT, child = _ingest.OUT, _ingest.child  # the shared subprocess runner

ROOT = Path(__file__).resolve().parent.parent
LEGACY_CUR = [ROOT.parent / "shared/data/raw/aws/cur-legacy-csv_anon_2023-11_1281.csv",
              ROOT / "tests/data/raw/aws/cur-legacy-csv_anon_2023-11_1281.csv"]
FC_DEFAULT = OUT / ".venv-focus-converter/bin/focus-converter"


def _generated(rows: int, folder: Path, write: Callable[[pl.DataFrame, Path], list[Path]]) -> list[Path]:
    """Native files written batch by batch from ``rows`` generated FOCUS rows (cached in ``folder``)."""
    from finops.generate import generate

    done = folder / ".done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        for i, batch in enumerate(generate(rows=rows, seed=0, days=90)):
            write(batch, folder / f"batch-{i:04d}")
        done.touch()
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv", ".gz"))


def cur2_input(rows: int) -> list[Path]:
    from finops.generate.native_aws import write_cur2

    return _generated(rows, OUT / f"cur2-{rows}", write_cur2)


def azure_input(rows: int) -> list[Path]:
    from finops.generate.native_azure import write_cost_details

    def actual_only(batch: pl.DataFrame, out: Path) -> list[Path]:
        files = write_cost_details(batch, out)
        for f in files:  # the amortized view holds the same spend again; measure one view
            if "amortized" in f.name.lower():
                f.unlink()
        return [f for f in files if f.exists()]

    return _generated(rows, OUT / f"azure-{rows}", actual_only)


def legacy_input(rows: int) -> list[Path]:
    src = next((p for p in LEGACY_CUR if p.exists()), None)
    if src is None:
        raise SystemExit("legacy CUR sample not found (../shared/data/raw/aws or tests/data/raw/aws)")
    path = OUT / f"cur-legacy-{rows}.csv"
    if not path.exists():
        header, *body = src.read_text(encoding="utf8").splitlines(keepends=True)
        OUT.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".tmp"), "w", encoding="utf8") as f:
            f.write(header)
            f.writelines(body[i % len(body)] for i in range(rows))
        path.with_suffix(".tmp").rename(path)
    return [path]


INPUTS: dict[str, tuple[Callable[[int], list[Path]], list[int]]] = {
    "cur2": (cur2_input, [10_000_000]),
    "azure": (azure_input, [10_000_000]),
    "cur-legacy": (legacy_input, [204_960, 2_000_000]),
}


def focus_converter(exe: Path, path: Path, timeout: float) -> dict[str, float] | None:
    """Wall time of focus-converter (``--provider aws-cur``) on one legacy CUR CSV, or None."""
    if not exe.exists():
        return None
    work = Path(tempfile.mkdtemp(prefix="finops-bench-fc-"))
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), "convert", "--provider", "aws-cur", "--data-format", "csv",
                               "--data-path", str(path), "--export-path", str(work / "out")],
                              capture_output=True, text=True, timeout=timeout, check=False)
        secs = time.perf_counter() - t0
        if proc.returncode != 0 or not any((work / "out").glob("*.parquet")):
            return None
        return {"seconds": round(secs, 3)}
    except subprocess.TimeoutExpired:
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=list(INPUTS))
    ap.add_argument("--rows", type=int, nargs="+", help="row counts (default: per input)")
    ap.add_argument("--focus-converter", type=Path, default=FC_DEFAULT)
    ap.add_argument("--fc-timeout", type=float, default=900)
    args = ap.parse_args()
    for name in args.inputs:
        make, sizes = INPUTS[name]
        for rows in args.rows or sizes:
            files = make(rows)
            # One file per run through the shared runner; times and peaks add up / take the max.
            ing = [child("ingest", f) for f in files] if len(files) == 1 else [_many("ingest", files)]
            base = [child("baseline", f) for f in files] if len(files) == 1 else [_many("baseline", files)]
            secs, base_secs = sum(r["seconds"] for r in ing), sum(r["seconds"] for r in base)
            n = sum(r["rows"] for r in ing)
            line = {"bench": "collectors", "input": name, "rows": n, "files": len(files),
                    "input_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
                    "seconds": secs, "rows_per_s": round(n / secs), "peak_rss_mb": max(r["peak_rss_mb"] for r in ing),
                    "baseline_seconds": base_secs, "ratio_to_baseline": round(secs / base_secs, 2),
                    "cores": os.cpu_count(), "polars": pl.__version__}
            if name == "cur-legacy":
                fc = focus_converter(args.focus_converter, files[0], args.fc_timeout)
                if fc:
                    line |= {"focus_converter_seconds": fc["seconds"],
                             "focus_converter_rows_per_s": round(n / fc["seconds"]),
                             "speedup_vs_focus_converter": round(fc["seconds"] / secs, 2)}
            print(json.dumps(line), flush=True)


def _many(kind: str, files: list[Path]) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--many", kind, *map(str, files)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _many_child(kind: str, files: list[Path]) -> dict[str, float]:
    """Ingest (or read + write, for the baseline) several files in one run, as a collector would."""
    work = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    try:
        t0 = time.perf_counter()
        if kind == "ingest":
            from collectors.files import ingest
            from finops.store import Store

            rows = ingest(Store(work / "store"), [str(f) for f in files]).rows
        else:
            rows = 0
            for i, f in enumerate(files):
                lf = pl.scan_parquet(f) if f.suffix == ".parquet" else pl.scan_csv(f, infer_schema=False)
                lf.sink_parquet(work / f"plain-{i}.parquet")
                rows += pl.scan_parquet(work / f"plain-{i}.parquet").select(pl.len()).collect().item()
        secs = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": round(secs, 3), "rows": rows,
            "peak_rss_mb": round(_ingest.peak_rss_mb(), 1)}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--many":
        print(json.dumps(_many_child(sys.argv[2], [Path(p) for p in sys.argv[3:]])))
    else:
        main()
