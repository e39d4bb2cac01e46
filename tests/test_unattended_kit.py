"""Scaffolding for the unattended-run tests (no tests here): settings files with schedules, budgets
and alerts; `kpisync run` subprocesses; a webhook receiver; run-history readers."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from kpisync.scheduler.models import PipelineRun
from kpisync.store.models import SyncRun, model_table
from tests.harness import toml_value
from tests.hubspot_env import TOKEN, TOKEN_ENV, HubSpotEnv

RUN = [sys.executable, "-m", "kpisync.cli"]


def settings_text(
    env: HubSpotEnv,
    store_url: str,
    *,
    sources: tuple[str, ...] = ("hs",),
    schedule: str = "interval_seconds = 2",
    tables: str = "",
    **options: Any,
) -> str:
    """[kpisync] + one [sources.<name>] (with schedule) per name, all on the emulator."""
    os.environ[TOKEN_ENV] = TOKEN
    lines = [f'[kpisync]\nstore = "{store_url}"\n']
    for name in sources:
        lines.append(f"[sources.{name}]")
        merged = {"search_rate_per_second": 1000, **options}
        lines += [f"{key} = {toml_value(value)}" for key, value in env.options(**merged).items()]
        lines.append(f"\n[sources.{name}.schedule]\n{schedule}\n")
    return "\n".join(lines) + "\n" + tables


def write_settings(folder: Path, text: str) -> Path:
    path = folder / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Worker:
    """A `kpisync run` subprocess; its JSON-lines log goes to `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for line in self.log.read_text("utf-8").splitlines()
            if line.startswith("{")
        ]

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line["message"] for line in self.lines()):
                return
            assert self.process.poll() is None, self.log.read_text("utf-8")[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"no log line with {text!r} within {timeout} s")

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM; returns the seconds until the process exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started


def start_run(
    settings: Path,
    log: Path,
    *args: str,
    global_flags: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Worker:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [*RUN, "--log-json", *global_flags, "run", "--settings", str(settings), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    return Worker(process, log)


READY = "scheduled instances"  # the worker's log line once its scheduler runs


def pipeline_runs(engine: Engine, source: str | None = None) -> list[Any]:
    t = model_table(PipelineRun)
    query = select(t).order_by(t.c.due_at)
    with engine.connect() as connection:
        rows = connection.execute(query if source is None else query.where(t.c.source == source))
        return list(rows)


def sync_runs(engine: Engine, source: str) -> list[Any]:
    t = model_table(SyncRun)
    with engine.connect() as connection:
        return list(
            connection.execute(select(t).where(t.c.source == source).order_by(t.c.started_at))
        )


def assert_no_overlap(spans: list[tuple[datetime, datetime | None]], what: str) -> None:
    ordered = sorted(spans)
    for (start, end), (next_start, _) in itertools.pairwise(ordered):
        assert end is not None and end <= next_start, (
            f"{what}: a run from {start} to {end} overlaps one starting {next_start}"
        )


@dataclass
class WebhookReceiver:
    """A loopback HTTP server recording JSON POSTs; answers `statuses` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(statuses=list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.received.append(json.loads(body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class OwnPostgres:
    """A PostgreSQL server of the test's own (the shared one must never be restarted): initdb in a
    temporary folder, then start, stop and restart at will. Run as the `postgres` user when root."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kpisync-pg-"))
        self.data = self.folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(self.BIN / tool), *args]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            "-c fsync=off -c max_connections=100"
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        subprocess.run(
            [str(self.BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            if os.getuid() != 0
            else [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


GUARDED_TABLES = (
    "accounts",
    "contacts",
    "deals",
    "activities",
    "sync_state",
    "writeback_outbox",
    "writeback_audit",
    "writeback_state",
    "writeback_runs",
    "kpi_values",
)
GUARDED_LOG = """
CREATE TABLE guarded_writes (id bigserial PRIMARY KEY, tbl text, label text,
                             at timestamptz, txid bigint);
CREATE FUNCTION log_guarded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO guarded_writes (tbl, label, at, txid) VALUES
    (TG_TABLE_NAME, current_setting('kpisync.fence', true), clock_timestamp(), txid_current());
  RETURN NULL;
END $$;
"""


def log_guarded_writes(engine: Engine) -> None:
    """Every later write to the tables runs guard, logged by a trigger in its own transaction
    with the fence label (the pipeline run id) its transaction proved and the server's time."""
    with engine.begin() as connection:
        connection.execute(text(GUARDED_LOG))
        for table in GUARDED_TABLES:
            connection.execute(
                text(
                    f"CREATE TRIGGER log_guarded AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION log_guarded()"
                )
            )


@dataclass(frozen=True)
class GuardedWrite:
    table: str
    label: str | None
    at: datetime


def guarded_writes(engine: Engine) -> list[GuardedWrite]:
    with engine.connect() as connection:
        return [
            GuardedWrite(r.tbl, r.label or None, r.at)
            for r in connection.execute(
                text("SELECT tbl, label, at FROM guarded_writes ORDER BY at, id")
            )
        ]


def assert_runs_never_overlapped(
    writes: list[GuardedWrite],
) -> dict[str, tuple[datetime, datetime]]:
    """Every logged write was fenced, and the writes of each run lie in a span no other run's
    writes enter. Returns each run's span."""
    unfenced = [w for w in writes if w.label is None]
    assert not unfenced, f"{len(unfenced)} writes proved no lease, e.g. {unfenced[:3]}"
    spans: dict[str, tuple[datetime, datetime]] = {}
    for write in writes:
        assert write.label is not None
        first, last = spans.get(write.label, (write.at, write.at))
        spans[write.label] = (min(first, write.at), max(last, write.at))
    ordered = sorted(spans.items(), key=lambda item: item[1])
    for (run, (_, end)), (other, (start, _)) in itertools.pairwise(ordered):
        assert end < start, f"runs {run} and {other} wrote at the same time ({start} < {end})"
    return spans


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll `condition` (a generous ceiling: the wait is for a state, not for a time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
