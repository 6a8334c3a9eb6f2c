"""What placement learns from our own runs (pure functions; the ledger keeps the observations).

Two things are learnt and used by costing from the next placement on:

- **Interruption rates.** The spot preemptions our runs met and the hours they ran, per (provider,
  region, instance :func:`family`), are blended with the configured rate by :func:`blend`: a
  Gamma–Poisson posterior mean in which the configured rate counts as ``launch.interruption_prior_hours``
  hours of evidence. With no hours run the configured rate stands; as hours accumulate the observed rate
  takes over.
- **Cost corrections.** Billed over predicted cost of reconciled workloads, per (provider, target kind,
  family) (``Ledger.corrections()``), multiplies the expected compute and rework cost of candidates of
  that key, clamped to ``launch.correction_bounds`` (:func:`clamp`) so a few odd bills cannot make an
  offer free or forbidden.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

_AZURE_SIZE = re.compile(r"^(?:Standard_|Basic_)?([A-Za-z]+)\d+(?:-\d+)?([A-Za-z]*)((?:_[A-Za-z0-9]+)*)$")


def family(provider: str, instance_type: str) -> str:
    """The instance family interruptions and corrections are kept by: the machine series without its size.

    - AWS ``<family>.<size>``, SageMaker ``ml.<family>.<size>``: the part before the size —
      ``p4d.24xlarge`` and ``ml.p4d.24xlarge`` → ``p4d`` (a managed service runs on the same hardware pool,
      so it shares the family's evidence);
    - GCP ``<series>-<kind>-<size>``: everything before the last dash-separated part when that part is
      the size (a number, or a number with ``g``/``t`` for GPUs/TPU hosts) — ``a2-highgpu-1g`` →
      ``a2-highgpu``, ``n1-standard-8`` → ``n1-standard``, ``g2-standard-4`` → ``g2-standard``;
    - Azure ``Standard_<series letters><vCPUs><feature letters>_<accelerator>_<version>``: the vCPU count
      (and a constrained-core ``-N``) removed — ``Standard_NC24ads_A100_v4`` → ``NCads_A100_v4``,
      ``Standard_ND96asr_v4`` → ``NDasr_v4``.

    Anything that does not parse is its own family (the whole name)."""
    name = instance_type.strip()
    if provider == "aws":
        parts = name.removeprefix("ml.").split(".")
        return parts[0] if len(parts) > 1 else name
    if provider == "gcp":
        head, _, size = name.rpartition("-")
        return head if head and re.fullmatch(r"\d+[a-z]?", size) else name
    if provider == "azure":
        m = _AZURE_SIZE.match(name)
        return f"{m.group(1)}{m.group(2)}{m.group(3)}" if m else name
    return name


def blend(prior_rate: float, hours: float, preemptions: float, prior_hours: float) -> float:
    """Interruptions per hour from a configured ``prior_rate`` and what was observed.

    Preemptions of a spot machine arrive as a Poisson process with rate λ. Take a Gamma(a, b) prior with
    mean ``prior_rate`` worth ``prior_hours`` hours of observation (a = prior_rate × prior_hours,
    b = prior_hours); after ``preemptions`` in ``hours`` the posterior is Gamma(a + preemptions,
    b + hours), whose mean is::

        (prior_rate × prior_hours + preemptions) / (prior_hours + hours)

    It equals ``prior_rate`` with no hours, always lies between ``prior_rate`` and the observed
    ``preemptions / hours``, and tends to the observed rate as ``hours`` grow."""
    if prior_hours <= 0:
        raise ValueError("prior_hours must be positive")
    hours, preemptions = max(hours, 0.0), max(preemptions, 0.0)
    return (prior_rate * prior_hours + preemptions) / (prior_hours + hours)


def clamp(factor: float, bounds: tuple[float, float]) -> float:
    """A learnt cost correction held within ``bounds`` (``launch.correction_bounds``)."""
    lo, hi = bounds
    return min(max(factor, lo), hi)


@dataclass(frozen=True, slots=True)
class Observed:
    """Spot hours and preemptions of our runs on one (provider, region, family)."""

    hours: float
    preemptions: int


class _Run(Protocol):  # finops.ledger.RunHours (frozen: read-only attributes)
    @property
    def provider(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def hours(self) -> float: ...
    @property
    def preemptions(self) -> int: ...


class _Correction(Protocol):  # finops.ledger.Correction
    @property
    def provider(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def workloads(self) -> int: ...
    @property
    def factor(self) -> float: ...


def observed(runs: Iterable[_Run]) -> dict[tuple[str, str, str], Observed]:
    """``Ledger.run_hours()`` rows summed by (provider, region, family)."""
    out: dict[tuple[str, str, str], Observed] = {}
    for r in runs:
        key = (r.provider, r.region, r.family)
        was = out.get(key, Observed(0.0, 0))
        out[key] = Observed(was.hours + float(r.hours), was.preemptions + int(r.preemptions))
    return out


@dataclass(frozen=True, slots=True)
class Learnt:
    """A cost correction as costing applies it: the clamped ``factor`` and how many billed workloads it
    was learnt from."""

    factor: float
    workloads: int

    def note(self) -> str:
        return f"cost × {self.factor:.2f} learnt from {self.workloads} billed workload{'s' * (self.workloads != 1)}"


def corrections(rows: Iterable[_Correction], bounds: tuple[float, float]) -> dict[tuple[str, str, str], Learnt]:
    """``Ledger.corrections()`` rows by (provider, target kind, family), factors clamped to ``bounds``;
    rows without a billed workload or with a factor that is not a positive number are left out."""
    out: dict[tuple[str, str, str], Learnt] = {}
    for r in rows:
        f, n = float(r.factor), int(r.workloads)
        if n > 0 and f > 0 and not math.isnan(f):
            out[(r.provider, r.target, r.family)] = Learnt(clamp(f, bounds), n)
    return out


def learnt_rates(prior: Mapping[tuple[str, str, str], float], seen: Mapping[tuple[str, str, str], Observed],
                 prior_hours: float) -> dict[tuple[str, str, str], float]:
    """For each (provider, region, family) in both ``prior`` (the configured rate) and ``seen``, the blend."""
    return {k: blend(rate, seen[k].hours, seen[k].preemptions, prior_hours) for k, rate in prior.items() if k in seen}
