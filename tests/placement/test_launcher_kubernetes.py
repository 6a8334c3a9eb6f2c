"""The Kubernetes launcher (placement/launchers/kubernetes.py): the official ``kubernetes`` client, made
from a kubeconfig, against tests/fakes/kubernetes.py over HTTPS on 127.0.0.1. What the cluster's
controllers and scheduler would do is driven by the fake's test-only methods."""

from __future__ import annotations

import itertools
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops.config import KubernetesTarget
from finops.providers import K8S_LABELS
from placement.launchers import kubernetes as k8s
from placement.launchers.base import ExtraMissing, LaunchError, SpecIncomplete, Submission, job_name, tags
from tests.fakes.kubernetes import KubernetesFake, label_problem
from tests.fakes.server import make_certificate

IDS = itertools.count(1)
CONTEXT = "gpu-cluster"
UNSCHEDULABLE = ("0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node "
                 "affinity/selector. preemption: 0/4 nodes are available: 4 No preemption victims found.")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("k8s-tls"))


@pytest.fixture
def fake(tls: tuple[Path, Path]) -> Iterator[KubernetesFake]:
    with KubernetesFake(tls=tls) as f:
        yield f


def make_target(fake: KubernetesFake, tmp_path: Path, **over: Any) -> KubernetesTarget:
    cfg = fake.kubeconfig(tmp_path / "kubeconfig", context=CONTEXT)
    base: dict[str, Any] = dict(provider="aws", region="us-east-1", kubeconfig=str(cfg), context=CONTEXT,
                                namespace="default", node_pools=[{"instance_type": "p4d.24xlarge", "spot": True}])
    return KubernetesTarget(**{**base, **over})


@pytest.fixture
def target(fake: KubernetesFake, tmp_path: Path) -> KubernetesTarget:
    return make_target(fake, tmp_path)


@pytest.fixture
def client(target: KubernetesTarget) -> k8s.Client:
    return k8s.make_client(target)


def sub(**over: Any) -> Submission:
    wid, pid = next(IDS), next(IDS)
    workload, team = over.pop("workload", "llama-finetune"), over.pop("team", "ml-research")
    base: dict[str, Any] = dict(
        name=job_name(workload, wid, pid), workload_id=wid, placement_id=pid, leg=0, workload=workload,
        team=team, kind="train", provider="aws", region="us-east-1", zone=None, instance_type="p4d.24xlarge",
        market="on_demand", replicas=2, accelerator_name="A100-40GB", accelerator_count=8.0,
        image="registry.example/train:1", command=["python", "train.py"], env={"EPOCHS": "3", "A": "1"},
        tags=tags(team, workload, pid), runtime_hours=5.0)
    return Submission(**{**base, **over})


def posted(fake: KubernetesFake, res: str) -> list[Any]:
    return [body for method, path, body in fake.requests if method == "POST" and path.endswith(f"/{res}")]


def affinity_terms(pod: dict[str, Any]) -> list[Any]:
    terms: list[Any] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    return terms


# -- submit -----------------------------------------------------------------------------------------
def test_on_demand_training_is_a_job_with_labels_resources_and_on_demand_nodes(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub()
    job = k8s.submit(client, target, s)
    [body] = posted(fake, "jobs")
    labels = {"finops-team": "ml-research", "finops-workload": "llama-finetune",
              "finops-placement": str(s.placement_id), "app.kubernetes.io/instance": s.name}
    assert body["metadata"] == {"name": s.name, "labels": labels}
    spec = body["spec"]
    assert (spec["parallelism"], spec["completions"], spec["completionMode"]) == (2, 2, "Indexed")
    assert spec["backoffLimit"] == k8s.BACKOFF_LIMIT and spec["activeDeadlineSeconds"] == 10 * 3600
    assert "suspend" not in spec
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    assert spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"] == [{"name": "main", "image": s.image, "command": ["python", "train.py"],
                                  "env": [{"name": "A", "value": "1"}, {"name": "EPOCHS", "value": "3"}],
                                  "resources": {"limits": {"nvidia.com/gpu": "8"}}}]
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "p4d.24xlarge"}
    assert affinity_terms(pod) == [{"matchExpressions": [
        {"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]},
        {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}]}]
    assert pod["tolerations"] == []
    assert job.external_id == f"default/job/{s.name}" and job.name == s.name and job.state == "pending"
    assert job.tags == {k: v for k, v in labels.items() if k.startswith("finops-")}


@pytest.mark.parametrize(("provider", "terms", "tolerations"), [
    ("aws", [[("eks.amazonaws.com/capacityType", "SPOT")], [("karpenter.sh/capacity-type", "spot")]], []),
    ("gcp", [[("cloud.google.com/gke-spot", "true")]],
     [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]),
    ("azure", [[("kubernetes.azure.com/scalesetpriority", "spot")]],
     [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}]),
])
def test_spot_training_asks_for_the_clouds_spot_nodes_and_tolerates_their_taint(
        fake: KubernetesFake, tmp_path: Path, provider: str, terms: list[list[tuple[str, str]]],
        tolerations: list[dict[str, str]]) -> None:
    target = make_target(fake, tmp_path, provider=provider)
    s = sub(market="spot", provider=provider, instance_type="inst-x", replicas=1)
    k8s.submit(k8s.make_client(target), target, s)
    [body] = posted(fake, "jobs")
    pod = body["spec"]["template"]["spec"]
    assert body["spec"]["completionMode"] == "NonIndexed"
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "inst-x"}
    assert affinity_terms(pod) == [{"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in t]}
                                   for t in terms]
    assert pod["tolerations"] == tolerations


def test_a_kueue_queue_labels_the_job_and_creates_it_suspended(fake: KubernetesFake, tmp_path: Path) -> None:
    target = make_target(fake, tmp_path, queue="team-a")
    client = k8s.make_client(target)
    s = sub()
    job = k8s.submit(client, target, s)
    [body] = posted(fake, "jobs")
    assert body["spec"]["suspend"] is True
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert fake.pods(s.name) == []  # suspended: no pods until Kueue admits it
    now = k8s.status(client, target, job.external_id)
    assert now.state == "pending" and "team-a" in (now.message or "") and now.error_kind is None


@pytest.mark.parametrize(("name", "count", "resource"), [
    ("Trainium", 16.0, "aws.amazon.com/neuron"), ("Inferentia2", 12.0, "aws.amazon.com/neuron"),
    ("MI300X", 8.0, "amd.com/gpu"), ("H100", 8.0, "nvidia.com/gpu"), ("A10", 1 / 6, "nvidia.com/gpu")])
def test_accelerators_become_their_device_plugins_resources(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client, name: str, count: float,
        resource: str) -> None:
    k8s.submit(client, target, sub(accelerator_name=name, accelerator_count=count))
    [body] = posted(fake, "jobs")
    limits = body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {resource: str(max(1, round(count)))}


def test_gke_tpu_slices_use_the_tpu_selectors_and_multi_host_slices_are_refused(
        fake: KubernetesFake, tmp_path: Path) -> None:
    target = make_target(fake, tmp_path, provider="gcp", region="us-central1")
    client = k8s.make_client(target)
    k8s.submit(client, target, sub(provider="gcp", instance_type="tpu-v5litepod-8", accelerator_name="TPU-v5e",
                                   accelerator_count=8.0, replicas=1))
    [body] = posted(fake, "jobs")
    pod = body["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                   "cloud.google.com/gke-tpu-topology": "2x4"}
    assert pod["containers"][0]["resources"]["limits"] == {"google.com/tpu": "8"}
    assert {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    with pytest.raises(LaunchError, match="multi-host") as e:
        k8s.submit(client, target, sub(provider="gcp", instance_type="tpu-v5litepod-16",
                                       accelerator_name="TPU-v5e", accelerator_count=16.0))
    assert e.value.kind == "permanent"
    assert len(posted(fake, "jobs")) == 1


def test_serving_is_a_deployment_and_a_service_selecting_its_pods(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub(kind="serve", replicas=3, market="spot")
    job = k8s.submit(client, target, s)
    [dep], [svc] = posted(fake, "deployments"), posted(fake, "services")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/instance": s.name}}
    labels = dep["metadata"]["labels"]
    assert labels["finops-placement"] == str(s.placement_id) and dep["spec"]["template"]["metadata"]["labels"] == labels
    pod = dep["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["containers"][0]["ports"] == [{"containerPort": 8080, "name": "http"}]
    assert pod["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "8"}}
    assert affinity_terms(pod)[0]["matchExpressions"][0]["operator"] == "In"
    assert svc["metadata"]["labels"] == labels
    assert svc["spec"] == {"selector": {"app.kubernetes.io/instance": s.name},
                           "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}
    assert job.external_id == f"default/deployment/{s.name}" and job.state == "pending"


def test_resubmitting_returns_the_existing_objects_without_creating_again(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    train, serve = sub(), sub(kind="serve")
    first = [k8s.submit(client, target, s) for s in (train, serve)]
    again = [k8s.submit(client, target, s) for s in (train, serve)]
    assert [j.external_id for j in again] == [j.external_id for j in first]
    assert fake.creations == [("jobs", train.name), ("deployments", serve.name), ("services", serve.name)]


def test_a_create_race_lost_with_409_reads_the_winner(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub()
    k8s.submit(client, target, s)
    fake.fail_next(404, "NotFound", f'jobs.batch "{s.name}" not found', method="GET", resource="jobs")
    job = k8s.submit(client, target, s)  # read: 404 (not yet visible), create: 409, read: found
    assert job.external_id == f"default/job/{s.name}"
    assert fake.creations == [("jobs", s.name)]
    assert [m for m, p, _ in fake.requests[-3:]] == ["GET", "POST", "GET"]


def test_serving_resubmitted_after_a_crash_between_deployment_and_service_creates_the_service(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub(kind="serve")
    fake.fail_next(500, raw="upstream connect error", method="POST", resource="services")
    with pytest.raises(LaunchError):
        k8s.submit(client, target, s)
    k8s.submit(client, target, s)
    assert fake.creations == [("deployments", s.name), ("services", s.name)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(team=st.text(min_size=1, max_size=80), workload=st.text(min_size=1, max_size=80))
def test_any_team_and_workload_name_gives_labels_the_api_accepts(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client, team: str, workload: str) -> None:
    s = sub(team=team, workload=workload)
    job = k8s.submit(client, target, s)  # the fake refuses invalid labels with 422, as the API server does
    labels = fake.get("jobs", s.name)["metadata"]["labels"]
    assert all(label_problem(k, v) is None and not K8S_LABELS.problems(k, v) for k, v in labels.items()
               if k.startswith("finops-"))
    assert job.tags == {k: v for k, v in labels.items() if k.startswith("finops-")}


def test_missing_image_or_command_is_spec_incomplete_and_sends_nothing(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    with pytest.raises(SpecIncomplete, match=r"'llama-finetune' needs an image"):
        k8s.submit(client, target, sub(image=None))
    with pytest.raises(SpecIncomplete, match="needs a command"):
        k8s.submit(client, target, sub(command=[], kind="serve"))
    assert fake.requests == []


# -- find -----------------------------------------------------------------------------------------------
def test_find_lists_jobs_and_deployments_carrying_the_tags_newest_first(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    a1, a2 = sub(team="team-a"), sub(team="team-a", kind="serve")
    b = sub(team="team b!")  # fitted to team-b on the cluster
    for s in (a1, a2, b):
        k8s.submit(client, target, s)
    fake.job_running(a1.name)
    found = k8s.find(client, target, {"finops-team": "team-a"})
    assert [j.name for j in found] == [a2.name, a1.name]
    assert found[1].state == "running" and found[1].tags["finops-team"] == "team-a"
    assert found[0].external_id == f"default/deployment/{a2.name}"
    assert [j.name for j in k8s.find(client, target, {"finops-team": "team b!"})] == [b.name]
    assert [j.name for j in k8s.find(client, target, {})] == [b.name, a2.name, a1.name]
    assert k8s.find(client, target, {"finops-team": "team-a", "finops-placement": str(b.placement_id)}) == []
    selectors = [p for m, p, _ in fake.requests if m == "GET" and "labelSelector" in p]
    assert any(p.endswith("labelSelector=finops-placement") for p in selectors)  # {}: any finops job


# -- status -----------------------------------------------------------------------------------------------
def test_training_states_follow_the_job_and_its_pods(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub()
    eid = k8s.submit(client, target, s).external_id
    assert k8s.status(client, target, eid).state == "pending"
    fake.pods_unschedulable(s.name, UNSCHEDULABLE)
    waiting = k8s.status(client, target, eid)
    assert (waiting.state, waiting.error_kind, waiting.message) == ("pending", "capacity", UNSCHEDULABLE)
    assert waiting.started_at is None
    fake.job_running(s.name)
    running = k8s.status(client, target, eid)
    assert running.state == "running" and running.started_at is not None and running.error_kind is None
    fake.job_complete(s.name)
    done = k8s.status(client, target, eid)
    assert done.state == "done" and done.ended_at is not None and done.ended_at > (running.started_at or done.ended_at)


@pytest.mark.parametrize(("reason", "message"), [
    ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    ("DeadlineExceeded", "Job was active longer than specified deadline")])
def test_a_failed_job_is_failed_with_its_reason(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client, reason: str, message: str) -> None:
    s = sub()
    eid = k8s.submit(client, target, s).external_id
    fake.job_running(s.name)
    fake.job_failed(s.name, reason, message)
    job = k8s.status(client, target, eid)
    assert (job.state, job.error_kind, job.message) == ("failed", "permanent", f"{reason}: {message}")


def test_a_spot_node_shutdown_is_a_preemption_and_the_resumed_run_counts_it(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub(market="spot", replicas=1)
    eid = k8s.submit(client, target, s).external_id
    fake.job_running(s.name)
    fake.pod_preempted(s.name)  # the controller makes a replacement pod, not yet scheduled
    job = k8s.status(client, target, eid)
    assert job.state == "preempted" and job.preemptions == 1 and "TerminationByKubelet" in (job.message or "")
    fake.pods_unschedulable(s.name, UNSCHEDULABLE)
    assert "waits" in (k8s.status(client, target, eid).message or "")
    fake.job_running(s.name)
    resumed = k8s.status(client, target, eid)
    assert (resumed.state, resumed.preemptions) == ("running", 1)


@pytest.mark.parametrize("reason", ["PreemptionByScheduler", "DeletionByTaintManager"])
def test_other_disruptions_count_as_preemptions(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client, reason: str) -> None:
    s = sub(market="spot", replicas=1)
    eid = k8s.submit(client, target, s).external_id
    fake.job_running(s.name)
    fake.pod_preempted(s.name, reason, node_shutdown=False, replace=False)
    job = k8s.status(client, target, eid)
    assert (job.state, job.preemptions) == ("preempted", 1) and reason in (job.message or "")


def test_serving_states_follow_available_replicas_and_replica_failures(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s, q = sub(kind="serve", replicas=2), sub(kind="serve")
    eid, qid = (k8s.submit(client, target, x).external_id for x in (s, q))
    assert k8s.status(client, target, eid).state == "pending"
    fake.pods_unschedulable(s.name, UNSCHEDULABLE)
    assert k8s.status(client, target, eid).error_kind == "capacity"
    fake.deployment_available(s.name, 2)
    up = k8s.status(client, target, eid)
    assert (up.state, up.message) == ("running", "2/2 replicas available") and up.started_at is not None
    quota = ('pods "x-5d8f7c9b6-abcde" is forbidden: exceeded quota: gpu-quota, requested: '
             "requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=16, limited: requests.nvidia.com/gpu=16")
    fake.deployment_replica_failure(q.name, quota)
    job = k8s.status(client, target, qid)
    assert (job.state, job.error_kind, job.message) == ("pending", "quota", quota)


# -- cancel -------------------------------------------------------------------------------------------------
def test_cancel_deletes_a_running_job_in_the_background_and_leaves_an_ended_one(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    run, ended = sub(), sub()
    rid, eid = (k8s.submit(client, target, x).external_id for x in (run, ended))
    fake.job_running(run.name)
    fake.job_complete(ended.name)
    k8s.cancel(client, target, rid)
    k8s.cancel(client, target, eid)
    deletes = [p for m, p, _ in fake.requests if m == "DELETE"]
    assert deletes == [f"/apis/batch/v1/namespaces/default/jobs/{run.name}?propagationPolicy=Background"]
    assert fake.pods(run.name) == []
    assert k8s.status(client, target, rid).state == "cancelled"
    assert k8s.status(client, target, eid).state == "done"
    k8s.cancel(client, target, rid)  # again: a no-op


def test_cancel_serving_deletes_the_deployment_and_the_service(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub(kind="serve")
    eid = k8s.submit(client, target, s).external_id
    k8s.cancel(client, target, eid)
    assert not [key for key in fake.objects if key[0] in ("deployments", "services")]
    k8s.cancel(client, target, eid)
    assert k8s.status(client, target, eid).state == "cancelled"


# -- errors ---------------------------------------------------------------------------------------------------
def test_a_resource_quota_refusal_is_a_quota_error(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    s = sub()
    msg = (f'jobs.batch "{s.name}" is forbidden: exceeded quota: object-counts, requested: count/jobs.batch=1, '
           "used: count/jobs.batch=10, limited: count/jobs.batch=10")
    fake.fail_next(403, "Forbidden", msg, method="POST")
    with pytest.raises(LaunchError) as e:
        k8s.submit(client, target, s)
    assert (e.value.kind, e.value.code, e.value.call, e.value.args[0]) == (
        "quota", "Forbidden", "create_namespaced_job", msg)


def test_an_invalid_object_is_permanent_with_the_api_servers_message(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    msg = 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value'
    fake.fail_next(422, "Invalid", msg, method="POST")
    with pytest.raises(LaunchError) as e:
        k8s.submit(client, target, sub())
    assert (e.value.kind, e.value.code, e.value.args[0]) == ("permanent", "Invalid", msg)


def test_an_error_without_a_status_is_permanent_with_the_text(
        fake: KubernetesFake, target: KubernetesTarget, client: k8s.Client) -> None:
    fake.fail_next(502, raw="Bad Gateway from the load balancer")
    with pytest.raises(LaunchError) as e:
        k8s.find(client, target, {})
    assert e.value.kind == "permanent" and e.value.code is None
    assert "502" in str(e.value) and "Bad Gateway from the load balancer" in str(e.value)


def test_an_unreachable_cluster_is_named_with_its_context_and_host(
        fake: KubernetesFake, target: KubernetesTarget) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = fake.url
    cfg = Path(target.kubeconfig or "")
    cfg.write_text(cfg.read_text().replace(url, f"https://127.0.0.1:{port}"))
    client = k8s.make_client(target)
    with pytest.raises(LaunchError, match=rf"cluster {CONTEXT} at https://127.0.0.1:{port} cannot be reached: "
                                          r".*[Cc]onnection refused") as e:
        k8s.status(client, target, "default/job/x")
    assert e.value.kind == "unreachable" and e.value.call == "read_namespaced_job"


def test_a_wrong_token_is_permanent(fake: KubernetesFake, target: KubernetesTarget) -> None:
    cfg = Path(target.kubeconfig or "")
    cfg.write_text(cfg.read_text().replace(fake.token, "expired"))
    with pytest.raises(LaunchError) as e:
        k8s.find(k8s.make_client(target), target, {})
    assert (e.value.kind, e.value.code) == ("permanent", "Unauthorized")


def test_make_client_refuses_a_missing_kubeconfig_or_context(fake: KubernetesFake, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="cannot be used") as e:
        k8s.make_client(make_target(fake, tmp_path, kubeconfig=str(tmp_path / "none")))
    assert e.value.kind == "unreachable"
    with pytest.raises(LaunchError, match="nope"):
        k8s.make_client(make_target(fake, tmp_path, context="nope"))
    assert k8s.make_client(make_target(fake, tmp_path, context=None)).context == CONTEXT  # the current one


def test_without_the_sdk_make_client_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                     target: KubernetesTarget) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(ExtraMissing, match=r"finops\[kubernetes\]"):
        k8s.make_client(target)


def test_a_foreign_id_is_refused(target: KubernetesTarget, client: k8s.Client) -> None:
    for bad in ("default/x", "default/pod/x", "/job/x"):
        with pytest.raises(LaunchError, match="not a Kubernetes launch id"):
            k8s.status(client, target, bad)
