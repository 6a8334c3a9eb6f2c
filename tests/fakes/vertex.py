"""A local Vertex AI API (``{region}-aiplatform.googleapis.com/v1``) for the Vertex AI launcher's tests.

It speaks the REST/JSON wire format that google-cloud-aiplatform's REST transport sends and reads (the
proto3 JSON mapping of ``google/cloud/aiplatform/v1/*.proto``: camelCase names, int64 as strings,
timestamps as RFC 3339, enums as numbers when the client asks ``$alt=json;enum-encoding=int``):

- custom jobs: ``POST/GET …/customJobs`` (list with ``filter``, ``pageSize``, ``pageToken``),
  ``GET …/customJobs/{id}``, ``POST …/customJobs/{id}:cancel``;
- endpoints: ``POST …/endpoints?endpointId=`` (an LRO), ``GET``/``DELETE …/endpoints/{id}``, list,
  ``:deployModel`` and ``:undeployModel`` (LROs);
- models: ``POST …/models:upload`` (an LRO), ``GET``/``DELETE …/models/{id}``;
- operations: ``GET /ui|v1/…/operations/{id}``. Every LRO is answered done, with its response or error;
- ``POST /token``: an OAuth token endpoint, so the client's default credential chain (an
  service-account key from :meth:`FakeVertex.credentials_file`) gets its token (or signs its JWT); every
  other request must carry it (401 otherwise).

Errors are ``{"error": {"code", "message", "status", "details": [ErrorInfo]}}``. Tests drive it through
methods, never through HTTP: :meth:`FakeVertex.set_state` moves a job, :meth:`FakeVertex.fail_next`
answers the next matching request with an error, :meth:`FakeVertex.fail_operation` makes the next
matching LRO end in an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.server import LocalServer, QuietHandler, Served

TOKEN = "ya29.fake-vertex-token"
CLIENT_EMAIL = "finops-launcher@finops-ml.iam.gserviceaccount.com"
TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
# Enum numbers from the protos (accelerator_type.proto, job_state.proto, custom_job.proto Scheduling.Strategy).
ACCELERATOR_TYPES = {"ACCELERATOR_TYPE_UNSPECIFIED": 0, "NVIDIA_TESLA_K80": 1, "NVIDIA_TESLA_P100": 2,
                     "NVIDIA_TESLA_V100": 3, "NVIDIA_TESLA_P4": 4, "NVIDIA_TESLA_T4": 5, "TPU_V2": 6, "TPU_V3": 7,
                     "NVIDIA_TESLA_A100": 8, "NVIDIA_A100_80GB": 9, "TPU_V4_POD": 10, "NVIDIA_L4": 11,
                     "TPU_V5_LITEPOD": 12, "NVIDIA_H100_80GB": 13}
JOB_STATES = {"JOB_STATE_UNSPECIFIED": 0, "JOB_STATE_QUEUED": 1, "JOB_STATE_PENDING": 2, "JOB_STATE_RUNNING": 3,
              "JOB_STATE_SUCCEEDED": 4, "JOB_STATE_FAILED": 5, "JOB_STATE_CANCELLING": 6, "JOB_STATE_CANCELLED": 7,
              "JOB_STATE_PAUSED": 8, "JOB_STATE_EXPIRED": 9, "JOB_STATE_UPDATING": 10,
              "JOB_STATE_PARTIALLY_SUCCEEDED": 11}
STRATEGIES = {"STRATEGY_UNSPECIFIED": 0, "ON_DEMAND": 1, "LOW_COST": 2, "STANDARD": 3, "SPOT": 4, "FLEX_START": 6}
_ENUMS = {"acceleratorType": ACCELERATOR_TYPES, "state": JOB_STATES, "strategy": STRATEGIES}
ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
         "JOB_STATE_PARTIALLY_SUCCEEDED"}
# google.rpc.Code numbers → names and HTTP statuses (google/rpc/code.proto).
RPC = {3: ("INVALID_ARGUMENT", 400), 5: ("NOT_FOUND", 404), 6: ("ALREADY_EXISTS", 409), 8: ("RESOURCE_EXHAUSTED", 429),
       9: ("FAILED_PRECONDITION", 400), 13: ("INTERNAL", 500), 14: ("UNAVAILABLE", 503)}
_START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Call:
    """One request answered: method, path (no query), query, parsed body, HTTP status."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


@dataclass
class _Failure:
    match: str
    status: int
    message: str
    rpc_status: str | None
    reason: str | None


@dataclass
class _State:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    op_failures: list[tuple[str, int, str]] = field(default_factory=list)


def _stamp(seconds: int) -> str:
    return (_START + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVertex(Served):
    """The fake's state (jobs, endpoints, models, operations, the requests seen) behind one lock. A context
    manager serving on 127.0.0.1 while inside; ``page_size`` is the most items a list page carries."""

    def __init__(self, *, page_size: int = 2) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._ids = itertools.count(1)
        self.page_size = page_size
        self._server = LocalServer(_handler(self))

    # -- test drivers (never reachable over HTTP)
    def credentials_file(self, folder: Path) -> Path:
        """A service-account key file (for ``GOOGLE_APPLICATION_CREDENTIALS``) with a key made now and a
        token URI on this server: the client's default credential chain signs its own JWT or trades one
        for a token here. No secret is kept anywhere."""
        path = folder / "vertex-credentials.json"
        path.write_text(json.dumps({"type": "service_account", "project_id": "finops-ml", "private_key_id": "k1",
                                    "private_key": _private_key(), "client_email": CLIENT_EMAIL, "client_id": "1",
                                    "token_uri": f"{self.url}/token"}))
        return path

    def set_state(self, name: str, state: str, *, error: tuple[int, str] | None = None) -> None:
        """Move custom job ``name`` to ``state`` (a ``JOB_STATE_*`` name), with a ``google.rpc.Status``
        error ``(code, message)`` for a failure."""
        with self._lock:
            job = self._state.jobs[name]
            now = _stamp(next(self._ids))
            job.update(state=state, updateTime=now)
            if state == "JOB_STATE_RUNNING":
                job.setdefault("startTime", now)
            if state in ENDED:
                job["endTime"] = now
            if error:
                job["error"] = {"code": error[0], "message": error[1]}

    def fail_next(self, status: int, message: str, *, match: str = "", rpc_status: str | None = None,
                  reason: str | None = None) -> None:
        """Answer the next request whose ``METHOD path`` contains ``match`` with HTTP ``status``, the
        error's ``status`` (``RESOURCE_EXHAUSTED`` …; None: left out) and an ErrorInfo ``reason``."""
        with self._lock:
            self._state.failures.append(_Failure(match, status, message, rpc_status, reason))

    def fail_operation(self, match: str, code: int, message: str) -> None:
        """End the next LRO whose request path contains ``match`` (``:deployModel`` …) in the error
        ``(code, message)`` instead of doing it."""
        with self._lock:
            self._state.op_failures.append((match, code, message))

    def calls(self, contains: str = "", method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._state.calls if contains in c.path and method in (None, c.method)]

    def job(self, name: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._state.jobs[name]))

    def endpoint(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return json.loads(json.dumps(self._state.endpoints[name])) if name in self._state.endpoints else None

    def model(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return json.loads(json.dumps(self._state.models[name])) if name in self._state.models else None

    # -- answering (handler threads)
    def _answer(self, method: str, path: str, query: dict[str, str], body: Any,
                auth: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if path == "/token":
                status, out = 200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            elif not _authorized(auth):
                status, out = _error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
            else:
                status, out = self._fail(f"{method} {path}") or self._route(method, path, query, body)
            self._state.calls.append(Call(method, path, query, body, status))
        if "enum-encoding=int" in query.get("$alt", ""):
            out = _ints(out)
        return status, out

    def _fail(self, call: str) -> tuple[int, dict[str, Any]] | None:
        for i, f in enumerate(self._state.failures):
            if f.match in call:
                del self._state.failures[i]
                return _error(f.status, f.message, f.rpc_status, f.reason)
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        m = re.fullmatch(r"/(?:v1|ui)/(projects/[^/]+/locations/[^/]+)(?:/(\w+))?(?:/([^/:]+))?(?::(\w+))?"
                         r"(?:/operations/([^/]+))?", path)
        if not m:
            return _error(404, f"no such resource: {path}", "NOT_FOUND")
        parent, collection, ident, verb, op = m.groups()
        name = f"{parent}/{collection}/{ident}" if ident else None
        if op:
            found = self._state.operations.get(f"{name}/operations/{op}")
            return (200, found) if found else _error(404, "operation not found", "NOT_FOUND")
        table = {"customJobs": self._state.jobs, "endpoints": self._state.endpoints,
                 "models": self._state.models}.get(collection or "")
        if table is None:
            return _error(404, f"no such collection: {collection}", "NOT_FOUND")
        if name is None and method == "GET":
            return self._list(collection or "", parent, table, query)
        if name is None and method == "POST" and verb == "upload":
            return self._upload(parent, body)
        if name is None and method == "POST":
            return self._create(collection or "", parent, body, query)
        if name not in table:
            return _error(404, f"{collection[:-1] if collection else ''} {name} not found.", "NOT_FOUND")
        if method == "GET" and not verb:
            return 200, table[name]
        return self._act(method, collection or "", name, verb, body)

    def _create(self, collection: str, parent: str, body: dict[str, Any],
                query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        n = next(self._ids)
        if collection == "customJobs":
            name = f"{parent}/customJobs/{1000000000000000000 + n}"
            job = {**_names(body), "name": name, "state": "JOB_STATE_PENDING", "createTime": _stamp(n),
                   "updateTime": _stamp(n)}
            self._state.jobs[name] = job
            return 200, job
        if collection == "endpoints":
            ident = query.get("endpointId") or str(n)
            name = f"{parent}/endpoints/{ident}"
            if name in self._state.endpoints:
                return _error(409, f"Endpoint {name} already exists.", "ALREADY_EXISTS")
            endpoint = {**body, "name": name, "createTime": _stamp(n), "updateTime": _stamp(n), "etag": str(n)}
            return self._operation(name, "CreateEndpoint", "Endpoint", endpoint,
                                   lambda: self._state.endpoints.__setitem__(name, endpoint))
        return _error(400, f"cannot create {collection}", "INVALID_ARGUMENT")

    def _upload(self, parent: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        n = next(self._ids)
        name = f"{parent}/models/{body.get('modelId') or n}"
        if name in self._state.models:
            return _error(409, f"Model {name} already exists.", "ALREADY_EXISTS")
        model = {**body.get("model", {}), "name": name, "versionId": "1", "createTime": _stamp(n),
                 "updateTime": _stamp(n)}
        return self._operation(name, "UploadModel", "UploadModelResponse", {"model": name, "modelVersionId": "1"},
                               lambda: self._state.models.__setitem__(name, model))

    def _act(self, method: str, collection: str, name: str, verb: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        if collection == "customJobs" and verb == "cancel":
            job = self._state.jobs[name]
            if job["state"] in ENDED:
                return _error(400, f"Cannot cancel job {name} in state {job['state']}.", "FAILED_PRECONDITION")
            job.update(state="JOB_STATE_CANCELLED", endTime=_stamp(next(self._ids)))
            return 200, {}
        if collection == "endpoints" and verb == "deployModel":
            return self._deploy(name, body)
        if collection == "endpoints" and verb == "undeployModel":
            endpoint = self._state.endpoints[name]
            kept = [d for d in endpoint.get("deployedModels", []) if d["id"] != body.get("deployedModelId")]

            def undeploy() -> None:
                endpoint["deployedModels"] = kept
                endpoint["trafficSplit"] = {}
            return self._operation(name, "UndeployModel", "UndeployModelResponse", {}, undeploy)
        if method == "DELETE" and not verb:
            table = self._state.endpoints if collection == "endpoints" else self._state.models
            if table[name].get("deployedModels"):
                return _error(400, f"Endpoint {name} has deployed models.", "FAILED_PRECONDITION")
            return self._operation(name, "DeleteOperation", None, {}, lambda: table.pop(name),
                                   metadata="DeleteOperationMetadata")
        return _error(400, f"unsupported: {method} {name}:{verb}", "INVALID_ARGUMENT")

    def _deploy(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        deployed = {**_names(body.get("deployedModel", {})), "id": str(next(self._ids)),
                    "createTime": _stamp(next(self._ids))}
        if deployed.get("model") not in self._state.models:
            return _error(400, f"Model {deployed.get('model')} not found.", "INVALID_ARGUMENT")
        replicas = int(deployed.get("dedicatedResources", {}).get("minReplicaCount", 1))
        deployed["status"] = {"availableReplicaCount": replicas, "lastUpdateTime": deployed["createTime"]}
        endpoint = self._state.endpoints[name]

        def deploy() -> None:
            endpoint.setdefault("deployedModels", []).append(deployed)
            endpoint["trafficSplit"] = {deployed["id"]: 100}
        return self._operation(name, "DeployModel", "DeployModelResponse", {"deployedModel": deployed}, deploy)

    def _operation(self, name: str, kind: str, response: str | None, value: dict[str, Any], do: Any,
                   metadata: str | None = None) -> tuple[int, dict[str, Any]]:
        """An LRO answered done: ``do()`` applied and ``value`` as its response, unless an injected
        failure for ``kind`` turns it into an error (nothing applied)."""
        n = next(self._ids)
        op: dict[str, Any] = {
            "name": f"{name}/operations/{n}", "done": True,
            "metadata": {"@type": TYPE + (metadata or f"{kind}OperationMetadata"),
                         "genericMetadata": {"createTime": _stamp(n), "updateTime": _stamp(n)}}}
        for i, (match, code, message) in enumerate(self._state.op_failures):
            if match.lower() in f":{kind}".lower():
                del self._state.op_failures[i]
                op["error"] = {"code": code, "message": message}
                break
        else:
            do()
            op["response"] = {"@type": (TYPE + response) if response else "type.googleapis.com/google.protobuf.Empty",
                              **value}
        self._state.operations[op["name"]] = op
        return 200, op

    def _list(self, collection: str, parent: str, table: dict[str, dict[str, Any]],
              query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            keep = _filter(query.get("filter", ""))
        except ValueError as e:
            return _error(400, str(e), "INVALID_ARGUMENT")
        items = [v for k, v in table.items() if k.startswith(parent + "/") and keep(v)]
        items.sort(key=lambda v: v["createTime"], reverse=True)
        start = int(query.get("pageToken") or 0)
        per = min(int(query.get("pageSize") or self.page_size), self.page_size)
        more = start + per < len(items)
        out: dict[str, Any] = {collection: items[start:start + per]}
        if more:
            out["nextPageToken"] = str(start + per)
        return 200, out


@functools.cache
def _private_key() -> str:
    """An RSA key made once per test run (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _authorized(header: str | None) -> bool:
    """A token from ``/token``, or a JWT the service account signed itself (its issuer is checked, not its
    signature)."""
    bearer = (header or "").removeprefix("Bearer ")
    if bearer == TOKEN:
        return True
    try:
        payload = bearer.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return False
    return isinstance(claims, dict) and claims.get("iss") == CLIENT_EMAIL


def _filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """The list filter grammar the launcher uses (AIP-160's subset): terms ``labels.KEY="VALUE"``,
    ``labels.KEY:*`` (KEY bare or in double quotes) and ``display_name="VALUE"`` joined by ``AND``."""
    wanted: list[tuple[str, str, str | None]] = []  # (where: label | name, key, value or None: any)
    for term in (t.strip() for t in re.split(r"\s+AND\s+", text.strip()) if t.strip()):
        if m := re.fullmatch(r'labels\.("?)([a-z][\w-]*)\1\s*=\s*"([^"]*)"', term):
            wanted.append(("label", m[2], m[3]))
        elif m := re.fullmatch(r'labels\.("?)([a-z][\w-]*)\1:\*', term):
            wanted.append(("label", m[2], None))
        elif m := re.fullmatch(r'(?:display_name|displayName)\s*=\s*"([^"]*)"', term):
            wanted.append(("name", "displayName", m[1]))
        else:
            raise ValueError(f"Unsupported filter term: {term}")

    def keep(item: dict[str, Any]) -> bool:
        for where, key, value in wanted:
            have = item.get("labels", {}) if where == "label" else item
            if key not in have or value not in (None, have[key]):
                return False
        return True
    return keep


def _names(value: Any) -> Any:
    """A request body with enum numbers turned into names (stored as the API stores them)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            names = {n: s for s, n in _ENUMS[k].items()} if k in _ENUMS else None
            out[k] = names.get(v, v) if names and isinstance(v, int) else _names(v)
        return out
    return [_names(v) for v in value] if isinstance(value, list) else value


def _ints(value: Any) -> Any:
    """A response with enum names as numbers (``enum-encoding=int``)."""
    if isinstance(value, dict):
        return {k: (_ENUMS[k].get(v, v) if k in _ENUMS and isinstance(v, str) else _ints(v)) for k, v in value.items()}
    return [_ints(v) for v in value] if isinstance(value, list) else value


def _error(status: int, message: str, rpc_status: str | None = None,
           reason: str | None = None) -> tuple[int, dict[str, Any]]:
    err: dict[str, Any] = {"code": status, "message": message}
    if rpc_status:
        err["status"] = rpc_status
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                           "domain": "aiplatform.googleapis.com"}]
    return status, {"error": err}


def _handler(fake: FakeVertex) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _any(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            raw = self.body()
            try:
                body = json.loads(raw) if raw and url.path != "/token" else {}
            except ValueError:
                status, out = _error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
                self.reply(status, json.dumps(out))
                return
            status, out = fake._answer(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)), body,
                                       self.headers.get("Authorization"))
            self.reply(status, json.dumps(out))

        do_GET = do_POST = do_DELETE = _any

    return Handler
