"""Workload specs: what a training job or a serving deployment needs, loaded from YAML.

A file holds one spec (a mapping), a list of specs, or ``{workloads: [...]}``. Errors name the file,
the line and the field (``jobs.yaml:12: workloads[1].accelerators.name: unknown accelerator 'A200'``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finops import offers, providers, regions
from finops.config import Cloud, Config, field_path, read_user_file

HOURS_PER_MONTH = 730.0
WEEKS_PER_MONTH = HOURS_PER_MONTH / 168.0

# Every number in a spec is finite (``.inf`` and ``.nan`` are refused) and at most these sensible maxima, so
# one spec cannot make the whole queue's costs infinite or absurd.
MAX_RUNTIME_HOURS = 24.0 * 366
"""A training run of at most a year (``runtime_hours``); longer work is several workloads."""
MAX_CHECKPOINT_MINUTES = MAX_RUNTIME_HOURS * 60
MAX_ACCELERATORS = 1024.0
"""Accelerators per machine or slice (``accelerators.count``; a TPU v5p slice has up to a few hundred chips)."""
MAX_ACCELERATOR_MEMORY_GB = 1024.0
"""``accelerators.min_memory_gb``, per accelerator."""
MAX_VCPUS = 1024.0
MAX_MEMORY_GB = 32768.0
"""``min_memory_gb`` of a machine (the largest cloud machines have 24–32 TB)."""
MAX_REPLICAS = 1000
MAX_DATASET_GB = 10_000_000.0
"""``dataset.size_gb``: 10 PB."""
MAX_NAME = 200
"""Characters in a workload's name or team (the ledger's columns)."""


class SpecError(ValueError):
    """A workload spec that cannot be used: names the file, line and field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Accelerators(_Model):
    """Exactly one of ``name`` (a type or family: ``A100-80GB``, ``A100``), ``any_of`` or
    ``min_memory_gb``; ``count`` accelerators per machine."""

    name: str | None = None
    any_of: list[str] = Field(default_factory=list)
    min_memory_gb: float | None = Field(default=None, gt=0, le=MAX_ACCELERATOR_MEMORY_GB)
    count: float = Field(default=1, gt=0, le=MAX_ACCELERATORS)

    @model_validator(mode="after")
    def _one_way(self) -> Accelerators:
        ways = sum((self.name is not None, bool(self.any_of), self.min_memory_gb is not None))
        if ways != 1:
            raise ValueError("give exactly one of name, any_of or min_memory_gb")
        for n in ([self.name] if self.name else self.any_of):
            if not set(_one(n)) <= set(offers.ACCELERATORS):
                raise ValueError(f"unknown accelerator {n!r} (known: {', '.join(sorted(offers.ACCELERATORS))})")
        if self.min_memory_gb is not None and not self.names():
            raise ValueError(f"no accelerator has {self.min_memory_gb:g} GB or more")
        return self

    def names(self) -> list[str]:
        """The canonical accelerator names this request accepts."""
        return list(_names(self.name, tuple(self.any_of), self.min_memory_gb))


@lru_cache(maxsize=4096)
def _names(name: str | None, any_of: tuple[str, ...], min_memory_gb: float | None) -> tuple[str, ...]:
    if min_memory_gb is not None:
        return tuple(sorted(n for n, gb in offers.ACCELERATORS.items() if gb >= min_memory_gb))
    return tuple(sorted({c for n in ([name] if name else any_of) for c in _one(n)}))


def _one(name: str) -> list[str]:
    """A canonical name means exactly that type (``H100``); any other, its family (``A100``: both)."""
    exact = {k.upper(): k for k in offers.ACCELERATORS}.get(name.strip().upper())
    return [exact] if exact else offers.accelerator_family(name)


class Dataset(_Model):
    provider: Cloud
    region: str
    size_gb: float = Field(ge=0, le=MAX_DATASET_GB)
    uri: str | None = None


class Launch(_Model):
    """How to run it: the container ``image``, ``command`` and ``env``, and the launch ``targets``
    (names from ``[launch.targets]``) it may use; empty: its team's, else ``launch.default``."""

    image: str | None = None
    command: list[str] | str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list)


class WorkloadSpec(_Model):
    """One workload. Training needs ``runtime_hours``; serving needs ``hours_per_week`` (a month of
    it is costed) and may ask for ``replicas`` on at least ``spread`` providers."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    team: str = Field(min_length=1, max_length=MAX_NAME)
    kind: Literal["train", "serve"] = "train"
    accelerators: Accelerators | None = None
    min_vcpus: float = Field(default=0, ge=0, le=MAX_VCPUS)
    min_memory_gb: float = Field(default=0, ge=0, le=MAX_MEMORY_GB)
    runtime_hours: float | None = Field(default=None, gt=0, le=MAX_RUNTIME_HOURS)
    spot: Literal["never", "allowed", "required"] = "allowed"
    checkpoint_minutes: float | None = Field(default=None, gt=0, le=MAX_CHECKPOINT_MINUTES)
    providers: list[Cloud] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    residency: list[str] = Field(default_factory=list)
    dataset: Dataset | None = None
    deadline: datetime | None = None
    priority: int = Field(default=5, ge=1, le=10)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    hours_per_week: float | None = Field(default=None, gt=0, le=168)
    spread: int = Field(default=1, ge=1)
    launch: Launch = Launch()

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not regions.known_region(r)]
        if bad:
            raise ValueError(f"unknown region(s) {', '.join(map(repr, bad))}")
        return v

    @field_validator("residency")
    @classmethod
    def _known_residency(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r.upper() not in regions.GROUPS and r.upper() not in regions.JURISDICTIONS]
        if bad:
            raise ValueError(f"unknown jurisdiction(s) {', '.join(map(repr, bad))} "
                             f"(e.g. EU, EEA, UK, US, CH, JP)")
        return [r.upper() for r in v]

    @field_validator("deadline")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.kind == "train":
            if self.runtime_hours is None:
                raise ValueError("a train workload needs runtime_hours")
            if self.hours_per_week is not None or self.spread > 1 or self.replicas > 1:
                raise ValueError("hours_per_week, replicas and spread are for serve workloads")
        elif self.hours_per_week is None:
            raise ValueError("a serve workload needs hours_per_week")
        if self.spread > len(providers.clouds()):
            raise ValueError(f"spread {self.spread}: there are only {len(providers.clouds())} providers "
                             f"({providers.expected()})")
        if self.spread > self.replicas:
            raise ValueError(f"spread {self.spread} needs at least as many replicas (got {self.replicas})")
        if self.spread > 1 and self.providers and len(self.providers) < self.spread:
            raise ValueError(f"spread {self.spread} cannot be met by providers {self.providers}")
        if self.spot == "required" and self.deadline is not None and self.checkpoint_minutes is None \
                and self.kind == "train":
            raise ValueError("spot: required with a deadline needs checkpoint_minutes: "
                             "without checkpoints an interruption restarts the job and the deadline cannot be planned")
        return self

    @property
    def base_hours(self) -> float:
        """Hours of work per replica: the runtime (train) or a month of the weekly hours (serve)."""
        if self.kind == "train":
            assert self.runtime_hours is not None  # the model validator requires it for train
            return self.runtime_hours
        assert self.hours_per_week is not None  # ... and this for serve
        return self.hours_per_week * WEEKS_PER_MONTH

    def markets(self) -> list[str]:
        return {"never": ["on_demand"], "allowed": ["on_demand", "spot"], "required": ["spot"]}[self.spot]


# -- teams -----------------------------------------------------------------------------------------
Teams = Callable[[str], str | None]
"""A team as written in a spec → the configured team it names (None: not a configured team)."""


def configured_teams(cfg: Config) -> Teams | None:
    """Once ``[[teams]]`` are listed, a workload's team must be one of them, after the normalisation
    allocation applies (case folded, ``_`` and spaces → ``-``, ``teams[].aliases`` and
    ``allocation.aliases``): the resolver of that; None when no teams are configured (any team goes)."""
    if not cfg.teams:
        return None
    from finops.allocation import normalise, rules_from_config

    rules = rules_from_config(cfg, "team")
    aliases, known = dict(rules.aliases), rules.known

    def resolve(team: str) -> str | None:
        name = aliases.get(normalise(team), normalise(team))
        return name if name in known else None

    return resolve


def unknown_team(team: str, cfg: Config) -> str:
    """Why ``team`` is refused: it names none of the configured teams (listed)."""
    return (f"unknown team {team!r}: expected one of the teams configured in finops.toml "
            f"({', '.join(t.name for t in cfg.teams)}) or one of their aliases")


# -- YAML ------------------------------------------------------------------------------------------
def loads(text: str, source: str = "<spec>", cfg: Config | None = None) -> list[WorkloadSpec]:
    """Specs from YAML ``text``; :class:`SpecError` names ``source``, the line and the field. With ``cfg``
    listing teams, each workload's team must be one of them (see :func:`configured_teams`) and is
    written as the configured name."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{source}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    prefix: tuple[Any, ...] = ()
    if isinstance(data, dict) and set(data) == {"workloads"}:
        data, prefix = data["workloads"], ("workloads",)
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise SpecError(f"{source}:1: expected a workload mapping, a list of them or {{workloads: [...]}}")
    teams = configured_teams(cfg) if cfg is not None else None
    specs, problems = [], []
    for i, item in enumerate(items):
        path = (*prefix, i) if isinstance(data, list) else prefix
        try:
            spec = WorkloadSpec.model_validate(item)
            if teams is not None and cfg is not None:
                team = teams(spec.team)
                if team is None:
                    problems.append(f"{source}:{_line(node, (*path, 'team'))}: {field_path((*path, 'team'))}: "
                                    f"{unknown_team(spec.team, cfg)}")
                    continue
                spec = spec.model_copy(update={"team": team})
            specs.append(spec)
        except ValidationError as e:
            for err in e.errors():
                loc = (*path, *err["loc"])
                line = _line(node, loc)
                field = field_path(loc) or "(spec)"
                problems.append(f"{source}:{line}: {field}: {_message(err)}")
    if problems:
        raise SpecError("invalid workload spec\n  " + "\n  ".join(problems))
    names = [s.name for s in specs]
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise SpecError(f"{source}: workload names repeated in the file: {', '.join(dup)}")
    return specs


def load(path: str | Path, cfg: Config | None = None) -> list[WorkloadSpec]:
    """Specs from the YAML file ``path`` (see :func:`loads`)."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: no such file")
    text = read_user_file(p, SpecError, "a YAML spec", "is a folder; give the YAML spec files in it")
    return loads(text, str(p), cfg)


def _line(node: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node ``loc`` reaches (pydantic's error location)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return line
            key, node = pair
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    return f"{msg} (got {got!r})" if not isinstance(got, dict | list) and err["type"] != "value_error" else msg


def dumps(spec: WorkloadSpec) -> str:
    """The spec as JSON text (for the queue)."""
    return spec.model_dump_json(exclude_defaults=True)


def from_json(text: str) -> WorkloadSpec:
    return WorkloadSpec.model_validate_json(text)
