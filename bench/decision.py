"""Decision quality: finops and SkyPilot 0.14.1's optimizer on the same queue and the same prices.

    python bench/decision.py [--catalog ../shared/data/catalog] [--skypilot PYTHON] [--repeat 3]

SkyPilot runs in a venv of its own, with the catalogs copied into its catalog home as its docs say
(``$HOME/.sky/catalogs/v8/<cloud>/*.csv`` and ``common/*.csv``; without ``.meta/*.md5`` it never
downloads them), ``HOME`` pointed at ``bench/out/skypilot-home``, no network::

    python3.11 -m venv bench/out/.venv-skypilot && bench/out/.venv-skypilot/bin/pip install skypilot==0.14.1

Its optimizer needs enabled clouds; with no credentials here, ``sky.check``'s cached list is replaced
by AWS, GCP and Azure (the optimizer reads only catalogs). Each workload becomes one SkyPilot task whose
resources are every (accelerator, market[, cloud, region]) the spec allows, and
``sky.optimizer.Optimizer.optimize`` picks the cheapest; its time is measured per task, warm (the first,
catalog-loading call is left out and reported).

The queue (``queue()``, 60 workloads, fixed): 8-GPU training on each flagship GPU (with and without
checkpoints, spot allowed or never), single GPUs, GPU-memory requests, TPU slices, residency-restricted
jobs, serving (two with ``spread``, which SkyPilot's optimizer cannot express: finops only). For each
workload it prints both choices and their costs two ways — at list price (price × hours, SkyPilot's own
objective) and expected (finops' model: spot re-work at each offer's interruption hazard) — and the
queue totals against every job on demand on its team's home cloud. A SkyPilot choice on a price finops
flags (a spot price of exactly 10 % of on-demand, a spot price above on-demand) is reported as such:
its cost is not a real price.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data" / "catalog"
SKY_PYTHON = HERE / "out" / ".venv-skypilot" / "bin" / "python"
SKY_HOME = HERE / "out" / "skypilot-home"
HOME_CLOUD = {"nlp": "aws", "vision": "gcp", "research": "azure"}
RESTART_HOURS = 1 / 6


# -- the queue ---------------------------------------------------------------------------------------
def queue() -> list[dict[str, Any]]:
    """60 workloads, as YAML mappings (deterministic)."""
    out: list[dict[str, Any]] = []
    teams = list(HOME_CLOUD)

    def add(name: str, acc: dict[str, Any], hours: float, **kw: Any) -> None:
        out.append({"name": name, "team": teams[len(out) % 3], "accelerators": acc, "runtime_hours": hours, **kw})

    for gpu in ("H100", "H200", "B200", "A100-80GB", "A100"):  # 8-GPU training on each flagship GPU
        add(f"pretrain-{gpu}-ckpt", {"name": gpu, "count": 8}, 72, checkpoint_minutes=30, spot="allowed")
        add(f"pretrain-{gpu}-nockpt", {"name": gpu, "count": 8}, 300, spot="allowed")
        add(f"pretrain-{gpu}-od", {"name": gpu, "count": 8}, 48, spot="never")
    for gpu in ("T4", "L4", "V100", "A10", "A100-80GB", "H100"):  # single GPUs
        add(f"single-{gpu}", {"name": gpu, "count": 1}, 8, checkpoint_minutes=15, spot="allowed")
        add(f"single-{gpu}-od", {"name": gpu, "count": 1}, 4, spot="never")
    for gb, n in ((16, 1), (24, 1), (40, 1), (80, 1), (80, 8), (140, 8)):  # GPU-memory requests
        add(f"mem-{gb}gb-x{n}", {"min_memory_gb": gb, "count": n}, 24, checkpoint_minutes=60, spot="allowed")
    for tpu, n in (("TPU-v5e", 8), ("TPU-v5e", 4), ("TPU-v5p", 4), ("TPU-v6e", 8), ("TPU-v4", 4)):  # TPU slices
        add(f"tpu-{tpu}-{n}", {"name": tpu, "count": n}, 48, checkpoint_minutes=30, spot="allowed")
        add(f"tpu-{tpu}-{n}-od", {"name": tpu, "count": n}, 12, spot="never")
    for res, acc in ((["EU"], {"name": "H100", "count": 8}), (["EU"], {"name": "A100", "count": 8}),
                     (["EU"], {"name": "L4", "count": 1}), (["US"], {"name": "A100-80GB", "count": 8}),
                     (["JP"], {"name": "T4", "count": 1}), (["JP"], {"name": "H100", "count": 8}),
                     (["UK"], {"name": "A100", "count": 8}), (["EU"], {"name": "T4", "count": 1})):
        add(f"resident-{res[0]}-{acc['name']}x{acc['count']}", acc, 36, residency=res, checkpoint_minutes=30,
            spot="allowed")
    for i, acc in enumerate(({"name": "L4", "count": 1}, {"name": "T4", "count": 1}, {"name": "A10", "count": 1})):
        out.append({"name": f"serve-{i}", "team": teams[i], "kind": "serve", "accelerators": acc,
                    "hours_per_week": 168, "replicas": 2, "spot": "never"})
    for i, acc in enumerate(({"name": "L4", "count": 1}, {"name": "T4", "count": 1})):
        out.append({"name": f"serve-spread-{i}", "team": teams[i], "kind": "serve", "accelerators": acc,
                    "hours_per_week": 168, "replicas": 3, "spread": 2, "spot": "never"})
    for i in range(60 - len(out)):  # fill with fine-tuning jobs
        gpu = ("L4", "A100-80GB", "H100", "T4")[i % 4]
        add(f"finetune-{i}", {"name": gpu, "count": (1, 2, 4, 1)[i % 4]}, (6, 30, 90, 3)[i % 4], spot="allowed",
            **({"checkpoint_minutes": 30} if i % 2 else {}))
    return out


# -- SkyPilot side (runs in SkyPilot's venv: stdlib and sky only) -----------------------------------------
SKY_NAMES = {"A100-40GB": ["A100"], "A100-80GB": ["A100-80GB"], "H100": ["H100", "H100-MEGA"], "H200": ["H200"],
             "B200": ["B200"], "L4": ["L4"], "T4": ["T4"], "V100-16GB": ["V100"], "V100-32GB": ["V100-32GB"],
             "A10": ["A10"], "A10G": ["A10G"], "P100": ["P100"], "P4": ["P4"], "MI300X": ["MI300X"], "M60": ["M60"],
             "MI25": ["MI25"], "H100-NVL": [], "L40S": ["L40S"]}


def sky_accelerators(names: list[str], count: float) -> list[str]:
    """SkyPilot accelerator strings for canonical ``names`` × ``count`` (TPU slices by SkyPilot's name)."""
    out = []
    n = int(count)
    for name in names:
        if name == "TPU-v5e":
            out.append(f"tpu-v5litepod-{n}:1")
        elif name in ("TPU-v5p", "TPU-v4", "TPU-v3", "TPU-v2"):
            out.append(f"tpu-{name[4:].lower()}-{2 * n}:1")  # slices named by TensorCores: two per chip
        elif name == "TPU-v6e":
            out.append(f"tpu-v6e-{n}:1")
        else:
            out += [f"{s}:{n}" for s in SKY_NAMES.get(name, [name])]
    return out


def sky_worker() -> None:
    """Read jobs (JSON lines) on stdin, print SkyPilot's choice and time for each (JSON lines)."""
    import logging

    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    from sky import check as sky_check  # type: ignore[import-not-found]
    from sky import clouds, optimizer
    from sky import dag as dag_lib
    from sky import resources as res_lib
    from sky import task as task_lib

    enabled = [clouds.AWS(), clouds.GCP(), clouds.Azure()]
    sky_check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: enabled
    by_name = {"aws": clouds.AWS(), "gcp": clouds.GCP(), "azure": clouds.Azure()}
    print(json.dumps({"import_seconds": time.perf_counter() - t0}), flush=True)

    def choose(job: dict[str, Any]) -> dict[str, Any]:
        places = job["places"] or [None]
        resources = set()
        for acc in job["accelerators"]:
            for spot in job["spot"]:
                for place in places:
                    kw: dict[str, Any] = {"accelerators": acc, "use_spot": spot}
                    if place:
                        kw |= {"cloud": by_name[place[0]], "region": place[1]}
                    resources.add(res_lib.Resources(**kw))
        with dag_lib.Dag() as dag:
            task = task_lib.Task(job["name"], run="true")
            task.set_resources(resources)
            task.set_time_estimator(lambda _: job["hours"] * 3600.0)
        t = time.perf_counter()
        try:
            optimizer.Optimizer.optimize(dag, quiet=True)
        except Exception as e:  # noqa: BLE001 — reported, not fatal: the other jobs still run
            return {"name": job["name"], "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                    "seconds": time.perf_counter() - t}
        secs = time.perf_counter() - t
        br = task.best_resources
        (acc, n), = br.accelerators.items()
        return {"name": job["name"], "seconds": secs, "provider": str(br.cloud).lower(), "region": br.region,
                "zone": br.zone, "instance_type": br.instance_type, "accelerator": acc, "count": n,
                "spot": bool(br.use_spot), "price_per_hour": br.get_cost(3600.0)}

    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    if jobs:
        warm = choose(jobs[0])  # loads the catalogs
        print(json.dumps({"warmup_seconds": warm["seconds"]}), flush=True)
    for job in jobs:
        print(json.dumps(choose(job)), flush=True)


# -- finops side -------------------------------------------------------------------------------------------
def emit(**kw: object) -> None:
    print(json.dumps(kw, default=str), flush=True)


def sky_jobs(specs: list[Any], offers: Any) -> list[dict[str, Any] | None]:
    """Each spec as SkyPilot resources alike to it: same accelerators (a memory request as the GPUs that
    have the memory), markets and, for residency, the same (cloud, region) pairs; None where SkyPilot
    cannot express it (spread)."""
    import polars as pl

    from finops import regions
    from placement.candidates import _accepted

    places = offers.select("provider", "region").unique().rows()
    jobs: list[dict[str, Any] | None] = []
    for s in specs:
        if s.spread > 1:
            jobs.append(None)
            continue
        allowed = regions.expand(list(s.residency)) if s.residency else None
        pairs = sorted((p, r) for p, r in places if regions.jurisdiction(p, r) in allowed) if allowed else []
        markets = {"never": [False], "allowed": [False, True], "required": [True]}[s.spot]
        jobs.append({"name": s.name, "accelerators": sky_accelerators(_accepted(s.accelerators),
                                                                      s.accelerators.count),
                     "spot": markets, "places": pairs, "hours": s.base_hours})
    del pl
    return jobs


def run_skypilot(python: Path, jobs: list[dict[str, Any] | None]) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    env = {**os.environ, "HOME": str(SKY_HOME), "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"}
    lines = "\n".join(json.dumps(j) for j in jobs if j) + "\n"
    out = subprocess.run([str(python), __file__, "--sky-worker"], input=lines, capture_output=True, text=True,
                         env=env, timeout=3600, check=True)
    picks: dict[str, dict[str, Any]] = {}
    meta: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if "name" in d:
            picks[d["name"]] = d
        else:
            meta |= d
    return picks, meta


def install_catalogs(catalog: Path) -> None:
    """Copy the catalogs into SkyPilot's catalog home (as its docs describe: no .meta, no download)."""
    import shutil

    for cloud in ("aws", "gcp", "azure", "common"):
        dst = SKY_HOME / ".sky" / "catalogs" / "v8" / cloud
        dst.mkdir(parents=True, exist_ok=True)
        for f in (catalog / cloud).glob("*.csv"):
            shutil.copy2(f, dst / f.name)


def finops_key(pick: dict[str, Any]) -> tuple[str, str, str, str]:
    """The finops offer key of a SkyPilot choice (GCP hosts with attached GPUs and TPU VMs as finops names them)."""
    it = pick["instance_type"]
    if pick["provider"] == "gcp" and it == "TPU-VM":
        it = pick["accelerator"]
    elif pick["provider"] == "gcp" and it.startswith("n1-"):
        it = f"{it}+{pick['accelerator']}x{int(pick['count'])}"
    return pick["provider"], pick["region"], it, "spot" if pick["spot"] else "on_demand"


def stretch(rate: float, checkpoint_hours: float) -> float:
    """finops' expected wall hours per hour of work (placement.costing.stretch) for one offer."""
    import polars as pl

    from placement.costing import stretch as expr

    return float(pl.select(expr(pl.lit(rate), pl.lit(checkpoint_hours), RESTART_HOURS)).item())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", type=Path, default=SHARED)
    ap.add_argument("--skypilot", type=Path, default=SKY_PYTHON, help="python of SkyPilot's venv")
    ap.add_argument("--repeat", type=int, default=3, help="finops plans timed (best of)")
    args = ap.parse_args()

    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/placement.py shadows placement
    sys.path.insert(0, str(ROOT))
    import logging
    from datetime import UTC, datetime

    import polars as pl

    from collectors.catalog import load_catalog
    from finops.placements import Placed
    from finops.workloads import WorkloadSpec
    from placement.candidates import prepare_offers
    from placement.plan import plan

    logging.disable(logging.WARNING)
    when = datetime(2026, 4, 2, tzinfo=UTC)  # the GCP and Azure files' date; the AWS file has none
    read = load_catalog(args.catalog, observed_at=when, interruption=None)
    every = read.offers
    offers = prepare_offers(every, stale="allow")
    specs = [WorkloadSpec.model_validate(d) for d in queue()]
    numbered = list(enumerate(specs))
    now = when
    best = float("inf")
    for _ in range(max(args.repeat, 1)):
        t0 = time.perf_counter()
        p = plan(numbered, offers, home=HOME_CLOUD, now=now)
        best = min(best, time.perf_counter() - t0)
    fin_per_job = best / len(specs)

    install_catalogs(args.catalog)
    jobs = sky_jobs(specs, offers)
    picks, meta = run_skypilot(args.skypilot, jobs)

    rows = {(r["provider"], r["region"], r["instance_type"], r["market"]): r for r in
            every.sort("price_per_hour").unique(subset=["provider", "region", "instance_type", "market"],
                                                keep="first", maintain_order=True).iter_rows(named=True)}
    totals = {"finops_list": 0.0, "finops_expected": 0.0, "sky_list": 0.0, "sky_expected": 0.0, "alike": 0,
              "finops_le_sky_expected": 0, "finops_le_sky_list": 0, "baseline": 0.0, "finops_all": 0.0,
              "sky_flagged": 0, "sky_unplaced": 0}
    sky_secs = []
    for (_, s), d, job in zip(numbered, p.decisions, jobs, strict=True):
        ckpt = (s.checkpoint_minutes / 60 if s.checkpoint_minutes else (s.base_hours if s.kind == "train" else 0.0))
        out: dict[str, Any] = {"workload": s.name, "hours": s.base_hours, "replicas": s.replicas}
        if isinstance(d, Placed):
            list_cost = sum(leg.price_per_hour * leg.replicas for leg in d.legs) * s.base_hours
            out["_list"] = list_cost
            out["finops"] = {"where": " + ".join(f"{leg.provider}/{leg.region}/{leg.instance_type}/{leg.market}"
                                                 f"x{leg.replicas}" for leg in d.legs),
                             "list": round(list_cost, 2), "expected": round(d.expected_cost, 2),
                             "rework": round(d.rework_cost, 2), "expected_hours": round(d.expected_hours, 1)}
            out["home_on_demand"] = None if d.baseline_cost is None else round(d.baseline_cost, 2)
            if d.baseline_cost is not None:
                totals["baseline"] += d.baseline_cost
                totals["finops_all"] += d.expected_cost
        else:
            out["finops"] = {"unplaced": getattr(d, "reason", None)}
        pick = picks.get(s.name) if job else None
        if job is None:
            out["skypilot"] = "cannot express spread"
        elif pick is None or "error" in pick:
            out["skypilot"] = {"unplaced": (pick or {}).get("error")}
            totals["sky_unplaced"] += 1
        else:
            sky_secs.append(pick["seconds"])
            key = finops_key(pick)
            row = rows.get(key)
            rate = row["interruption_rate"] if row else 0.0
            sky_list = pick["price_per_hour"] * s.base_hours * s.replicas
            sky_exp = sky_list * (stretch(rate, ckpt) if pick["spot"] else 1.0)
            flag = row["flag"] if row else "no such finops offer"
            out["skypilot"] = {"where": "/".join(key), "list": round(sky_list, 2), "expected": round(sky_exp, 2),
                               "seconds": round(pick["seconds"], 4), "finops_price": row and row["price_per_hour"],
                               "flag": flag}
            if flag:
                totals["sky_flagged"] += 1
            elif isinstance(d, Placed):
                totals["alike"] += 1
                totals["finops_list"] += out["_list"]
                totals["finops_expected"] += d.expected_cost
                totals["sky_list"] += sky_list
                totals["sky_expected"] += sky_exp
                totals["finops_le_sky_expected"] += d.expected_cost <= sky_exp * (1 + 1e-9)
                totals["finops_le_sky_list"] += out["_list"] <= sky_list * (1 + 1e-9)
        out.pop("_list", None)
        emit(bench="decision.workload", **out)
    sky_per_job = sum(sky_secs) / max(len(sky_secs), 1)
    emit(bench="decision.queue", workloads=len(specs), offers=every.height, usable_offers=offers.height,
         alike=totals["alike"], finops_le_skypilot_expected=totals["finops_le_sky_expected"],
         finops_le_skypilot_list=totals["finops_le_sky_list"],
         skypilot_on_flagged_price=totals["sky_flagged"], skypilot_unplaced=totals["sky_unplaced"],
         alike_totals={k: round(totals[k], 2) for k in ("finops_list", "finops_expected", "sky_list", "sky_expected")},
         finops_vs_home_on_demand={"finops_expected": round(totals["finops_all"], 2),
                                   "home_on_demand": round(totals["baseline"], 2),
                                   "saving": round(1 - totals["finops_all"] / totals["baseline"], 4)
                                   if totals["baseline"] else None},
         seconds_per_job={"finops": fin_per_job, "skypilot": sky_per_job,
                          "speedup": round(sky_per_job / fin_per_job, 1) if fin_per_job else None},
         skypilot_import_seconds=meta.get("import_seconds"), skypilot_first_call_seconds=meta.get("warmup_seconds"),
         catalog=str(args.catalog), observed_at=when.isoformat())
    del pl


if __name__ == "__main__":
    if "--sky-worker" in sys.argv:
        sky_worker()
    else:
        main()
