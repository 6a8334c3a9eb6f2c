"""The scheduler's Prometheus metrics and ``/healthz``, on ``[scheduler] host:port`` (127.0.0.1 by default).

Per job: last success time, last duration, failures; whether this process leads; queue depth by state
(read from the ledger at each scrape)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from finops.config import Config
from finops.ledger import Ledger, workloads

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, cfg: Config, led: Ledger) -> None:
        self.cfg, self.led = cfg, led
        self.registry = r = CollectorRegistry()
        self.success = Gauge("finops_job_last_success_timestamp_seconds", "Last successful run", ["job"], registry=r)
        self.duration = Gauge("finops_job_last_duration_seconds", "Duration of the last run", ["job"], registry=r)
        self.failures = Counter("finops_job_failures", "Failed runs", ["job"], registry=r)
        self.leader = Gauge("finops_scheduler_leader", "1 when this process holds the lease", registry=r)
        self.queue = Gauge("finops_queue_workloads", "Workloads by state", ["state"], registry=r)
        self.server: ThreadingHTTPServer | None = None
        self.started = time.time()
        self.runner: Any = None

    def ok(self, job: str, seconds: float) -> None:
        self.success.labels(job).set(time.time())
        self.duration.labels(job).set(seconds)

    def failed(self, job: str, seconds: float) -> None:
        self.failures.labels(job).inc()
        self.duration.labels(job).set(seconds)

    def leading(self, lead: bool) -> None:
        self.leader.set(1 if lead else 0)

    def _scrape(self) -> bytes:
        try:
            with self.led.engine.connect() as c:
                for state, n in c.execute(select(workloads.c.state, func.count()).group_by(workloads.c.state)):
                    self.queue.labels(state).set(n)
        except SQLAlchemyError as e:  # the ledger away: the other metrics are still served
            log.debug("queue depth not read: %s", e)
        return generate_latest(self.registry)

    def start(self, runner: Any) -> str:
        """Serve; returns the base URL."""
        metrics = self
        self.runner = runner

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, ctype = metrics._scrape(), CONTENT_TYPE_LATEST
                elif self.path == "/healthz":
                    body = json.dumps({"ok": True, "leader": metrics.runner.leading.is_set(),
                                       "running": sorted(metrics.runner.running),
                                       "uptime_seconds": round(time.time() - metrics.started, 1)}).encode()
                    ctype = "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        sc = self.cfg.scheduler
        self.server = ThreadingHTTPServer((sc.host, sc.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
