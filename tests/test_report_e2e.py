"""The report end to end: a synthetic org synced from the HubSpot emulator, KPIs computed, the
report written by the CLI, opened in headless Chromium, exported as PNG and e-mailed to an SMTP
server on 127.0.0.1.

The org is changed before it is served, as a person would in the CRM: a won deal is renamed to a
script tag, a rep gets a Persian name and another moves to a third team. eNPS answers arrive
through `surveys import`: one team
above the anonymity minimum, one at it, one under it, so both hiding rules show.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine
from typer.testing import CliRunner

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.cli import app
from kpisync.config import Settings
from kpisync.context import open_context
from kpisync.errors import ConfigError
from kpisync.registry import build_connector
from kpisync.report import build_report, draw_charts, export_pngs, send_report
from kpisync.sync import SyncOptions, sync_source
from metrics.engine import compute_all
from metrics.options import metric_config
from metrics.survey_import import import_surveys

HOSTILE = "<script>alert(1)</script>"
PERSIAN = ("زهرا", "کریمی")
TOKEN, TOKEN_ENV = "pat-na1-report-tests-0123", "KPISYNC_TEST_REPORT_TOKEN"
PASSWORD, PASSWORD_ENV = "smtp-secret-4711", "KPISYNC_TEST_SMTP_PASSWORD"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)
BLUE = (37, 99, 235)  # the trend line's colour


@dataclass
class Store:
    folder: Path
    settings_path: Path
    settings: Settings
    engine: Engine
    now: datetime


def settings_text(base_url: str, store: Path, reps: list[str]) -> str:
    quotas = "\n".join(
        f'[[metrics.quotas]]\nperiod = "quarter"\nstart = 2026-10-01\n'
        f'amount = 60000\nrep = "{email}"\n'
        for email in reps
    )
    return f"""
[kpisync]
store = "sqlite:///{store}"
timezone = "Europe/Warsaw"
currency = "USD"

[sources.hs]
type = "hubspot"
host = "{base_url}"
token_env = "{TOKEN_ENV}"
search_lag_seconds = 0
fast_retries = true
roles = {{ deal_type = "deal_category" }}

[metrics]
currency_rates = {{ EUR = 1.08, GBP = 1.27, PLN = 0.25 }}

[[metrics.goals]]
name = "Quarterly revenue"
kpi = "sales_volume"
target = 150000
period = "quarter"

[[metrics.goals]]
name = "Win rate"
kpi = "win_rate"
target = 0.4
period = "quarter"

{quotas}
[report]
title = "Sales report"
period = "quarter"
"""


def enps_csv(folder: Path) -> Path:
    """Team Alpha 7 answers, Team Bravo 5, Team Charlie 2 (under the minimum of 5), October 2026."""
    rows = ["kind,score,answered_at,team"]
    for team, scores in (
        ("Team Alpha", (10, 9, 9, 8, 7, 6, 10)),
        ("Team Bravo", (9, 3, 7, 10, 8)),
        ("Team Charlie", (2, 10)),
    ):
        rows += [
            f"enps,{score},2026-10-{12 + i:02d}T10:00:00Z,{team}" for i, score in enumerate(scores)
        ]
    path = folder / "enps.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("report")
    org = generate_org(seed=2, deals=300)
    october = [
        d for d in org.deals if d.stage == "closed_won" and d.close_date >= date(2026, 10, 1)
    ]
    october[0].name = HOSTILE
    rep = next(r for r in org.reps if r.id == october[-1].owner_id)
    rep.first_name, rep.last_name = PERSIAN
    next(r for r in org.reps if r.team == "Team Alpha" and r is not rep).team = "Team Charlie"
    os.environ[TOKEN_ENV] = TOKEN
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        path = folder / "settings.toml"
        path.write_text(
            settings_text(emulator.base_url, folder / "kpisync.db", [r.email for r in org.reps]),
            encoding="utf-8",
        )
        context = open_context(path)
        connector = build_connector(context.settings.source("hs"))
        try:
            assert sync_source(context.engine, "hs", connector, SyncOptions()).status == "succeeded"
        finally:
            connector.close()
    import_surveys(context.engine, enps_csv(folder), source="hs", timezone="Europe/Warsaw")
    now = org.now + timedelta(hours=12)
    compute_all(context.engine, metric_config(context.settings), now=now)
    yield Store(folder, path, context.settings, context.engine, now)
    context.engine.dispose()


class Dom(HTMLParser):
    """What a browser built: elements with their attributes, and the text of each <td>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self._in_cell = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "td":
            self._in_cell += 1
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell -= 1

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data

    def all(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag
            and all(attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in wanted.items())
        ]


def chromium(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).exists():
        pytest.fail("chromium is not installed: apt-get install chromium (see .ci/test)")
    profile = folder / f"chromium-{uuid.uuid4().hex[:8]}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def cli_app() -> typer.Typer:
    return app


def test_report_opens_in_chromium_with_charts_and_escaped_names(
    store: Store, tmp_path: Path
) -> None:
    out, pngs = tmp_path / "report.html", tmp_path / "charts"
    result = CliRunner().invoke(
        cli_app(),
        [
            "report",
            "--out",
            str(out),
            "--png-dir",
            str(pngs),
            "--as-of",
            store.now.isoformat(),
            "--settings",
            str(store.settings_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Q4 2026" in result.output

    dom = Dom()
    dom.feed(chromium(tmp_path, "--dump-dom", out.as_uri()).stdout)
    assert not dom.all("script"), "a CRM string became a script element"
    assert HOSTILE in dom.cells, "the hostile deal name is not shown as text"
    assert "\u00a0".join(PERSIAN) not in dom.cells and " ".join(PERSIAN) in dom.cells
    charts = {
        attrs["data-chart"]: int(attrs["data-points"] or 0)
        for attrs in dom.all("svg")
        if attrs.get("data-chart")
    }
    assert charts["trend-sales_volume"] >= 6 and charts["trend-win_rate"] >= 6
    assert charts["goals"] == 2 and charts["leaderboard"] >= 3 and charts["nps"] >= 1
    assert charts["enps"] == 2  # the org and Team Alpha; Bravo by differencing, Charlie too small
    lines = [a["d"] or "" for a in dom.all("path", class_="series")]
    assert len(lines) == 6 and all(d.count("L") >= 5 for d in lines)
    assert len(dom.all("bdi")) >= 10  # every CRM name isolated for bidi

    shot = tmp_path / "report.png"
    chromium(tmp_path, "--window-size=1200,3600", f"--screenshot={shot}", out.as_uri())
    assert blue_pixels(shot) > 2000, "the trend lines did not draw"
    assert sorted(p.name for p in pngs.iterdir()) == sorted(f"{name}.png" for name in charts)
    assert all(blue_pixels(p) > 100 for p in pngs.glob("trend-*.png"))


def blue_pixels(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(
        count for count, colour in colours if isinstance(colour, tuple) and near(colour, BLUE)
    )


def near(colour: tuple[int, ...], wanted: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(colour, wanted, strict=True))


def test_enps_is_shown_only_for_groups_at_the_minimum(store: Store) -> None:
    report = build_report(store.settings, store.engine, now=store.now)
    shown = {(g.grain, g.key): g.answers for g in report.enps if g.counts}
    hidden = {g.key: g.reason or "" for g in report.enps if not g.counts}
    assert shown == {("org", "org"): 14, ("team", "Team Alpha"): 7}
    assert "differencing" in hidden["Team Bravo"] and "fewer than 5" in hidden["Team Charlie"]


def test_charts_export_as_png_with_persian_names(store: Store, tmp_path: Path) -> None:
    report = build_report(store.settings, store.engine, now=store.now)
    files = export_pngs(draw_charts(report), tmp_path)
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    board = next(c for c in draw_charts(report) if c.name == "leaderboard")
    assert 'direction="rtl"' in str(board.svg) and PERSIAN[0] in str(board.svg)


# --- e-mail -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[EmailMessage]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[EmailMessage] = []

    class Inbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = message_from_bytes(envelope.content, policy=policy.default)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            assert isinstance(message, EmailMessage)
            received.append(message)
            return "250 OK"

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"reports"
            and auth_data.password == PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    port = free_port()
    controller = Controller(
        Inbox(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def with_email(settings: Settings, port: int) -> Settings:
    extra = dict(settings.extra or {})
    extra["report"] = {
        **extra.get("report", {}),
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": "reports",
            "password_env": PASSWORD_ENV,
            "sender": "kpisync <reports@example.test>",
            "recipients": ["managers@example.test", "ceo@example.test"],
            "period": "quarter",
            "schedule": {"cron": "0 7 * * mon"},
        },
    }
    return Settings(core=settings.core, sources=settings.sources, path=settings.path, extra=extra)


def test_report_is_emailed_with_charts_inline_and_the_page_attached(
    store: Store, smtp_server: tuple[int, list[EmailMessage]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = smtp_server
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    send_report(with_email(store.settings, port), store.engine, now=store.now)

    assert len(received) == 1
    message = received[0]
    assert message["X-Envelope-To"] == "managers@example.test, ceo@example.test"
    assert message["Subject"] == "Sales report: Q4 2026"
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Win rate:" in text and "Goal Quarterly revenue:" in text
    rich = message.get_body(("html",))
    assert rich is not None
    html = rich.get_content()
    assert "<svg" not in html and html.count('src="cid:') == len(
        draw_charts(build_report(store.settings, store.engine, now=store.now))
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and HOSTILE not in html
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert images and all(p.get_content()[:4] == b"\x89PNG" for p in images)
    attached = [
        part
        for part in message.iter_attachments()
        if part.get_filename() == "report-2026-10-01.html"
    ]
    assert len(attached) == 1
    page = attached[0].get_content()
    page = page.decode("utf-8") if isinstance(page, bytes) else page
    assert "<svg" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_wrong_smtp_password_is_one_clear_error_without_the_password(
    store: Store, smtp_server: tuple[int, list[EmailMessage]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = smtp_server
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-1234")
    with pytest.raises(ConfigError) as caught:
        send_report(
            with_email(store.settings, port), store.engine, now=datetime(2026, 10, 31, tzinfo=UTC)
        )
    assert "password_env" in (caught.value.hint or "")
    assert "wrong-password-1234" not in str(caught.value) and not received
