"""A fault-injecting proxy in front of a local AWS server (moto), for tests.

Requests pass through to the upstream server unchanged, except those matching a fault rule, which get
the canned answer in the service's real error wire format instead — S3's XML ``<Error>`` body, or the
JSON 1.1 ``{"__type": …, "message": …}`` of Cost Explorer — so the real SDK parses and retries (or
not) exactly as it would against AWS.

Usage::

    with FaultProxy(moto_url) as proxy:
        proxy.fail(S3_GET_OBJECT, 503, s3_error("SlowDown", "Please reduce your request rate."), times=2)
        proxy.fail(ce_op("GetCostAndUsage"), 400, json_error("ExpiredTokenException", "expired"))
        s3 = boto3.client("s3", endpoint_url=proxy.url, ...)
        ...
        assert proxy.served == 2
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalServer, QuietHandler


@dataclass
class Seen:
    """What a rule sees of a request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> dict:
        """The body of a JSON-protocol request (Cost Explorer)."""
        return json.loads(self.body or b"{}")


Match = Callable[[Seen], bool]


@dataclass
class Rule:
    match: Match
    status: int
    body: bytes
    content_type: str
    times: int | None  # None: every time


def S3_GET_OBJECT(r: Seen) -> bool:
    return r.method == "GET" and r.path.count("/") >= 2 and "list-type" not in r.query


def S3_LIST(r: Seen) -> bool:
    return r.method == "GET" and "list-type" in r.query


def ce_op(operation: str) -> Match:
    """A Cost Explorer operation by its X-Amz-Target (``AWSInsightsIndexService.<operation>``)."""
    return lambda r: r.headers.get("x-amz-target", "").endswith(f".{operation}")


def s3_error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>FAKE</RequestId><HostId>FAKE</HostId></Error>").encode()


def json_error(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message}).encode()


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.rules: list[Rule] = []
        self.served = 0
        self.passed = 0
        self.seen: list[Seen] = []  # every request, in arrival order
        self.lock = threading.Lock()
        self._server = LocalServer(self._handler())
        self.url = self._server.url

    def fail(self, match: Match, status: int, body: bytes, *, times: int | None = 1,
             content_type: str | None = None) -> None:
        ctype = content_type or ("application/x-amz-json-1.1" if body.startswith(b"{") else "application/xml")
        self.rules.append(Rule(match, status, body, ctype, times))

    def _take(self, seen: Seen) -> Rule | None:
        with self.lock:
            self.seen.append(seen)
            for rule in self.rules:
                if (rule.times is None or rule.times > 0) and rule.match(seen):
                    if rule.times is not None:
                        rule.times -= 1
                    self.served += 1
                    return rule
            self.passed += 1
            return None

    def _handler(self) -> type[QuietHandler]:
        proxy = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                body = self.body()
                parts = urlsplit(self.path)
                seen = Seen(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                            {k.lower(): v for k, v in self.headers.items()}, body)
                rule = proxy._take(seen)
                if rule is not None:
                    return self._send(rule.status, {"Content-Type": rule.content_type}, rule.body)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders()
                       if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                conn.close()
                self._send(resp.status, out, data, length)

            def _send(self, status: int, headers: dict[str, str], data: bytes, length: str | None = None) -> None:
                # A HEAD answer carries the object's length and no body.
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length if length is not None else str(len(data)))
                self.end_headers()
                if length is None:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
