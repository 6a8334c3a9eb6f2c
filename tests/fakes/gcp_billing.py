"""A local Cloud Billing API v1 (``cloudbilling.googleapis.com``) for billing accounts and projects.

It answers ``GET /v1/billingAccounts`` and ``GET /v1/billingAccounts/{id}/projects`` (paged with
``pageSize``/``pageToken``/``nextPageToken``) and ``GET /v1/projects/{p}/billingInfo`` in the JSON wire
format google-cloud-billing's REST transport reads. Faults: :meth:`fail` answers the next N requests
(of a path) with an error status; :meth:`expire_credentials` answers 401 from then on.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import LocalServer, QuietHandler, Served

ACCOUNTS: list[dict[str, Any]] = [
    {"name": "billingAccounts/01A2B3-C4D5E6-F70819", "open": True, "displayName": "ExampleCorp Billing - Primary",
     "masterBillingAccount": "", "currencyCode": "USD"},
    {"name": "billingAccounts/000000-B0BBA4-940A77", "open": True, "displayName": "Research sandbox",
     "masterBillingAccount": "", "currencyCode": "USD"},
    {"name": "billingAccounts/018984-D0AAA4-940B88", "open": True, "displayName": "Cost management lab",
     "masterBillingAccount": "billingAccounts/01A2B3-C4D5E6-F70819", "currencyCode": "USD"},
    {"name": "billingAccounts/0F0F0F-000000-CL05ED", "open": False, "displayName": "Closed 2019 pilot",
     "masterBillingAccount": "", "currencyCode": "EUR"},
]
PROJECTS: dict[str, list[str]] = {
    "01A2B3-C4D5E6-F70819": ["ml-train-4711", "ml-serve-0815", "data-lake-3141", "shared-net-2718"],
    "000000-B0BBA4-940A77": ["billing-example-00000"],
    "018984-D0AAA4-940B88": ["cloud-billing-292519"],
    "0F0F0F-000000-CL05ED": [],
}

_STATUS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class Call:
    path: str
    page_token: str
    status: int


class FakeCloudBilling(Served):
    """The fake on 127.0.0.1 (an ephemeral port); a context manager."""

    def __init__(self, accounts: Sequence[dict[str, Any]] = ACCOUNTS,
                 projects: Mapping[str, list[str]] = PROJECTS, *, page_size: int = 2) -> None:
        self.accounts = list(accounts)
        self.projects = {k: list(v) for k, v in projects.items()}
        self.page_size = page_size
        self._faults: list[tuple[int, str, int]] = []  # (status, path part, left)
        self._expired = False
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = LocalServer(_handler(self))

    def fail(self, times: int, status: int = 429, *, path_contains: str = "") -> None:
        with self._lock:
            self._faults.append((status, path_contains, times))

    def expire_credentials(self) -> None:
        with self._lock:
            self._expired = True

    def calls(self, path_contains: str = "") -> list[Call]:
        with self._lock:
            return [c for c in self._calls if path_contains in c.path]

    def handle(self, path: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        token = query.get("pageToken", "")
        with self._lock:
            status, body = self._route(path, token, query)
            self._calls.append(Call(path, token, status))
        return status, body

    def _route(self, path: str, token: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if self._expired:
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.")
        for i, (status, part, left) in enumerate(self._faults):
            if left and part in path:
                self._faults[i] = (status, part, left - 1)
                return _error(status, "Quota exceeded" if status == 429 else "The service is unavailable.")
        parts = path.strip("/").split("/")
        size = min(int(query.get("pageSize") or self.page_size), self.page_size)
        if parts == ["v1", "billingAccounts"]:
            return self._page("billingAccounts", self.accounts, token, size)
        if len(parts) == 4 and parts[:2] == ["v1", "billingAccounts"] and parts[3] == "projects":
            if parts[2] not in self.projects:
                return _error(404, f"Billing account {parts[2]} not found.")
            infos = [{"name": f"projects/{p}/billingInfo", "projectId": p,
                      "billingAccountName": f"billingAccounts/{parts[2]}", "billingEnabled": True}
                     for p in self.projects[parts[2]]]
            return self._page("projectBillingInfo", infos, token, size)
        if len(parts) == 4 and parts[:2] == ["v1", "projects"] and parts[3] == "billingInfo":
            for acc, ps in self.projects.items():
                if parts[2] in ps:
                    return 200, {"name": f"projects/{parts[2]}/billingInfo", "projectId": parts[2],
                                 "billingAccountName": f"billingAccounts/{acc}", "billingEnabled": True}
            return _error(404, f"Project {parts[2]} not found.")
        return _error(404, f"no such resource: {path}")

    def _page(self, key: str, items: list[dict[str, Any]], token: str, size: int) -> tuple[int, dict[str, Any]]:
        start = int(token) if token else 0
        more = start + size < len(items)
        return 200, {key: items[start:start + size], "nextPageToken": str(start + size) if more else ""}


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def _handler(fake: FakeCloudBilling) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            status, body = fake.handle(url.path, dict(urllib.parse.parse_qsl(url.query)))
            self.reply(status, json.dumps(body))

    return Handler
