"""SageMaker for tests: moto's server (training jobs, models, endpoint configs, endpoints, tags) behind the
fault proxy of ``aws_faults.py``, which also answers the little moto does not:

- ``StopTrainingJob`` (moto has no such action): an in-progress job goes to ``Stopping``; an ended one
  gets SageMaker's ``ValidationException``;
- a second ``CreateTrainingJob`` of a name (moto silently replaces the job): SageMaker's ``ResourceInUse``;
  a second ``CreateModel`` / ``CreateEndpointConfig`` / ``CreateEndpoint``: its ``ValidationException``.

moto completes a training job the moment it is created and its server has no call that moves a job or an
endpoint to another state, so :meth:`SageMakerFake.set_training` and :meth:`SageMakerFake.set_endpoint`
(test-only, never called by the SDK) set them on moto's in-process backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from moto.backends import get_backend

from tests.fakes.aws_faults import FaultProxy, Match, Rule, Seen, json_error

ACCOUNT = "123456789012"  # moto's default account


def sm_op(operation: str) -> Match:
    """A SageMaker operation by its X-Amz-Target (``SageMaker.<operation>``)."""
    return lambda r: r.headers.get("x-amz-target") == f"SageMaker.{operation}"


def _region(seen: Seen) -> str:
    """The region the request was signed for (``Credential=<key>/<date>/<region>/sagemaker/aws4_request``)."""
    m = re.search(r"Credential=[^/]+/\d+/([^/]+)/", seen.headers.get("authorization", ""))
    return m.group(1) if m else "us-east-1"


def _answer(status: int, body: dict[str, Any]) -> Rule:
    return Rule(lambda r: True, status, json.dumps(body).encode(), "application/x-amz-json-1.1", 1)


class SageMakerFake(FaultProxy):
    """Start with ``with SageMakerFake(moto_url) as fake:`` and point the client at ``fake.url``."""

    def backend(self, region: str = "us-east-1") -> Any:
        return get_backend("sagemaker")[ACCOUNT][region]

    # -- test-only controls ----------------------------------------------------------------------------
    def set_training(self, name: str, status: str, secondary: str, *, reason: str | None = None,
                     transitions: Sequence[tuple[str, str]] = (), region: str = "us-east-1") -> None:
        """Put the training job ``name`` in ``status`` / ``secondary`` with ``FailureReason`` ``reason`` and
        ``SecondaryStatusTransitions`` made of ``(status, message)`` pairs."""
        job = self.backend(region).training_jobs[name]
        now = datetime.now(UTC)
        job.training_job_status, job.secondary_status = status, secondary
        job.failure_reason = reason  # moto's describe answers every attribute, CamelCased
        job.secondary_status_transitions = [{"Status": s, "StartTime": now, "StatusMessage": m}
                                            for s, m in transitions] or job.secondary_status_transitions
        if status == "InProgress":
            job.training_end_time = None

    def set_endpoint(self, name: str, status: str, *, reason: str | None = None, region: str = "us-east-1") -> None:
        endpoint = self.backend(region).endpoints[name]
        endpoint.endpoint_status, endpoint.failure_reason = status, reason

    def error(self, operation: str, code: str | None, message: str, *, status: int = 400, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` answer SageMaker's JSON error (no ``__type`` when
        ``code`` is None)."""
        body = json_error(code, message) if code else json.dumps({"message": message}).encode()
        self.fail(sm_op(operation), status, body, times=times)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        """The request bodies of every ``operation`` call seen, in order."""
        return [s.json() for s in self.seen if sm_op(operation)(s)]

    # -- what moto does not serve ----------------------------------------------------------------------
    def _take(self, seen: Seen) -> Rule | None:
        return super()._take(seen) or self._serve(seen)

    def _serve(self, seen: Seen) -> Rule | None:
        target = seen.headers.get("x-amz-target", "")
        if not target.startswith("SageMaker."):
            return None
        op, body, backend = target.removeprefix("SageMaker."), seen.json(), self.backend(_region(seen))
        if op == "StopTrainingJob":
            job = backend.training_jobs.get(body.get("TrainingJobName"))
            if job is None:
                return _answer(400, {"__type": "ValidationException", "message": "Requested resource not found."})
            if job.training_job_status != "InProgress":
                return _answer(400, {"__type": "ValidationException", "message": "The request was rejected because "
                                     f"the training job is in status {job.training_job_status}."})
            job.training_job_status = job.secondary_status = "Stopping"
            return _answer(200, {})
        if op == "CreateTrainingJob" and body.get("TrainingJobName") in backend.training_jobs:
            return _answer(400, {"__type": "ResourceInUse", "message": "Training job names must be unique within "
                                 "an AWS account and region, and a training job with this name already exists"})
        existing = {"CreateModel": ("ModelName", backend._models, "model"),
                    "CreateEndpointConfig": ("EndpointConfigName", backend.endpoint_configs, "endpoint configuration"),
                    "CreateEndpoint": ("EndpointName", backend.endpoints, "endpoint")}.get(op)
        if existing and body.get(existing[0]) in existing[1]:
            return _answer(400, {"__type": "ValidationException",
                                 "message": f"Cannot create already existing {existing[2]} \"{body[existing[0]]}\"."})
        return None
