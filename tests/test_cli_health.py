"""/healthz and /metrics through their HTTP server: ok, idle (nothing scheduled) and unavailable
are told apart; the metrics parse as Prometheus exposition, plain or gzipped, with the values set."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from kpisync.health import HealthServer, HealthState, RunMetrics


def fetch(server: HealthServer) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{server.address}/healthz") as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_healthz_says_ok_idle_or_unavailable() -> None:
    due = datetime(2026, 12, 7, 12, 15, tzinfo=UTC)
    state = HealthState(worker="w1", scheduler_running=True, next_runs=lambda: {"hs": due})
    server = HealthServer(state, RunMetrics())
    server.start()
    try:
        code, body = fetch(server)
        assert (code, body["status"], body["store"]) == (200, "ok", "ok")
        assert "detail" not in body

        state.next_runs = dict  # the worker runs, but no source has a schedule
        code, body = fetch(server)
        assert (code, body["status"]) == (200, "idle")
        assert body["detail"] == "nothing scheduled: no source has a [sources.<name>.schedule]"

        state.store_ok = lambda: False
        code, body = fetch(server)
        assert (code, body["status"], body["store"]) == (503, "unavailable", "unreachable")

        state.store_ok, state.next_runs = (lambda: True), (lambda: {"hs": due})
        state.stopping = True
        code, body = fetch(server)
        assert (code, body["status"], body["scheduler"]) == (503, "unavailable", "stopping")
    finally:
        server.stop()


def get_metrics(server: HealthServer, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.address}/metrics", headers=headers)
    with urllib.request.urlopen(request) as answer:
        return {k.lower(): v for k, v in answer.headers.items()}, answer.read()


def kpisync_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("kpisync_")
        for sample in family.samples
    }


def test_metrics_parse_plain_and_gzipped_with_the_values_set() -> None:
    metrics = RunMetrics()
    metrics.runs.labels(source="hs", status="succeeded").inc(3)
    metrics.rows.labels(source="hs", change="inserted").inc(120)
    metrics.duration.labels(source="hs").observe(42.0)
    metrics.failures_in_a_row.labels(source="hs").set(2)
    server = HealthServer(HealthState(worker="w1", scheduler_running=True), metrics)
    server.start()
    try:
        headers, body = get_metrics(server, {})
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "content-encoding" not in headers
        plain = kpisync_samples(body.decode())
        assert (
            plain[("kpisync_pipeline_runs_total", (("source", "hs"), ("status", "succeeded")))] == 3
        )
        assert (
            plain[("kpisync_rows_synced_total", (("change", "inserted"), ("source", "hs")))] == 120
        )
        assert plain[("kpisync_pipeline_run_seconds_sum", (("source", "hs"),))] == 42.0
        assert (
            plain[("kpisync_pipeline_run_seconds_bucket", (("le", "30.0"), ("source", "hs")))] == 0
        )
        assert (
            plain[("kpisync_pipeline_run_seconds_bucket", (("le", "60.0"), ("source", "hs")))] == 1
        )
        assert plain[("kpisync_failures_in_a_row", (("source", "hs"),))] == 2
        assert b"process_resident_memory_bytes" in body

        headers, body = get_metrics(server, {"Accept-Encoding": "gzip"})
        assert headers["content-encoding"] == "gzip"
        assert kpisync_samples(gzip.decompress(body).decode()) == plain

        headers, body = get_metrics(server, {"Accept": "application/openmetrics-text"})
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith(b"# EOF")
    finally:
        server.stop()
