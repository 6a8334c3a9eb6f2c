"""The launcher contract: what every module in ``placement/launchers/`` provides, with the same names and
signatures (as the collectors of one role do):

- ``make_client(target: <its config model>) -> client`` — the SDK client (or a factory's product) for the
  target; the only place that reads credentials (the SDK's default chain). Raises :class:`ExtraMissing`
  when the SDK is not installed, naming the pip extra.
- ``submit(client, target, sub: Submission) -> Job`` — create the job (train) or the endpoint /
  deployment (serve) named ``sub.name``, carrying ``sub.tags`` in the provider's syntax. Looks first:
  when a job of that name already exists (a crash after a submit) it returns that job instead.
- ``find(client, target, tags: Mapping[str, str]) -> list[Job]`` — our jobs carrying every one of
  ``tags`` (empty: every job carrying a ``finops-placement`` tag), newest first.
- ``status(client, target, external_id: str) -> Job`` — the job's state now.
- ``cancel(client, target, external_id: str) -> None`` — stop it (a no-op when it has ended).

Every function raises :class:`LaunchError` for an answer from the provider, classified: ``capacity``
(no machines now: block this offer a while and place elsewhere), ``quota`` (an account limit: the same,
and say which limit), ``unreachable`` (the SDK is missing or the target does not answer: change nothing,
say so) or ``permanent`` (anything else: the workload fails with the provider's message).
The client is passed in, so tests hand a client pointed at a local server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from finops.providers import LabelRules

JobState = Literal["pending", "running", "done", "failed", "preempted", "cancelled"]
"""``pending``: accepted, not yet running (queued by the provider, pods not scheduled, spot capacity
awaited); ``preempted``: a spot interruption ended the run (it may resume from its checkpoint)."""
ErrorKind = Literal["capacity", "quota", "permanent", "unreachable"]
"""``unreachable``: the target could not be asked at all (its SDK is not installed, the cluster or endpoint
does not answer): nothing was decided, the workload stays placed and the command says what to fix."""

TEAM_TAG, WORKLOAD_TAG, PLACEMENT_TAG = "finops-team", "finops-workload", "finops-placement"
TAG_KEYS = (TEAM_TAG, WORKLOAD_TAG, PLACEMENT_TAG)


class LaunchError(Exception):
    """An answer from a provider that stops a launch: ``kind`` says what to do about it, ``call`` names the
    API call, ``code`` the provider's error code (None when it gave none)."""

    def __init__(self, kind: ErrorKind, message: str, *, call: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.call = call
        self.code = code

    def __str__(self) -> str:
        where = f"{self.call}: " if self.call else ""
        code = f" ({self.code})" if self.code else ""
        return f"{where}{self.args[0]}{code}"


class ExtraMissing(LaunchError):
    """The target's SDK is not installed: names the extra to install."""

    def __init__(self, target: str, extra: str, module: str) -> None:
        super().__init__("unreachable", f"the {target} launcher needs {module}: pip install 'finops[{extra}]'")


class SpecIncomplete(LaunchError):
    """The workload spec lacks what the target needs (an image, a command)."""

    def __init__(self, message: str) -> None:
        super().__init__("permanent", message)


@dataclass(frozen=True, kw_only=True)
class Submission:
    """One launch: a leg of a placement (``replicas`` machines of ``instance_type`` in ``region``), with
    what to run and the tags that trace its bill back. ``name`` is deterministic (:func:`job_name`), so a
    repeated dispatch finds the job instead of making a second one."""

    name: str
    workload_id: int
    placement_id: int
    leg: int
    workload: str
    team: str
    kind: Literal["train", "serve"]
    provider: str
    region: str
    zone: str | None
    instance_type: str
    market: str
    """``on_demand`` or ``spot`` (a commitment launches as on demand)."""
    replicas: int
    accelerator_name: str | None
    accelerator_count: float | None
    image: str | None
    command: Sequence[str]
    env: Mapping[str, str]
    tags: Mapping[str, str]
    """``finops-team``, ``finops-workload``, ``finops-placement``: raw values; :func:`fit_tags` gives them in
    a provider's syntax."""
    runtime_hours: float
    """Expected hours (train: the deadline a provider enforces is a multiple of it; serve: ignored)."""
    checkpoint_minutes: float | None = None
    checkpoint_key: str = ""
    """Stable per workload (``finops-<slug>-w<id>``), unlike ``name``: checkpoint paths use it, so a run
    re-placed after a preemption resumes from the last checkpoint of the earlier runs."""
    price_per_hour: float = 0.0
    interruption_rate: float = 0.0
    """Expected interruptions per hour at placement (the simulator draws preemptions from it)."""

    @property
    def spot(self) -> bool:
        return self.market == "spot"


@dataclass(frozen=True, kw_only=True)
class NodeUse:
    """One pod of a launch on one node (Kubernetes: the machines are shared, and the bill names the node,
    not the pod): what reconciliation needs to give the launch its share of the node's cost."""

    pod: str
    node: str
    """The node's name in the cluster."""
    provider_id: str | None
    """The node's ``spec.providerID`` (``aws:///us-east-1a/i-0abc…``, ``gce://project/zone/name``,
    ``azure:///subscriptions/…``); None when the node could not be read."""
    resource_id: str | None
    """The node's ``ResourceId`` in its cloud's FOCUS bill (None: not a cloud VM finops knows)."""
    accelerators: float
    """Accelerators the pod requested (``nvidia.com/gpu``, ``google.com/tpu``, …)."""
    node_accelerators: float
    """Accelerators the node has (``status.allocatable``; 0: none)."""
    started_at: datetime | None
    ended_at: datetime | None
    """When its containers finished (None: still running)."""

    def to_record(self) -> dict[str, Any]:
        """As the ledger keeps it (``launches.nodes``: JSON, times as ISO 8601)."""
        iso = lambda t: None if t is None else t.isoformat()  # noqa: E731
        return {"pod": self.pod, "node": self.node, "provider_id": self.provider_id,
                "resource_id": self.resource_id, "accelerators": self.accelerators,
                "node_accelerators": self.node_accelerators, "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at)}


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job (or endpoint / deployment) as the provider reports it."""

    external_id: str
    """The provider's id: an ARN, a resource name, ``namespace/name``; unique per target."""
    name: str
    state: JobState
    tags: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None
    """The provider's status message (why it failed, what it waits for)."""
    error_kind: ErrorKind | None = None
    """For a failed (or long-pending) job: whether it failed for capacity or quota (re-place) or not."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    preemptions: int = 0
    """Spot interruptions the provider reports for this run, where it reports them."""
    nodes: tuple[NodeUse, ...] = ()
    """The nodes its pods ran on (Kubernetes; other targets bill the job itself and leave it empty)."""


def job_name(workload: str, workload_id: int, placement_id: int, leg: int = 0) -> str:
    """``finops-<slug>-w<id>-p<placement>[-l<leg>]``: lower case letters, digits and ``-``, at most 63
    characters, starting with a letter and ending with a letter or digit — valid as a SageMaker job name,
    a Kubernetes object name, a Vertex AI or Azure ML name alike."""
    tail = f"-w{workload_id}-p{placement_id}" + (f"-l{leg}" if leg else "")
    slug = re.sub(r"[^a-z0-9]+", "-", workload.lower()).strip("-")
    room = 63 - len("finops-") - len(tail)
    slug = slug[:room].rstrip("-") if room > 0 else ""
    return f"finops-{slug}{tail}" if slug else f"finops{tail}"


def tags(team: str, workload: str, placement_id: int) -> dict[str, str]:
    return {TEAM_TAG: team, WORKLOAD_TAG: workload, PLACEMENT_TAG: str(placement_id)}


def fit_tags(raw: Mapping[str, str], rules: LabelRules) -> dict[str, str]:
    """``raw`` tags as the provider accepts them (:meth:`LabelRules.fit`: GCP lower case, ≤ 63 characters,
    refused characters as ``-``, Kubernetes values trimmed to alphanumeric ends). Keys are ours and valid everywhere."""
    return {k: rules.fit(v) for k, v in raw.items()}


def command_of(command: Sequence[str] | str | None) -> list[str]:
    """A spec's command as an argument list (a string runs through ``sh -c``)."""
    if command is None:
        return []
    return ["sh", "-c", command] if isinstance(command, str) else list(command)
