"""/healthz through its HTTP server: ok, idle (nothing scheduled) and unavailable are told apart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

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
