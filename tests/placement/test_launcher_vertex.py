"""The Vertex AI launcher (placement/launchers/vertex.py): google-cloud-aiplatform's real REST clients, made
by ``make_client`` with the default credential chain (a service-account key made at test time, token URI on the
fake), against tests/fakes/vertex.py, a loopback server speaking the Vertex AI v1 REST wire format."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.config import VertexTarget
from finops.providers import GCP_LABELS
from placement.launchers import module, vertex
from placement.launchers.base import TAG_KEYS, ExtraMissing, LaunchError, SpecIncomplete, Submission, job_name, tags
from tests.fakes.vertex import FakeVertex

PROJECT = "finops-ml"
PARENT = f"projects/{PROJECT}/locations/us-central1"
IDS = itertools.count(1)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertex]:
    with FakeVertex(page_size=2) as f:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(f.credentials_file(tmp_path)))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        yield f


@pytest.fixture
def target(fake: FakeVertex) -> VertexTarget:
    return VertexTarget(project=PROJECT, staging_uri="gs://finops-staging/runs/", endpoint_url=fake.url,
                        regions=["us-central1"])


@pytest.fixture
def clients(target: VertexTarget) -> vertex.Clients:
    return vertex.make_client(target)


def sub(**over: Any) -> Submission:
    wid, pid = next(IDS), next(IDS)
    workload, team = over.pop("workload", "llama-finetune"), over.pop("team", "ML-Research")
    base: dict[str, Any] = dict(
        name=job_name(workload, wid, pid), workload_id=wid, placement_id=pid, leg=0, workload=workload, team=team,
        kind="train", provider="gcp", region="us-central1", zone=None, instance_type="a2-highgpu-8g",
        market="on_demand", replicas=2, accelerator_name="A100-40GB", accelerator_count=8.0,
        image="us-docker.pkg.dev/finops-ml/train/llama:1", command=["python", "train.py", "--epochs", "3"],
        env={"EPOCHS": "3"}, tags=tags(team, workload, pid), runtime_hours=5.0)
    return Submission(**{**base, **over})


def labels(s: Submission) -> dict[str, str]:
    return {"finops-team": s.team.lower(), "finops-workload": s.workload, "finops-placement": str(s.placement_id)}


# -- submit ------------------------------------------------------------------------------------------
def test_the_module_is_found_through_the_registry() -> None:
    assert module("vertex") is vertex and vertex.KIND == "vertex"


def test_on_demand_training_sends_the_machine_container_output_and_labels(
        fake: FakeVertex, target: VertexTarget, clients: vertex.Clients) -> None:
    s = sub()
    job = vertex.submit(clients, target, s)
    [create] = fake.calls(f"/v1/{PARENT}/customJobs", "POST")
    body = create.body
    assert create.query["$alt"] == "json;enum-encoding=int"
    assert body["displayName"] == s.name and body["labels"] == labels(s)
    assert body["labels"]["finops-team"] == "ml-research"  # GCP labels are lower case
    assert body["jobSpec"]["workerPoolSpecs"] == [{
        # acceleratorType 8: NVIDIA_TESLA_A100
        "machineSpec": {"machineType": "a2-highgpu-8g", "acceleratorType": 8, "acceleratorCount": 8},
        "replicaCount": "2",
        "containerSpec": {"imageUri": s.image, "command": ["python", "train.py", "--epochs", "3"],
                          "env": [{"name": "EPOCHS", "value": "3"}]}}]
    assert body["jobSpec"]["scheduling"] == {"timeout": "36000s"}  # 2 x 5 h, no spot strategy
    assert body["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": f"gs://finops-staging/runs/{s.name}"}
    assert job.external_id.startswith(f"{PARENT}/customJobs/") and job.name == s.name
    assert job.state == "pending" and job.tags == labels(s)
    assert fake.job(job.external_id)["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] == \
        "NVIDIA_TESLA_A100"


def test_spot_training_asks_for_the_spot_strategy(fake: FakeVertex, target: VertexTarget,
                                                  clients: vertex.Clients) -> None:
    s = sub(market="spot", instance_type="g2-standard-24", accelerator_name="L4", accelerator_count=2.0, replicas=1)
    job = vertex.submit(clients, target, s)
    [create] = fake.calls(f"/v1/{PARENT}/customJobs", "POST")
    assert create.body["jobSpec"]["scheduling"] == {"strategy": 4, "timeout": "36000s"}  # SPOT
    assert create.body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == {
        "machineType": "g2-standard-24", "acceleratorType": 11, "acceleratorCount": 2}  # NVIDIA_L4
    assert fake.job(job.external_id)["jobSpec"]["scheduling"]["strategy"] == "SPOT"


@pytest.mark.parametrize(("name", "expected"), [
    ("A100-80GB", "NVIDIA_A100_80GB"), ("H100", "NVIDIA_H100_80GB"), ("T4", "NVIDIA_TESLA_T4"),
    ("V100-16GB", "NVIDIA_TESLA_V100"), ("V100", "NVIDIA_TESLA_V100"), ("TPU-v5e", "TPU_V5_LITEPOD"),
    ("TPU-v4", "TPU_V4_POD")])
def test_accelerator_names_map_onto_the_sdk_enum(name: str, expected: str) -> None:
    from google.cloud import aiplatform_v1

    spec = vertex._machine(sub(accelerator_name=name, accelerator_count=4.0))
    assert spec["accelerator_type"] == expected
    assert expected in aiplatform_v1.AcceleratorType.__members__  # a member of the installed package's enum


def test_every_mapped_accelerator_is_in_the_sdk_enum() -> None:
    from google.cloud import aiplatform_v1

    assert set(vertex.ACCELERATORS.values()) <= set(aiplatform_v1.AcceleratorType.__members__)


def test_an_accelerator_vertex_lacks_is_a_permanent_error(target: VertexTarget, clients: vertex.Clients) -> None:
    with pytest.raises(LaunchError) as e:
        vertex.submit(clients, target, sub(accelerator_name="Trainium", accelerator_count=1.0))
    assert e.value.kind == "permanent" and "Trainium" in str(e.value)


def test_resubmitting_returns_the_same_job_and_creates_once(fake: FakeVertex, target: VertexTarget,
                                                             clients: vertex.Clients) -> None:
    for _ in range(3):  # other jobs, so the lookup must filter and page
        vertex.submit(clients, target, sub())
    s = sub()
    first = vertex.submit(clients, target, s)
    again = vertex.submit(vertex.make_client(target), target, s)
    assert again.external_id == first.external_id
    creates = [c for c in fake.calls("/customJobs", "POST") if c.body.get("displayName") == s.name]
    assert len(creates) == 1
    lookups = [c for c in fake.calls("/customJobs", "GET") if c.query.get("filter") == f'display_name="{s.name}"']
    assert len(lookups) == 2


def test_serving_uploads_a_model_creates_a_labelled_endpoint_and_deploys_it(
        fake: FakeVertex, target: VertexTarget, clients: vertex.Clients) -> None:
    s = sub(kind="serve", market="spot", instance_type="g2-standard-8", accelerator_name="L4", accelerator_count=1.0,
            replicas=3, command=[], image="us-docker.pkg.dev/finops-ml/serve/vllm:1")
    job = vertex.submit(clients, target, s)
    endpoint_name, model_name = f"{PARENT}/endpoints/{s.name}", f"{PARENT}/models/{s.name}"
    [upload] = fake.calls("/models:upload", "POST")
    assert upload.body["modelId"] == s.name
    assert upload.body["model"]["labels"] == labels(s)
    assert upload.body["model"]["containerSpec"]["imageUri"] == s.image
    [create] = [c for c in fake.calls(method="POST") if c.path == f"/v1/{PARENT}/endpoints"]
    assert create.query["endpointId"] == s.name and create.body["labels"] == labels(s)
    [deploy] = fake.calls(":deployModel", "POST")
    assert deploy.body["trafficSplit"] == {"0": 100}
    assert deploy.body["deployedModel"]["model"] == model_name
    assert deploy.body["deployedModel"]["dedicatedResources"] == {
        "machineSpec": {"machineType": "g2-standard-8", "acceleratorType": 11, "acceleratorCount": 1},
        "minReplicaCount": 3, "maxReplicaCount": 3, "spot": True}
    assert job.external_id == endpoint_name and job.state == "running" and job.tags == labels(s)
    assert fake.model(model_name) is not None
    # Again: the endpoint exists, nothing more is created.
    assert vertex.submit(clients, target, s).external_id == endpoint_name
    assert len(fake.calls(":deployModel")) == 1 and len(fake.calls("/models:upload")) == 1


def test_a_deployment_that_fails_for_capacity_says_so(fake: FakeVertex, target: VertexTarget,
                                                      clients: vertex.Clients) -> None:
    fake.fail_operation(":deployModel", 8, "The zone 'us-central1-a' does not have enough resources available "
                                           "to fulfill the request. ZONE_RESOURCE_POOL_EXHAUSTED")
    s = sub(kind="serve", instance_type="g2-standard-8", accelerator_name="L4", accelerator_count=1.0)
    with pytest.raises(LaunchError) as e:
        vertex.submit(clients, target, s)
    assert (e.value.kind, e.value.call, e.value.code) == ("capacity", "deploy_model", "RESOURCE_EXHAUSTED")
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in str(e.value)
    # Nothing is left behind: the same submission starts afresh and succeeds.
    assert fake.endpoint(f"{PARENT}/endpoints/{s.name}") is None and fake.model(f"{PARENT}/models/{s.name}") is None
    assert vertex.submit(clients, target, s).state == "running"


def test_missing_image_or_command_is_a_spec_error(fake: FakeVertex, target: VertexTarget,
                                                  clients: vertex.Clients) -> None:
    with pytest.raises(SpecIncomplete, match="'bert-eval' has no image"):
        vertex.submit(clients, target, sub(workload="bert-eval", image=None))
    with pytest.raises(SpecIncomplete, match="'bert-eval' has no command"):
        vertex.submit(clients, target, sub(workload="bert-eval", command=[]))
    assert fake.calls("/customJobs") == []


# -- find ----------------------------------------------------------------------------------------------
def test_find_by_tags_returns_our_jobs_and_endpoints_newest_first(fake: FakeVertex, target: VertexTarget,
                                                                   clients: vertex.Clients) -> None:
    a = vertex.submit(clients, target, sub(team="vision"))
    b = vertex.submit(clients, target, sub(team="vision"))
    c = vertex.submit(clients, target, sub(team="nlp"))
    d = vertex.submit(clients, target, sub(team="vision", kind="serve", instance_type="g2-standard-8",
                                           accelerator_name="L4", accelerator_count=1.0))
    found = vertex.find(clients, target, {"finops-team": "Vision"})  # fitted like the labels
    assert [j.external_id for j in found] == [d.external_id, b.external_id, a.external_id]
    assert all(j.tags["finops-team"] == "vision" for j in found)
    everything = vertex.find(clients, target, {})
    assert {j.external_id for j in everything} == {a.external_id, b.external_id, c.external_id, d.external_id}
    one = vertex.find(clients, target, {"finops-placement": c.tags["finops-placement"]})
    assert [j.external_id for j in one] == [c.external_id]
    assert any(q.query.get("pageToken") for q in fake.calls("/customJobs", "GET"))  # paged through
    filters = {q.query.get("filter") for q in fake.calls("/customJobs", "GET")}
    assert {'labels."finops-team"="vision"', 'labels."finops-placement":*'} <= filters


# -- status ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("provider_state", "state"), [
    ("JOB_STATE_QUEUED", "pending"), ("JOB_STATE_PENDING", "pending"), ("JOB_STATE_RUNNING", "running"),
    ("JOB_STATE_SUCCEEDED", "done"), ("JOB_STATE_PARTIALLY_SUCCEEDED", "done"), ("JOB_STATE_FAILED", "failed"),
    ("JOB_STATE_EXPIRED", "failed"), ("JOB_STATE_CANCELLING", "cancelled"), ("JOB_STATE_CANCELLED", "cancelled"),
    ("JOB_STATE_PAUSED", "pending"), ("JOB_STATE_UPDATING", "running")])
def test_status_maps_each_job_state(fake: FakeVertex, target: VertexTarget, clients: vertex.Clients,
                                    provider_state: str, state: str) -> None:
    job = vertex.submit(clients, target, sub())
    fake.set_state(job.external_id, provider_state)
    now = vertex.status(clients, target, job.external_id)
    assert now.state == state and now.name == job.name and now.tags == job.tags
    assert (now.ended_at is not None) == (provider_state in {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED",
                                                             "JOB_STATE_FAILED", "JOB_STATE_EXPIRED",
                                                             "JOB_STATE_CANCELLED"})


def test_status_follows_a_job_through_its_life(fake: FakeVertex, target: VertexTarget,
                                               clients: vertex.Clients) -> None:
    job = vertex.submit(clients, target, sub())
    fake.set_state(job.external_id, "JOB_STATE_RUNNING")
    running = vertex.status(clients, target, job.external_id)
    assert running.state == "running" and running.started_at is not None and running.ended_at is None
    fake.set_state(job.external_id, "JOB_STATE_SUCCEEDED")
    done = vertex.status(clients, target, job.external_id)
    assert done.state == "done" and done.ended_at is not None and done.ended_at >= running.started_at
    assert done.error_kind is None and done.message is None


@pytest.mark.parametrize(("code", "message", "state", "kind"), [
    (8, "The zone 'us-central1-a' does not have enough resources available. ZONE_RESOURCE_POOL_EXHAUSTED",
     "failed", "capacity"),
    (8, "Spot capacity stockout in us-central1", "failed", "capacity"),
    (8, "Quota exceeded for aiplatform.googleapis.com/custom_model_training_nvidia_a100_gpus", "failed", "quota"),
    (13, "The replica workerpool0-0 exited with a non-zero status of 1.", "failed", "permanent"),
    (14, "The VM was preempted (spot VM reclaimed).", "preempted", None)])
def test_a_failed_job_carries_the_message_and_why(fake: FakeVertex, target: VertexTarget, clients: vertex.Clients,
                                                  code: int, message: str, state: str, kind: str | None) -> None:
    job = vertex.submit(clients, target, sub(market="spot"))
    fake.set_state(job.external_id, "JOB_STATE_FAILED", error=(code, message))
    now = vertex.status(clients, target, job.external_id)
    assert (now.state, now.error_kind, now.message) == (state, kind, message)


def test_endpoint_status_and_a_vanished_resource(fake: FakeVertex, target: VertexTarget,
                                                 clients: vertex.Clients) -> None:
    s = sub(kind="serve", instance_type="n1-standard-4", accelerator_name=None, accelerator_count=None)
    job = vertex.submit(clients, target, s)
    assert vertex.status(clients, target, job.external_id).state == "running"
    gone = f"{PARENT}/customJobs/42"
    assert vertex.status(clients, target, gone).state == "cancelled"
    with pytest.raises(LaunchError, match="not a Vertex AI"):
        vertex.status(clients, target, "arn:aws:sagemaker:us-east-1:1:training-job/x")


# -- cancel ---------------------------------------------------------------------------------------------
def test_cancel_a_running_job_and_again_once_ended(fake: FakeVertex, target: VertexTarget,
                                                   clients: vertex.Clients) -> None:
    job = vertex.submit(clients, target, sub())
    fake.set_state(job.external_id, "JOB_STATE_RUNNING")
    vertex.cancel(clients, target, job.external_id)
    assert fake.job(job.external_id)["state"] == "JOB_STATE_CANCELLED"
    assert vertex.status(clients, target, job.external_id).state == "cancelled"
    vertex.cancel(clients, target, job.external_id)  # ended: a no-op
    assert len(fake.calls(":cancel")) == 1


def test_cancel_an_endpoint_undeploys_and_deletes_it(fake: FakeVertex, target: VertexTarget,
                                                     clients: vertex.Clients) -> None:
    s = sub(kind="serve", instance_type="g2-standard-8", accelerator_name="L4", accelerator_count=1.0)
    job = vertex.submit(clients, target, s)
    vertex.cancel(clients, target, job.external_id)
    assert len(fake.calls(":undeployModel", "POST")) == 1
    assert fake.endpoint(job.external_id) is None and fake.model(f"{PARENT}/models/{s.name}") is None
    assert vertex.status(clients, target, job.external_id).state == "cancelled"
    vertex.cancel(clients, target, job.external_id)  # gone: a no-op


# -- errors ---------------------------------------------------------------------------------------------
def test_a_stockout_on_create_is_a_capacity_error(fake: FakeVertex, target: VertexTarget,
                                                  clients: vertex.Clients) -> None:
    fake.fail_next(429, "The zone does not have enough resources available to fulfill the request.",
                   match="POST", rpc_status="RESOURCE_EXHAUSTED", reason="ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(LaunchError) as e:
        vertex.submit(clients, target, sub())
    assert (e.value.kind, e.value.call, e.value.code) == ("capacity", "create_custom_job",
                                                          "ZONE_RESOURCE_POOL_EXHAUSTED")
    assert str(e.value).startswith("create_custom_job: The zone does not have enough resources")
    assert "http" not in str(e.value)  # the provider's message, not the URL


def test_a_quota_error_is_a_quota_error(fake: FakeVertex, target: VertexTarget, clients: vertex.Clients) -> None:
    fake.fail_next(429, "Quota exceeded for quota metric 'Custom model training Nvidia A100 GPUs per region'.",
                   match="POST", rpc_status="RESOURCE_EXHAUSTED", reason="QUOTA_EXCEEDED")
    with pytest.raises(LaunchError) as e:
        vertex.submit(clients, target, sub())
    assert (e.value.kind, e.value.code) == ("quota", "QUOTA_EXCEEDED")


def test_an_error_without_a_code_is_permanent_with_its_message(fake: FakeVertex, target: VertexTarget,
                                                               clients: vertex.Clients) -> None:
    fake.fail_next(400, "Invalid image URI", match="POST")
    with pytest.raises(LaunchError) as e:
        vertex.submit(clients, target, sub())
    assert (e.value.kind, e.value.code, str(e.value)) == ("permanent", None, "create_custom_job: Invalid image URI")


def test_a_lookup_error_is_classified_too(fake: FakeVertex, target: VertexTarget, clients: vertex.Clients) -> None:
    fake.fail_next(403, "Permission 'aiplatform.customJobs.list' denied.", match="GET",
                   rpc_status="PERMISSION_DENIED", reason="IAM_PERMISSION_DENIED")
    with pytest.raises(LaunchError) as e:
        vertex.find(clients, target, {})
    assert (e.value.kind, e.value.call, e.value.code) == ("permanent", "list_custom_jobs", "IAM_PERMISSION_DENIED")


def test_no_credentials_is_a_launch_error_not_a_traceback(fake: FakeVertex, target: VertexTarget,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(LaunchError) as e:
        vertex.submit(vertex.make_client(target), target, sub())
    assert e.value.kind == "unreachable"


def test_without_the_sdk_the_error_names_the_extra(target: VertexTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform_v1", None)  # import fails as if not installed
    with pytest.raises(ExtraMissing, match=r"pip install 'finops\[vertex\]'"):
        vertex.make_client(target)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeVertex, VertexTarget, vertex.Clients]]:
    with FakeVertex(page_size=50) as f, pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(f.credentials_file(tmp_path_factory.mktemp("vertex"))))
        t = VertexTarget(project=PROJECT, endpoint_url=f.url, regions=["us-central1"])
        yield f, t, vertex.make_client(t)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(team=st.text(min_size=1, max_size=90), workload=st.text(min_size=1, max_size=90))
def test_any_team_and_workload_name_makes_labels_gcp_accepts(
        shared: tuple[FakeVertex, VertexTarget, vertex.Clients], team: str, workload: str) -> None:
    fake, target, clients = shared
    s = sub(team=team, workload=workload)
    job = vertex.submit(clients, target, s)
    sent = [c.body for c in fake.calls("/customJobs", "POST") if c.body["displayName"] == s.name][-1]
    assert all(not GCP_LABELS.problems(k, v) for k, v in sent["labels"].items())
    assert set(sent["labels"]) == set(TAG_KEYS) and sent["labels"]["finops-placement"] == str(s.placement_id)
    assert [j.external_id for j in vertex.find(clients, target, s.tags)] == [job.external_id]


@given(st.text(max_size=80), st.sampled_from([None, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "INTERNAL"]))
def test_a_message_with_quota_is_always_a_quota_error(message: str, code: str | None) -> None:
    kind = vertex._kind(code, message + " Quota exceeded")
    assert kind == "quota"
    assert vertex._kind(code, message) in ("capacity", "quota", "permanent")
