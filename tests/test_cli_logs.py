"""Logs outside a terminal (a journal, a container's log, a pipe): one plain line per record."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.logs import JOB_STORE_ERROR, PlainLines, Repeats
from tests.hubspot_env import SOURCE, TOKEN, TOKEN_ENV, HubSpotEnv

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) [\w.]+: \S")


def test_a_logged_sync_is_one_line_per_record_with_its_time_in_utc(tmp_path: Path) -> None:
    org = generate_org(seed=3, deals=10)
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        settings = HubSpotEnv(org, emulator).settings_file(
            tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
        done = subprocess.run(
            [sys.executable, "-m", "kpisync.cli", "--verbose", "sync", "--settings", str(settings)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, TOKEN_ENV: TOKEN, "COLUMNS": "40"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), done.stderr
    assert any(f"INFO kpisync.sync: synced {SOURCE}/deals: 1 pages, " in line for line in lines)
    # longer than the 40 columns the "terminal" has, and still one line
    assert any(re.search(f"new custom fields on {SOURCE}: .*deals.deal_category", line)
               for line in lines), done.stderr


def test_a_message_of_several_lines_is_logged_on_one() -> None:
    record = logging.LogRecord("apscheduler.scheduler", logging.WARNING, __file__, 1,
                               "Error getting due jobs: %s", ("connection refused\n\tIs the "
                               "server running?\n(Background on this error at: …)",), None)
    assert PlainLines().format(record).endswith(
        " WARNING apscheduler.scheduler: Error getting due jobs: connection refused Is the server "
        "running? (Background on this error at: …)")


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
    assert errors == ["Error getting due jobs from job store 'default': connection refused "
                      "(repeats are logged once every 300 s)"] * 2
    assert len(kept) - len(errors) == 31  # other messages pass untouched
