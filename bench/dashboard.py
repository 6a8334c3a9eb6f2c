"""Dashboard benchmark: each page's time cold and warm on a large generated store, beside a bare polars scan
of the rows it shows.

    python bench/dashboard.py                   # the 50M-row store of bench/chargeback.py (built if missing)
    python bench/dashboard.py --rows 5000000

Prints one JSON line per measurement:

* ``rollup_cold``: the daily rollups built from nothing (every partition scanned once, cached on disk);
* per page, ``first`` (the first visit after that: the Overview also computes and caches the last week's
  chargeback), ``warm`` (the same page again: what every later visit costs) and ``after_restart`` (a new
  dashboard process: nothing in memory, every rollup and report read from the disk cache);
* ``bare_scan``: polars alone grouping every row by day and provider (what the Overview draws), no rollup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chargeback import CONFIG, make_store

OUT = Path(__file__).parent / "out" / "dashboard"
PAGES = ("overview", "chargeback", "accelerators", "placements", "budgets", "prices")


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from finops import config
    from finops.rollups import Rollups
    from finops.services.demo import write_config

    store_path = make_store(args.rows, args.seed)
    cache = OUT / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cfg = config.parse({**CONFIG, "store": {"url": str(store_path)}, "dashboard": {"cache_dir": str(cache)}})
    OUT.mkdir(parents=True, exist_ok=True)
    write_config(cfg, OUT / "finops.toml")
    cfg = config.load(OUT / "finops.toml")
    store = cfg.open_store()
    rows = sum(m.rows for m in store.manifests("billing"))

    t = time.perf_counter()
    r = Rollups(store, cfg, cache)
    lines = r.billing().frame.height
    r.daily()
    r.allocated(cfg.allocation.basis)
    emit(step="rollup_cold", rows=rows, rollup_lines=lines, seconds=round(time.perf_counter() - t, 2))

    t = time.perf_counter()
    (store.scan("billing").group_by(pl.col("ChargePeriodStart").dt.date(), "ProviderName")
     .agg(pl.col("EffectiveCost").sum()).collect())
    emit(step="bare_scan", what="every row by day and provider", rows=rows, seconds=round(time.perf_counter() - t, 2))

    from streamlit.testing.v1 import AppTest

    os.environ["FINOPS_CONFIG"] = str(OUT / "finops.toml")
    pages = Path(__file__).resolve().parents[1] / "dashboards" / "pages"
    import streamlit as st

    def visit(page: str) -> tuple[float, list[str]]:
        t = time.perf_counter()
        at = AppTest.from_file(str(pages / f"{page}.py"), default_timeout=600).run()
        return round(time.perf_counter() - t, 2), [e.value for e in at.error] + [str(e.value) for e in at.exception]

    first = {p: visit(p) for p in PAGES}
    warm = {p: visit(p) for p in PAGES}
    st.cache_resource.clear()  # a restarted dashboard: nothing in memory, every cache on disk
    restart = {p: visit(p) for p in PAGES}
    for p in PAGES:
        emit(step="page", page=p, rows=rows, first=first[p][0], warm=warm[p][0], after_restart=restart[p][0],
             errors=first[p][1] + warm[p][1] + restart[p][1])


if __name__ == "__main__":
    main()
