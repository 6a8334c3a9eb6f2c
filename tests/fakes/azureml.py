"""A local Azure Machine Learning Resource Manager API over HTTPS on 127.0.0.1, for tests: the ARM paths
azure-ai-ml's ``MLClient`` calls under
``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{w}``:

- ``GET`` the workspace itself (the SDK reads its location before creating computes and endpoints);
- ``jobs``: ``GET`` list (``tag`` keeps jobs having that tag key; ``listViewType``), ``GET``/``PUT`` one
  (synchronous: 201 on create, 200 on update), ``POST …/cancel`` (202 + ``Location``);
- ``computes``: ``GET``, ``PUT`` (201 + ``Azure-AsyncOperation``), ``POST …/listNodes``;
- ``environments/{name}/versions/{v}``: ``PUT``/``GET`` (the anonymous ``CliV2AnonymousEnvironment`` the SDK
  registers for ``Environment(image=…)``);
- ``onlineEndpoints`` and ``…/deployments``: ``GET`` list and one, ``PUT`` (201 + ``Azure-AsyncOperation``),
  ``DELETE`` (202 + ``Location``);
- operation status (``…/locations/{l}/mfeOperationsStatus/{id}``: ``{"status": "Succeeded"|"Failed",
  "error": …}``) and results (``…/mfeOperationResults/{id}``: 202 while running, then 200).

Resources are the JSON the REST spec (``Microsoft.MachineLearningServices`` ``mfe.json`` /
``machineLearningServices.json``) defines: ``{id, name, type, systemData, tags, properties: {…}}``, with the
fields the service fills in (``status``, ``provisioningState``, ``scaleSettings``, ``nodeStateCounts``, …);
errors as ARM's ``{"error": {"code", "message"}}``.

Long-running operations come in ARM's two legal shapes. With :attr:`AzureMLFake.asynchronous` (the
service's usual answer) a ``PUT`` answers 201 with the resource ``Creating`` and an
``Azure-AsyncOperation`` header, a ``DELETE`` or cancel 202 with ``Location``, both with ``Retry-After: 1``
(whole seconds, as the SDK reads the header as an integer); the operation finishes at its first poll and
the SDK's final ``GET`` sees the resource ``Succeeded`` (or the status ``Failed`` with its error). Without
it (the default, for fast tests) the operation completes synchronously: 201/200 with the resource
``Succeeded``, 200 for a delete or cancel — which ARM also allows and azure-core handles without a poll.

Test-only controls (Python methods, never HTTP): :meth:`set_job_status`, :meth:`preempt`,
:meth:`compute_error`, :meth:`fail` (the next matching request answers an ARM error) and
:meth:`fail_operation` (the next long-running operation ends ``Failed``). ``requests`` logs every request.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalServer, QuietHandler, Served, make_certificate

PROVIDER = "Microsoft.MachineLearningServices"
_WS = re.compile(rf"^/subscriptions/(?P<s>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/{PROVIDER}"
                 r"/workspaces/(?P<w>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)
_OP = re.compile(rf"^/subscriptions/[^/]+/providers/{PROVIDER}/locations/[^/]+/"
                 r"(?P<kind>mfeOperationsStatus|mfeOperationResults)/(?P<id>[^/]+)$", re.IGNORECASE)


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class _Failure:
    method: str | None
    path: str | None
    status: int
    code: str | None
    message: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _error(code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message} if code else {"message": message}}


class AzureMLFake(Served):
    """The fake for one workspace on an ephemeral loopback port, over TLS. ``url``: its base URL (the ARM
    endpoint); ``cert``: the certificate to trust; ``requests``: every request received, in order."""

    def __init__(self, cert_dir: Path, *, subscription: str = "00000000-1111-2222-3333-444444444444",
                 resource_group: str = "ml-rg", workspace: str = "ml-ws", location: str = "eastus",
                 tokens: tuple[str, ...] = ("fake-token",)) -> None:
        self.subscription, self.resource_group, self.workspace = subscription, resource_group, workspace
        self.location = location
        self.tokens = set(tokens)
        self.asynchronous = False
        """Answer long-running operations asynchronously (201/202 + polling headers); see the module doc."""
        self.requests: list[Request] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.computes: dict[str, dict[str, Any]] = {}
        self.environments: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.nodes: dict[str, list[dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._op_failures: list[tuple[str, str, str]] = []
        self._operations: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._clock = itertools.count()
        self.cert, key = make_certificate(cert_dir)
        self._server = LocalServer(self._handler(), tls=(Path(self.cert), Path(key)))

    @property
    def workspace_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{PROVIDER}"
                f"/workspaces/{self.workspace}")

    # -- test controls ------------------------------------------------------------------------------
    def set_job_status(self, name: str, status: str) -> None:
        """Move job ``name`` to ``status`` (``Queued``, ``Running``, ``Completed``, ``Failed``, …)."""
        with self._lock:
            self.jobs[name]["properties"]["status"] = status

    def set_endpoint_state(self, name: str, endpoint: str, deployment: str | None = None) -> None:
        """Set the ``provisioningState`` of endpoint ``name`` (and of its ``main`` deployment)."""
        with self._lock:
            self.endpoints[name]["properties"]["provisioningState"] = endpoint
            if deployment is not None:
                self.deployments[(name, "main")]["properties"]["provisioningState"] = deployment

    def preempt(self, compute: str, run_id: str, nodes: int = 1) -> None:
        """Report ``nodes`` nodes of low-priority cluster ``compute`` preempted while running ``run_id``."""
        with self._lock:
            for _ in range(nodes):
                self.nodes.setdefault(compute, []).append(
                    {"nodeId": f"tvmps_{uuid.uuid4().hex[:20]}_p", "privateIpAddress": "10.0.0.4",
                     "publicIpAddress": None, "port": 50000, "nodeState": "preempted", "runId": run_id})
            counts = self.computes[compute]["properties"]["properties"]["nodeStateCounts"]
            counts["preemptedNodeCount"] += nodes

    def compute_error(self, compute: str, code: str, message: str) -> None:
        """Give cluster ``compute`` a provisioning error, as the service reports a failed node allocation."""
        with self._lock:
            props = self.computes[compute]["properties"]
            props["provisioningErrors"] = [{"error": {"code": code, "message": message}}]
            props["properties"]["errors"] = [{"code": code, "message": message}]
            props["properties"]["allocationState"] = "Steady"

    def fail(self, status: int, code: str | None, message: str, *, method: str | None = None,
             path: str | None = None) -> None:
        """Answer the next request of ``method`` whose path contains ``path`` (None: any) with an ARM error."""
        with self._lock:
            self._failures.append(_Failure(method, path, status, code, message))

    def fail_operation(self, path: str, code: str, message: str) -> None:
        """End the next long-running operation on a path containing ``path`` ``Failed`` with ``code``."""
        with self._lock:
            self._op_failures.append((path, code, message))

    def created(self, method: str, fragment: str) -> list[Request]:
        """The successful ``method`` requests on a path containing ``fragment``."""
        return [r for r in self.requests if r.method == method and fragment in r.path and r.status < 300]

    # -- HTTP ---------------------------------------------------------------------------------------
    def _handler(self) -> type[QuietHandler]:
        fake = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                raw = self.body()
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                req = Request(self.command, parts.path, query, body)
                with fake._lock:
                    fake.requests.append(req)
                    status, doc, headers = fake._respond(req, self.headers.get("Authorization", ""),
                                                         f"https://{self.headers.get('Host')}")
                req.status = status
                self.reply(status, json.dumps(doc) if doc is not None else "",
                           headers={"x-ms-request-id": str(uuid.uuid4()), **headers})

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _any

        return Handler

    def _respond(self, req: Request, auth: str, base: str) -> tuple[int, Any, dict[str, str]]:
        if auth.removeprefix("Bearer ") not in self.tokens or not auth.startswith("Bearer "):
            return 401, _error("InvalidAuthenticationToken", "The access token is invalid."), {}
        if not req.query.get("api-version"):
            return 400, _error("MissingApiVersionParameter", "The api-version query parameter is required."), {}
        for f in self._failures:
            if f.method in (None, req.method) and (f.path is None or f.path in req.path):
                self._failures.remove(f)
                return f.status, _error(f.code, f.message), {}
        op = _OP.match(req.path)
        if op:
            return self._operation(op.group("kind"), op.group("id"))
        m = _WS.match(req.path)
        if not m or (m.group("s"), m.group("rg"), m.group("w").lower()) != (
                self.subscription, self.resource_group, self.workspace.lower()):
            return 404, _error("ResourceNotFound", f"The Resource '{req.path}' was not found."), {}
        rest = [p for p in (m.group("rest") or "").split("/") if p]
        return self._route(req, rest, base)

    def _route(self, req: Request, rest: list[str], base: str) -> tuple[int, Any, dict[str, str]]:
        method = req.method
        if not rest and method == "GET":
            return 200, self._workspace_doc(), {}
        head = rest[0].lower()
        if head == "jobs":
            return self._jobs(req, rest[1:], base)
        if head == "computes" and len(rest) >= 2:
            if len(rest) == 3 and rest[2] == "listNodes" and method == "POST":
                return 200, {"nodes": self.nodes.get(rest[1], []), "nextLink": None}, {}
            if len(rest) == 2:
                return self._resource(req, self.computes, rest[1], "computes", base)
        if head == "environments" and len(rest) == 4 and rest[2] == "versions":
            key = f"{rest[1]}:{rest[3]}"
            if method == "PUT":
                doc = self._envelope(req.path, rest[3], "environments/versions", req.body or {})
                doc["properties"].update(provisioningState="Succeeded", osType="Linux")
                self.environments[key] = doc
                return 200, doc, {}
            if key in self.environments:
                return 200, self.environments[key], {}
        if head == "onlineendpoints":
            if len(rest) == 1 and method == "GET":
                return 200, {"value": list(self.endpoints.values())}, {}
            if len(rest) == 2:
                return self._resource(req, self.endpoints, rest[1], "onlineEndpoints", base)
            if len(rest) == 3 and rest[2] == "deployments" and method == "GET":
                return 200, {"value": [d for (e, _), d in self.deployments.items() if e == rest[1]],
                             "nextLink": None}, {}
            if len(rest) == 4 and rest[2] == "deployments":
                if rest[1] not in self.endpoints:
                    return 404, _error("ResourceNotFound", f"Endpoint {rest[1]} not found."), {}
                return self._deployment(req, rest[1], rest[3], base)
        return 404, _error("ResourceNotFound", f"The Resource '{req.path}' was not found."), {}

    # -- jobs ---------------------------------------------------------------------------------------
    def _jobs(self, req: Request, rest: list[str], base: str) -> tuple[int, Any, dict[str, str]]:
        if not rest and req.method == "GET":
            tag = req.query.get("tag")
            docs = [d for d in self.jobs.values()
                    if (tag is None or tag in (d["properties"].get("tags") or {}))
                    and (req.query.get("listViewType") == "All" or not d["properties"].get("isArchived"))]
            return 200, {"value": docs, "nextLink": None}, {}
        name = rest[0]
        if len(rest) == 2 and rest[1] == "cancel" and req.method == "POST":
            if name not in self.jobs:
                return 404, _error("UserError", f"Job {name} not found."), {}
            props = self.jobs[name]["properties"]
            if props["status"] in ("Completed", "Failed", "Canceled"):
                return 400, _error("UserError", f"Cannot cancel job {name} in status {props['status']}."), {}
            props["status"] = "CancelRequested"
            return self._accept(req, lambda: props.update(status="Canceled"), base)
        if req.method == "GET":
            if name in self.jobs:
                return 200, self.jobs[name], {}
            return 404, _error("UserError", f"Job {name} not found."), {}
        if req.method == "PUT":
            body = req.body or {}
            new = name not in self.jobs
            doc = self._envelope(req.path, name, "jobs", body) if new else self.jobs[name]
            if not new:  # an update keeps what the service owns
                doc["properties"]["tags"] = body.get("properties", {}).get("tags", doc["properties"].get("tags"))
            else:
                compute = doc["properties"].get("computeId", "")
                if compute and compute.rsplit("/", 1)[-1] not in self.computes:
                    del self.jobs[name]
                    return 400, _error("UserError", f"Compute {compute} not found in workspace."), {}
                doc["properties"].update(status="NotStarted", services={
                    "Studio": {"jobServiceType": "Studio", "endpoint": f"https://ml.azure.com/runs/{name}"}})
                self.jobs[name] = doc
            return (201 if new else 200), doc, {}
        return 405, _error("MethodNotAllowed", req.method), {}

    # -- computes and endpoints (long-running PUT) --------------------------------------------------
    def _resource(self, req: Request, store: dict[str, dict[str, Any]], name: str, kind: str,
                  base: str) -> tuple[int, Any, dict[str, str]]:
        if req.method == "GET":
            if name in store:
                return 200, store[name], {}
            return 404, _error("ResourceNotFound", f"{kind} {name} not found."), {}
        if req.method == "DELETE":
            if name not in store:
                return 204, None, {}
            store[name]["properties"]["provisioningState"] = "Deleting"
            return self._accept(req, lambda: store.pop(name, None), base)
        if req.method != "PUT":
            return 405, _error("MethodNotAllowed", req.method), {}
        body = req.body or {}
        new = name not in store
        doc = self._envelope(req.path, name, kind, body, location=body.get("location") or self.location)
        props = doc["properties"]
        if kind == "computes":
            inner = props.setdefault("properties", {})
            old = store[name]["properties"] if not new else {}
            inner.update(allocationState="Steady", allocationStateTransitionTime=_now(), errors=None,
                         currentNodeCount=0, targetNodeCount=0,
                         nodeStateCounts=(old.get("properties", {}).get("nodeStateCounts")
                                          or {"idleNodeCount": 0, "runningNodeCount": 0, "preparingNodeCount": 0,
                                              "unusableNodeCount": 0, "leavingNodeCount": 0,
                                              "preemptedNodeCount": 0}))
            props.update(computeLocation=doc["location"], createdOn=_now(), modifiedOn=_now(),
                         provisioningErrors=old.get("provisioningErrors"), isAttachedCompute=False)
        else:
            doc["identity"] = {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                               "tenantId": str(uuid.uuid4())}
            doc["kind"] = "Managed"
            props.update(scoringUri=f"https://{name}.{self.location}.inference.ml.azure.com/score",
                         swaggerUri=f"https://{name}.{self.location}.inference.ml.azure.com/swagger.json",
                         publicNetworkAccess="Enabled")
            props.setdefault("traffic", {})
            if not new:
                doc["systemData"] = store[name]["systemData"]
        return self._begin(req, store, name, doc, base, "Creating" if new else "Updating")

    def _deployment(self, req: Request, endpoint: str, name: str, base: str) -> tuple[int, Any, dict[str, str]]:
        key = (endpoint, name)
        if req.method == "GET":
            if key in self.deployments:
                return 200, self.deployments[key], {}
            return 404, _error("ResourceNotFound", f"Deployment {name} not found."), {}
        if req.method != "PUT":
            return 405, _error("MethodNotAllowed", req.method), {}
        body = req.body or {}
        doc = self._envelope(req.path, name, "onlineEndpoints/deployments", body,
                             location=body.get("location") or self.location)
        doc["kind"] = "Managed"
        doc["properties"].update(
            scaleSettings={"scaleType": "Default"},
            requestSettings={"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S",
                             "maxQueueWait": "PT0.5S"},
            livenessProbe={"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S",
                           "initialDelay": "PT10S"},
            readinessProbe={"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S",
                            "initialDelay": "PT10S"},
            egressPublicNetworkAccess="Enabled")
        store: dict[str, dict[str, Any]] = {}
        status, out, headers = self._begin(req, store, name, doc, base, "Creating")
        if name in store:
            self.deployments[key] = store[name]
        return status, out, headers

    def _begin(self, req: Request, store: dict[str, dict[str, Any]], name: str, doc: dict[str, Any], base: str,
               state: str) -> tuple[int, Any, dict[str, str]]:
        """Store ``doc`` as ``state`` and start the operation that ends it ``Succeeded`` (or ``Failed``)."""
        doc["properties"]["provisioningState"] = state
        store[name] = doc
        failure = next((f for f in self._op_failures if f[0] in req.path), None)
        if failure:
            self._op_failures.remove(failure)

        def finish() -> dict[str, Any] | None:
            doc["properties"]["provisioningState"] = "Failed" if failure else "Succeeded"
            return {"code": failure[1], "message": failure[2]} if failure else None

        if not self.asynchronous:
            error = finish()
            if error:
                del store[name]
                return 400, {"error": error}, {}
            return (201 if state == "Creating" else 200), doc, {}
        op = self._new_operation(req.path, finish)
        headers = {"Azure-AsyncOperation": f"{base}{self._op_path('mfeOperationsStatus', op)}?api-version="
                                           f"{req.query['api-version']}", "Retry-After": "1"}
        return 201, doc, headers

    def _accept(self, req: Request, finish: Any, base: str) -> tuple[int, Any, dict[str, str]]:
        """A delete or cancel: done now (200), or accepted (202) with a ``Location`` to poll."""
        if not self.asynchronous:
            finish()
            return 200, None, {}
        op = self._new_operation(req.path, finish)
        return 202, None, self._location(base, op)

    # -- operations ---------------------------------------------------------------------------------
    def _new_operation(self, path: str, finish: Any) -> str:
        op = str(uuid.uuid4())
        self._operations[op] = {"path": path, "finish": finish, "status": "InProgress", "error": None,
                                "startTime": _now()}
        return op

    def _op_path(self, kind: str, op: str) -> str:
        return f"/subscriptions/{self.subscription}/providers/{PROVIDER}/locations/{self.location}/{kind}/{op}"

    def _location(self, base: str, op: str) -> dict[str, str]:
        return {"Location": f"{base}{self._op_path('mfeOperationResults', op)}?api-version=2024-01-01-preview",
                "Retry-After": "1"}

    def _operation(self, kind: str, op: str) -> tuple[int, Any, dict[str, str]]:
        state = self._operations.get(op)
        if state is None:
            return 404, _error("ResourceNotFound", f"Operation {op} not found."), {}
        if state["status"] == "InProgress":  # every operation finishes at its first poll
            error = state["finish"]()
            state.update(status="Failed" if error else "Succeeded", error=error, endTime=_now())
        if kind.lower() == "mfeoperationresults":
            return 200, None, {}
        doc = {"id": self._op_path("mfeOperationsStatus", op), "name": op, "status": state["status"],
               "startTime": state["startTime"], "endTime": state.get("endTime")}
        if state["error"]:
            doc["error"] = state["error"]
        return 200, doc, {}

    # -- documents ----------------------------------------------------------------------------------
    def _workspace_doc(self) -> dict[str, Any]:
        return {"id": self.workspace_id, "name": self.workspace, "type": f"{PROVIDER}/workspaces",
                "location": self.location, "tags": {}, "kind": "Default",
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=1)),
                             "tenantId": str(uuid.UUID(int=2))},
                "sku": {"name": "Basic", "tier": "Basic"},
                "properties": {"friendlyName": self.workspace, "provisioningState": "Succeeded",
                               "workspaceId": str(uuid.UUID(int=3)), "discoveryUrl": f"https://{self.location}"
                               ".api.azureml.ms/discovery", "mlFlowTrackingUri": f"azureml://{self.location}"
                               ".api.azureml.ms/mlflow/v1.0" + self.workspace_id, "publicNetworkAccess": "Enabled",
                               "hbiWorkspace": False, "v1LegacyMode": False}}

    def _envelope(self, path: str, name: str, kind: str, body: dict[str, Any], *,
                  location: str | None = None) -> dict[str, Any]:
        at = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(self._clock))).isoformat()
        doc: dict[str, Any] = {"id": path, "name": name, "type": f"{PROVIDER}/workspaces/{kind}",
                               "systemData": {"createdAt": at, "createdBy": "finops-test", "createdByType": "User",
                                              "lastModifiedAt": at, "lastModifiedBy": "finops-test",
                                              "lastModifiedByType": "User"},
                               "properties": json.loads(json.dumps(body.get("properties") or {}))}
        for extra in ("tags", "sku"):
            if extra in body:
                doc[extra] = body[extra]
        if location:
            doc["location"] = location
        return doc
