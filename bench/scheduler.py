"""Scheduler benchmark: what one tick costs with a large queue, and that the no-change path reads no bill.

    python bench/scheduler.py [--workloads 10000] [--ticks 200]

Prints JSON lines. A tick of a running scheduler is the lease renewal (one row read and one row written
in the ledger) plus APScheduler's wake-up; jobs run only when due. The bill is read by the billing,
budget, chargeback and place jobs when they run, never by a tick: the tick below runs with the store's
billing folder missing altogether, so any read of it would fail. Also timed: a metrics scrape (queue depth
by state: one GROUP BY over the workloads) and ``finops scheduler status``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from finops import config, leader
from finops.ledger import Ledger
from finops.scheduler_metrics import Metrics
from finops.services import scheduler as svc
from finops.workloads import loads


def _timed(fn: object, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    p95 = sorted(times)[int(n * 0.95) - 1]
    return {"median_ms": round(statistics.median(times) * 1000, 3), "p95_ms": round(p95 * 1000, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", type=int, default=10_000)
    ap.add_argument("--ticks", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-sched-"))
    try:
        cfg = config.parse({"store": {"url": str(tmp / "store")}})
        led = Ledger(cfg.ledger_url())
        spec = loads("{name: w, team: t, accelerators: {name: A100, count: 8}, runtime_hours: 4}")[0]
        t0 = time.perf_counter()
        for i in range(0, args.workloads, 1000):
            names = range(i, min(i + 1000, args.workloads))
            led.add([(spec.model_copy(update={"name": f"w{j}"}), None) for j in names])
        print(json.dumps({"step": "queue", "workloads": args.workloads, "seconds": round(time.perf_counter() - t0, 2)}))
        print(json.dumps({"step": "tick (lease renewal)", "ticks": args.ticks,
                          **_timed(lambda: leader.acquire(led, "bench", 30), args.ticks)}))
        assert not (tmp / "store" / "billing").exists(), "a tick read (or made) the bill"
        m = Metrics(cfg, led)
        print(json.dumps({"step": "metrics scrape (queue depth)", **_timed(m._scrape, 20)}))
        print(json.dumps({"step": "scheduler status", **_timed(lambda: svc.status(cfg), 10)}))
        read = (tmp / "store" / "billing").exists()
        print(json.dumps({"step": "bill read by the no-change path", "billing_read": read}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
