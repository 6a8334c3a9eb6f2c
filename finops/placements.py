"""Placement decisions, typed: the contract between the optimizer (``placement/``), the ledger and
whoever shows or launches them (the CLI, the dashboard, the launchers).

A decision is :class:`Placed` (one or more :class:`Leg` s, each an offer with its price and when it was
observed, the expected cost broken down, the :class:`RunnerUp`, the baseline) or :class:`Unplaced`
(a reason). Both are immutable; ``to_json()`` gives the plain form printed by ``finops place --json``
and ``Decision.from_json`` / ``Decision.from_row`` read it back (from JSON or from a ledger row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

OFFER_KEY = ("provider", "region", "instance_type", "market")


def _when(v: datetime | str | None) -> datetime | None:
    """A timestamp from JSON (ISO 8601 text, with a space or a ``T``) or the database (naive on SQLite:
    it is UTC) as an aware datetime."""
    if v is None:
        return None
    d = datetime.fromisoformat(v) if isinstance(v, str) else v
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    """Replicas of a workload on one offer. ``pool`` names the commitment used (market ``commitment``);
    ``target`` the launch target (a name from ``[launch.targets]``; None in decisions made before
    launch targets existed: the default target)."""

    provider: str
    region: str
    zone: str | None = None
    instance_type: str
    market: str
    replicas: int
    accelerator_name: str | None
    accelerator_count: float | None
    price_per_hour: float
    observed_at: datetime | None = None
    pool: str | None = None
    target: str | None = None
    interruption_rate: float | None = None
    """Interruptions per hour the costing assumed (spot; None in older decisions)."""

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "region": self.region, "zone": self.zone,
                "instance_type": self.instance_type, "market": self.market, "replicas": self.replicas,
                "accelerator_name": self.accelerator_name, "accelerator_count": self.accelerator_count,
                "price_per_hour": self.price_per_hour, "observed_at": _iso(self.observed_at), "pool": self.pool,
                "target": self.target, "interruption_rate": self.interruption_rate}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Leg:
        return cls(provider=d["provider"], region=d["region"], zone=d.get("zone"), instance_type=d["instance_type"],
                   market=d["market"], replicas=int(d["replicas"]), accelerator_name=d.get("accelerator_name"),
                   accelerator_count=_opt_float(d.get("accelerator_count")), price_per_hour=float(d["price_per_hour"]),
                   observed_at=_when(d.get("observed_at")), pool=d.get("pool"),
                   target=d.get("target"), interruption_rate=_opt_float(d.get("interruption_rate")))

    @property
    def accelerators(self) -> float:
        """Accelerators this leg holds (count × replicas; 0 on CPU)."""
        return (self.accelerator_count or 0.0) * self.replicas


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerUp:
    """The cheapest candidate that was not chosen (expected cost for all replicas)."""

    provider: str
    region: str
    instance_type: str
    market: str
    price_per_hour: float
    expected_cost: float

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "region": self.region, "instance_type": self.instance_type,
                "market": self.market, "price_per_hour": self.price_per_hour, "expected_cost": self.expected_cost}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunnerUp:
        return cls(provider=d["provider"], region=d["region"], instance_type=d["instance_type"], market=d["market"],
                   price_per_hour=float(d["price_per_hour"]), expected_cost=float(d["expected_cost"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the optimizer decided for one workload: a :class:`Placed` or an :class:`Unplaced`.
    ``baseline_cost`` is the cheapest on-demand cost on the team's home provider (None without one)."""

    placed: ClassVar[bool]
    workload_id: int
    name: str
    team: str
    baseline_cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The plain form ``finops place --json`` prints (each kind of decision gives its own)."""
        raise NotImplementedError  # abstract: only Placed and Unplaced are ever made

    def row(self) -> dict[str, Any]:
        """The ledger's ``placements`` columns for this decision (without id, run and time)."""
        raise NotImplementedError  # abstract: only Placed and Unplaced are ever made

    @staticmethod
    def from_json(d: Mapping[Any, Any]) -> Decision:
        """Read back :meth:`to_json` output (or a ledger row with ``name`` and ``team`` joined in)."""
        common = {"workload_id": int(d["workload_id"]), "name": d["name"], "team": d["team"],
                  "baseline_cost": _opt_float(d.get("baseline_cost"))}
        if not d["placed"]:
            return Unplaced(**common, reason=d["reason"])
        ru = d.get("runner_up")
        return Placed(**common, legs=tuple(Leg.from_json(x) for x in d["legs"]),
                      expected_hours=float(d["expected_hours"]), expected_cost=float(d["expected_cost"]),
                      compute_cost=float(d["compute_cost"]), rework_cost=float(d["rework_cost"]),
                      egress_cost=float(d["egress_cost"]), runner_up=RunnerUp.from_json(ru) if ru else None)

    @staticmethod
    def from_row(r: Mapping[Any, Any]) -> Decision:
        """A decision from a ``placements`` row joined with its workload's ``name`` and ``team``."""
        return Decision.from_json(r)


@dataclass(frozen=True, slots=True, kw_only=True)
class Placed(Decision):
    """A placement: ``legs`` (at least one; a serving workload with ``spread`` has one per offer) and the
    expected cost for all replicas, broken down into compute, interruption rework and egress. The main
    leg (most replicas; the first of equals) gives the headline provider, region, instance and price."""

    placed: ClassVar[bool] = True
    legs: tuple[Leg, ...]
    expected_hours: float
    expected_cost: float
    compute_cost: float
    rework_cost: float
    egress_cost: float
    runner_up: RunnerUp | None = None

    def __post_init__(self) -> None:
        if not self.legs:
            raise ValueError(f"workload {self.workload_id}: a placement needs at least one leg")

    @property
    def main(self) -> Leg:
        return max(self.legs, key=lambda leg: leg.replicas)  # max keeps the first of equals

    @property
    def replicas(self) -> int:
        return sum(leg.replicas for leg in self.legs)

    @property
    def saving(self) -> float | None:
        """Baseline minus expected cost (None without a baseline)."""
        return None if self.baseline_cost is None else self.baseline_cost - self.expected_cost

    @property
    def reason(self) -> None:
        return None

    def to_json(self) -> dict[str, Any]:
        m = self.main
        return {"workload_id": self.workload_id, "name": self.name, "team": self.team, "placed": True,
                "provider": m.provider, "region": m.region, "zone": m.zone, "instance_type": m.instance_type,
                "market": m.market, "accelerator_name": m.accelerator_name, "accelerator_count": m.accelerator_count,
                "price_per_hour": m.price_per_hour, "price_observed_at": _iso(m.observed_at), "target": m.target,
                "replicas": self.replicas, "expected_hours": self.expected_hours, "expected_cost": self.expected_cost,
                "compute_cost": self.compute_cost, "rework_cost": self.rework_cost, "egress_cost": self.egress_cost,
                "baseline_cost": self.baseline_cost, "saving": self.saving,
                "runner_up": self.runner_up.to_json() if self.runner_up else None,
                "legs": [leg.to_json() for leg in self.legs], "reason": None}

    def row(self) -> dict[str, Any]:
        m = self.main
        return {"workload_id": self.workload_id, "placed": 1, "provider": m.provider, "region": m.region,
                "zone": m.zone, "instance_type": m.instance_type, "market": m.market,
                "accelerator_name": m.accelerator_name, "accelerator_count": m.accelerator_count,
                "replicas": self.replicas, "price_per_hour": m.price_per_hour, "price_observed_at": m.observed_at,
                "expected_hours": self.expected_hours, "expected_cost": self.expected_cost,
                "compute_cost": self.compute_cost, "rework_cost": self.rework_cost, "egress_cost": self.egress_cost,
                "baseline_cost": self.baseline_cost, "saving": self.saving,
                "legs": [leg.to_json() for leg in self.legs],
                "runner_up": self.runner_up.to_json() if self.runner_up else None, "reason": None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplaced(Decision):
    """A workload left out, and why (``no offer fits: …``, ``deadline: …``, ``capacity: …``, ``budget: …``)."""

    placed: ClassVar[bool] = False
    reason: str

    @property
    def runner_up(self) -> None:
        return None

    def to_json(self) -> dict[str, Any]:
        return {"workload_id": self.workload_id, "name": self.name, "team": self.team, "placed": False,
                "reason": self.reason, "baseline_cost": self.baseline_cost, "runner_up": None}

    def row(self) -> dict[str, Any]:
        return {"workload_id": self.workload_id, "placed": 0, "reason": self.reason,
                "baseline_cost": self.baseline_cost}


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """A decision as the ledger holds it: its row id (the ``finops-placement`` tag), run and time."""

    id: int
    run_id: str
    decided_at: datetime
    decision: Decision


def placed(decisions: Sequence[Decision]) -> list[Placed]:
    """The placed ones, typed."""
    return [d for d in decisions if isinstance(d, Placed)]
