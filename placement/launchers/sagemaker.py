"""The ``sagemaker`` target: Amazon SageMaker training jobs (managed spot training on spot) and real-time
endpoints (model + endpoint config + endpoint, all named ``sub.name``).

The client is a :class:`Clients`: a Submission names its region and SageMaker is regional, so the launcher
asks it for the region's boto3 client (made once per region). An ``external_id`` is the resource's ARN,
which carries its region and kind (``training-job/…`` or ``endpoint/…``).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from finops import providers
from finops.config import SageMakerTarget
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

KIND = "sagemaker"
MAX_RUNTIME_S = 28 * 24 * 3600
"""SageMaker's ceiling on ``MaxRuntimeInSeconds`` (28 days)."""
RUNTIME_MARGIN = 2.0
"""The time limit is this multiple of the expected runtime (at least an hour): an estimate, not a promise."""

_CAPACITY_CODES = {"InsufficientInstanceCapacity", "CapacityError", "InsufficientCapacity"}
_QUOTA_CODES = {"ResourceLimitExceeded", "ServiceQuotaExceededException"}
_CAPACITY_TEXT = re.compile(r"insufficient\s+(instance\s+)?capacity|capacityerror|unable to provision", re.IGNORECASE)
_QUOTA_TEXT = re.compile(r"resourcelimitexceeded|service limit|quota|limit exceeded", re.IGNORECASE)
_RUNNING = {"Training", "Uploading"}
_NOT_FOUND = re.compile(r"not (be )?found|could not find", re.IGNORECASE)


class Clients:
    """SageMaker clients by region, each made on first use by ``factory(region)``; ``default_region`` is
    where :func:`find` looks when the target names no regions."""

    def __init__(self, factory: Callable[[str], Any], default_region: str | None = None) -> None:
        self._factory = factory
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.default_region = default_region

    def __call__(self, region: str) -> Any:
        with self._lock:  # boto3 sessions are not thread-safe; the clients they make are
            if region not in self._made:
                self._made[region] = self._factory(region)
            return self._made[region]


def make_client(target: SageMakerTarget) -> Clients:
    """Clients from boto3's default credential chain (environment, profile, instance role)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        entry = providers.target(KIND)
        raise ExtraMissing(entry.name, entry.extra or KIND, "boto3") from None
    session = boto3.session.Session()
    config = Config(retries={"mode": "standard", "total_max_attempts": 3})  # throttling: bounded retries

    def factory(region: str) -> Any:
        return session.client("sagemaker", region_name=region, endpoint_url=target.endpoint_url, config=config)

    return Clients(factory, session.region_name)


def submit(client: Clients, target: SageMakerTarget, sub: Submission) -> Job:
    if not sub.image:
        raise SpecIncomplete(f"workload {sub.workload!r} has no image: SageMaker needs a container image to run")
    sm = client(sub.region)
    tags = fit_tags(sub.tags, providers.target(KIND).labels)
    if sub.kind == "train":
        if not sub.command:
            raise SpecIncomplete(f"workload {sub.workload!r} has no command: a SageMaker training job needs one")
        return _submit_training(sm, target, sub, tags)
    if sub.spot:
        raise LaunchError("permanent", f"workload {sub.workload!r}: SageMaker endpoints have no spot capacity; "
                                       "serve on demand", call="CreateEndpoint")
    return _submit_endpoint(sm, target, sub, tags)


def find(client: Clients, target: SageMakerTarget, tags: Mapping[str, str]) -> list[Job]:
    want = fit_tags(tags, providers.target(KIND).labels)
    regions = target.regions or ([client.default_region] if client.default_region else [])
    if not regions:
        raise LaunchError("permanent", "the SageMaker target names no regions and AWS has no default region: "
                                       "set regions = [...] on the target", call="ListTrainingJobs")
    found: list[tuple[datetime, Job]] = []
    for region in regions:
        sm = client(region)
        listed = [(s["TrainingJobArn"], s) for s in
                  _pages(sm, "ListTrainingJobs", "TrainingJobSummaries", NameContains="finops-")]
        listed += [(s["EndpointArn"], s) for s in _pages(sm, "ListEndpoints", "Endpoints", NameContains="finops-")]
        for arn, summary in listed:
            have = {t["Key"]: t["Value"] for t in _pages(sm, "ListTags", "Tags", ResourceArn=arn)}
            if PLACEMENT_TAG in have and all(have.get(k) == v for k, v in want.items()):
                job = status(client, target, arn)
                found.append((summary["CreationTime"], _with(job, tags=have)))
    return [job for _, job in sorted(found, key=lambda p: p[0], reverse=True)]


def status(client: Clients, target: SageMakerTarget, external_id: str) -> Job:
    region, kind, name = _parse_arn(external_id)
    sm = client(region)
    if kind == "training-job":
        return _training_job(_call(sm, "DescribeTrainingJob", TrainingJobName=name))
    try:
        return _endpoint_job(_call(sm, "DescribeEndpoint", EndpointName=name))
    except LaunchError as e:
        if not _not_found(e):
            raise
        # Cancelling deletes an endpoint: one that is gone has ended.
        return Job(external_id=external_id, name=name, state="cancelled", message="the endpoint no longer exists")


def cancel(client: Clients, target: SageMakerTarget, external_id: str) -> None:
    region, kind, name = _parse_arn(external_id)
    sm = client(region)
    if kind == "training-job":
        if status(client, target, external_id).state in ("pending", "running", "preempted"):
            try:
                _call(sm, "StopTrainingJob", TrainingJobName=name)
            except LaunchError as e:  # it ended between the two calls
                if e.code != "ValidationException":
                    raise
        return
    # The model and endpoint config cost nothing but are ours: removed with the endpoint.
    for op, arg in (("DeleteEndpoint", "EndpointName"), ("DeleteEndpointConfig", "EndpointConfigName"),
                    ("DeleteModel", "ModelName")):
        try:
            _call(sm, op, **{arg: name})
        except LaunchError as e:
            if not _not_found(e):
                raise


# -- training ----------------------------------------------------------------------------------------
def _submit_training(sm: Any, target: SageMakerTarget, sub: Submission, tags: dict[str, str]) -> Job:
    existing = _describe_or_none(sm, "DescribeTrainingJob", TrainingJobName=sub.name)
    if existing is None:
        try:
            _call(sm, "CreateTrainingJob", **_training_request(target, sub, tags))
        except LaunchError as e:
            if e.code != "ResourceInUse":  # made meanwhile (a concurrent dispatch): that is the job
                raise
        existing = _call(sm, "DescribeTrainingJob", TrainingJobName=sub.name)
    return _with(_training_job(existing), tags=tags)


def _training_request(target: SageMakerTarget, sub: Submission, tags: dict[str, str]) -> dict[str, Any]:
    runtime = min(MAX_RUNTIME_S, max(3600, math.ceil(sub.runtime_hours * 3600 * RUNTIME_MARGIN)))
    command = list(sub.command)
    algorithm: dict[str, Any] = {"TrainingImage": sub.image, "TrainingInputMode": "File",
                                 "ContainerEntrypoint": command[:1]}
    if command[1:]:
        algorithm["ContainerArguments"] = command[1:]
    req: dict[str, Any] = {
        "TrainingJobName": sub.name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": target.role_arn,
        "OutputDataConfig": {"S3OutputPath": target.output_uri},
        "ResourceConfig": {"InstanceType": _ml(sub.instance_type), "InstanceCount": sub.replicas,
                           "VolumeSizeInGB": target.volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
        "Environment": dict(sub.env),
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if sub.spot:
        req["EnableManagedSpotTraining"] = True
        # The wait for spot capacity counts against MaxWaitTimeInSeconds, which must be >= the runtime.
        req["StoppingCondition"]["MaxWaitTimeInSeconds"] = max(runtime, min(MAX_RUNTIME_S, 2 * runtime))
        if target.checkpoint_uri:
            req["CheckpointConfig"] = {"S3Uri": f"{target.checkpoint_uri.rstrip('/')}/{sub.checkpoint_key or sub.name}"}
    return req


def _training_job(d: Mapping[str, Any]) -> Job:
    state, kind, message = _training_state(d)
    transitions = d.get("SecondaryStatusTransitions") or []
    return Job(external_id=d["TrainingJobArn"], name=d["TrainingJobName"], state=state, message=message,
               error_kind=kind, started_at=_utc(d.get("TrainingStartTime")), ended_at=_utc(d.get("TrainingEndTime")),
               preemptions=sum(1 for t in transitions if t.get("Status") == "Interrupted"))


def _training_state(d: Mapping[str, Any]) -> tuple[JobState, ErrorKind | None, str | None]:
    """TrainingJobStatus and SecondaryStatus onto a state, with why (FailureReason, or the last
    transition's message: "Insufficient capacity error from EC2 while launching instances, retrying!")."""
    primary, secondary = d.get("TrainingJobStatus"), d.get("SecondaryStatus")
    transitions = d.get("SecondaryStatusTransitions") or []
    message = d.get("FailureReason") or (transitions[-1].get("StatusMessage") if transitions else None)
    if primary == "InProgress":
        if secondary == "Interrupted":
            return "preempted", None, message
        if secondary in _RUNNING:
            return "running", None, message
        return "pending", _text_kind(message), message  # a long wait for capacity says so
    if primary == "Completed":
        return "done", None, message
    if primary == "Failed":
        if secondary == "Interrupted":
            return "preempted", None, message
        return "failed", _text_kind(message) or "permanent", message
    if secondary == "MaxWaitTimeExceeded":
        return "failed", "capacity", message or "spot capacity did not come within MaxWaitTimeInSeconds"
    if secondary == "MaxRuntimeExceeded":
        return "failed", "permanent", message or "the job ran past MaxRuntimeInSeconds"
    return "cancelled", None, message  # Stopping, Stopped, Deleting


# -- serving -----------------------------------------------------------------------------------------
def _submit_endpoint(sm: Any, target: SageMakerTarget, sub: Submission, tags: dict[str, str]) -> Job:
    existing = _describe_or_none(sm, "DescribeEndpoint", EndpointName=sub.name)
    if existing is None:
        aws_tags = [{"Key": k, "Value": v} for k, v in tags.items()]
        steps: list[tuple[str, dict[str, Any]]] = [
            ("CreateModel", {"ModelName": sub.name, "ExecutionRoleArn": target.role_arn,
                             "PrimaryContainer": {"Image": sub.image, "Environment": dict(sub.env)}}),
            ("CreateEndpointConfig", {"EndpointConfigName": sub.name, "ProductionVariants": [
                {"VariantName": "main", "ModelName": sub.name, "InstanceType": _ml(sub.instance_type),
                 "InitialInstanceCount": sub.replicas}]}),
            ("CreateEndpoint", {"EndpointName": sub.name, "EndpointConfigName": sub.name}),
        ]
        for op, args in steps:
            try:
                _call(sm, op, **args, Tags=aws_tags)
            except LaunchError as e:
                if e.code != "ResourceInUse" and not _already_exists(e):  # left by a crashed submit
                    raise
        existing = _call(sm, "DescribeEndpoint", EndpointName=sub.name)
    return _with(_endpoint_job(existing), tags=tags)


_ENDPOINT_STATES: dict[str, JobState] = {
    "Creating": "pending", "InService": "running", "Updating": "running", "SystemUpdating": "running",
    "RollingBack": "running", "Deleting": "cancelled", "OutOfService": "failed", "Failed": "failed",
    "UpdateRollbackFailed": "failed",
}


def _endpoint_job(d: Mapping[str, Any]) -> Job:
    state = _ENDPOINT_STATES.get(d.get("EndpointStatus", ""), "pending")
    message = d.get("FailureReason")
    kind: ErrorKind | None = (_text_kind(message) or "permanent") if state == "failed" else _text_kind(message)
    return Job(external_id=d["EndpointArn"], name=d["EndpointName"], state=state, message=message,
               error_kind=kind, started_at=_utc(d.get("CreationTime")))


# -- calls and errors --------------------------------------------------------------------------------
def _call(sm: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """``sm.<operation>(**kwargs)`` with any SDK error turned into a :class:`LaunchError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        out: dict[str, Any] = getattr(sm, _snake(operation))(**kwargs)
        return out
    except ClientError as e:
        raise _launch_error(e, operation) from None
    except BotoCoreError as e:  # no answer (endpoint unreachable, no credentials): nothing was decided
        raise LaunchError("unreachable", str(e), call=operation) from None


def _pages(sm: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in sm.get_paginator(_snake(operation)).paginate(**kwargs):
            yield from page.get(key, [])
    except ClientError as e:
        raise _launch_error(e, operation) from None
    except BotoCoreError as e:  # no answer (endpoint unreachable, no credentials): nothing was decided
        raise LaunchError("unreachable", str(e), call=operation) from None


def _launch_error(e: Any, operation: str) -> LaunchError:
    err = e.response.get("Error", {})
    code = err.get("Code") or None
    if code is not None and code.isdigit():  # an HTTP status botocore put in place of a missing code
        code = None
    message = err.get("Message") or str(e)
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    kind: ErrorKind = "permanent"
    if code in _CAPACITY_CODES or (code is not None and _CAPACITY_TEXT.search(message)):
        kind = "capacity"
    elif code in _QUOTA_CODES or ((code is not None or status == 429) and _QUOTA_TEXT.search(message)):
        kind = "quota"
    return LaunchError(kind, message, call=operation, code=code)


def _describe_or_none(sm: Any, operation: str, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return _call(sm, operation, **kwargs)
    except LaunchError as e:
        if _not_found(e):
            return None
        raise


def _not_found(e: LaunchError) -> bool:
    # SageMaker answers a missing resource with a ValidationException ("Could not find endpoint …",
    # "Requested resource not found").
    return e.code in ("ValidationException", "ResourceNotFound") and _NOT_FOUND.search(str(e.args[0])) is not None


def _already_exists(e: LaunchError) -> bool:
    return e.code == "ValidationException" and "already exist" in str(e.args[0]).lower()


def _text_kind(text: str | None) -> ErrorKind | None:
    if not text:
        return None
    if _CAPACITY_TEXT.search(text):
        return "capacity"
    return "quota" if _QUOTA_TEXT.search(text) else None


def _parse_arn(arn: str) -> tuple[str, str, str]:
    """``arn:aws:sagemaker:<region>:<account>:<kind>/<name>`` → (region, kind, name)."""
    parts = arn.split(":", 5)
    kind, _, name = parts[5].partition("/") if len(parts) == 6 else ("", "", "")
    if parts[:1] != ["arn"] or parts[2:3] != ["sagemaker"] or kind not in ("training-job", "endpoint") or not name:
        raise LaunchError("permanent", f"{arn!r} is not the ARN of a SageMaker training job or endpoint",
                          call="sagemaker.status")
    return parts[3], kind, name


def _ml(instance_type: str) -> str:
    """SageMaker's name for an EC2 instance type: ``p4d.24xlarge`` → ``ml.p4d.24xlarge``."""
    return instance_type if instance_type.startswith("ml.") else f"ml.{instance_type}"


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _utc(t: datetime | None) -> datetime | None:
    return t.astimezone(UTC) if t is not None else None


def _with(job: Job, *, tags: Mapping[str, str]) -> Job:
    return replace(job, tags=dict(tags))
