"""A local Kubernetes API server for tests: the paths the Kubernetes launcher calls, in the API's JSON.

Served over HTTPS on 127.0.0.1 (a certificate made at test time) or plain http; a client finds it
through a kubeconfig the fake writes (:meth:`KubernetesFake.kubeconfig`), with a bearer token it
checks (401 ``Unauthorized`` otherwise)::

    GET|POST   /apis/batch/v1/namespaces/{ns}/jobs            ?labelSelector=a=b,c   → JobList | Job
    GET|DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}                             → Job | Status
    GET|POST   /apis/apps/v1/namespaces/{ns}/deployments, …/deployments/{name}       (the same)
    GET|POST   /api/v1/namespaces/{ns}/services, …/services/{name}                   (the same)
    GET        /api/v1/namespaces/{ns}/pods?labelSelector=job-name=…                  → PodList
    GET        /api/v1/nodes, /api/v1/nodes/{name}                                    → NodeList | Node

Shapes follow the API's OpenAPI spec (kubernetes/kubernetes ``api/openapi-spec/v3``,
``apis__batch__v1``, ``apis__apps__v1``, ``api__v1``): objects carry ``metadata.uid``,
``creationTimestamp`` (RFC 3339, a fake clock one second apart per object so order is known),
``resourceVersion``; lists are ``{"kind": "JobList", "apiVersion": "batch/v1", "metadata":
{"resourceVersion"}, "items": [...]}``; errors are ``Status`` objects as the API server writes them::

    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
     "message": "jobs.batch \\"x\\" not found", "reason": "NotFound",
     "details": {"name": "x", "group": "batch", "kind": "jobs"}, "code": 404}

(409 ``AlreadyExists``, 403 ``Forbidden`` for ResourceQuota: ``jobs.batch "x" is forbidden: exceeded
quota: …``, 422 ``Invalid``). ``labelSelector`` is honoured in its equality-based form (``a=b``,
``a==b``, ``a!=b``, ``a``, ``!a``, comma = and).

What a controller would do is done by test-only methods, not by HTTP: a created Job that is not
suspended gets ``parallelism`` Pending pods (labels ``job-name``, ``batch.kubernetes.io/job-name``,
``controller-uid`` and the template's); :meth:`add_node` registers a node (``spec.providerID``,
``status.allocatable``), and :meth:`job_running` / :meth:`deployment_available` given ``nodes`` schedule
the pods on them (``spec.nodeName``, ``status.startTime``, ``containerStatuses`` running, then terminated
with ``finishedAt`` when the Job completes or the pod is preempted); :meth:`job_running`, :meth:`job_complete`,
:meth:`job_failed`, :meth:`pods_unschedulable`, :meth:`pod_preempted`, :meth:`deployment_available`,
:meth:`deployment_replica_failure` drive states; :meth:`fail_next` answers the next matching request
with an error. ``requests`` logs every request (method, path with query, JSON body).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalServer, QuietHandler, Served

TOKEN = "fake-kube-token"
CLOCK0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
# (api prefix, group for Status.details, kind in lists)
RESOURCES = {
    "jobs": ("/apis/batch/v1", "batch", "Job"),
    "deployments": ("/apis/apps/v1", "apps", "Deployment"),
    "services": ("/api/v1", "", "Service"),
    "pods": ("/api/v1", "", "Pod"),
    "nodes": ("/api/v1", "", "Node"),
}
PATH = re.compile(r"^(?P<prefix>/apis/batch/v1|/apis/apps/v1|/api/v1)/namespaces/(?P<ns>[^/]+)/"
                  r"(?P<res>jobs|deployments|services|pods)(?:/(?P<name>[^/]+))?$")
NODE_PATH = re.compile(r"^/api/v1/(?P<res>nodes)(?:/(?P<name>[^/]+))?$")
"""Nodes are cluster-scoped: no namespace in the path (kept under namespace "" in ``objects``)."""


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, name: str | None = None,
                res: str | None = None) -> dict[str, Any]:
    """A ``Status`` object as the API server answers an error."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if name and res:
        body["details"] = {"name": name, "group": RESOURCES[res][1], "kind": res}
    return body


LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def label_problem(key: str, value: str) -> str | None:
    """The API server's complaint about a label (apimachinery's IsQualifiedName / IsValidLabelValue)."""
    prefix, _, name = key.rpartition("/")
    if not (LABEL_NAME.fullmatch(name) and len(name) <= 63) or (prefix and not (
            DNS_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253)):
        return f'Invalid value: "{key}": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\''
    if len(value) > 63:
        return f'Invalid value: "{value}": must be no more than 63 characters'
    if not LABEL_VALUE.fullmatch(value):
        return (f'Invalid value: "{value}": a valid label must be an empty string or consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character")
    return None


def _qualified(res: str) -> str:
    group = RESOURCES[res][1]
    return f"{res}.{group}" if group else res


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Equality-based label selector semantics (``a=b,a==b,a!=b,a,!a``)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = re.split(r"==?", term, maxsplit=1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class _Failure:
    status: int
    body: dict[str, Any] | str
    method: str | None
    resource: str | None


class KubernetesFake(Served):
    """The fake API server and its state (objects by resource, namespace and name)."""

    def __init__(self, tls: tuple[Path, Path] | None = None, token: str = TOKEN) -> None:
        self.token = token
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.creations: list[tuple[str, str]] = []
        """(resource, name) of every object created through the API."""
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._tick = 0
        self._version = 100
        self._cert = tls[0] if tls else None
        handler = type("KubeHandler", (_Handler,), {"fake": self})
        self._server = LocalServer(handler, tls=tls)

    # -- client side -------------------------------------------------------------------------------
    def kubeconfig(self, path: Path, context: str = "test-cluster", namespace: str = "default") -> Path:
        """Write a kubeconfig whose context ``context`` points at this server (CA: the test certificate)."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._cert:
            cluster["certificate-authority"] = str(self._cert)
        cfg = {"apiVersion": "v1", "kind": "Config", "preferences": {},
               "clusters": [{"name": "fake", "cluster": cluster}],
               "users": [{"name": "tester", "user": {"token": self.token}}],
               "contexts": [{"name": context,
                             "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
               "current-context": context}
        path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
        return path

    def fail_next(self, status: int, reason: str | None = None, message: str = "", *, method: str | None = None,
                  resource: str | None = None, raw: str | None = None) -> None:
        """Answer the next request (of ``method`` on ``resource``, when given) with ``status``: a Status
        object with ``reason`` and ``message``, or the text ``raw`` (an answer that is not a Status)."""
        body: dict[str, Any] | str = raw if raw is not None else status_body(status, reason or "", message)
        with self._lock:
            self._failures.append(_Failure(status, body, method, resource))

    # -- state -------------------------------------------------------------------------------------
    def get(self, res: str, name: str, ns: str = "default") -> dict[str, Any]:
        return self.objects[(res, ns, name)]

    def pods(self, job: str, ns: str = "default") -> list[dict[str, Any]]:
        """Pods of a Job (label ``job-name``) or a Deployment (its selector)."""
        with self._lock:
            if (key := ("deployments", ns, job)) in self.objects:
                sel = self.objects[key]["spec"]["selector"]["matchLabels"]
            else:
                sel = {"job-name": job}
            return [p for (r, n, _), p in sorted(self.objects.items()) if r == "pods" and n == ns
                    and all(p["metadata"]["labels"].get(k) == v for k, v in sel.items())]

    def _now(self) -> dt.datetime:
        self._tick += 1
        return CLOCK0 + dt.timedelta(seconds=self._tick)

    def _stamp(self, obj: dict[str, Any], res: str, ns: str) -> None:
        self._version += 1
        meta = obj.setdefault("metadata", {})
        meta.update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(self._version),
                    creationTimestamp=_ts(self._now()), generation=1)
        obj.setdefault("status", {})
        obj["kind"] = RESOURCES[res][2]
        obj["apiVersion"] = RESOURCES[res][0].removeprefix("/apis/").removeprefix("/api/")

    def _new_pod(self, owner: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
        ns, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        pod = {"metadata": {"name": pod_name, "labels": {**owner["spec"]["template"]["metadata"].get("labels", {}),
                                                         **labels}},
               "spec": json.loads(json.dumps(owner["spec"]["template"]["spec"])), "status": {"phase": "Pending"}}
        self._stamp(pod, "pods", ns)
        self.objects[("pods", ns, pod_name)] = pod
        return pod

    def _job_pods(self, job: dict[str, Any], n: int) -> None:
        name, uid = job["metadata"]["name"], job["metadata"]["uid"]
        for _ in range(n):
            self._new_pod(job, {"job-name": name, "batch.kubernetes.io/job-name": name, "controller-uid": uid,
                                "batch.kubernetes.io/controller-uid": uid})

    def _created(self, res: str, ns: str, obj: dict[str, Any]) -> None:
        """What the controllers do on creation: a Job's pods (or its Suspended condition), a Deployment's pods."""
        spec = obj.get("spec", {})
        if res == "jobs":
            if spec.get("suspend"):
                obj["status"] = {"conditions": [self._cond("Suspended", "JobSuspended", "Job suspended")]}
            else:
                obj["status"] = {"startTime": _ts(self._now()), "active": spec.get("parallelism", 1), "ready": 0}
                self._job_pods(obj, spec.get("parallelism", 1))
        elif res == "deployments":
            obj["status"] = {"replicas": spec.get("replicas", 1), "observedGeneration": 1}
            for _ in range(spec.get("replicas", 1)):
                self._new_pod(obj, {"pod-template-hash": "5d8f7c9b6"})

    def _cond(self, type_: str, reason: str | None = None, message: str | None = None,
              status: str = "True") -> dict[str, Any]:
        now = _ts(self._now())
        c = {"type": type_, "status": status, "lastTransitionTime": now, "lastProbeTime": now}
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message
        return c

    # -- test drivers (what the cluster would do) --------------------------------------------------
    def add_node(self, name: str, provider_id: str, allocatable: Mapping[str, str] | None = None, *,
                 annotations: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None) -> None:
        """A node as the kubelet and the cloud controller register it: ``spec.providerID``, ``status.capacity``
        and ``status.allocatable`` (``cpu``, ``memory``, ``pods`` plus ``allocatable``, e.g.
        ``{"nvidia.com/gpu": "8"}``), a Ready condition."""
        with self._lock:
            res = {"cpu": "96", "memory": "1152Gi", "pods": "110", **(allocatable or {})}
            node: dict[str, Any] = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                                         **(labels or {})},
                                 "annotations": dict(annotations or {})},
                    "spec": {"providerID": provider_id},
                    "status": {"capacity": res, "allocatable": dict(res),
                               "conditions": [self._cond("Ready", "KubeletReady", "kubelet is posting ready status")],
                               "nodeInfo": {"architecture": "amd64", "bootID": str(uuid.uuid4()),
                                            "containerRuntimeVersion": "containerd://1.7.23",
                                            "kernelVersion": "6.1.112", "kubeProxyVersion": "v1.31.2",
                                            "kubeletVersion": "v1.31.2", "machineID": uuid.uuid4().hex,
                                            "operatingSystem": "linux", "osImage": "Bottlerocket OS 1.26.1",
                                            "systemUUID": str(uuid.uuid4())}}}
            self._stamp(node, "nodes", "")
            del node["metadata"]["namespace"]
            self.objects[("nodes", "", name)] = node

    def _run_pod(self, pod: dict[str, Any], node: str | None) -> None:
        """``pod`` running (on ``node``, when given: ``spec.nodeName`` and a running container status)."""
        now = _ts(self._now())
        pod["status"] = {"phase": "Running", "startTime": now,
                         "conditions": [self._cond("PodScheduled"), self._cond("Ready")]}
        if node is not None:
            pod["spec"]["nodeName"] = node
            pod["status"]["containerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
                 "started": True, "state": {"running": {"startedAt": now}}} for c in pod["spec"]["containers"]]

    def _end_pod(self, pod: dict[str, Any], phase: str, exit_code: int = 0, reason: str = "Completed") -> None:
        """``pod`` ended (``phase``); its running containers terminated now (``finishedAt``)."""
        pod["status"]["phase"] = phase
        now = _ts(self._now())
        for c in pod["status"].get("containerStatuses", []):
            started = c["state"].get("running", {}).get("startedAt")
            if started is not None:
                c.update(ready=False, started=False, state={"terminated": {
                    "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": now}})

    def job_running(self, name: str, ns: str = "default", *, nodes: Sequence[str] = ()) -> None:
        """The Job's pending or running pods running (scheduled round robin on ``nodes``, when given)."""
        with self._lock:
            job = self.get("jobs", name, ns)
            pods = [p for p in self.pods(name, ns) if p["status"]["phase"] in ("Pending", "Running")]
            for i, p in enumerate(pods):
                if p["status"]["phase"] == "Pending":
                    self._run_pod(p, nodes[i % len(nodes)] if nodes else None)
            job["status"].update(active=len(pods), ready=len(pods))

    def job_complete(self, name: str, ns: str = "default") -> None:
        with self._lock:
            job = self.get("jobs", name, ns)
            pods = [p for p in self.pods(name, ns) if p["status"]["phase"] in ("Pending", "Running")]
            for p in pods:
                self._end_pod(p, "Succeeded")
            job["status"].update(active=0, ready=0, succeeded=len(pods), completionTime=_ts(self._now()),
                                 conditions=[self._cond("SuccessCriteriaMet", "CompletionsReached",
                                                        "Reached expected number of succeeded pods"),
                                             self._cond("Complete", "CompletionsReached",
                                                        "Reached expected number of succeeded pods")])

    def job_failed(self, name: str, reason: str = "BackoffLimitExceeded",
                   message: str = "Job has reached the specified backoff limit", ns: str = "default") -> None:
        with self._lock:
            job = self.get("jobs", name, ns)
            pods = [p for p in self.pods(name, ns) if p["status"]["phase"] in ("Pending", "Running")]
            for p in pods:
                self._end_pod(p, "Failed", 1, "Error")
            job["status"].update(active=0, ready=0, failed=len(pods),
                                 conditions=[self._cond("FailureTarget", reason, message),
                                             self._cond("Failed", reason, message)])

    def pods_unschedulable(self, name: str, message: str, ns: str = "default") -> None:
        """Every Pending pod of ``name`` unschedulable, with the scheduler's ``message``."""
        with self._lock:
            for p in self.pods(name, ns):
                if p["status"]["phase"] == "Pending":
                    p["status"] = {"phase": "Pending", "conditions": [
                        self._cond("PodScheduled", "Unschedulable", message, status="False")]}

    def pod_preempted(self, name: str, reason: str = "TerminationByKubelet", *, node_shutdown: bool = True,
                      replace: bool = True, ns: str = "default") -> None:
        """The first running (or pending) pod of ``name`` ends on a spot node's shutdown (kubelet's graceful
        node shutdown: phase Failed, reason ``Terminated``, a ``DisruptionTarget`` condition); with
        ``replace`` the controller makes a new Pending pod, as a Job with a podFailurePolicy that ignores
        disruptions does."""
        with self._lock:
            live = [p for p in self.pods(name, ns) if p["status"]["phase"] in ("Running", "Pending")]
            pod = live[0]
            status: dict[str, Any] = {"phase": "Failed", "startTime": pod["status"].get("startTime"), "conditions": [
                self._cond("DisruptionTarget", reason, "Pod was terminated in response to imminent node shutdown."),
                self._cond("Ready", "PodFailed", status="False")]}
            if node_shutdown:
                status.update(reason="Terminated", message="Pod was terminated in response to imminent node shutdown.")
            running = pod["status"].get("containerStatuses")
            pod["status"] = {k: v for k, v in status.items() if v is not None}
            if running:
                pod["status"]["containerStatuses"] = running
                self._end_pod(pod, "Failed", 137, "Error")
            if ("jobs", ns, name) in self.objects:
                job = self.get("jobs", name, ns)
                job["status"]["ready"] = max(0, job["status"].get("ready", 1) - 1)
                if replace:
                    self._job_pods(job, 1)
                else:
                    job["status"]["active"] = max(0, job["status"].get("active", 1) - 1)

    def deployment_available(self, name: str, available: int, ns: str = "default", *,
                             nodes: Sequence[str] = ()) -> None:
        """``available`` of the Deployment's pods running (scheduled round robin on ``nodes``, when given)."""
        with self._lock:
            dep = self.get("deployments", name, ns)
            for i, p in enumerate(self.pods(name, ns)[:available]):
                self._run_pod(p, nodes[i % len(nodes)] if nodes else None)
            dep["status"].update(availableReplicas=available, readyReplicas=available, updatedReplicas=available,
                                 conditions=[self._cond("Available", "MinimumReplicasAvailable",
                                                        "Deployment has minimum availability.")])

    def deployment_replica_failure(self, name: str, message: str, ns: str = "default") -> None:
        """The ReplicaSet could not create pods (the ``ReplicaFailure`` condition, as for a quota)."""
        with self._lock:
            dep = self.get("deployments", name, ns)
            for p in self.pods(name, ns):
                del self.objects[("pods", ns, p["metadata"]["name"])]
            dep["status"]["conditions"] = [self._cond("Available", "MinimumReplicasUnavailable",
                                                      "Deployment does not have minimum availability.", "False"),
                                           self._cond("ReplicaFailure", "FailedCreate", message)]

    # -- the API -----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               auth: str | None) -> tuple[int, dict[str, Any] | str]:
        with self._lock:
            self.requests.append((method, path + (f"?{_qs(query)}" if query else ""), body))
            if auth != f"Bearer {self.token}":
                return 401, status_body(401, "Unauthorized", "Unauthorized")
            m = PATH.match(path) or NODE_PATH.match(path)
            if not m or RESOURCES[m["res"]][0] != m.groupdict().get("prefix", "/api/v1"):
                return 404, status_body(404, "NotFound", "the server could not find the requested resource")
            res, ns, name = m["res"], m.groupdict().get("ns") or "", m["name"]
            if res == "nodes" and method != "GET":
                return 405, status_body(405, "MethodNotAllowed", "the server does not allow this method on nodes")
            for f in self._failures:
                if (f.method in (None, method)) and (f.resource in (None, res)):
                    self._failures.remove(f)
                    return f.status, f.body
            if name is None and method == "GET":
                sel = query.get("labelSelector", [""])[0]
                items = [o for (r, n, _), o in sorted(self.objects.items(), key=lambda kv: kv[0])
                         if r == res and n == ns and selector_matches(sel, o["metadata"].get("labels", {}))]
                kind = RESOURCES[res][2]
                return 200, {"kind": f"{kind}List", "apiVersion": RESOURCES[res][0].split("/", 2)[-1],
                             "metadata": {"resourceVersion": str(self._version)},
                             "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]}
            if name is None and method == "POST":
                return self._create(res, ns, body)
            key = (res, ns, name or "")
            if key not in self.objects:
                return 404, status_body(404, "NotFound", f'{_qualified(res)} "{name}" not found', name, res)
            if method == "GET":
                return 200, self.objects[key]
            if method == "DELETE":
                obj = self.objects.pop(key)
                if res == "jobs" and (query.get("propagationPolicy") or [""])[0] in ("Background", "Foreground"):
                    for p in self.pods(name or "", ns):
                        self.objects.pop(("pods", ns, p["metadata"]["name"]), None)
                if res == "services":  # the services REST answers with the deleted object
                    return 200, obj
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": {"name": name, "group": RESOURCES[res][1], "kind": res,
                                         "uid": obj["metadata"]["uid"]}}
            return 405, status_body(405, "MethodNotAllowed", f"the server does not allow this method on {res}")

    def _create(self, res: str, ns: str, body: Any) -> tuple[int, dict[str, Any]]:
        name = (body or {}).get("metadata", {}).get("name") if isinstance(body, dict) else None
        kind = RESOURCES[res][2]
        if not name:
            return 422, status_body(422, "Invalid", f"{kind}.{RESOURCES[res][1] or 'core'} \"\" is invalid: "
                                    "metadata.name: Required value: name or generateName is required")
        for where, labels in (("metadata.labels", body.get("metadata", {}).get("labels") or {}),
                              ("spec.template.metadata.labels",
                               body.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {})):
            for k, v in labels.items():
                if problem := label_problem(str(k), str(v)):
                    return 422, status_body(422, "Invalid", f'{kind}.{RESOURCES[res][1] or "core"} "{name}" is '
                                            f"invalid: {where}: {problem}", name, res)
        if (res, ns, name) in self.objects:
            return 409, status_body(409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', name, res)
        obj = json.loads(json.dumps(body))
        self._stamp(obj, res, ns)
        self.objects[(res, ns, name)] = obj
        self.creations.append((res, name))
        self._created(res, ns, obj)
        return 201, obj


def _qs(query: Mapping[str, list[str]]) -> str:
    return "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)


class _Handler(QuietHandler):
    fake: KubernetesFake

    def _serve(self) -> None:
        url = urlsplit(self.path)
        raw = self.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        status, out = self.fake.handle(self.command, url.path, parse_qs(url.query), body,
                                       self.headers.get("Authorization"))
        if isinstance(out, str):
            self.reply(status, out, "text/plain; charset=utf-8")
        else:
            self.reply(status, json.dumps(out))

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve
