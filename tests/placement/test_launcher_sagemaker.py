"""The SageMaker launcher (placement/launchers/sagemaker.py): the real boto3 client against moto's
ThreadedMotoServer, through tests/fakes/sagemaker.py (the fault proxy, plus StopTrainingJob and the
duplicate-name answers moto lacks). States moto cannot reach through its API are set on its backend by the
fake's test-only methods."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.config import SageMakerTarget
from placement.launchers import sagemaker
from placement.launchers.base import (
    ExtraMissing,
    LaunchError,
    SpecIncomplete,
    Submission,
    job_name,
    tags,
)
from tests.fakes.sagemaker import SageMakerFake

ROLE = "arn:aws:iam::123456789012:role/finops-sagemaker"
IDS = itertools.count(1)


@pytest.fixture
def fake(s3_server: str) -> Iterator[SageMakerFake]:
    with SageMakerFake(s3_server) as f:
        yield f


@pytest.fixture
def target(fake: SageMakerFake) -> SageMakerTarget:
    return SageMakerTarget(role_arn=ROLE, output_uri="s3://out/models", checkpoint_uri="s3://ckpt/runs/",
                           endpoint_url=fake.url, regions=["us-east-1"])


@pytest.fixture
def clients(target: SageMakerTarget) -> sagemaker.Clients:
    return sagemaker.make_client(target)


def sub(**over: Any) -> Submission:
    """A training submission with a fresh name (moto's state lives for the whole session)."""
    wid, pid = next(IDS), next(IDS)
    workload, team = over.pop("workload", "llama-finetune"), over.pop("team", "ml-research")
    base: dict[str, Any] = dict(
        name=job_name(workload, wid, pid), workload_id=wid, placement_id=pid, leg=0, workload=workload,
        team=team, kind="train", provider="aws", region="us-east-1", zone=None, instance_type="p4d.24xlarge",
        market="on_demand", replicas=2, accelerator_name="A100", accelerator_count=8.0,
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1", command=["python", "train.py", "--epochs", "3"],
        env={"EPOCHS": "3"}, tags=tags(team, workload, pid), runtime_hours=5.0)
    return Submission(**{**base, **over})


def aws_tags(s: Submission) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in s.tags.items()]


# -- submit ------------------------------------------------------------------------------------------
def test_on_demand_training_sends_the_image_command_instances_limit_and_tags(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    s = sub()
    job = sagemaker.submit(clients, target, s)
    [req] = fake.calls("CreateTrainingJob")
    assert req["TrainingJobName"] == s.name
    assert req["AlgorithmSpecification"] == {"TrainingImage": s.image, "TrainingInputMode": "File",
                                             "ContainerEntrypoint": ["python"],
                                             "ContainerArguments": ["train.py", "--epochs", "3"]}
    assert req["ResourceConfig"] == {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 10 * 3600}  # 2 x 5 h, no spot wait
    assert "EnableManagedSpotTraining" not in req and "CheckpointConfig" not in req
    assert req["RoleArn"] == ROLE and req["OutputDataConfig"] == {"S3OutputPath": "s3://out/models"}
    assert req["Environment"] == {"EPOCHS": "3"}
    assert req["Tags"] == aws_tags(s)
    assert job.external_id == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{s.name}"
    assert (job.name, job.state, dict(job.tags)) == (s.name, "done", dict(s.tags))  # moto completes at once


def test_spot_training_uses_managed_spot_with_a_wait_limit_and_a_checkpoint_per_workload(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    s = sub(market="spot", instance_type="ml.g5.48xlarge", replicas=1, team="ml,research#1",
            checkpoint_key="finops-llama-finetune-w7")
    sagemaker.submit(clients, target, s)
    [req] = fake.calls("CreateTrainingJob")
    assert req["EnableManagedSpotTraining"] is True
    assert req["ResourceConfig"]["InstanceType"] == "ml.g5.48xlarge"  # already SageMaker's name: unchanged
    stop = req["StoppingCondition"]
    assert stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"] == 10 * 3600
    # Per workload, not per job: the run re-placed after a preemption resumes from these checkpoints.
    assert req["CheckpointConfig"] == {"S3Uri": "s3://ckpt/runs/finops-llama-finetune-w7"}
    assert {t["Key"]: t["Value"] for t in req["Tags"]}["finops-team"] == "ml-research-1"  # AWS refuses , and #


@settings(max_examples=60, deadline=None)
@given(hours=st.floats(min_value=0, max_value=10_000, allow_nan=False), spot=st.booleans())
def test_the_time_limits_cover_the_estimate_within_sagemakers_ceiling(hours: float, spot: bool) -> None:
    t = SageMakerTarget(role_arn=ROLE, output_uri="s3://out/m")
    s = sub(runtime_hours=hours, market="spot" if spot else "on_demand")
    stop = sagemaker._training_request(t, s, dict(s.tags))["StoppingCondition"]
    runtime = stop["MaxRuntimeInSeconds"]
    assert 3600 <= runtime <= sagemaker.MAX_RUNTIME_S
    assert runtime >= hours * 3600 or runtime == sagemaker.MAX_RUNTIME_S
    if spot:
        assert runtime <= stop["MaxWaitTimeInSeconds"] <= sagemaker.MAX_RUNTIME_S
    else:
        assert "MaxWaitTimeInSeconds" not in stop


def test_serving_creates_a_model_a_config_and_an_endpoint_all_tagged(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    s = sub(kind="serve", instance_type="g4dn.12xlarge", replicas=3, command=[])
    job = sagemaker.submit(clients, target, s)
    [model], [config], [endpoint] = (fake.calls(op) for op in ("CreateModel", "CreateEndpointConfig",
                                                                "CreateEndpoint"))
    assert model == {"ModelName": s.name, "ExecutionRoleArn": ROLE,
                     "PrimaryContainer": {"Image": s.image, "Environment": {"EPOCHS": "3"}}, "Tags": aws_tags(s)}
    assert config["ProductionVariants"] == [{"VariantName": "main", "ModelName": s.name,
                                             "InstanceType": "ml.g4dn.12xlarge", "InitialInstanceCount": 3}]
    assert endpoint == {"EndpointName": s.name, "EndpointConfigName": s.name, "Tags": aws_tags(s)}
    assert config["Tags"] == aws_tags(s)
    assert job.external_id.endswith(f":endpoint/{s.name}") and job.state == "running"  # moto: InService


def test_spot_serving_is_refused_because_endpoints_have_no_spot(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    with pytest.raises(LaunchError, match="no spot") as e:
        sagemaker.submit(clients, target, sub(kind="serve", market="spot", instance_type="g4dn.12xlarge"))
    assert e.value.kind == "permanent" and fake.calls("CreateModel") == []


@pytest.mark.parametrize("kind", ["train", "serve"])
def test_resubmitting_a_name_returns_the_same_job_and_creates_once(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients, kind: str) -> None:
    s = sub(kind=kind, instance_type="g4dn.12xlarge")
    first, again = sagemaker.submit(clients, target, s), sagemaker.submit(clients, target, s)
    assert first.external_id == again.external_id
    created = "CreateTrainingJob" if kind == "train" else "CreateEndpoint"
    assert len(fake.calls(created)) == 1


def test_a_job_made_meanwhile_resource_in_use_is_taken_as_ours(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    s = sub()
    first = sagemaker.submit(clients, target, s)
    # A concurrent dispatch: the look-before-create misses it, the create meets SageMaker's ResourceInUse.
    fake.error("DescribeTrainingJob", "ValidationException", "Requested resource not found.")
    again = sagemaker.submit(clients, target, s)
    assert again.external_id == first.external_id
    assert len(fake.calls("CreateTrainingJob")) == 2  # the second was refused by the fake as by SageMaker


def test_a_serve_submit_that_crashed_after_the_model_finishes_the_endpoint(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    s = sub(kind="serve", instance_type="g4dn.12xlarge", command=[])
    fake.error("CreateEndpointConfig", "InternalFailure", "the submit stops after the model")
    with pytest.raises(LaunchError):
        sagemaker.submit(clients, target, s)
    job = sagemaker.submit(clients, target, s)
    assert job.state == "running" and len(fake.calls("CreateEndpoint")) == 1


# -- find --------------------------------------------------------------------------------------------
def test_find_returns_our_jobs_carrying_every_tag(fake: SageMakerFake) -> None:
    region = "ap-southeast-2"  # a region of its own: moto's state outlives the test
    t = SageMakerTarget(role_arn=ROLE, output_uri="s3://out/m", endpoint_url=fake.url, regions=[region])
    c = sagemaker.make_client(t)
    a = sagemaker.submit(c, t, sub(region=region, team="vision"))
    b = sagemaker.submit(c, t, sub(region=region, team="nlp"))
    e = sagemaker.submit(c, t, sub(region=region, team="nlp", kind="serve", instance_type="g4dn.12xlarge"))
    c(region).create_training_job(  # someone else's job, without our tags
        TrainingJobName="finops-by-hand", RoleArn=ROLE, AlgorithmSpecification={"TrainingImage": "i",
                                                                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://x"}, StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1})
    nlp = sagemaker.find(c, t, {"finops-team": "nlp"})
    assert {j.external_id for j in nlp} == {b.external_id, e.external_id}
    assert all(j.tags["finops-team"] == "nlp" for j in nlp)
    everything = sagemaker.find(c, t, {})
    assert {j.external_id for j in everything} == {a.external_id, b.external_id, e.external_id}
    mine = sagemaker.find(c, t, {"finops-placement": a.tags["finops-placement"]})
    assert [(j.external_id, j.state, j.tags["finops-team"]) for j in mine] == [(a.external_id, "done", "vision")]


def test_find_lists_newest_first(fake: SageMakerFake) -> None:
    region = "ca-central-1"
    t = SageMakerTarget(role_arn=ROLE, output_uri="s3://out/m", endpoint_url=fake.url, regions=[region])
    c = sagemaker.make_client(t)
    names = [sagemaker.submit(c, t, sub(region=region)).name for _ in range(3)]
    assert [j.name for j in sagemaker.find(c, t, {})] == names[::-1]


# -- status ------------------------------------------------------------------------------------------
CAPACITY_WAIT = "Insufficient capacity error from EC2 while launching instances, retrying!"


@pytest.mark.parametrize(("primary", "secondary", "reason", "transitions", "expect"), [
    ("InProgress", "Starting", None, [("Starting", CAPACITY_WAIT)], ("pending", "capacity", CAPACITY_WAIT, 0)),
    ("InProgress", "Downloading", None, [("Downloading", "Downloading input data")],
     ("pending", None, "Downloading input data", 0)),
    ("InProgress", "Training", None, [("Training", "Training image download completed.")],
     ("running", None, "Training image download completed.", 0)),
    ("InProgress", "Interrupted", None, [("Training", "t"), ("Interrupted", "The job was interrupted")],
     ("preempted", None, "The job was interrupted", 1)),
    ("InProgress", "Training", None, [("Training", "t"), ("Interrupted", "i"), ("Restarting", "r"),
                                      ("Training", "resumed")], ("running", None, "resumed", 1)),
    ("Completed", "Completed", None, [("Completed", "Training job completed")],
     ("done", None, "Training job completed", 0)),
    ("Failed", "Failed", "CapacityError: Unable to provision requested ML compute capacity.", [],
     ("failed", "capacity", "CapacityError: Unable to provision requested ML compute capacity.", 0)),
    ("Failed", "Failed", "AlgorithmError: exit code 1", [], ("failed", "permanent", "AlgorithmError: exit code 1", 0)),
    ("Failed", "Failed", "ResourceLimitExceeded: account-level service limit", [],
     ("failed", "quota", "ResourceLimitExceeded: account-level service limit", 0)),
    ("Stopping", "Stopping", None, [("Stopping", "Stopping the job")], ("cancelled", None, "Stopping the job", 0)),
    ("Stopped", "Stopped", None, [("Stopped", "stopped by user")], ("cancelled", None, "stopped by user", 0)),
    ("Stopped", "MaxWaitTimeExceeded", "Spot capacity was not available", [],
     ("failed", "capacity", "Spot capacity was not available", 0)),
    ("Stopped", "MaxRuntimeExceeded", "Training job reached the maximum runtime", [],
     ("failed", "permanent", "Training job reached the maximum runtime", 0)),
])
def test_training_states_map_onto_job_states(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients, primary: str, secondary: str,
        reason: str | None, transitions: list[tuple[str, str]], expect: tuple[str, str | None, str, int]) -> None:
    job = sagemaker.submit(clients, target, sub(market="spot"))
    fake.set_training(job.name, primary, secondary, reason=reason, transitions=transitions)
    got = sagemaker.status(clients, target, job.external_id)
    assert (got.state, got.error_kind, got.message, got.preemptions) == expect
    assert got.name == job.name and got.external_id == job.external_id


@pytest.mark.parametrize(("endpoint_status", "reason", "expect"), [
    ("Creating", None, ("pending", None)),
    ("InService", None, ("running", None)),
    ("Updating", None, ("running", None)),
    ("Failed", "Unable to provision instances: insufficient capacity for ml.g4dn.12xlarge", ("failed", "capacity")),
    ("Failed", "The account-level service limit 'ml.g4dn.12xlarge for endpoint usage' is 0 Instances",
     ("failed", "quota")),
    ("Failed", "The primary container for production variant main did not pass the ping health check",
     ("failed", "permanent")),
    ("Deleting", None, ("cancelled", None)),
])
def test_endpoint_states_map_onto_job_states(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients, endpoint_status: str,
        reason: str | None, expect: tuple[str, str | None]) -> None:
    job = sagemaker.submit(clients, target, sub(kind="serve", instance_type="g4dn.12xlarge", command=[]))
    fake.set_endpoint(job.name, endpoint_status, reason=reason)
    got = sagemaker.status(clients, target, job.external_id)
    assert (got.state, got.error_kind, got.message) == (*expect, reason)


def test_status_of_something_not_a_sagemaker_arn_is_a_clear_error(
        target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    with pytest.raises(LaunchError, match="not the ARN of a SageMaker") as e:
        sagemaker.status(clients, target, "default/finops-x")
    assert e.value.kind == "permanent"


def test_status_of_a_missing_training_job_is_a_permanent_error(
        target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    with pytest.raises(LaunchError) as e:
        sagemaker.status(clients, target, "arn:aws:sagemaker:us-east-1:123456789012:training-job/finops-gone")
    assert (e.value.kind, e.value.call, e.value.code) == ("permanent", "DescribeTrainingJob", "ValidationException")


# -- cancel ------------------------------------------------------------------------------------------
def test_cancel_stops_a_running_training_job(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    job = sagemaker.submit(clients, target, sub())
    fake.set_training(job.name, "InProgress", "Training")
    sagemaker.cancel(clients, target, job.external_id)
    assert fake.calls("StopTrainingJob") == [{"TrainingJobName": job.name}]
    assert sagemaker.status(clients, target, job.external_id).state == "cancelled"


def test_cancel_of_an_ended_training_job_is_a_no_op(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    job = sagemaker.submit(clients, target, sub())  # moto: Completed
    sagemaker.cancel(clients, target, job.external_id)
    assert fake.calls("StopTrainingJob") == []
    assert sagemaker.status(clients, target, job.external_id).state == "done"


def test_cancel_deletes_an_endpoint_with_its_config_and_model(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    job = sagemaker.submit(clients, target, sub(kind="serve", instance_type="g4dn.12xlarge", command=[]))
    sagemaker.cancel(clients, target, job.external_id)
    sagemaker.cancel(clients, target, job.external_id)  # twice: still fine
    assert sagemaker.status(clients, target, job.external_id).state == "cancelled"
    backend = fake.backend()
    assert job.name not in backend.endpoints and job.name not in backend.endpoint_configs
    assert job.name not in backend._models


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("operation", "kind", "code", "message", "expect"), [
    ("train", "CreateTrainingJob", "CapacityError", "Unable to provision requested ML compute capacity.",
     "capacity"),
    ("train", "CreateTrainingJob", "ResourceLimitExceeded",
     "The account-level service limit 'ml.p4d.24xlarge for spot training job usage' is 0 Instances", "quota"),
    ("serve", "CreateEndpoint", "InsufficientInstanceCapacity", "Insufficient capacity for ml.g4dn.12xlarge",
     "capacity"),
    ("serve", "CreateEndpointConfig", "ResourceLimitExceeded", "endpoint usage limit exceeded", "quota"),
    ("train", "CreateTrainingJob", "ValidationException", "Invalid RoleArn", "permanent"),
])
def test_create_errors_are_classified(fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients,
                                      operation: str, kind: str, code: str, message: str, expect: str) -> None:
    fake.error(kind, code, message)
    with pytest.raises(LaunchError) as e:
        sagemaker.submit(clients, target, sub(kind=operation, instance_type="g4dn.12xlarge"))
    assert (e.value.kind, e.value.call, e.value.code, e.value.args[0]) == (expect, kind, code, message)


def test_an_error_without_a_code_is_permanent_and_keeps_the_message(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients) -> None:
    fake.error("CreateTrainingJob", None, "insufficient capacity, maybe")
    with pytest.raises(LaunchError) as e:
        sagemaker.submit(clients, target, sub())
    assert (e.value.kind, e.value.code, e.value.call) == ("permanent", None, "CreateTrainingJob")
    assert "insufficient capacity, maybe" in str(e.value)


def test_an_unreachable_endpoint_is_a_launch_error_not_a_traceback(target: SageMakerTarget) -> None:
    from tests.fakes.server import LocalServer, QuietHandler

    srv = LocalServer(QuietHandler)
    srv.start()
    url = srv.url
    srv.stop()  # nothing listens there now
    c = sagemaker.make_client(target.model_copy(update={"endpoint_url": url}))
    with pytest.raises(LaunchError) as e:
        sagemaker.submit(c, target, sub())
    assert (e.value.kind, e.value.call) == ("unreachable", "DescribeTrainingJob")


@pytest.mark.parametrize(("over", "missing"), [({"image": None}, "no image"), ({"command": []}, "no command")])
def test_a_spec_without_an_image_or_command_is_refused_before_any_call(
        fake: SageMakerFake, target: SageMakerTarget, clients: sagemaker.Clients, over: dict, missing: str) -> None:
    with pytest.raises(SpecIncomplete, match=f"llama-finetune.*{missing}"):
        sagemaker.submit(clients, target, sub(**over))
    assert fake.seen == []  # nothing reached SageMaker


def test_without_boto3_make_client_names_the_extra(monkeypatch: pytest.MonkeyPatch, target: SageMakerTarget) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now fails as when it is not installed
    with pytest.raises(ExtraMissing, match=r"finops\[sagemaker\]"):
        sagemaker.make_client(target)
