"""Goals (progress, pace, status) and alerts: to the log and a real local webhook, once per crossing."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine

from metrics.alerts import evaluate_alerts
from metrics.declaration import KpiValue
from metrics.engine import ComputeResult
from metrics.goals import goal_statuses
from metrics.options import AlertRule, Goal, MetricConfig, MetricSettings, Webhook

NOW = datetime(2025, 2, 15, 12, tzinfo=UTC)
FEB = date(2025, 2, 1)


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.received, Hook.status = [], 200
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def result(win_rate: float | None, revenue: float) -> ComputeResult:
    return ComputeResult(
        1,
        NOW,
        [
            KpiValue("win_rate", "month", FEB, "org", "org", win_rate, 10, 0),
            KpiValue("sales_volume", "month", FEB, "org", "org", revenue, 5, 0),
        ],
    )


def config(url: str) -> MetricConfig:
    return MetricConfig(
        MetricSettings(
            alerts=(AlertRule(name="win rate down", kpi="win_rate", period="month", below=0.3),),
            goals=(Goal(name="feb revenue", kpi="sales_volume", period="month", target=10_000),),
            webhook=Webhook(url=url),
        ),
        timezone="UTC",
    )


def test_goal_progress_pace_and_status() -> None:
    settings = config("http://unused")
    [status] = goal_statuses(settings, result(0.5, 6_000).values, NOW)
    elapsed = 14.5 / 28  # Feb 15 12:00 of 28 days
    assert status.progress == pytest.approx(0.6)
    assert status.pace == pytest.approx(6_000 / elapsed)
    assert status.status == "on track"
    [status] = goal_statuses(settings, result(0.5, 2_000).values, NOW)
    assert status.status == "off pace"
    [status] = goal_statuses(settings, result(0.5, 12_000).values, NOW)
    assert status.status == "achieved"


def test_alerts_go_out_once_per_crossing(
    engine: Engine, webhook: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = config(webhook)
    with caplog.at_level(logging.WARNING, logger="kpisync.metrics.alerts"):
        first = evaluate_alerts(engine, settings, result(0.2, 2_000))
    assert {a.rule for a in first} == {"win rate down", "goal:feb revenue"}
    assert len(Hook.received) == 2 and "win rate down" in caplog.text
    # read by people (a chat channel): titles, units and periods, not raw floats
    assert {hook["message"] for hook in Hook.received} == {
        "win rate down: Win rate of the org, Feb 2025, is 20.0%, below 30.0%",
        "goal feb revenue: Sales volume (revenue) of the org is off pace (actual 2,000 USD, pace "
        "3,862 USD, target 10,000 USD)",
    }
    assert evaluate_alerts(engine, settings, result(0.1, 2_000)) == []  # still crossed: silent
    assert evaluate_alerts(engine, settings, result(0.5, 9_000)) == []  # back to normal
    again = evaluate_alerts(engine, settings, result(0.25, 9_000))  # a new crossing
    assert [a.rule for a in again] == ["win rate down"]
    assert len(Hook.received) == 3
    assert Hook.received[-1]["kpi"] == "win_rate" and Hook.received[-1]["value"] == 0.25


def test_a_failed_webhook_is_retried_while_the_crossing_lasts(engine: Engine, webhook: str) -> None:
    settings = config(webhook)
    Hook.status = 500
    assert len(evaluate_alerts(engine, settings, result(0.2, 9_000))) == 1
    Hook.status = 200
    assert len(evaluate_alerts(engine, settings, result(0.2, 9_000))) == 1
    assert evaluate_alerts(engine, settings, result(0.2, 9_000)) == []
    assert len(Hook.received) == 2
