"""The Azure ML launcher (placement/launchers/azureml.py): azure-ai-ml's real ``MLClient``, made by
``make_client`` with a static-token credential and the target's ``endpoint_url`` as Resource Manager (TLS with
a certificate made at test time), against tests/fakes/azureml.py, a loopback server answering the ARM paths
and JSON of the Microsoft.MachineLearningServices REST API. One fake and one client serve the whole module
(azure-ai-ml is slow to import and to build a client); every test uses names of its own."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finops.config import AzureMLTarget
from placement.launchers import azureml, module
from placement.launchers.base import ExtraMissing, LaunchError, SpecIncomplete, Submission, job_name, tags
from tests.fakes.azureml import AzureMLFake

IDS = itertools.count(1)
GPU = "Standard_NC24ads_A100_v4"


class StaticToken:
    """A credential that hands out the token the fake accepts (no identity service is asked)."""

    def get_token(self, *scopes: str, **kw: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("fake-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("fake-token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLFake]:
    with AzureMLFake(tmp_path_factory.mktemp("azureml-cert")) as f:
        yield f


@pytest.fixture(scope="module")
def target(fake: AzureMLFake) -> AzureMLTarget:
    return AzureMLTarget(subscription_id=fake.subscription, resource_group=fake.resource_group,
                         workspace=fake.workspace, endpoint_url=fake.url, regions=["eastus"])


@pytest.fixture(scope="module")
def client(target: AzureMLTarget, fake: AzureMLFake) -> Any:
    before = os.environ.get("AZUREML_CURRENT_CLOUD")
    made = azureml.make_client(target, credential=StaticToken(), connection_verify=str(fake.cert), retry_total=0)
    # The target's endpoint stays the client's own, not the process's default cloud.
    assert os.environ.get("AZUREML_CURRENT_CLOUD") == before
    return made


def sub(**over: Any) -> Submission:
    wid, pid = next(IDS), next(IDS)
    workload, team = over.pop("workload", "llama-finetune"), over.pop("team", "ML-Research")
    base: dict[str, Any] = dict(
        name=job_name(workload, wid, pid), workload_id=wid, placement_id=pid, leg=0, workload=workload, team=team,
        kind="train", provider="azure", region="eastus", zone=None, instance_type=GPU, market="on_demand",
        replicas=2, accelerator_name="A100-80GB", accelerator_count=1.0,
        image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
        command=["python", "train.py", "--epochs", "3"], env={"EPOCHS": "3"}, tags=tags(team, workload, pid),
        runtime_hours=5.0)
    return Submission(**{**base, **over})


def puts(fake: AzureMLFake, fragment: str) -> list[Any]:
    return [r.body for r in fake.created("PUT", fragment)]


# -- submit: training --------------------------------------------------------------------------------
def test_the_module_is_found_through_the_registry() -> None:
    assert module("azureml") is azureml and azureml.KIND == "azureml"


def test_on_demand_training_makes_a_dedicated_cluster_and_a_command_job(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(workload="bert-pretrain", replicas=3)
    job = azureml.submit(client, target, s)
    [cluster] = puts(fake, "/computes/nc24ads-a100-v4-od")
    assert cluster["location"] == "eastus"
    props = cluster["properties"]["properties"]
    assert props["vmSize"] == GPU and props["vmPriority"] == "Dedicated"
    assert props["scaleSettings"]["maxNodeCount"] == 3 and props["scaleSettings"]["minNodeCount"] == 0
    [body] = puts(fake, f"/jobs/{s.name}")
    p = body["properties"]
    assert p["jobType"] == "Command" and p["displayName"] == s.name and p["experimentName"] == "finops"
    assert p["command"] == "python train.py --epochs 3"
    assert p["computeId"].endswith("/computes/nc24ads-a100-v4-od")
    assert p["resources"]["instanceCount"] == 3
    assert p["environmentVariables"] == {"EPOCHS": "3"}
    assert p["tags"] == {"finops-team": "ML-Research", "finops-workload": "bert-pretrain",
                         "finops-placement": str(s.placement_id)}  # Azure tags keep case
    assert p["limits"]["timeout"] == "PT10H"  # twice the expected 5 hours
    # The image became an anonymous environment the job points at.
    [env] = [r for r in fake.created("PUT", "/environments/CliV2AnonymousEnvironment/versions/")
             if p["environmentId"].endswith(r.path)]
    assert env.body["properties"]["image"] == s.image
    assert job.state == "pending" and job.name == s.name and job.external_id.endswith(f"/jobs/{s.name}")
    assert job.tags == p["tags"]


def test_spot_training_uses_a_low_priority_cluster_reused_and_grown(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    first = sub(market="spot", instance_type="Standard_ND96asr_v4", replicas=1)
    azureml.submit(client, target, first)
    [made] = puts(fake, "/computes/nd96asr-v4-lp")
    assert made["properties"]["properties"]["vmPriority"] == "LowPriority"
    azureml.submit(client, target, sub(market="spot", instance_type="Standard_ND96asr_v4", replicas=1))
    assert len(puts(fake, "/computes/nd96asr-v4-lp")) == 1  # reused as it is
    azureml.submit(client, target, sub(market="spot", instance_type="Standard_ND96asr_v4", replicas=4))
    grown = puts(fake, "/computes/nd96asr-v4-lp")[-1]
    assert len(puts(fake, "/computes/nd96asr-v4-lp")) == 2
    assert grown["properties"]["properties"]["scaleSettings"]["maxNodeCount"] == 4
    assert fake.jobs[first.name]["properties"]["computeId"].endswith("/computes/nd96asr-v4-lp")


def test_resubmitting_the_same_name_returns_the_job_without_a_second_creation(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub()
    one = azureml.submit(client, target, s)
    fake.set_job_status(s.name, "Running")
    two = azureml.submit(client, target, s)
    assert len(puts(fake, f"/jobs/{s.name}")) == 1
    assert two.external_id == one.external_id and two.state == "running"


@given(size=st.from_regex(r"Standard_[A-Za-z0-9_]{1,40}", fullmatch=True), spot=st.booleans())
def test_cluster_names_follow_azure_ml_rules(size: str, spot: bool) -> None:
    name = azureml.cluster_name(size, spot)
    assert 3 <= len(name) <= 24 and name[0].isalpha()
    assert all((c.isalnum() and c == c.lower()) or c == "-" for c in name)
    assert name.endswith("-lp" if spot else "-od")
    assert azureml.cluster_name(size, spot) == name  # deterministic: the same size shares one cluster


def test_missing_image_or_command_is_spec_incomplete(target: AzureMLTarget, client: Any) -> None:
    with pytest.raises(SpecIncomplete, match=r"'nameless'.*image"):
        azureml.submit(client, target, sub(workload="nameless", image=None))
    with pytest.raises(SpecIncomplete, match="command"):
        azureml.submit(client, target, sub(command=[]))


# -- submit: serving ---------------------------------------------------------------------------------
def test_serving_makes_an_endpoint_a_deployment_and_routes_traffic(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(kind="serve", workload="chat-api", replicas=2, instance_type="Standard_NC6s_v3")
    job = azureml.submit(client, target, s)
    endpoint_puts = puts(fake, f"/onlineEndpoints/{s.name}")
    endpoint_puts = [b for r, b in zip(fake.created("PUT", f"/onlineEndpoints/{s.name}"), endpoint_puts, strict=True)
                     if "/deployments/" not in r.path]
    assert endpoint_puts[0]["tags"] == {"finops-team": "ML-Research", "finops-workload": "chat-api",
                                        "finops-placement": str(s.placement_id)}
    assert endpoint_puts[-1]["properties"]["traffic"] == {"main": 100}
    [dep] = puts(fake, f"/onlineEndpoints/{s.name}/deployments/main")
    assert dep["sku"]["capacity"] == 2 and dep["properties"]["instanceType"] == "Standard_NC6s_v3"
    assert dep["properties"]["endpointComputeType"] == "Managed" and dep["tags"] == endpoint_puts[0]["tags"]
    assert dep["properties"]["environmentVariables"] == {"EPOCHS": "3"}
    assert job.state == "running" and job.external_id.endswith(f"/onlineEndpoints/{s.name}")
    # Resubmitted: found, nothing made again.
    again = azureml.submit(client, target, s)
    assert again.external_id == job.external_id
    assert len(fake.created("PUT", f"/onlineEndpoints/{s.name}")) == 3


def test_spot_serving_is_refused(target: AzureMLTarget, client: Any) -> None:
    with pytest.raises(LaunchError, match="low-priority") as e:
        azureml.submit(client, target, sub(kind="serve", market="spot"))
    assert e.value.kind == "permanent"


def test_a_deployment_out_of_quota_is_a_quota_error(fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(kind="serve", workload="quota-api")
    fake.fail_operation(f"/onlineEndpoints/{s.name}/deployments/main", "OutOfQuota",
                        "Not enough quota available for Standard_NC24ads_A100_v4 in SubscriptionId x.")
    with pytest.raises(LaunchError) as e:
        azureml.submit(client, target, s)
    assert e.value.kind == "quota" and e.value.code == "OutOfQuota"
    assert e.value.call == "online_deployments.begin_create_or_update" and "Not enough quota" in str(e.value)



@pytest.fixture
def asynchronous(fake: AzureMLFake) -> Iterator[AzureMLFake]:
    """The fake answering long-running operations as ARM usually does: 201/202, then polled (1 s each)."""
    fake.asynchronous = True
    try:
        yield fake
    finally:
        fake.asynchronous = False


def test_long_running_operations_are_polled_to_their_end(asynchronous: AzureMLFake, target: AzureMLTarget,
                                                         client: Any) -> None:
    fake = asynchronous
    s = sub(instance_type="Standard_NC8as_T4_v3")
    job = azureml.submit(client, target, s)
    assert fake.computes["nc8as-t4-v3-od"]["properties"]["provisioningState"] == "Succeeded"
    polls = [r for r in fake.requests if "/mfeOperationsStatus/" in r.path]
    assert polls and all(r.status == 200 for r in polls)
    azureml.cancel(client, target, job.external_id)  # 202 + Location, polled until done
    assert any("/mfeOperationResults/" in r.path for r in fake.requests)
    assert fake.jobs[s.name]["properties"]["status"] == "Canceled"
    # A deployment whose operation ends Failed: the poller's error, classified.
    e = sub(kind="serve", workload="async-quota-api")
    fake.fail_operation(f"/onlineEndpoints/{e.name}/deployments/main", "OutOfQuota",
                        "Not enough quota available for Standard_NC24ads_A100_v4 in SubscriptionId x.")
    with pytest.raises(LaunchError) as err:
        azureml.submit(client, target, e)
    assert (err.value.kind, err.value.code) == ("quota", "OutOfQuota")
    assert azureml.status(client, target, f"{fake.workspace_id}/onlineEndpoints/{e.name}").state == "failed"

# -- find, status, cancel ----------------------------------------------------------------------------
def test_find_returns_our_jobs_and_endpoints_by_tags_newest_first(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    a = sub(workload="find-me", team="vision")
    b = sub(workload="find-me", team="vision", kind="serve")
    c = sub(workload="find-me", team="speech")
    for s in (a, b, c):
        azureml.submit(client, target, s)
    found = azureml.find(client, target, {"finops-team": "vision", "finops-workload": "find-me"})
    assert [j.name for j in found] == [b.name, a.name]
    assert found[1].tags["finops-placement"] == str(a.placement_id)
    everything = {j.name for j in azureml.find(client, target, {})}
    assert {a.name, b.name, c.name} <= everything
    assert [r.query.get("tag") for r in fake.requests if r.method == "GET" and r.path.endswith("/jobs")][-1] \
        == "finops-placement"


@pytest.mark.parametrize(("service", "state"), [
    ("NotStarted", "pending"), ("Queued", "pending"), ("Preparing", "pending"), ("Provisioning", "pending"),
    ("Starting", "pending"), ("Paused", "pending"), ("Running", "running"), ("Finalizing", "running"),
    ("NotResponding", "running"), ("Completed", "done"), ("Failed", "failed"), ("Canceled", "cancelled"),
    ("CancelRequested", "cancelled"),
])
def test_status_maps_every_job_status(fake: AzureMLFake, target: AzureMLTarget, client: Any,
                                      service: str, state: str) -> None:
    s = sub()
    job = azureml.submit(client, target, s)
    fake.set_job_status(s.name, service)
    now = azureml.status(client, target, job.external_id)
    assert now.state == state and now.name == s.name
    assert (now.error_kind == "permanent") == (state == "failed")


def test_a_low_priority_preemption_is_reported(fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(market="spot", instance_type="Standard_NC4as_T4_v3")
    job = azureml.submit(client, target, s)
    fake.set_job_status(s.name, "Running")
    fake.preempt("nc4as-t4-v3-lp", "someone-else")
    assert azureml.status(client, target, job.external_id).preemptions == 0  # another job's node
    fake.preempt("nc4as-t4-v3-lp", s.name)
    resumed = azureml.status(client, target, job.external_id)
    assert resumed.state == "running" and resumed.preemptions == 1
    fake.set_job_status(s.name, "Failed")
    assert azureml.status(client, target, job.external_id).state == "preempted"


@pytest.mark.parametrize(("code", "kind"), [
    ("ZonalAllocationFailed", "capacity"), ("AllocationFailed", "capacity"),
    ("OverconstrainedAllocationRequest", "capacity"), ("SkuNotAvailable", "capacity"),
    ("QuotaExceeded", "quota"), ("DiskFull", None),
])
def test_a_waiting_job_says_why_from_its_cluster(fake: AzureMLFake, target: AzureMLTarget, client: Any,
                                                 code: str, kind: str | None) -> None:
    size = f"Standard_E{next(IDS)}s_v5"
    s = sub(instance_type=size)
    job = azureml.submit(client, target, s)
    fake.set_job_status(s.name, "Queued")
    fake.compute_error(azureml.cluster_name(size, False), code, f"{code}: the allocation of {size} did not succeed")
    now = azureml.status(client, target, job.external_id)
    assert now.state == "pending" and now.message is not None and code in now.message
    assert now.error_kind == (kind if kind != "permanent" else None)



def test_a_failed_job_on_a_cluster_out_of_quota_is_a_quota_failure(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    size = "Standard_NC48ads_A100_v4"
    s = sub(instance_type=size)
    job = azureml.submit(client, target, s)
    fake.compute_error(azureml.cluster_name(size, False), "QuotaExceeded", "Operation would exceed the quota.")
    fake.set_job_status(s.name, "Failed")
    now = azureml.status(client, target, job.external_id)
    assert (now.state, now.error_kind) == ("failed", "quota") and "QuotaExceeded" in (now.message or "")
    fake.set_job_status(s.name, "Running")  # a running job waits for nothing: the old error says nothing
    assert azureml.status(client, target, job.external_id).error_kind is None


@pytest.mark.parametrize(("endpoint", "deployment", "state"), [
    ("Creating", "Creating", "pending"), ("Succeeded", "Creating", "pending"), ("Succeeded", "Succeeded", "running"),
    ("Updating", "Scaling", "running"), ("Succeeded", "Failed", "failed"), ("Failed", "Succeeded", "failed"),
    ("Deleting", "Succeeded", "cancelled"), ("Canceled", "Canceled", "cancelled"),
])
def test_status_maps_endpoint_and_deployment_states(fake: AzureMLFake, target: AzureMLTarget, client: Any,
                                                    endpoint: str, deployment: str, state: str) -> None:
    s = sub(kind="serve")
    job = azureml.submit(client, target, s)
    fake.set_endpoint_state(job.name, endpoint, deployment)
    now = azureml.status(client, target, job.external_id)
    assert now.state == state and (now.error_kind == "permanent") == (state == "failed")


def test_a_long_name_becomes_a_valid_endpoint_name_found_again(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(kind="serve", workload="a-rather-long-recommendation-model-serving-workload")
    job = azureml.submit(client, target, s)
    assert len(job.name) <= 32 and job.name[0].isalpha() and job.name[-1].isalnum()
    assert job.name == azureml.endpoint_name(s.name) != s.name
    assert azureml.submit(client, target, s).external_id == job.external_id
    assert len([r for r in fake.created("PUT", f"/onlineEndpoints/{job.name}") if "/deployments/" in r.path]) == 1

def test_cancel_stops_a_job_and_deletes_an_endpoint(fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub()
    job = azureml.submit(client, target, s)
    azureml.cancel(client, target, job.external_id)
    assert [r.path for r in fake.requests if r.method == "POST" and r.path.endswith(f"/jobs/{s.name}/cancel")]
    assert azureml.status(client, target, job.external_id).state == "cancelled"
    azureml.cancel(client, target, job.external_id)  # ended: a no-op, no second cancel request
    assert len([r for r in fake.requests if r.path.endswith(f"/jobs/{s.name}/cancel")]) == 1
    e = sub(kind="serve")
    endpoint = azureml.submit(client, target, e)
    azureml.cancel(client, target, endpoint.external_id)
    assert e.name not in fake.endpoints
    gone = azureml.status(client, target, endpoint.external_id)
    assert gone.state == "cancelled"
    azureml.cancel(client, target, endpoint.external_id)  # already gone: fine


# -- errors ------------------------------------------------------------------------------------------
def test_a_capacity_error_from_compute_creation(fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    s = sub(instance_type="Standard_NC40ads_H100_v5")
    fake.fail(409, "OverconstrainedAllocationRequest", "Allocation failed. VM size not available in eastus.",
              method="PUT", path="/computes/")
    with pytest.raises(LaunchError) as e:
        azureml.submit(client, target, s)
    assert (e.value.kind, e.value.code, e.value.call) == ("capacity", "OverconstrainedAllocationRequest",
                                                           "compute.begin_create_or_update")
    assert s.name not in fake.jobs


def test_a_quota_error_on_job_creation(fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    fake.fail(400, "QuotaExceeded", "Operation would exceed the LowPriorityCores quota of 100.",
              method="PUT", path="/jobs/")
    with pytest.raises(LaunchError) as e:
        azureml.submit(client, target, sub(market="spot"))
    assert (e.value.kind, e.value.code, e.value.call) == ("quota", "QuotaExceeded", "jobs.create_or_update")
    assert "LowPriorityCores quota" in str(e.value)


def test_an_error_without_a_code_is_permanent_with_its_message(
        fake: AzureMLFake, target: AzureMLTarget, client: Any) -> None:
    fake.fail(500, None, "Something went wrong in the service.", method="GET", path="/jobs/")
    with pytest.raises(LaunchError) as e:
        azureml.submit(client, target, sub())
    assert e.value.kind == "permanent" and e.value.code is None
    assert "Something went wrong in the service." in str(e.value)


def test_a_rejected_token_and_a_bad_id_are_launch_errors(fake: AzureMLFake, target: AzureMLTarget) -> None:
    class Expired(StaticToken):
        def get_token(self, *scopes: str, **kw: Any) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken("stale", int(time.time()) + 3600)

        def get_token_info(self, *scopes: str, options: Any = None) -> Any:
            from azure.core.credentials import AccessTokenInfo

            return AccessTokenInfo("stale", int(time.time()) + 3600)

    stale = azureml.make_client(target, credential=Expired(), connection_verify=str(fake.cert), retry_total=0)
    with pytest.raises(LaunchError) as e:
        azureml.find(stale, target, {})
    assert e.value.code == "InvalidAuthenticationToken" and e.value.call == "jobs.list"
    with pytest.raises(LaunchError, match="not the ARM id"):
        azureml.status(stale, target, "arn:aws:sagemaker:us-east-1:1:training-job/x")


def test_an_unreachable_workspace_is_unreachable(fake: AzureMLFake) -> None:
    closed = AzureMLTarget(subscription_id="s", resource_group="r", workspace="w", endpoint_url="https://127.0.0.1:9")
    c = azureml.make_client(closed, credential=StaticToken(), connection_verify=str(fake.cert), retry_total=0)
    with pytest.raises(LaunchError) as e:
        azureml.status(c, closed, f"{fake.workspace_id}/jobs/anything")
    assert e.value.kind == "unreachable"


def test_the_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch, target: AzureMLTarget) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "azure.ai.ml", None)
    with pytest.raises(ExtraMissing, match=r"finops\[azureml\]"):
        azureml.make_client(target, credential=StaticToken())

