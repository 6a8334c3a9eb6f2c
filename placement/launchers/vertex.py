"""Vertex AI launcher: training as a ``CustomJob`` (``Scheduling.strategy = SPOT`` on spot), serving as a
Model uploaded with the serving image, an Endpoint and a deployment on dedicated machines (``spot`` on
spot). Every resource carries the finops labels; Endpoints and Models take ``sub.name`` as their id, so
their names are known before they exist; custom job ids are the server's, so a job is looked up by its
display name (``sub.name``) before one is created.

The clients come from google-cloud-aiplatform (REST transport, the default credential chain), one set per
region (``{region}-aiplatform.googleapis.com``, or ``endpoint_url``). The contract is in
:mod:`placement.launchers.base`.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from finops import offers, providers
from finops.config import VertexTarget
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

KIND = "vertex"
LRO_TIMEOUT = 900.0
"""Seconds to wait for a model upload or an endpoint creation (a deployment is not waited for)."""
RUNTIME_MARGIN, MAX_RUNTIME_S = 2.0, 28 * 24 * 3600
"""A custom job's ``scheduling.timeout``: twice the expected runtime (at least an hour, at most 28 days)."""

# Canonical accelerator names (finops.offers) → Vertex AI's AcceleratorType (accelerator_type.proto).
ACCELERATORS = {
    "A100-40GB": "NVIDIA_TESLA_A100", "A100-80GB": "NVIDIA_A100_80GB", "H100": "NVIDIA_H100_80GB",
    "H100-MEGA": "NVIDIA_H100_MEGA_80GB", "H200": "NVIDIA_H200_141GB", "B200": "NVIDIA_B200",
    "GB200": "NVIDIA_GB200", "L4": "NVIDIA_L4", "T4": "NVIDIA_TESLA_T4", "V100-16GB": "NVIDIA_TESLA_V100",
    "P100": "NVIDIA_TESLA_P100", "P4": "NVIDIA_TESLA_P4", "K80": "NVIDIA_TESLA_K80",
    "TPU-v2": "TPU_V2", "TPU-v3": "TPU_V3", "TPU-v4": "TPU_V4_POD", "TPU-v5e": "TPU_V5_LITEPOD",
}
_STATES: dict[str, JobState] = {
    "JOB_STATE_QUEUED": "pending", "JOB_STATE_PENDING": "pending", "JOB_STATE_PAUSED": "pending",
    "JOB_STATE_RUNNING": "running", "JOB_STATE_UPDATING": "running", "JOB_STATE_SUCCEEDED": "done",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "done", "JOB_STATE_FAILED": "failed", "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_CANCELLING": "cancelled", "JOB_STATE_CANCELLED": "cancelled",
}
_ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_EXPIRED",
          "JOB_STATE_CANCELLED"}
# What an error's status / reason / message says, lower case: stockouts and spot capacity, account quotas.
_CAPACITY = ("zone_resource_pool_exhausted", "resource_pool_exhausted", "stockout", "resource_exhausted",
             "resources are insufficient", "insufficient capacity", "does not have enough resources")
_QUOTA = ("quota",)
_NAME = re.compile(r"projects/[^/]+/locations/(?P<region>[^/]+)/(?P<kind>customJobs|endpoints)/[^/]+")
# google.rpc.Code names by number (google/rpc/code.proto), for a job's error.
_RPC_CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
              "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
              "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
T = TypeVar("T")


class Clients:
    """The Vertex AI clients of one project, made per region on first use: ``jobs(region)``,
    ``endpoints(region)``, ``models(region)``."""

    def __init__(self, project: str, make: Callable[[str, str], Any]) -> None:
        self.project = project
        self._make = make
        self._made: dict[tuple[str, str], Any] = {}

    def _get(self, service: str, region: str) -> Any:
        if (service, region) not in self._made:
            # The credentials are read here: a missing login is a LaunchError like any other answer.
            self._made[service, region] = _call(service, lambda: self._make(service, region))
        return self._made[service, region]

    def jobs(self, region: str) -> Any:
        return self._get("JobServiceClient", region)

    def endpoints(self, region: str) -> Any:
        return self._get("EndpointServiceClient", region)

    def models(self, region: str) -> Any:
        return self._get("ModelServiceClient", region)

    @property
    def regions(self) -> list[str]:
        return sorted({r for _, r in self._made})


def make_client(target: VertexTarget) -> Clients:
    """Regional clients over REST with the default credentials (``GOOGLE_APPLICATION_CREDENTIALS``, the
    gcloud login, the metadata server); ``target.endpoint_url`` replaces every regional host."""
    try:
        aiplatform_v1 = importlib.import_module("google.cloud.aiplatform_v1")
    except ImportError as e:
        raise ExtraMissing(providers.target(KIND).name, "vertex", "google-cloud-aiplatform") from e

    def make(service: str, region: str) -> Any:
        host = target.endpoint_url or f"{region}-aiplatform.googleapis.com"
        return getattr(aiplatform_v1, service)(transport="rest", client_options={"api_endpoint": host})

    return Clients(target.project, make)


# -- the contract ----------------------------------------------------------------------------------
def submit(client: Clients, target: VertexTarget, sub: Submission) -> Job:
    if not sub.image:
        raise SpecIncomplete(f"workload {sub.workload!r} has no image: Vertex AI runs a container image")
    labels = fit_tags(sub.tags, providers.target(KIND).labels)
    parent = f"projects/{target.project}/locations/{sub.region}"
    if sub.kind == "serve":
        return _serve(client, target, sub, labels)
    if not sub.command:
        raise SpecIncomplete(f"workload {sub.workload!r} has no command: a Vertex AI custom job needs one")
    body, jobs = _custom_job(target, sub, labels), client.jobs(sub.region)
    found = _call("list_custom_jobs", lambda: list(jobs.list_custom_jobs(
        request={"parent": parent, "filter": f'display_name="{sub.name}"'})))
    if found:
        return _job(found[0])
    return _job(_call("create_custom_job", lambda: jobs.create_custom_job(parent=parent, custom_job=body)))


def find(client: Clients, target: VertexTarget, tags: Mapping[str, str]) -> list[Job]:
    wanted = fit_tags(tags, providers.target(KIND).labels)
    # Keys quoted: the filter grammar reads an unquoted "-" as an operator (the API accepts quoted keys).
    where = " AND ".join(f'labels."{k}"="{v}"' for k, v in wanted.items()) or f'labels."{PLACEMENT_TAG}":*'
    found: list[tuple[datetime | None, Job]] = []
    for region in target.regions or client.regions or list(providers.get("gcp").default_regions):
        found += _listed(client, target.project, region, where)
    ours = [(t, j) for t, j in found if all(j.tags.get(k) == v for k, v in wanted.items())
            and (wanted or PLACEMENT_TAG in j.tags)]
    ours.sort(key=lambda p: p[0].timestamp() if p[0] else 0.0, reverse=True)
    return [j for _, j in ours]


def _listed(client: Clients, project: str, region: str, where: str) -> list[tuple[datetime | None, Job]]:
    request = {"parent": f"projects/{project}/locations/{region}", "filter": where}
    jobs = _call("list_custom_jobs", lambda: list(client.jobs(region).list_custom_jobs(request=request)))
    ends = _call("list_endpoints", lambda: list(client.endpoints(region).list_endpoints(request=request)))
    return [(j.create_time, _job(j)) for j in jobs] + [(e.create_time, _endpoint_job(e)) for e in ends]


def status(client: Clients, target: VertexTarget, external_id: str) -> Job:
    region, kind = _parse(external_id)
    if kind == "customJobs":
        job = _maybe("get_custom_job", lambda: client.jobs(region).get_custom_job(name=external_id))
        if job is not None:
            return _job(job)
    else:
        endpoint = _maybe("get_endpoint", lambda: client.endpoints(region).get_endpoint(name=external_id))
        if endpoint is not None:
            return _endpoint_job(endpoint)
    return Job(external_id=external_id, name=external_id.rsplit("/", 1)[-1], state="cancelled",
               message=f"{external_id} no longer exists")


def cancel(client: Clients, target: VertexTarget, external_id: str) -> None:
    region, kind = _parse(external_id)
    if kind == "customJobs":
        jobs = client.jobs(region)
        job = _call("get_custom_job", lambda: jobs.get_custom_job(name=external_id))
        if job.state.name not in _ENDED:
            _call("cancel_custom_job", lambda: jobs.cancel_custom_job(name=external_id))
        return
    endpoints = client.endpoints(region)
    endpoint = _maybe("get_endpoint", lambda: endpoints.get_endpoint(name=external_id))
    if endpoint is None:
        return
    for deployed in endpoint.deployed_models:
        request = {"endpoint": external_id, "deployed_model_id": deployed.id}
        _call("undeploy_model", partial(_wait_for, endpoints.undeploy_model, request))
    _call("delete_endpoint", lambda: _wait(endpoints.delete_endpoint(name=external_id)))
    model = external_id.replace("/endpoints/", "/models/")  # the model submit uploaded under the same id
    _maybe("delete_model", lambda: _wait(client.models(region).delete_model(name=model)))


# -- building requests -----------------------------------------------------------------------------
def _machine(sub: Submission) -> dict[str, Any]:
    spec: dict[str, Any] = {"machine_type": sub.instance_type}
    if sub.accelerator_name and sub.accelerator_count:
        kind = ACCELERATORS.get(offers.canonical_accelerator(sub.accelerator_name) or "")
        if kind is None:
            raise LaunchError("permanent", f"Vertex AI has no accelerator type for {sub.accelerator_name!r}",
                              call="create_custom_job" if sub.kind == "train" else "deploy_model")
        spec |= {"accelerator_type": kind, "accelerator_count": max(1, round(sub.accelerator_count))}
    return spec


def _container(sub: Submission) -> dict[str, Any]:
    """The image with its command (replacing the image's entrypoint) and environment."""
    return {"image_uri": sub.image, "command": list(sub.command),
            "env": [{"name": k, "value": v} for k, v in sub.env.items()]}


def _custom_job(target: VertexTarget, sub: Submission, labels: dict[str, str]) -> dict[str, Any]:
    pool = {"machine_spec": _machine(sub), "replica_count": max(1, sub.replicas), "container_spec": _container(sub)}
    runtime = min(MAX_RUNTIME_S, max(3600, math.ceil(sub.runtime_hours * 3600 * RUNTIME_MARGIN)))
    scheduling: dict[str, Any] = {"timeout": {"seconds": runtime}} | ({"strategy": "SPOT"} if sub.spot else {})
    spec: dict[str, Any] = {"worker_pool_specs": [pool], "scheduling": scheduling}
    if target.staging_uri:
        spec["base_output_directory"] = {"output_uri_prefix": f"{target.staging_uri.rstrip('/')}/{sub.name}"}
    return {"display_name": sub.name, "labels": labels, "job_spec": spec}


def _serve(client: Clients, target: VertexTarget, sub: Submission, labels: dict[str, str]) -> Job:
    """Model (id ``sub.name``) → Endpoint (id ``sub.name``) → deployment; an existing endpoint is returned
    as it is. The deployment is started, not waited for: :func:`status` says when it serves."""
    resources = {"machine_spec": _machine(sub), "min_replica_count": max(1, sub.replicas),
                 "max_replica_count": max(1, sub.replicas), "spot": sub.spot}
    endpoints, models = client.endpoints(sub.region), client.models(sub.region)
    parent = f"projects/{target.project}/locations/{sub.region}"
    name, model = f"{parent}/endpoints/{sub.name}", f"{parent}/models/{sub.name}"
    endpoint = _maybe("get_endpoint", lambda: endpoints.get_endpoint(name=name))
    if endpoint is not None:
        return _endpoint_job(endpoint)
    if _maybe("get_model", lambda: models.get_model(name=model)) is None:
        container = _container(sub)
        _call("upload_model", lambda: _wait(models.upload_model(request={
            "parent": parent, "model_id": sub.name,
            "model": {"display_name": sub.name, "labels": labels, "container_spec": container}})))
    _call("create_endpoint", lambda: _wait(endpoints.create_endpoint(
        parent=parent, endpoint_id=sub.name, endpoint={"display_name": sub.name, "labels": labels})))
    operation = _call("deploy_model", lambda: endpoints.deploy_model(
        endpoint=name, deployed_model={"model": model, "display_name": sub.name, "dedicated_resources": resources},
        traffic_split={"0": 100}))
    try:
        if _call("deploy_model", operation.done):  # answered at once (an error, or a fast deployment)
            _call("deploy_model", lambda: _wait(operation))
    except LaunchError:
        # Leave nothing behind, so that the same submission (or another offer) starts afresh.
        with contextlib.suppress(LaunchError):
            cancel(client, target, name)
        raise
    return status(client, target, name)


def _wait(operation: Any) -> Any:
    return operation.result(timeout=LRO_TIMEOUT)


def _wait_for(method: Callable[..., Any], request: Mapping[str, Any]) -> Any:
    return _wait(method(request=request))


# -- reading answers -------------------------------------------------------------------------------
def _job(job: Any) -> Job:
    state = _STATES.get(job.state.name, "pending")
    message = job.error.message or None
    kind = _kind(_rpc_name(job.error.code), message or "") if job.error.code else None
    if state == "failed" and message and "preempt" in message.lower():
        state, kind = "preempted", None
    return Job(external_id=job.name, name=job.display_name, state=state, tags=dict(job.labels),
               message=message, error_kind=kind if state in ("failed", "pending") else None,
               started_at=_time(job.start_time), ended_at=_time(job.end_time))


def _endpoint_job(endpoint: Any) -> Job:
    deployed = list(endpoint.deployed_models)
    serving = any(d.status.available_replica_count > 0 or not d.status.last_update_time for d in deployed)
    message = "; ".join(d.status.message for d in deployed if d.status.message) or (
        None if deployed else "no model deployed yet")
    return Job(external_id=endpoint.name, name=endpoint.display_name, state="running" if serving else "pending",
               tags=dict(endpoint.labels), message=message,
               started_at=min((t for d in deployed if (t := _time(d.create_time))), default=None))


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.timestamp() > 0 else None


def _parse(external_id: str) -> tuple[str, str]:
    m = _NAME.fullmatch(external_id)
    if not m:
        raise LaunchError("permanent", f"{external_id!r} is not a Vertex AI custom job or endpoint name")
    return m["region"], m["kind"]


# -- errors ----------------------------------------------------------------------------------------
def _kind(code: str | None, message: str) -> ErrorKind:
    text = f"{code or ''} {message}".lower()
    if any(w in text for w in _QUOTA):
        return "quota"
    return "capacity" if any(w in text for w in _CAPACITY) else "permanent"


def _rpc_name(code: int) -> str:
    return _RPC_CODES[code] if 0 <= code < len(_RPC_CODES) else str(code)


def _call(call: str, fn: Callable[[], T]) -> T:
    """``fn()``, with whatever the SDK raises turned into a classified :class:`LaunchError`."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        return fn()
    except api.GoogleAPICallError as e:
        code, message = _code(e), _message(e)
        raise LaunchError(_kind(code, message), message, call=call, code=code) from None
    except (auth.GoogleAuthError, OSError, TimeoutError) as e:  # no answer: nothing was decided
        raise LaunchError("unreachable", str(e) or type(e).__name__, call=call) from None
    except (api.GoogleAPIError, ValueError) as e:
        raise LaunchError("permanent", str(e) or type(e).__name__, call=call) from None


def _maybe(call: str, fn: Callable[[], T]) -> T | None:
    """``fn()``, or None when the resource does not exist."""
    from google.api_core import exceptions as api

    def attempt() -> T | None:
        try:
            return fn()
        except api.NotFound:
            return None
    return _call(call, attempt)


def _code(e: Any) -> str | None:
    """The provider's code: the ErrorInfo reason, else the status name (``RESOURCE_EXHAUSTED``)."""
    if e.reason:
        return str(e.reason)
    if not hasattr(getattr(e, "response", None), "json"):  # an LRO's error: a google.rpc.Status code
        grpc_code = getattr(e, "grpc_status_code", None)
        return str(grpc_code.name) if grpc_code is not None else None
    try:
        status = e.response.json()["error"].get("status")
    except (ValueError, KeyError, TypeError, AttributeError):
        status = None
    return str(status) if status else None


def _message(e: Any) -> str:
    # REST errors read "POST https://host/v1/...: message"; keep the provider's message only.
    return re.sub(r"^[A-Z]+ \S+: ", "", str(e.message or "")) or type(e).__name__
