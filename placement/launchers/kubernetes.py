"""Kubernetes launcher (EKS, GKE, AKS): training as a ``batch/v1`` Job, serving as an ``apps/v1``
Deployment with a ``v1`` Service. Every object and pod carries the finops tags as labels (plus
``app.kubernetes.io/instance: <name>``, which selectors use, and Kueue's queue label when the target
names a queue: the Job is then created suspended for Kueue to admit).

Pods ask for the accelerators as extended resources and are pinned to the offer's machines: the
``node.kubernetes.io/instance-type`` label (GKE TPUs: the TPU accelerator and topology labels) and a
node affinity on the cloud's spot label (``In`` on spot, ``NotIn`` on demand), with the toleration of
the taint the cloud puts on spot nodes. A Job ignores pod disruptions (``podFailurePolicy``), so a spot
interruption does not use up its ``backoffLimit``: the controller recreates the pod and the run resumes
from its checkpoint.

The cloud bills the nodes, not the pods, so :func:`status` also reports where the pods ran
(:class:`~placement.launchers.base.NodeUse`: node, its ``spec.providerID`` and billing ``ResourceId`` —
:func:`billing_resource_id` —, the accelerators the pod asked for and the node has, when the pod ran);
reading a node needs ``get`` on ``nodes`` (cluster scope): without it the pod is reported with no node
details, and reconciliation says it could not cost it.

The client is the official ``kubernetes`` package's, made from a kubeconfig (its credentials: the
kubeconfig's user, never finops config). The contract is in :mod:`placement.launchers.base`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from finops import offers, providers
from finops.config import KubernetesTarget
from placement.launchers.base import (
    PLACEMENT_TAG,
    TAG_KEYS,
    ErrorKind,
    ExtraMissing,
    Job,
    JobState,
    LaunchError,
    NodeUse,
    SpecIncomplete,
    Submission,
    command_of,
    fit_tags,
)

KIND = "kubernetes"
RUNTIME_MARGIN = 2.0
"""A Job's ``activeDeadlineSeconds`` is this multiple of the expected runtime (at least an hour)."""
BACKOFF_LIMIT = 3
"""Pod failures (not spot disruptions) a Job tolerates before it fails."""
NAME_LABEL = "app.kubernetes.io/instance"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Spot node labels per cloud (a node carrying any one is spot) and the taint spot nodes carry:
# - EKS managed node groups label spot nodes eks.amazonaws.com/capacityType: SPOT ("Managed node groups",
#   Amazon EKS User Guide; no taint by default); Karpenter labels karpenter.sh/capacity-type: spot.
# - GKE labels Spot VM nodes cloud.google.com/gke-spot: "true"; Standard pools are tainted
#   cloud.google.com/gke-spot="true":NoSchedule where created so, Autopilot adds it ("Spot VMs", GKE docs).
# - AKS spot pools carry kubernetes.azure.com/scalesetpriority: spot and the taint
#   kubernetes.azure.com/scalesetpriority=spot:NoSchedule ("Add an Azure Spot node pool", AKS docs).
SPOT_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws": (("eks.amazonaws.com/capacityType", "SPOT"), ("karpenter.sh/capacity-type", "spot")),
    "gcp": (("cloud.google.com/gke-spot", "true"),),
    "azure": (("kubernetes.azure.com/scalesetpriority", "spot"),),
}
SPOT_TAINTS = {"gcp": ("cloud.google.com/gke-spot", "true"), "azure": ("kubernetes.azure.com/scalesetpriority", "spot")}
# GKE TPU node labels ("Plan TPUs in GKE"): cloud.google.com/gke-tpu-accelerator per version, and the
# single-host topology by chips. Multi-host slices need a JobSet (one pod per host): not launched here.
GKE_TPU = {"TPU-v4": "tpu-v4-podslice", "TPU-v5e": "tpu-v5-lite-podslice", "TPU-v5p": "tpu-v5p-slice",
           "TPU-v6e": "tpu-v6e-slice"}
GKE_TPU_TOPOLOGY = {("TPU-v5e", 1): "1x1", ("TPU-v5e", 4): "2x2", ("TPU-v5e", 8): "2x4", ("TPU-v6e", 1): "1x1",
                    ("TPU-v6e", 4): "2x2", ("TPU-v6e", 8): "2x4", ("TPU-v4", 4): "2x2x1", ("TPU-v5p", 4): "2x2x1"}
# Pods ended by a spot node's shutdown or an eviction for it: the pod's reason (kubelet's graceful node
# shutdown) or its DisruptionTarget condition's reason.
SHUTDOWN_REASONS = {"Terminated", "NodeShutdown", "Shutdown"}
DISRUPTION_REASONS = {"TerminationByKubelet", "PreemptionByScheduler", "DeletionByTaintManager"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "google.com/tpu", "aws.amazon.com/neuron", "amd.com/gpu")
"""The device plugins' extended resources a pod asks accelerators with (see :func:`_accelerator_resource`)."""
GKE_INSTANCE_ID = "container.googleapis.com/instance_id"
"""GKE's node annotation holding the Compute Engine instance's numeric id."""
_AWS_INSTANCE = re.compile(r"i-[0-9a-f]+")
_AZURE_RG = r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute"
_AZURE_VM = re.compile(_AZURE_RG + r"/virtualmachines/[^/]+")
_AZURE_VMSS = re.compile(f"({_AZURE_RG}/virtualmachinescalesets/[^/]+)/virtualmachines/[^/]+")


@dataclass(frozen=True)
class Client:
    """The API groups of one cluster, and how to name the cluster in messages."""

    batch: Any
    apps: Any
    core: Any
    context: str
    host: str


def make_client(target: KubernetesTarget) -> Client:
    try:
        from kubernetes import client as k8s
        from kubernetes import config as kconfig
    except ImportError as e:
        raise ExtraMissing(KIND, providers.target(KIND).extra or KIND, "kubernetes") from e
    where = target.kubeconfig or "the default kubeconfig"
    try:
        api = kconfig.new_client_from_config(config_file=target.kubeconfig, context=target.context)
        context = target.context or kconfig.list_kube_config_contexts(target.kubeconfig)[1]["name"]
    except (kconfig.ConfigException, OSError, ValueError, KeyError, TypeError) as e:
        raise LaunchError("unreachable", f"{where} cannot be used: {e}", call="load_kube_config") from None
    return Client(k8s.BatchV1Api(api), k8s.AppsV1Api(api), k8s.CoreV1Api(api), context, api.configuration.host)


# -- submit ------------------------------------------------------------------------------------------
def submit(client: Client, target: KubernetesTarget, sub: Submission) -> Job:
    missing = [what for what, ok in (("an image", sub.image), ("a command", sub.command)) if not ok]
    if missing:
        raise SpecIncomplete(f"workload {sub.workload!r} needs {' and '.join(missing)} (launch.image, "
                             f"launch.command) to run on Kubernetes")
    ns, labels = target.namespace, _labels(target, sub)
    pod = _pod(target, sub)
    if sub.kind == "train":
        spec: dict[str, Any] = {
            "parallelism": sub.replicas, "completions": sub.replicas, "backoffLimit": BACKOFF_LIMIT,
            "completionMode": "Indexed" if sub.replicas > 1 else "NonIndexed",
            "activeDeadlineSeconds": max(3600, math.ceil(sub.runtime_hours * 3600 * RUNTIME_MARGIN)),
            # Disruptions (spot reclaim, preemption) do not count as failures: the pod is recreated.
            "podFailurePolicy": {"rules": [{"action": "Ignore",
                                            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
            "template": {"metadata": {"labels": labels}, "spec": {**pod, "restartPolicy": "Never"}}}
        if target.queue:
            spec["suspend"] = True  # Kueue unsuspends the Job when its queue admits it
        body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": sub.name, "labels": labels}, "spec": spec}
        job = _ensure(client, "job", client.batch.read_namespaced_job, client.batch.create_namespaced_job, ns, body)
        return _train_job(job, None)
    port = {"containerPort": target.serve_port, "name": "http"}
    pod["containers"][0]["ports"] = [port]
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": sub.name, "labels": labels},
           "spec": {"replicas": sub.replicas, "selector": {"matchLabels": {NAME_LABEL: sub.name}},
                    "template": {"metadata": {"labels": labels}, "spec": {**pod, "restartPolicy": "Always"}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": sub.name, "labels": labels},
           "spec": {"selector": {NAME_LABEL: sub.name},
                    "ports": [{"name": "http", "port": target.serve_port, "targetPort": "http"}]}}
    obj = _ensure(client, "deployment", client.apps.read_namespaced_deployment,
                  client.apps.create_namespaced_deployment, ns, dep)
    _ensure(client, "service", client.core.read_namespaced_service, client.core.create_namespaced_service, ns, svc)
    return _serve_job(obj, None)


def _labels(target: KubernetesTarget, sub: Submission) -> dict[str, str]:
    out = {**fit_tags(sub.tags, providers.target(KIND).labels), NAME_LABEL: sub.name}
    if target.queue:
        out[QUEUE_LABEL] = target.queue
    return out


def _pod(target: KubernetesTarget, sub: Submission) -> dict[str, Any]:
    """The pod spec (without restartPolicy): one container, the accelerators, the node constraints."""
    container: dict[str, Any] = {"name": "main", "image": sub.image, "command": command_of(sub.command),
                                 "env": [{"name": k, "value": v} for k, v in sorted(sub.env.items())]}
    selector, tolerations = {INSTANCE_TYPE_LABEL: sub.instance_type}, []
    if sub.accelerator_name and sub.accelerator_count:
        resource = _accelerator_resource(sub.accelerator_name)
        count = math.ceil(sub.accelerator_count)  # a share of a GPU still takes the device
        if resource == "google.com/tpu" and target.provider == "gcp":
            selector, count = _gke_tpu(sub)
            tolerations.append({"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"})
        container["resources"] = {"limits": {resource: str(count)}}
    spot_labels = SPOT_LABELS[target.provider]
    if sub.spot:  # any of the cloud's spot labels (terms are ORed)
        terms = [{"matchExpressions": [{"key": k, "operator": "In", "values": [v]}]} for k, v in spot_labels]
        if target.provider in SPOT_TAINTS:
            key, value = SPOT_TAINTS[target.provider]
            tolerations.append({"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"})
    else:  # none of them (expressions are ANDed; NotIn also matches nodes without the label)
        terms = [{"matchExpressions": [{"key": k, "operator": "NotIn", "values": [v]} for k, v in spot_labels]}]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    return {"containers": [container], "nodeSelector": selector, "affinity": affinity, "tolerations": tolerations}


def _accelerator_resource(name: str) -> str:
    """The device plugin's extended resource for a canonical accelerator name (finops.offers)."""
    up = name.upper()
    if up.startswith("TPU"):
        return "google.com/tpu"
    if up.startswith(("TRAINIUM", "INFERENTIA")):
        return "aws.amazon.com/neuron"
    if up.startswith(("MI", "V620", "V710", "RADEON")):
        return "amd.com/gpu"
    return "nvidia.com/gpu"


def _gke_tpu(sub: Submission) -> tuple[dict[str, str], int]:
    """GKE's TPU node selector (version and topology; the offer's ``instance_type`` is a slice name such
    as ``tpu-v5litepod-8``, not a node label) and the chips per pod, for a single-host slice."""
    name = offers.canonical_accelerator(sub.accelerator_name) or ""
    chips = offers.tpu_chips(sub.instance_type) or math.ceil(sub.accelerator_count or 0)
    topology = GKE_TPU_TOPOLOGY.get((name, chips))
    if name not in GKE_TPU or topology is None:
        raise LaunchError("permanent", f"{sub.instance_type} ({name}, {chips} chips) is not a single-host TPU slice "
                          "this launcher can place on GKE (multi-host slices need a JobSet)", call="submit")
    return {"cloud.google.com/gke-tpu-accelerator": GKE_TPU[name], "cloud.google.com/gke-tpu-topology": topology}, chips


def _ensure(client: Client, what: str, read: Callable[..., Any], create: Callable[..., Any], ns: str,
            body: dict[str, Any]) -> Any:
    """The object named in ``body``: read it, create it if missing, read it again if another creator won."""
    name = body["metadata"]["name"]
    found = _read(client, f"read_namespaced_{what}", read, name, ns)
    if found is not None:
        return found
    from kubernetes.client.exceptions import ApiException

    with _calls(client, f"create_namespaced_{what}"):
        try:
            return create(ns, body)
        except ApiException as e:
            if e.status != 409:
                raise
    again = _read(client, f"read_namespaced_{what}", read, name, ns)
    if again is None:  # created and deleted in between: say so rather than loop
        raise LaunchError("permanent", f"{what} {ns}/{name} was created elsewhere and is gone",
                          call=f"create_namespaced_{what}", code="AlreadyExists")
    return again


# -- find, status, cancel ------------------------------------------------------------------------------
def find(client: Client, target: KubernetesTarget, tags: Mapping[str, str]) -> list[Job]:
    fitted = fit_tags(tags, providers.target(KIND).labels)
    selector = ",".join(f"{k}={v}" for k, v in sorted(fitted.items())) or PLACEMENT_TAG
    ns = target.namespace
    with _calls(client, "list_namespaced_job"):
        jobs = client.batch.list_namespaced_job(ns, label_selector=selector).items
    with _calls(client, "list_namespaced_deployment"):
        deps = client.apps.list_namespaced_deployment(ns, label_selector=selector).items
    found = sorted([*((j, _train_job(j, None)) for j in jobs), *((d, _serve_job(d, None)) for d in deps)],
                   key=lambda p: p[0].metadata.creation_timestamp or _EPOCH, reverse=True)
    return [job for _, job in found]


def status(client: Client, target: KubernetesTarget, external_id: str) -> Job:
    ns, kind, name = _parse(external_id)
    convert: Callable[[Any, list[Any] | None], Job]
    if kind == "job":
        obj = _read(client, "read_namespaced_job", client.batch.read_namespaced_job, name, ns)
        convert, selector = _train_job, f"job-name={name}"
    else:
        obj = _read(client, "read_namespaced_deployment", client.apps.read_namespaced_deployment, name, ns)
        convert, selector = _serve_job, f"{NAME_LABEL}={name}"
    if obj is None:  # deleted (cancelled) outside finops or by cancel()
        return Job(external_id=external_id, name=name, state="cancelled",
                   message=f"{kind} {ns}/{name} no longer exists")
    with _calls(client, "list_namespaced_pod"):
        pods = client.core.list_namespaced_pod(ns, label_selector=selector).items
    return replace(convert(obj, pods), nodes=_node_uses(client, pods))


def cancel(client: Client, target: KubernetesTarget, external_id: str) -> None:
    ns, kind, name = _parse(external_id)
    if kind == "job":
        job = _read(client, "read_namespaced_job", client.batch.read_namespaced_job, name, ns)
        if job is None or _train_job(job, None).state in ("done", "failed"):
            return  # ended: keep its record
        _delete(client, "job", client.batch.delete_namespaced_job, name, ns)
    else:
        _delete(client, "deployment", client.apps.delete_namespaced_deployment, name, ns)
        _delete(client, "service", client.core.delete_namespaced_service, name, ns)


def _delete(client: Client, what: str, delete: Callable[..., Any], name: str, ns: str) -> None:
    from kubernetes.client.exceptions import ApiException

    with _calls(client, f"delete_namespaced_{what}"):
        try:  # Background: the pods go with it, without waiting
            delete(name, ns, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise


def _parse(external_id: str) -> tuple[str, str, str]:
    parts = external_id.split("/")
    if len(parts) != 3 or parts[1] not in ("job", "deployment") or not all(parts):
        raise LaunchError("permanent", f"{external_id!r} is not a Kubernetes launch id "
                          "(<namespace>/job/<name> or <namespace>/deployment/<name>)")
    return parts[0], parts[1], parts[2]


# -- states ----------------------------------------------------------------------------------------------
def _true(conditions: Any) -> dict[str, Any]:
    return {c.type: c for c in conditions or [] if c.status == "True"}


def _disrupted(pod: Any) -> str | None:
    """Why a pod ended on a node's shutdown or an eviction (None: it did not)."""
    st = pod.status
    cond = _true(st.conditions).get("DisruptionTarget")
    if cond is not None and cond.reason in DISRUPTION_REASONS:
        return f"{cond.reason}: {cond.message}" if cond.message else cond.reason
    if st.phase == "Failed" and st.reason in SHUTDOWN_REASONS:
        return f"{st.reason}: {st.message}" if st.message else st.reason
    return None


def _unschedulable(pods: list[Any]) -> str | None:
    """The scheduler's message for the first pending pod it cannot place."""
    for p in pods:
        if p.status.phase == "Pending":
            for c in p.status.conditions or []:
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                    return str(c.message or "pod unschedulable")
    return None


def _from_pods(pods: list[Any] | None, counted_running: bool) -> tuple[JobState, str | None, ErrorKind | None, int]:
    """A live workload's state from its pods: running, preempted (a spot node reclaimed and nothing
    running since), pending for capacity (unschedulable), or pending. ``pods`` None: from counts alone."""
    if pods is None:
        return ("running" if counted_running else "pending"), None, None, 0
    disrupted = [r for r in map(_disrupted, pods) if r]
    if counted_running or any(p.status.phase == "Running" for p in pods):
        return "running", None, None, len(disrupted)
    wait = _unschedulable(pods)
    if disrupted:
        more = f"; the replacement waits: {wait}" if wait else ""
        return "preempted", f"spot node reclaimed ({disrupted[-1]}){more}", None, len(disrupted)
    if wait:
        return "pending", wait, "capacity", 0
    return "pending", None, None, 0


def _train_job(job: Any, pods: list[Any] | None) -> Job:
    meta, st = job.metadata, job.status
    conds = _true(st.conditions if st else None)
    base: dict[str, Any] = {"external_id": f"{meta.namespace}/job/{meta.name}", "name": meta.name,
                            "tags": _tags(meta.labels)}
    started = st.start_time if st else None
    preemptions = sum(1 for p in pods or [] if _disrupted(p))
    if "Complete" in conds:
        return Job(**base, state="done", started_at=started, ended_at=st.completion_time, preemptions=preemptions)
    if "Failed" in conds:
        c = conds["Failed"]
        return Job(**base, state="failed", message=f"{c.reason}: {c.message}" if c.message else c.reason,
                   error_kind="permanent", started_at=started, ended_at=c.last_transition_time, preemptions=preemptions)
    if "Suspended" in conds or (job.spec and job.spec.suspend):
        queue = (meta.labels or {}).get(QUEUE_LABEL)
        return Job(**base, state="pending", message=f"suspended: waiting for Kueue queue {queue!r} to admit it"
                   if queue else "suspended")
    state, message, kind, n = _from_pods(pods, bool(st and st.ready))
    return Job(**base, state=state, message=message, error_kind=kind, preemptions=n,
               started_at=started if state == "running" else None)


def _serve_job(dep: Any, pods: list[Any] | None) -> Job:
    meta, st = dep.metadata, dep.status
    base: dict[str, Any] = {"external_id": f"{meta.namespace}/deployment/{meta.name}", "name": meta.name,
                            "tags": _tags(meta.labels)}
    conds = _true(st.conditions if st else None)
    available = (st.available_replicas or 0) if st else 0
    if not available and "ReplicaFailure" in conds:  # the ReplicaSet cannot create pods (a quota, a policy)
        message = str(conds["ReplicaFailure"].message)
        quota = "exceeded quota" in message.lower()
        return Job(**base, state="pending" if quota else "failed", message=message,
                   error_kind="quota" if quota else "permanent")
    state, msg, kind, n = _from_pods(pods, available > 0)
    if state == "running":
        want = dep.spec.replicas if dep.spec else None
        msg = f"{available}/{want} replicas available" if want is not None else None
        since = conds["Available"].last_transition_time if "Available" in conds else None
        return Job(**base, state="running", message=msg, started_at=since, preemptions=n)
    return Job(**base, state=state, message=msg, error_kind=kind, preemptions=n)


# -- nodes ---------------------------------------------------------------------------------------------------
def billing_resource_id(provider_id: str | None, annotations: Mapping[str, str] | None = None) -> str | None:
    """The ``ResourceId`` a node's VM carries in its cloud's FOCUS bill, from the node's ``spec.providerID``
    (None: not a VM of a cloud finops bills — a kind cluster, Fargate, an unknown scheme):

    - **EKS** ``aws:///us-east-1a/i-0abc…`` → ``i-0abc…``: the AWS FOCUS export (and CUR's
      ``line_item_resource_id``) names an EC2 instance by its id. Rows naming it by ARN
      (``arn:aws:ec2:…:instance/i-0abc…``) match too (:func:`finops.reconcile.node_key`).
    - **GKE** ``gce://<project>/<zone>/<instance-name>`` →
      ``//compute.googleapis.com/projects/<project>/zones/<zone>/instances/<id>``: the detailed billing
      export's ``resource.global_name`` (GCP's FOCUS ``ResourceId``) ends in the instance's *numeric* id,
      which GKE writes on the node as the ``container.googleapis.com/instance_id`` annotation; without it,
      the instance name (what ``resource.name`` holds) is used.
    - **AKS** ``azure:///subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>``
      → the ARM id, lower-cased (Azure's cost exports write ResourceId lower case; matching ignores case).
      A scale-set node (``…/virtualMachineScaleSets/<ss>/virtualMachines/<n>``, AKS's default) → the
      scale set's ARM id: Azure bills a scale set's instances together under the scale set, so
      reconciliation reports such pods rather than charge them a share of every instance
      (:func:`finops.reconcile.pod_runs`).
    """
    if not provider_id:
        return None
    scheme, sep, rest = provider_id.partition("://")
    if not sep:
        return None
    parts = [p for p in rest.split("/") if p]
    if scheme == "aws":
        last = parts[-1] if parts else ""
        return last if _AWS_INSTANCE.fullmatch(last) else None
    if scheme == "gce" and len(parts) == 3:
        project, zone, name = parts
        instance = (annotations or {}).get(GKE_INSTANCE_ID) or name
        return f"//compute.googleapis.com/projects/{project}/zones/{zone}/instances/{instance}"
    if scheme == "azure":
        arm = "/" + "/".join(parts).lower()
        if _AZURE_VM.fullmatch(arm):
            return arm
        scale_set = _AZURE_VMSS.fullmatch(arm)
        return scale_set.group(1) if scale_set else None
    return None


def _node_uses(client: Client, pods: list[Any] | None) -> tuple[NodeUse, ...]:
    """Where the scheduled pods ran (each node read once)."""
    nodes: dict[str, Any] = {}
    out = []
    for p in pods or []:
        name = p.spec.node_name if p.spec else None
        if not name:
            continue  # not scheduled: it has cost nothing yet
        if name not in nodes:
            nodes[name] = _read_node(client, name)
        node = nodes[name]
        asked = _accelerators(_requested(p.spec))
        resources = [r for r, n in asked.items() if n] or list(ACCELERATOR_RESOURCES)
        allocatable = _accelerators((node.status.allocatable if node is not None and node.status else None) or {})
        provider_id = node.spec.provider_id if node is not None and node.spec else None
        annotations = node.metadata.annotations if node is not None and node.metadata else None
        started, ended = _pod_times(p)
        out.append(NodeUse(pod=p.metadata.name, node=name, provider_id=provider_id,
                           resource_id=billing_resource_id(provider_id, annotations),
                           accelerators=sum(asked.values()), node_accelerators=sum(allocatable[r] for r in resources),
                           started_at=started, ended_at=ended))
    return tuple(out)


def _read_node(client: Client, name: str) -> Any:
    """The node, or None when it is gone or the kubeconfig's user may not read nodes (cluster scope)."""
    from kubernetes.client.exceptions import ApiException

    with _calls(client, "read_node"):
        try:
            return client.core.read_node(name)
        except ApiException as e:
            if e.status not in (403, 404):
                raise
            return None


def _requested(spec: Any) -> dict[str, str]:
    """The extended resources a pod asks for, over its containers (requests, else limits: for extended
    resources Kubernetes requires them equal, and defaults requests to limits)."""
    total: dict[str, str] = {}
    for c in spec.containers or []:
        res = c.resources
        asked = {**((res.limits or {}) if res else {}), **((res.requests or {}) if res else {})}
        for k, v in asked.items():
            if k in ACCELERATOR_RESOURCES:
                total[k] = str(_count(total.get(k)) + _count(v))
    return total


def _accelerators(resources: Mapping[str, str]) -> dict[str, float]:
    return {r: _count(resources.get(r)) for r in ACCELERATOR_RESOURCES}


def _count(quantity: str | None) -> float:
    """An extended resource's quantity (whole devices: ``"8"``); anything else counts 0."""
    try:
        return max(float(quantity), 0.0) if quantity is not None else 0.0
    except ValueError:
        return 0.0


def _pod_times(pod: Any) -> tuple[datetime | None, datetime | None]:
    """When a pod started (``status.startTime``) and, once it ended, when its last container finished
    (an ended pod whose containers never ran: when it was last marked ended)."""
    st = pod.status
    if st is None:
        return None, None
    if st.phase not in ("Succeeded", "Failed"):
        return st.start_time, None
    finished = [c.state.terminated.finished_at for c in st.container_statuses or []
                if c.state and c.state.terminated and c.state.terminated.finished_at]
    if not finished:
        finished = [c.last_transition_time for c in st.conditions or [] if c.last_transition_time]
    return st.start_time, max(finished) if finished else None


def _tags(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k in TAG_KEYS}


# -- errors ------------------------------------------------------------------------------------------------
def _read(client: Client, call: str, read: Callable[..., Any], name: str, ns: str) -> Any:
    """The object, or None when the API says 404."""
    from kubernetes.client.exceptions import ApiException

    with _calls(client, call):
        try:
            return read(name, ns)
        except ApiException as e:
            if e.status != 404:
                raise
            return None


@contextmanager
def _calls(client: Client, call: str) -> Iterator[None]:
    """Turn what the SDK raises inside into :class:`LaunchError`."""
    from kubernetes.client.exceptions import ApiException, OpenApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as e:
        raise _api_error(e, call) from None
    except HTTPError as e:  # refused, unreachable, TLS: urllib3 gave up on the connection
        why = str(getattr(e, "reason", None) or e).split("): ", 1)[-1].strip("\"')")
        raise LaunchError("unreachable", f"cluster {client.context} at {client.host} cannot be reached: {why}",
                          call=call) from None
    except (OpenApiException, ValueError) as e:  # an answer the client could not read (pydantic's errors too)
        raise LaunchError("permanent", f"unexpected answer from cluster {client.context}: {e}", call=call) from None


def _api_error(e: Any, call: str) -> LaunchError:
    """An ApiException classified: the body is a ``Status`` object (``reason``, ``message``) when the API
    server answered; a proxy or load balancer may answer text."""
    try:
        body = json.loads(e.body) if e.body else {}
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("reason") or None
    if body.get("message"):
        message = str(body["message"])
    else:
        raw = (e.body.decode(errors="replace") if isinstance(e.body, bytes) else str(e.body or "")).strip()
        message = f"HTTP {e.status} {e.reason or ''}".strip() + (f": {raw}" if raw else "")
    low = message.lower()
    kind: ErrorKind = "quota" if "exceeded quota" in low or (e.status == 429 and "quota" in low) else "permanent"
    return LaunchError(kind, message, call=call, code=code)
