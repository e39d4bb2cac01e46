"""Health and Prometheus metrics of a `kpisync run` worker, served on 127.0.0.1 unless told otherwise.

    GET /healthz   200 while the scheduler runs and the store answers, else 503; a JSON body with
                   the worker, each instance's last outcome and next run, and a status of
                   "ok", "idle" (200, but no source is scheduled: nothing will ever run) or
                   "unavailable" (503: the scheduler stopped or stopping, or the store is down)
    GET /metrics   Prometheus text format (prometheus-client), from this worker's own registry

The metrics are per worker: with several workers, sum them in PromQL.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class RunMetrics:
    """The worker's Prometheus metrics; the pipeline reports each run's outcome here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # RSS, CPU, open fds: is memory flat?
        r = self.registry
        self.runs = Counter(
            "kpisync_pipeline_runs", "Pipeline runs by outcome", ["source", "status"], registry=r
        )
        self.duration = Histogram(
            "kpisync_pipeline_run_seconds",
            "Duration of pipeline runs",
            ["source"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "kpisync_rows_synced",
            "Rows written to the store by syncs",
            ["source", "change"],
            registry=r,
        )
        self.api_calls = Counter(
            "kpisync_api_calls", "CRM API calls made", ["source", "stage"], registry=r
        )
        self.in_progress = Gauge(
            "kpisync_run_in_progress",
            "1 while a run of the instance is going",
            ["source"],
            registry=r,
        )
        self.last_success = Gauge(
            "kpisync_last_success_timestamp_seconds",
            "When the instance's last successful run ended",
            ["source"],
            registry=r,
        )
        self.failures_in_a_row = Gauge(
            "kpisync_failures_in_a_row",
            "Runs of the instance failed since its last success",
            ["source"],
            registry=r,
        )
        self.next_run = Gauge(
            "kpisync_next_run_timestamp_seconds",
            "When the instance runs next",
            ["source"],
            registry=r,
        )
        self.budget_calls = Gauge(
            "kpisync_api_budget_calls_today",
            "Calls kpisync made today against the org's budget",
            ["org"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "kpisync_api_remaining_today",
            "Calls the CRM last said were left today",
            ["org"],
            registry=r,
        )
        self.incidents = Gauge(
            "kpisync_open_incidents", "Open operations alerts", ["source", "kind"], registry=r
        )


@dataclass
class HealthState:
    """What /healthz reports; the worker updates it, the server only reads it."""

    worker: str
    scheduler_running: bool = False
    stopping: bool = False
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    store_ok: Callable[[], bool] = lambda: True
    next_runs: Callable[[], dict[str, datetime | None]] = dict

    def report(self) -> tuple[int, dict[str, Any]]:
        store_ok = self.store_ok()
        try:
            nexts = self.next_runs() if store_ok else {}  # the schedules are kept in the store
        except SQLAlchemyError:  # the store went away since it answered
            store_ok, nexts = False, {}
        healthy = self.scheduler_running and not self.stopping and store_ok
        sources = {
            name: {**info, "next_run": _iso(nexts.get(name))}
            for name, info in sorted(self.sources.items())
        }
        idle = healthy and not nexts  # running, but no source has a schedule: nothing will happen
        body = {
            "status": "idle" if idle else "ok" if healthy else "unavailable",
            **(
                {"detail": "nothing scheduled: no source has a [sources.<name>.schedule]"}
                if idle
                else {}
            ),
            "worker": self.worker,
            "scheduler": "stopping"
            if self.stopping
            else "running"
            if self.scheduler_running
            else "stopped",
            "store": "ok" if store_ok else "unreachable",
            "sources": sources,
        }
        return (200 if healthy else 503), body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class HealthServer:
    """A tiny HTTP server in a daemon thread: /healthz and /metrics."""

    def __init__(
        self, state: HealthState, metrics: RunMetrics, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state, self.metrics = state, metrics
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            name="kpisync-health",
            kwargs={"poll_interval": 0.2},
            daemon=True,
        )

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()
        log.info("health and metrics on %s (/healthz, /metrics)", self.address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(owner: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would flood the log

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/healthz":
                status, body = owner.state.report()
                self._send(status, "application/json", json.dumps(body).encode())
            elif self.path.split("?")[0] == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(owner.metrics.registry))
            else:
                self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
