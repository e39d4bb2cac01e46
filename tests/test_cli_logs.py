"""Logs outside a terminal (a journal, a container's log, a pipe): one plain line per record; under
--log-json every line on stderr is JSON: usage errors, uncaught exceptions and command messages too."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from unittest.mock import patch

import pytest

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.logs import JOB_STORE_ERROR, PlainLines, Repeats, setup_logging
from kpisync.secrets import remember_secret
from tests.hubspot_env import SOURCE, TOKEN, TOKEN_ENV, HubSpotEnv

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) [\w.]+: \S")


def test_a_logged_sync_is_one_line_per_record_with_its_time_in_utc(tmp_path: Path) -> None:
    org = generate_org(seed=3, deals=10)
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        settings = HubSpotEnv(org, emulator).settings_file(
            tmp_path, f"sqlite:///{tmp_path / 'store.db'}"
        )
        done = subprocess.run(
            [sys.executable, "-m", "kpisync.cli", "--verbose", "sync", "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, TOKEN_ENV: TOKEN, "COLUMNS": "40"},
        )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), done.stderr
    assert any(f"INFO kpisync.sync: synced {SOURCE}/deals: 1 pages, " in line for line in lines)
    # longer than the 40 columns the "terminal" has, and still one line
    assert any(
        re.search(f"new custom fields on {SOURCE}: .*deals.deal_category", line) for line in lines
    ), done.stderr


def test_a_message_of_several_lines_is_logged_on_one() -> None:
    record = logging.LogRecord(
        "apscheduler.scheduler",
        logging.WARNING,
        __file__,
        1,
        "Error getting due jobs: %s",
        ("connection refused\n\tIs the server running?\n(Background on this error at: …)",),
        None,
    )
    assert (
        PlainLines()
        .format(record)
        .endswith(
            " WARNING apscheduler.scheduler: Error getting due jobs: connection refused Is the server "
            "running? (Background on this error at: …)"
        )
    )


def test_the_job_stores_error_is_logged_once_per_five_minutes_while_the_store_is_down() -> None:
    """APScheduler repeats it every 10 s during a store outage: one line per 5 min is enough."""
    clock = [1000.0]
    repeats = Repeats((JOB_STORE_ERROR,), every=300)
    scheduler = logging.getLogger("apscheduler.scheduler")
    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    handler = Keep()
    before = list(scheduler.filters)  # setup_logging in an earlier test may have added its own
    scheduler.filters[:] = [repeats]
    scheduler.addHandler(handler)
    try:
        with patch("kpisync.logs.time.monotonic", lambda: clock[0]):
            for _ in range(31):  # five minutes and ten seconds of an outage
                scheduler.warning(JOB_STORE_ERROR, "default", "connection refused")
                scheduler.warning("Run time of job %r was missed", "pipeline:hs")
                clock[0] += 10
    finally:
        scheduler.filters[:] = before
        scheduler.removeHandler(handler)
    errors = [m for m in kept if m.startswith("Error getting due jobs")]
    assert (
        errors
        == [
            "Error getting due jobs from job store 'default': connection refused "
            "(repeats are logged once every 300 s)"
        ]
        * 2
    )
    assert len(kept) - len(errors) == 31  # other messages pass untouched


CLI = [sys.executable, "-m", "kpisync.cli"]
SCRIPT = str(Path(sys.executable).parent / "kpisync")  # as installed: its usage names "kpisync"
USAGE_ERRORS = [  # (arguments, what the message says, the fix); the README's exit code: 2
    (["--log-json", "--bogus", "status"], "No such option: --bogus", "see 'kpisync --help'"),
    (["--log-json", "nosuch"], "No such command 'nosuch'", "see 'kpisync --help'"),
    (["--log-json"], "Missing command", "see 'kpisync --help'"),
    (["--log-json", "status", "--bogus"], "No such option: --bogus", "see 'kpisync status --help'"),
    (["--log-json", "check"], "Missing argument 'source'", "see 'kpisync check --help'"),
    (
        ["--log-json", "status", "--runs", "x"],
        "Invalid value for '--runs'",
        "see 'kpisync status --help'",
    ),
    (["--log-json", "db"], "'kpisync db' needs a command", "see 'kpisync db --help'"),
    (
        ["--log-json", "writeback", "nosuch"],
        "no write-back command 'nosuch'",
        "see 'kpisync writeback --help'",
    ),
    (
        ["sync", "--log-json"],
        "No such option: --log-json",
        (
            "--log-json is an option of kpisync itself: put it before the command "
            "('kpisync --log-json sync …')"
        ),
    ),
]


def test_a_usage_error_under_log_json_is_one_json_line_with_exit_code_2(tmp_path: Path) -> None:
    for arguments, says, fix in USAGE_ERRORS:
        done = subprocess.run(
            [SCRIPT, *arguments],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, (arguments, done.stderr)
        [line] = done.stderr.splitlines()
        record = json.loads(line)
        assert record["level"] == "error" and record["exit_code"] == 2, record
        assert says in record["message"] and record["fix"] == fix, (arguments, record)
    plain = subprocess.run(
        [SCRIPT, "status", "--bogus"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert plain.returncode == 2 and "No such option: --bogus" in plain.stderr
    assert not plain.stderr.startswith("{")  # Typer's own text, without --log-json


def test_an_uncaught_error_under_log_json_is_a_json_record(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python prints an exception nobody caught, of the main thread or another, as plain text."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # put back after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    setup_logging(json_lines=True)
    remember_secret(TOKEN)  # as reading it from the environment does

    def fail() -> None:
        raise RuntimeError(f"gone with {TOKEN}")

    thread = threading.Thread(target=fail, name="kpisync-probe")
    thread.start()
    thread.join()
    try:
        fail()
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]
    assert [r["message"] for r in records] == [
        "uncaught RuntimeError in thread kpisync-probe: gone with ***",
        "uncaught RuntimeError: gone with ***",
    ], err
    assert all(r["level"] == "critical" and "Traceback" in r["error"] for r in records)
    assert TOKEN not in err


def test_survey_import_messages_under_log_json_are_json_lines(tmp_path: Path) -> None:
    org = generate_org(seed=3, deals=10)
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        settings = HubSpotEnv(org, emulator).settings_file(
            tmp_path, f"sqlite:///{tmp_path / 'store.db'}"
        )
        env = {**os.environ, TOKEN_ENV: TOKEN}
        synced = subprocess.run(
            [*CLI, "sync", "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
        assert synced.returncode == 0, synced.stderr
    answers = tmp_path / "answers.csv"
    answers.write_text(
        f"score,date,email\n9,2025-03-01,{org.contacts[0].email}\n7,2025-03-02,nobody@x.test\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            *CLI,
            "--log-json",
            "surveys",
            "import",
            str(answers),
            "--source",
            SOURCE,
            "--no-compute",
            "--json",
            "--settings",
            str(settings),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 7, done.stderr  # a row was rejected
    assert json.loads(done.stdout)["imported"] == 1
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["level"] for r in records] == ["info", "error"], records
    assert records[0]["message"].startswith("the KPIs (NPS, eNPS, the report) are stale")
    assert records[1]["exit_code"] == 7
