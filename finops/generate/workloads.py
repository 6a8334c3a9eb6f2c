"""Realistic workload specs for demos and benchmarks (deterministic from the seed).

A mix modelled on an ML organisation's queue: large-model training on 8-GPU machines (A100/H100),
fine-tuning on one to four large-memory GPUs, experiments on small GPUs, TPU jobs, batch inference,
and serving on inference GPUs (some spread over two clouds for failover). Some carry datasets, deadlines,
EU residency or a no-spot rule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from finops.workloads import WorkloadSpec

DEFAULT_TEAMS = ("ml-research", "nlp", "vision", "ml-platform", "recsys", "data-eng")
_REGIONS = {"aws": ["us-east-1", "us-west-2", "eu-west-1"], "gcp": ["us-central1", "europe-west4"],
            "azure": ["eastus", "westeurope"]}

# (weight, kind, accelerators, runtime range h, vcpus, memory)
_SHAPES: list[tuple[float, str, dict[str, Any], tuple[float, float]]] = [
    (10, "pretrain", {"any_of": ["A100-80GB", "H100"], "count": 8}, (24, 240)),
    (8, "pretrain", {"name": "H100", "count": 8}, (12, 120)),
    (8, "train", {"name": "A100", "count": 8}, (6, 72)),
    (12, "finetune", {"min_memory_gb": 40, "count": 1}, (2, 24)),
    (8, "finetune", {"name": "A100-80GB", "count": 4}, (4, 48)),
    (14, "experiment", {"any_of": ["T4", "L4", "A10", "A10G"], "count": 1}, (0.5, 8)),
    (8, "experiment", {"name": "V100", "count": 1}, (1, 12)),
    (6, "tpu", {"name": "TPU-v5e", "count": 8}, (4, 48)),
    (4, "tpu", {"name": "TPU-v5p", "count": 4}, (8, 96)),
    (8, "batch-inference", {"min_memory_gb": 24, "count": 1}, (1, 10)),
]
_SERVE: list[tuple[float, dict[str, Any], int, int]] = [
    (10, {"any_of": ["L4", "T4", "A10", "A10G"], "count": 1}, 2, 1),
    (6, {"any_of": ["L4", "T4", "A10"], "count": 1}, 4, 2),
    (4, {"min_memory_gb": 80, "count": 1}, 2, 1),
]


def workload_dicts(n: int = 200, *, seed: int = 0, teams: Sequence[str] = DEFAULT_TEAMS,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` workload specs as plain mappings (what a YAML file holds)."""
    rnd = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out = []
    for i in range(n):
        team = teams[rnd.randrange(len(teams))]
        if rnd.random() < 0.2:
            _, acc, replicas, spread = rnd.choices(_SERVE, weights=[s[0] for s in _SERVE])[0]
            spec: dict[str, Any] = {"name": f"{team}-serve-{i:04d}", "team": team, "kind": "serve",
                                    "accelerators": dict(acc), "replicas": replicas, "spread": spread,
                                    "hours_per_week": rnd.choice([40, 84, 168]),
                                    "spot": "never" if rnd.random() < 0.6 else "allowed"}
        else:
            _, label, acc, (lo, hi) = rnd.choices(_SHAPES, weights=[s[0] for s in _SHAPES])[0]
            runtime = round(rnd.uniform(lo, hi), 1)
            spec = {"name": f"{team}-{label}-{i:04d}", "team": team, "kind": "train", "accelerators": dict(acc),
                    "runtime_hours": runtime, "checkpoint_minutes": rnd.choice([15, 30, 60, 120]),
                    "spot": rnd.choices(["allowed", "never", "required"], weights=[70, 20, 10])[0]}
            if rnd.random() < 0.5:
                prov = rnd.choice(list(_REGIONS))
                spec["dataset"] = {"provider": prov, "region": rnd.choice(_REGIONS[prov]),
                                   "size_gb": round(rnd.lognormvariate(5, 1.5), 1)}
            if rnd.random() < 0.15:
                spec["deadline"] = (now + timedelta(hours=runtime * rnd.uniform(1.1, 3.0))).isoformat()
        if rnd.random() < 0.15:
            spec["residency"] = ["EU"]
        spec["priority"] = rnd.choices([3, 5, 7, 9], weights=[30, 40, 20, 10])[0]
        spec["launch"] = {"image": f"ghcr.io/northwind/{team}:latest",
                          "command": ["python", "-m", f"{team.replace('-', '_')}.main"]}
        out.append(spec)
    return out


def workloads(n: int = 200, *, seed: int = 0, teams: Sequence[str] = DEFAULT_TEAMS,
              now: datetime | None = None) -> list[WorkloadSpec]:
    """``n`` validated :class:`WorkloadSpec` objects."""
    return [WorkloadSpec.model_validate(d) for d in workload_dicts(n, seed=seed, teams=teams, now=now)]


def write_yaml(path: str | Path, n: int = 200, *, seed: int = 0, teams: Sequence[str] = DEFAULT_TEAMS,
               now: datetime | None = None) -> Path:
    """Write ``n`` specs to one YAML file (``workloads: [...]``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump({"workloads": workload_dicts(n, seed=seed, teams=teams, now=now)}, sort_keys=False))
    return p
