"""Where Kubernetes pods ran: the launcher's ``status`` reports each scheduled pod's node (its providerID and
billing ResourceId, the accelerators the pod asked for and the node has, when the pod ran), read with the
official client from tests/fakes/kubernetes.py; ``sync`` keeps them on the launch in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finops.config import KubernetesTarget, parse
from finops.ledger import Ledger, NewLaunch
from placement import dispatch
from placement.launchers import kubernetes as k8s
from placement.launchers.base import NodeUse
from tests.fakes.kubernetes import CLOCK0, KubernetesFake
from tests.fakes.server import make_certificate
from tests.placement.test_launcher_kubernetes import CONTEXT, make_target, sub
from tests.test_reconcile import SPECS, _decision, _leg

EKS_A = "aws:///us-east-1a/i-0a1b2c3d4e5f60718"
EKS_B = "aws:///us-east-1b/i-0fedcba9876543210"
GPUS = {"nvidia.com/gpu": "8"}
AKS = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/MC_ml_gpu_eastus/providers/Microsoft.Compute"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("k8s-nodes-tls"))


@pytest.fixture
def fake(tls: tuple[Path, Path]) -> Iterator[KubernetesFake]:
    with KubernetesFake(tls=tls) as f:
        f.add_node("ip-10-0-1-17.ec2.internal", EKS_A, GPUS)
        f.add_node("ip-10-0-2-33.ec2.internal", EKS_B, GPUS)
        yield f


@pytest.fixture
def target(fake: KubernetesFake, tmp_path: Path) -> KubernetesTarget:
    return make_target(fake, tmp_path)


@pytest.mark.parametrize(("provider_id", "annotations", "want"), [
    (EKS_A, None, "i-0a1b2c3d4e5f60718"),
    ("gce://ml-prod/us-central1-a/gke-gpu-pool-1a2b3c4d-x9z8", {k8s.GKE_INSTANCE_ID: "1631541680007170157"},
     "//compute.googleapis.com/projects/ml-prod/zones/us-central1-a/instances/1631541680007170157"),
    ("gce://ml-prod/us-central1-a/gke-gpu-pool-1a2b3c4d-x9z8", None,
     "//compute.googleapis.com/projects/ml-prod/zones/us-central1-a/instances/gke-gpu-pool-1a2b3c4d-x9z8"),
    (f"azure://{AKS}/virtualMachines/aks-gpu-31415926-vm0", None,
     f"{AKS.lower()}/virtualmachines/aks-gpu-31415926-vm0"),
    (f"azure://{AKS}/virtualMachineScaleSets/aks-gpu-31415926-vmss/virtualMachines/3", None,
     f"{AKS.lower()}/virtualmachinescalesets/aks-gpu-31415926-vmss"),
    ("kind://docker/kind/kind-worker", None, None),
    ("aws:///us-east-1a/fargate-ip-10-0-1-17", None, None),
    (None, None, None),
])
def test_provider_ids_map_to_the_resource_id_of_each_cloud_s_bill(
        provider_id: str | None, annotations: dict[str, str] | None, want: str | None) -> None:
    assert k8s.billing_resource_id(provider_id, annotations) == want


def test_a_training_job_reports_its_pods_nodes_and_when_they_ran(fake: KubernetesFake,
                                                                  target: KubernetesTarget) -> None:
    client = k8s.make_client(target)
    s = sub(replicas=2, accelerator_count=4.0)
    job = k8s.submit(client, target, s)
    assert k8s.status(client, target, job.external_id).nodes == ()  # pending: nowhere yet
    fake.job_running(s.name, nodes=["ip-10-0-1-17.ec2.internal", "ip-10-0-2-33.ec2.internal"])
    running = k8s.status(client, target, job.external_id)
    assert running.state == "running"
    got = sorted(running.nodes, key=lambda n: n.node)
    assert [(n.node, n.provider_id, n.resource_id, n.accelerators, n.node_accelerators) for n in got] == [
        ("ip-10-0-1-17.ec2.internal", EKS_A, "i-0a1b2c3d4e5f60718", 4.0, 8.0),
        ("ip-10-0-2-33.ec2.internal", EKS_B, "i-0fedcba9876543210", 4.0, 8.0)]
    assert all(n.started_at is not None and n.started_at > CLOCK0 and n.ended_at is None for n in got)
    assert {n.pod for n in got} == {p["metadata"]["name"] for p in fake.pods(s.name)}
    fake.job_complete(s.name)
    done = k8s.status(client, target, job.external_id)
    assert done.state == "done" and len(done.nodes) == 2
    for n in done.nodes:
        assert n.ended_at is not None and n.started_at is not None and n.ended_at > n.started_at
    # each node read once per status call, by name
    reads = [p for m, p, _ in fake.requests if m == "GET" and p.startswith("/api/v1/nodes/")]
    assert sorted(set(reads)) == ["/api/v1/nodes/ip-10-0-1-17.ec2.internal", "/api/v1/nodes/ip-10-0-2-33.ec2.internal"]
    assert len(reads) == 4


def test_a_preempted_pod_keeps_its_node_and_the_replacement_reports_its_own(fake: KubernetesFake,
                                                                             target: KubernetesTarget) -> None:
    client = k8s.make_client(target)
    s = sub(replicas=1, market="spot")
    job = k8s.submit(client, target, s)
    fake.job_running(s.name, nodes=["ip-10-0-1-17.ec2.internal"])
    fake.pod_preempted(s.name)
    fake.job_running(s.name, nodes=["ip-10-0-2-33.ec2.internal"])
    nodes = {n.resource_id: n for n in k8s.status(client, target, job.external_id).nodes}
    assert set(nodes) == {"i-0a1b2c3d4e5f60718", "i-0fedcba9876543210"}
    first, second = nodes["i-0a1b2c3d4e5f60718"], nodes["i-0fedcba9876543210"]
    assert first.ended_at is not None and second.ended_at is None
    assert second.started_at is not None and second.started_at > first.ended_at


def test_a_serving_deployment_reports_its_replicas_nodes(fake: KubernetesFake, target: KubernetesTarget) -> None:
    client = k8s.make_client(target)
    s = sub(kind="serve", replicas=2, accelerator_count=1.0)
    dep = k8s.submit(client, target, s)
    fake.deployment_available(s.name, 2, nodes=["ip-10-0-1-17.ec2.internal"])
    nodes = k8s.status(client, target, dep.external_id).nodes
    assert [(n.resource_id, n.accelerators, n.node_accelerators) for n in nodes] == [("i-0a1b2c3d4e5f60718", 1, 8)] * 2


def test_a_node_the_user_may_not_read_is_reported_without_its_bill_id(fake: KubernetesFake,
                                                                       target: KubernetesTarget) -> None:
    client = k8s.make_client(target)
    s = sub(replicas=1)
    job = k8s.submit(client, target, s)
    fake.job_running(s.name, nodes=["ip-10-0-1-17.ec2.internal"])
    fake.fail_next(403, "Forbidden", 'nodes "ip-10-0-1-17.ec2.internal" is forbidden: User "tester" cannot get '
                   'resource "nodes" in API group "" at the cluster scope', resource="nodes")
    got = k8s.status(client, target, job.external_id)
    assert got.state == "running"  # the state is still known
    (n,) = got.nodes
    assert (n.node, n.provider_id, n.resource_id, n.accelerators, n.node_accelerators) == (
        "ip-10-0-1-17.ec2.internal", None, None, 8.0, 0.0)


def test_sync_records_the_nodes_on_the_launch_and_keeps_them_as_pods_come_and_go(
        fake: KubernetesFake, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig", context=CONTEXT)
    cfg = parse({"ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
                 "launch": {"targets": {"eks": {"kind": "kubernetes", "provider": "aws", "region": "us-east-1",
                                                "kubeconfig": str(kubeconfig), "context": CONTEXT,
                                                "node_pools": [{"instance_type": "p4d.24xlarge", "spot": True}]}}}})
    target = cfg.launch.target("eks")
    assert isinstance(target, KubernetesTarget)
    client = k8s.make_client(target)
    led = Ledger(cfg.ledger_url())
    (wid,) = led.add([(SPECS[3], None)])
    led.record("run-1", [_decision(wid, SPECS[3].name, SPECS[3].team, _leg("aws", "p4d.24xlarge", 32.77), 131.0)])
    (rec,) = led.placements()
    s = sub(replicas=2, market="spot", accelerator_count=2.0, workload_id=wid, placement_id=rec.id)
    job = k8s.submit(client, target, s)
    led.submit(wid, [NewLaunch(placement_id=rec.id, leg=0, target="eks", kind="kubernetes",
                               external_id=job.external_id, name=job.name, provider="aws", region="us-east-1",
                               instance_type="p4d.24xlarge", market="spot", replicas=1)])
    clients: Any = lambda name: client  # noqa: E731
    fake.job_running(s.name, nodes=["ip-10-0-1-17.ec2.internal", "ip-10-0-2-33.ec2.internal"])
    dispatch.sync(cfg, led, clients, orphans=False)
    (lau,) = led.launches()
    assert lau.state == "running"
    assert sorted((r["resource_id"], r["accelerators"], r["node_accelerators"], r["ended_at"]) for r in lau.nodes) == [
        ("i-0a1b2c3d4e5f60718", 2.0, 8.0, None), ("i-0fedcba9876543210", 2.0, 8.0, None)]
    assert all(r["started_at"] for r in lau.nodes)
    # a pod gone from the API (garbage-collected) keeps its record; the other's end is added when it ends
    gone = lau.nodes[0]["pod"]
    fake.objects.pop(("pods", "default", gone))
    fake.job_complete(s.name)
    dispatch.sync(cfg, led, clients, orphans=False)
    (lau,) = Ledger(cfg.ledger_url(), read_only=True).launches()
    assert lau.state == "done" and lau.ended_at is not None
    by_pod = {r["pod"]: r for r in lau.nodes}
    assert len(by_pod) == 2 and by_pod[gone]["ended_at"] is None
    (kept,) = (r for p, r in by_pod.items() if p != gone)
    assert kept["ended_at"] is not None and kept["ended_at"] > kept["started_at"]
    assert NodeUse(**{**kept, "started_at": None, "ended_at": None}).resource_id == kept["resource_id"]
