"""Price benchmark: the optimizer's read — ``latest_offers()`` plus an accelerator query — over a
10M-row price history, beside recomputing the latest prices from the whole history.

    python bench/prices.py [--rows 10000000] [--catalog ../shared/data/catalog]

Prints JSON lines. The history is the catalog's offers observed again and again, hourly, with prices
moving a little each time (deterministic), recorded through ``finops.offers.record`` as collection runs
would. The store is built once into bench/out/ and reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from collectors.catalog import SNAPSHOT_DATE, read_catalog, snapshot_dir
from finops import offers
from finops.store import Store

OUT = Path(__file__).parent / "out"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog"


def build(store: Store, base: pl.DataFrame, rows: int) -> int:
    """Record ``rows`` observations: ``base`` observed once an hour with jittered prices."""
    steps = max(1, -(-rows // base.height))
    rng = np.random.default_rng(0)
    done = 0
    for step in range(steps):
        n = min(base.height, rows - done)
        jitter = rng.uniform(0.9, 1.1, n)
        obs = base.head(n).with_columns(
            (pl.col("price_per_hour") * jitter).alias("price_per_hour"),
            pl.lit(SNAPSHOT_DATE + timedelta(hours=step)).cast(pl.Datetime("us", "UTC")).alias("observed_at"))
        offers.record(store, obs)
        done += n
    return done


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def collection() -> None:
    """A full collection from the three clouds' price APIs, served by the local fakes of the test
    suite (real SDK clients, real wire formats, real prices from the catalogs)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from collectors import prices as price_collectors
    from tests.fakes.aws_prices import AWSPricesFake
    from tests.fakes.azure_retail import AzureRetailFake, catalog_rows, items_from_catalog
    from tests.fakes.gcp_catalog import FakeCloudCatalog

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    regions = {"aws": ("us-east-1", "us-west-2", "eu-west-1"), "gcp": ("us-central1", "europe-west4"),
               "azure": ("eastus", "westeurope", "westus3")}
    with AWSPricesFake() as aws, FakeCloudCatalog() as gcp, AzureRetailFake(items_from_catalog(catalog_rows())) as az:
        for provider, url in (("aws", aws.url), ("gcp", gcp.url), ("azure", az.url)):
            t0 = time.perf_counter()
            df = price_collectors.collect(provider, regions[provider], endpoint=url)
            print(json.dumps({"bench": "prices.collect", "provider": provider, "regions": len(regions[provider]),
                              "offers": df.height, "seconds": round(time.perf_counter() - t0, 3)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--catalog", type=Path, default=SHARED if SHARED.exists() else snapshot_dir())
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--skip-collection", action="store_true")
    args = ap.parse_args()
    if not args.skip_collection:
        collection()
    root = OUT / f"prices-{args.rows}"
    if args.rebuild:
        shutil.rmtree(root, ignore_errors=True)
    store = Store(root)
    if not store.manifests("prices"):
        base = read_catalog(args.catalog, observed_at=SNAPSHOT_DATE)
        t0 = time.perf_counter()
        n = build(store, base, args.rows)
        print(json.dumps({"bench": "prices.build", "rows": n, "offers": base.height,
                          "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    history = store.scan("prices").select(pl.len()).collect().item()
    query = offers.Query("A100", 8, "spot")

    def optimizer_read() -> pl.DataFrame:
        return offers.select(offers.latest_offers(store, max_age=timedelta(hours=24)), query).collect()

    def from_history() -> pl.DataFrame:
        return offers.select(offers.latest(store.scan("prices"), max_age=timedelta(hours=24)), query).collect()

    secs, hits = timed(optimizer_read, args.repeat)
    print(json.dumps({"bench": "prices.latest_offers+query", "history_rows": history, "matches": hits.height,
                      "ms": round(secs * 1000, 1), "target_ms": 100, "repeat": args.repeat}), flush=True)
    secs2, hits2 = timed(from_history, max(1, args.repeat // 10))
    key = ["provider", "region", "zone", "instance_type", "price_per_hour"]
    assert hits2.select(key).sort(key, nulls_last=True).equals(hits.select(key).sort(key, nulls_last=True)), \
        "the latest view disagrees with the full history"
    print(json.dumps({"bench": "prices.latest_from_full_history+query", "history_rows": history,
                      "ms": round(secs2 * 1000, 1)}), flush=True)


if __name__ == "__main__":
    main()
