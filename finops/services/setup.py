"""Getting started: ``finops init`` writes a commented example configuration and, beside it, an example
queue (``jobs.yaml``) for the teams that example configures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finops import config as config_mod

JOBS_FILE = "jobs.yaml"

EXAMPLE_JOBS = """\
# Example workloads for `finops queue add jobs.yaml` (written by `finops init`; edit freely).
# One mapping, a list, or `workloads: [...]`. Teams must be teams of finops.toml (aliases apply).
# Every field: README.md, "Placement".
workloads:
  - name: llm-finetune
    team: ml-research
    kind: train                         # or serve: hours_per_week, replicas, spread
    accelerators: {name: A100, count: 8}   # or any_of: [L4, A10G], or min_memory_gb: 40
    runtime_hours: 12
    spot: allowed                       # never | allowed | required
    checkpoint_minutes: 30              # spot interruptions lose at most this much work
    priority: 7                         # 1-10
    launch: {image: ghcr.io/acme/llm:1.4, command: [python, finetune.py]}

  - name: eu-embeddings
    team: ml-research
    accelerators: {min_memory_gb: 40}   # any GPU with at least 40 GB
    runtime_hours: 4
    residency: [EU]                     # jurisdictions (EU, UK, US, ...) or regions: [...]
    dataset: {provider: aws, region: eu-west-1, size_gb: 200}   # egress is costed from here

  - name: detector-serving
    team: vision
    kind: serve
    accelerators: {any_of: [L4, A10G, T4]}
    hours_per_week: 168                 # a month of it is costed
    replicas: 2
    spread: 2                           # on at least two providers
    spot: never
"""


class SetupError(ValueError):
    """An example that would overwrite a file."""


@dataclass(frozen=True)
class Initialised:
    config: Path
    written: list[Path]
    kept: list[Path] = field(default_factory=list)
    """Example files that already existed and were left as they were."""


def init(path: Path, *, force: bool = False) -> Initialised:
    """Write the example configuration to ``path`` (an existing file only with ``force``) and the example
    queue ``jobs.yaml`` beside it when there is none (never overwritten). Both are loaded back: an example
    that does not load is a bug."""
    from finops.workloads import load

    if path.exists() and not force:
        raise SetupError(f"{path} exists; pass --force to overwrite it")
    path.write_text(config_mod.EXAMPLE, encoding="utf-8")
    cfg = config_mod.load(path)
    jobs = path.parent / JOBS_FILE
    if jobs.exists():
        return Initialised(path, [path], [jobs])
    jobs.write_text(EXAMPLE_JOBS, encoding="utf-8")
    load(jobs, cfg)
    return Initialised(path, [path, jobs])
