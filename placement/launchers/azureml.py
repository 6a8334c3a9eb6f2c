"""The ``azureml`` target: Azure Machine Learning command jobs on a compute cluster of the chosen VM size
(``low_priority`` on spot, shared by every job of that size and tier) and managed online endpoints (an
endpoint named ``sub.name`` with one deployment, ``main``, taking all traffic).

The client is azure-ai-ml's ``MLClient`` for the target's workspace. An ``external_id`` is the ARM id of the
job (``…/workspaces/<w>/jobs/<name>``) or of the endpoint (``…/onlineEndpoints/<name>``). Azure ML's job
resource carries no error detail, so why a job waits or failed is read from its cluster: provisioning
errors (``QuotaExceeded``, ``AllocationFailed``, …) classify it, and nodes reported ``preempted`` while
running the job count as spot interruptions.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from finops import providers
from finops.config import AzureMLTarget
from placement.launchers.base import (
    PLACEMENT_TAG,
    ErrorKind,
    ExtraMissing,
    Job,
    JobState,
    LaunchError,
    SpecIncomplete,
    Submission,
    fit_tags,
)

KIND = "azureml"
EXPERIMENT = "finops"
DEPLOYMENT = "main"
"""The one deployment of each endpoint we make; it takes all of the endpoint's traffic."""
RUNTIME_MARGIN = 2.0
"""The job's timeout is this multiple of the expected runtime (at least an hour)."""
RETRY: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 1.0, "retry_backoff_max": 30}
"""azure-core RetryPolicy settings for :func:`make_client` (throttling, 5xx): bounded."""

_CAPACITY_CODES = {"AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest",
                   "OverconstrainedZonalAllocationRequest", "SkuNotAvailable", "OutOfCapacity",
                   "NotEnoughCapacity", "InsufficientCapacity"}
_CAPACITY_TEXT = re.compile(r"allocation failed|not enough capacity|out of capacity|insufficient capacity|"
                            r"sku .*not available", re.IGNORECASE)
_QUOTA_TEXT = re.compile(r"quota", re.IGNORECASE)
_JOB_STATES: dict[str, JobState] = {
    "NotStarted": "pending", "Queued": "pending", "Preparing": "pending", "Provisioning": "pending",
    "Starting": "pending", "Paused": "pending", "Scheduled": "pending", "Running": "running", "Finalizing": "running",
    "NotResponding": "running", "Completed": "done", "Failed": "failed", "Canceled": "cancelled",
    "CancelRequested": "cancelled",
}
_ENDPOINT_STATES: dict[str, JobState] = {
    "Creating": "pending", "Updating": "running", "Scaling": "running", "Succeeded": "running",
    "Failed": "failed", "Canceled": "cancelled", "Deleting": "cancelled",
}
_ID = re.compile(r"/workspaces/[^/]+/(?P<kind>jobs|onlineEndpoints)/(?P<name>[^/]+)$", re.IGNORECASE)
T = TypeVar("T")


def make_client(target: AzureMLTarget, *, credential: Any = None, **kwargs: Any) -> Any:
    """An ``MLClient`` for the target's workspace with :data:`RETRY` (``kwargs``: the SDK client's own
    keywords, e.g. ``connection_verify``). The credential defaults to ``DefaultAzureCredential`` (the SDK's
    chain: environment, managed identity, CLI). ``target.endpoint_url`` replaces Resource Manager through
    azure-ai-ml's documented custom-cloud keywords (``cloud`` + ``cloud_metadata``)."""
    try:
        from azure.ai.ml import MLClient
        from azure.ai.ml.exceptions import MlException
    except ImportError:
        entry = providers.target(KIND)
        raise ExtraMissing(entry.name, entry.extra or KIND, "azure-ai-ml") from None
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if target.endpoint_url:
        url = target.endpoint_url.rstrip("/")
        kwargs = {"cloud": "finops-" + hashlib.sha256(url.encode()).hexdigest()[:12],
                  "cloud_metadata": {"azure_portal": url, "resource_manager": url + "/", "active_directory": url,
                                     "aml_resource_id": url, "storage_endpoint": "core.windows.net",
                                     "registry_discovery_endpoint": url}, **kwargs}
    # MLClient records its cloud in os.environ (AZUREML_CURRENT_CLOUD) for the whole process: put it back,
    # so one target's endpoint never becomes every later client's default.
    saved = os.environ.get("AZUREML_CURRENT_CLOUD")
    try:
        return MLClient(credential, target.subscription_id, target.resource_group, target.workspace,
                        show_progress=False, enable_telemetry=False, **{**RETRY, **kwargs})
    except MlException as e:
        raise LaunchError("unreachable", f"cannot make an Azure ML client: {e}", call="MLClient") from None
    finally:
        if saved is None:
            os.environ.pop("AZUREML_CURRENT_CLOUD", None)
        else:
            os.environ["AZUREML_CURRENT_CLOUD"] = saved


def submit(client: Any, target: AzureMLTarget, sub: Submission) -> Job:
    if not sub.image:
        raise SpecIncomplete(f"workload {sub.workload!r} has no image: Azure ML needs a container image to run")
    tags = fit_tags(sub.tags, providers.target(KIND).labels)
    if sub.kind == "train":
        if not sub.command:
            raise SpecIncomplete(f"workload {sub.workload!r} has no command: an Azure ML command job needs one")
        return _submit_job(client, sub, tags)
    if sub.spot:
        raise LaunchError("permanent", f"workload {sub.workload!r}: Azure ML managed online endpoints have no "
                                       "low-priority capacity; serve on demand", call="online_endpoints.create")
    return _submit_endpoint(client, sub, tags)


def find(client: Any, target: AzureMLTarget, tags: Mapping[str, str]) -> list[Job]:
    want = fit_tags(tags, providers.target(KIND).labels)

    def ours(have: Mapping[str, str] | None) -> bool:
        have = have or {}
        return PLACEMENT_TAG in have and all(have.get(k) == v for k, v in want.items())

    found: list[tuple[datetime, Job]] = []
    for j in _call("jobs.list", lambda: list(client.jobs.list(tag=PLACEMENT_TAG))):
        if ours(j.tags):
            found.append((_created(j), _job(j, None)))
    for e in _call("online_endpoints.list", lambda: list(client.online_endpoints.list())):
        if ours(e.tags):
            found.append((_created(e), _endpoint(e, _deployment(client, e.name))))
    return [job for _, job in sorted(found, key=lambda p: p[0], reverse=True)]


def status(client: Any, target: AzureMLTarget, external_id: str) -> Job:
    kind, name = _parse_id(external_id)
    if kind == "jobs":
        j = _call("jobs.get", lambda: client.jobs.get(name))
        return _job(j, _cluster_report(client, j))
    e = _get_or_none("online_endpoints.get", lambda: client.online_endpoints.get(name))
    if e is None:  # cancelling deletes an endpoint: one that is gone has ended
        return Job(external_id=external_id, name=name, state="cancelled", message="the endpoint no longer exists")
    return _endpoint(e, _deployment(client, name))


def cancel(client: Any, target: AzureMLTarget, external_id: str) -> None:
    kind, name = _parse_id(external_id)
    if kind == "jobs":
        if status(client, target, external_id).state in ("pending", "running"):
            try:
                _call("jobs.begin_cancel", lambda: client.jobs.begin_cancel(name).result())
            except LaunchError:
                if status(client, target, external_id).state in ("pending", "running"):
                    raise  # not a job that ended between the two calls
        return
    with contextlib.suppress(_NotFound):  # already gone
        _call("online_endpoints.begin_delete", lambda: client.online_endpoints.begin_delete(name=name).result())


# -- training ----------------------------------------------------------------------------------------
def cluster_name(instance_type: str, spot: bool) -> str:
    """The shared cluster of a VM size and tier: ``Standard_NC24ads_A100_v4`` on spot → ``nc24ads-a100-v4-lp``.
    Azure ML compute names: 3-24 letters, digits and ``-``, starting with a letter (not ``-<digit>`` at the
    end); a longer size keeps its head and a short hash of the whole."""
    size = re.sub(r"[^a-z0-9]+", "-", instance_type.lower().removeprefix("standard_")).strip("-") or "vm"
    tier = "lp" if spot else "od"
    if not size[0].isalpha():
        size = "vm-" + size
    if len(size) + 3 > 24:
        digest = hashlib.sha256(instance_type.encode()).hexdigest()[:5]
        size = f"{size[:24 - 3 - 6].rstrip('-')}-{digest}"
    return f"{size}-{tier}"


def _submit_job(client: Any, sub: Submission, tags: dict[str, str]) -> Job:
    from azure.ai.ml import command
    from azure.ai.ml.entities import Environment

    existing = _get_or_none("jobs.get", lambda: client.jobs.get(sub.name))
    if existing is None:
        cluster = _ensure_cluster(client, sub)
        job = command(command=shlex.join(sub.command), environment=Environment(image=sub.image),
                      environment_variables=dict(sub.env), compute=cluster, instance_count=sub.replicas,
                      name=sub.name, display_name=sub.name, tags=tags, experiment_name=EXPERIMENT)
        job.set_limits(timeout=max(3600, math.ceil(sub.runtime_hours * 3600 * RUNTIME_MARGIN)))
        existing = _call("jobs.create_or_update", lambda: client.jobs.create_or_update(job))
    return _job(existing, None)


def _ensure_cluster(client: Any, sub: Submission) -> str:
    """The cluster for ``sub``'s size and tier, made (or grown to ``sub.replicas`` nodes) when needed. It
    scales to zero when idle, so an unused cluster costs nothing."""
    from azure.ai.ml.entities import AmlCompute

    name = cluster_name(sub.instance_type, sub.spot)
    current = _get_or_none("compute.get", lambda: client.compute.get(name))
    if current is not None and (current.max_instances or 0) >= sub.replicas:
        return name
    cluster = AmlCompute(name=name, size=sub.instance_type, tier="low_priority" if sub.spot else "dedicated",
                         min_instances=0, max_instances=max(sub.replicas, getattr(current, "max_instances", 0) or 0),
                         idle_time_before_scale_down=120, location=sub.region)
    _call("compute.begin_create_or_update", lambda: client.compute.begin_create_or_update(cluster).result())
    return name


def _cluster_report(client: Any, j: Any) -> tuple[str | None, ErrorKind | None, int]:
    """(message, error kind, preemptions of this job) from the job's cluster."""
    if _JOB_STATES.get(j.status or "") not in ("pending", "running", "failed"):
        return None, None, 0
    name = str(j.compute or "").rsplit("/", 1)[-1].removeprefix("azureml:")
    cluster = _get_or_none("compute.get", lambda: client.compute.get(name)) if name else None
    if cluster is None:
        return None, None, 0
    preempted = 0
    if cluster.tier == "low_priority":
        nodes = _call("compute.list_nodes", lambda: list(client.compute.list_nodes(name)))
        preempted = sum(1 for n in nodes if _node(n, "node_state", "nodeState") == "preempted"
                        and _node(n, "run_id", "runId") == j.name)
    code = cluster.provisioning_errors
    if not code:
        return None, None, preempted
    kind = _code_kind(code, None)
    return f"cluster {name}: {code}", (None if kind == "permanent" else kind), preempted


def _node(node: Any, name: str, wire: str) -> Any:
    # azure-ai-ml 1.35 fills AmlComputeNodeInfo with the wire's camelCase keys, leaving the snake_case ones None.
    return getattr(node, name, None) or getattr(node, wire, None)


def _job(j: Any, report: tuple[str | None, ErrorKind | None, int] | None) -> Job:
    message, kind, preempted = report or (None, None, 0)
    state = _JOB_STATES.get(j.status or "", "pending")
    if state == "failed" and preempted:
        state = "preempted"
    elif state == "failed":
        kind = kind or "permanent"
        message = f"the job failed ({message})" if message else "the job failed"
    elif state != "pending":  # a cluster error explains a wait or a failure, not a run
        kind = None
    # The job resource has no start or end time (run history has them): left unknown.
    return Job(external_id=j.id, name=j.name, state=state, tags=dict(j.tags or {}), message=message,
               error_kind=kind, preemptions=preempted)


# -- serving -----------------------------------------------------------------------------------------
def endpoint_name(name: str) -> str:
    """``name`` as an online endpoint name (3-32 letters, digits and ``-``; unique per region): a longer one
    keeps its head and a hash of the whole, so a resubmit finds the same endpoint."""
    if len(name) <= 32:
        return name
    return f"{name[:25].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def _submit_endpoint(client: Any, sub: Submission, tags: dict[str, str]) -> Job:
    """Endpoint, deployment and traffic, each looked up first: a submit that crashed half-way resumes."""
    from azure.ai.ml.entities import Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint

    name = endpoint_name(sub.name)
    endpoint = _get_or_none("online_endpoints.get", lambda: client.online_endpoints.get(name))
    if endpoint is None:
        new = ManagedOnlineEndpoint(name=name, tags=tags, auth_mode="key")
        endpoint = _call("online_endpoints.begin_create_or_update",
                         lambda: client.online_endpoints.begin_create_or_update(new).result())
    deployment = _deployment(client, name)
    if deployment is None:
        dep = ManagedOnlineDeployment(name=DEPLOYMENT, endpoint_name=name, environment=Environment(image=sub.image),
                                      instance_type=sub.instance_type, instance_count=sub.replicas,
                                      environment_variables=dict(sub.env), tags=tags)
        deployment = _call("online_deployments.begin_create_or_update",
                           lambda: client.online_deployments.begin_create_or_update(dep).result())
    if (endpoint.traffic or {}).get(DEPLOYMENT) != 100:
        endpoint.traffic = {DEPLOYMENT: 100}
        endpoint = _call("online_endpoints.begin_create_or_update",
                         lambda: client.online_endpoints.begin_create_or_update(endpoint).result())
    return _endpoint(endpoint, deployment)


def _deployment(client: Any, endpoint: str) -> Any:
    return _get_or_none("online_deployments.get", lambda: client.online_deployments.get(DEPLOYMENT, endpoint))


def _endpoint(e: Any, deployment: Any) -> Job:
    states = [e.provisioning_state] + ([deployment.provisioning_state] if deployment is not None else [])
    mapped = [_ENDPOINT_STATES.get(s or "", "pending") for s in states]
    state: JobState = next((s for s in ("cancelled", "failed", "pending") if s in mapped), "running")
    if deployment is None and state == "running":
        state = "pending"  # an endpoint serves nothing before its deployment exists
    message = f"provisioning: {', '.join(s or '?' for s in states)}" if state != "running" else None
    return Job(external_id=e.id, name=e.name, state=state, tags=dict(e.tags or {}), message=message,
               error_kind="permanent" if state == "failed" else None, started_at=_created(e, None))


# -- calls and errors --------------------------------------------------------------------------------
def _call(operation: str, fn: Callable[[], T]) -> T:
    """``fn()`` with any SDK error turned into a :class:`LaunchError` naming ``operation``."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        return fn()
    except HttpResponseError as e:
        raise _launch_error(e, operation) from None
    except MlException as e:  # azure-ai-ml's own (validation, unsupported entity): not the provider's answer
        raise LaunchError("permanent", str(e.message or e).strip(), call=operation) from None
    except AzureError as e:  # no answer at all: connection refused, TLS, timeout
        raise LaunchError("unreachable", f"Azure ML did not answer: {e.message or e}", call=operation) from None


class _NotFound(LaunchError):
    """HTTP 404: the resource does not exist (Azure ML's codes for it vary by resource)."""


def _launch_error(e: Any, operation: str) -> LaunchError:
    err = getattr(e, "error", None)
    code = getattr(err, "code", None) or None
    message = getattr(err, "message", None) or e.message or str(e)
    if e.status_code == 429 and not code:
        kind: ErrorKind = "quota" if _QUOTA_TEXT.search(message) else "permanent"
    else:
        kind = _code_kind(code, message) if code else "permanent"
    return (_NotFound if e.status_code == 404 else LaunchError)(kind, message, call=operation, code=code)


def _code_kind(code: str, message: str | None) -> ErrorKind:
    if code in _CAPACITY_CODES or _CAPACITY_TEXT.search(message or ""):
        return "capacity"
    if _QUOTA_TEXT.search(code) or _QUOTA_TEXT.search(message or ""):
        return "quota"
    return "permanent"


def _get_or_none(operation: str, fn: Callable[[], T]) -> T | None:
    try:
        return _call(operation, fn)
    except _NotFound:
        return None


def _parse_id(external_id: str) -> tuple[str, str]:
    m = _ID.search(external_id)
    if not m:
        raise LaunchError("permanent", f"{external_id!r} is not the ARM id of an Azure ML job or online endpoint",
                          call="azureml.status")
    return ("jobs" if m.group("kind") == "jobs" else "onlineEndpoints"), m.group("name")


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _created(entity: Any, default: datetime | None = _EPOCH) -> Any:
    # Jobs carry systemData as creation_context; endpoints as properties["createdAt"].
    at = getattr(getattr(entity, "creation_context", None), "created_at", None)
    if at is None:
        at = (getattr(entity, "properties", None) or {}).get("createdAt")
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if isinstance(at, datetime):
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return default
