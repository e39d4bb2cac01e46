"""The report's parts on their own: escaping, text direction, number formats, settings, the eNPS
guard, an empty store, and SMTP failures translated into the error tree."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from markupsafe import Markup
from sqlalchemy import Engine

from kpisync.config import Settings, parse_settings
from kpisync.errors import ConfigError, TransientError
from kpisync.formats import period_label, show_axis, show_value
from kpisync.report import build_report, delivery_schedule, draw_charts, inline_figures, render_html
from kpisync.report.commands import check_writable
from kpisync.report.options import report_settings
from kpisync.report.surveys import CHANGED, enps_groups
from kpisync.report.svg import direction, el, label
from kpisync.store.models import SurveyResponse, model_table
from metrics.engine import compute_all
from metrics.options import metric_config

NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)


def test_svg_elements_escape_text_and_attributes_but_not_markup() -> None:
    hostile = '<script>alert("x")</script>'
    built = el("g", el("text", hostile), hostile, data_name=hostile)
    assert "<script>" not in built and built.count("&lt;script&gt;") == 3
    assert el("g", Markup("<rect/>")) == Markup("<g><rect/></g>")
    assert el("rect", x=1.5, y=2.0, class_="bar", fill=None) == Markup(
        '<rect x="1.5" y="2" class="bar"/>'
    )


def test_right_to_left_text_is_marked_and_its_anchor_mirrored() -> None:
    assert direction("زهرا کریمی") == "rtl" and direction("Łukasz Дмитрий") == "ltr"
    assert direction("123 شرکت") == "rtl"  # digits are weak: the first strong letter decides
    persian = label(10, 20, "شرکت پارس داده", anchor="end")
    assert 'direction="rtl"' in persian and 'text-anchor="start"' in persian
    assert "direction" not in label(10, 20, "Zakład Żółć", anchor="end")


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.4733, "ratio", "47.3%"),
        (60698.78, "money", "60,699 USD"),
        (-12.0, "score", "\u221212"),
        (36.4, "score", "+36"),
        (34.25, "days", "34.2 days"),
        (3.0, "count", "3"),
        (2.5, "multiple", "2.50\u00d7"),
        (None, "money", "no data"),
    ],
)
def test_values_are_written_by_unit(value: float | None, unit: str, shown: str) -> None:
    assert show_value(value, unit, "USD") == shown


def test_axes_and_periods_are_compact() -> None:
    assert show_axis(250000, "money") == "250k" and show_axis(0.35, "ratio") == "35%"
    assert period_label(date(2026, 10, 26), "week") == "W44 2026"
    assert period_label(date(2026, 10, 1), "quarter") == "Q4 2026"


def settings_with(report: dict[str, object]) -> Settings:
    return parse_settings({"kpisync": {"timezone": "Europe/Warsaw"}, "report": report})


def test_report_settings_name_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"report\.tiles.*unknown KPI 'revenue'"):
        report_settings(settings_with({"tiles": ["revenue"]}))
    email = {"host": "smtp.example.com", "sender": "a@example.com", "recipients": ["b@example.com"]}
    with pytest.raises(ConfigError, match="never sent unencrypted"):
        report_settings(
            settings_with(
                {"email": {**email, "security": "none", "username": "u", "password_env": "P"}}
            )
        )
    with pytest.raises(ConfigError, match=r"report\.email\.password: secrets may not be written"):
        settings_with({"email": {**email, "password": "hunter2"}})
    assert delivery_schedule(settings_with({})) is None
    schedule = delivery_schedule(
        settings_with({"email": {**email, "schedule": {"cron": "0 7 * * mon"}}})
    )
    assert schedule is not None and schedule.cron == "0 7 * * mon"


def answer(n: int, team: str, score: int, day: int) -> SurveyResponse:
    return SurveyResponse(
        source="crm",
        external_id=f"e{n}",
        kind="enps",
        score=score,
        team=team,
        answered_at=datetime(2026, 10, day, 9, tzinfo=UTC),
    )


def test_an_enps_group_waits_when_answers_changed_after_the_computation(
    sqlite_engine: Engine,
) -> None:
    settings = settings_with({})
    rows = [answer(i, "Team Alpha", 9 if i % 2 else 4, 5 + i) for i in range(6)]
    rows += [answer(10 + i, "Team Beta", 10, 5 + i) for i in range(5)]
    insert(sqlite_engine, rows)
    compute_all(sqlite_engine, metric_config(settings), now=NOW, only=["enps"])
    config = metric_config(settings)
    before = {g.key: g for g in enps_groups(sqlite_engine, config, "month", date(2026, 10, 1), NOW)}
    assert before["Team Alpha"].answers == 6 and before["org"].answers == 11
    insert(sqlite_engine, [answer(99, "Team Alpha", 0, 15)])
    after = {g.key: g for g in enps_groups(sqlite_engine, config, "month", date(2026, 10, 1), NOW)}
    assert after["Team Alpha"].counts == () and after["Team Alpha"].reason == CHANGED
    assert after["org"].counts == () and after["Team Beta"].answers == 5


def insert(engine: Engine, rows: list[SurveyResponse]) -> None:
    table = model_table(SurveyResponse)
    with engine.begin() as connection:
        connection.execute(table.insert(), [row.model_dump(exclude={"id"}) for row in rows])


def test_an_empty_store_gives_a_report_that_says_so(sqlite_engine: Engine) -> None:
    settings = settings_with({})
    report = build_report(settings, sqlite_engine, now=NOW)
    page = render_html(report, inline_figures(draw_charts(report)))
    assert "No KPI values are stored yet" in page and "no data in these periods" in page
    assert report.leaderboard == () and report.nps is None and report.enps == ()


def test_an_unreachable_mail_server_is_a_retryable_error(sqlite_engine: Engine) -> None:
    from kpisync.report import send_report

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nobody listens there
    settings = settings_with(
        {
            "email": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "sender": "a@example.test",
                "recipients": ["b@example.test"],
                "timeout_seconds": 5,
            }
        }
    )
    with pytest.raises(TransientError, match="could not e-mail the report") as caught:
        send_report(settings, sqlite_engine, now=NOW)
    assert caught.value.retryable and "reachable" in (caught.value.hint or "")


def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path) -> None:
    check_writable(tmp_path / "report.html", tmp_path / "charts")  # a new file and folder: fine
    (tmp_path / "taken").write_text("", encoding="utf-8")
    cases = [
        (tmp_path / "missing" / "report.html", None, "the folder"),
        (tmp_path, None, "is a folder"),
        (tmp_path / "report.html", tmp_path / "taken", "--png-dir"),
    ]
    for out, png_dir, says in cases:
        with pytest.raises(ConfigError, match=says):
            check_writable(out, png_dir)
