"""Operations of unattended runs: secrets never logged or stored, health and Prometheus metrics over
HTTP, the status report, and ops alerts sent once per incident."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, MetaData, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.cli import app
from kpisync.config import load_settings
from kpisync.health import HealthServer, HealthState, RunMetrics
from kpisync.pipeline import STORE_UNREACHABLE, Pipeline
from kpisync.scheduler.history import now_utc
from kpisync.scheduler.options import scheduler_settings
from kpisync.scheduler.report import instance_report, run_history
from kpisync.scheduler.worker import Worker
from kpisync.store.database import create_store_engine, open_store
from tests.conftest import STORE_KINDS, _postgres_database
from tests.cuttable_proxy import CuttableProxy
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.test_unattended_kit import RUN, settings_text, webhook_receiver, write_settings

BAD_TOKEN = "pat-na1-revoked-9f8e7d6c5b4a"
HOOK_KEY = "T0KEN-in-the-hook-url-5e6f"


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=4, deals=20)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        yield HubSpotEnv(org, emulator)


def every_stored_text(engine: Engine) -> str:
    """Every value of every table, as text (binary job states decoded byte for byte)."""
    metadata = MetaData()
    metadata.reflect(engine)
    chunks = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    chunks.append(
                        value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    )
    return "\n".join(chunks)


def test_tokens_never_reach_the_logs_or_the_store(env: HubSpotEnv, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with webhook_receiver() as hook:
        settings = write_settings(
            tmp_path,
            settings_text(
                env,
                store_url,
                sources=(SOURCE,),
                tables=(
                    f'[sources.revoked]\ntype = "hubspot"\nhost = "{env.emulator.base_url}"\n'
                    'token_env = "KPISYNC_TEST_REVOKED_TOKEN"\nfast_retries = true\n\n'
                    '[alerts]\nfailures_in_a_row = 1\nwebhook_url_env = "KPISYNC_TEST_OPS_HOOK"\n\n'
                    '[scheduler]\nstages = ["sync"]\n'
                ),
            ),
        )
        secrets = {
            "KPISYNC_TEST_REVOKED_TOKEN": BAD_TOKEN,
            "KPISYNC_TEST_OPS_HOOK": f"{hook.url}/{HOOK_KEY}",
        }
        done = subprocess.run(
            [*RUN, "--log-json", "--debug", "run", "--settings", str(settings), "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **secrets},
        )
        assert done.returncode == 1, done.stderr[-2000:]  # the revoked source failed
        assert any(n["source"] == "revoked" and n["state"] == "open" for n in hook.received)
    logs = done.stdout + done.stderr
    assert '"level": "warning"' in logs and "revoked" in logs  # the failure was logged
    engine = open_store(store_url)
    stored = every_stored_text(engine)
    assert "HubSpot refused the credentials" in stored
    for secret in (TOKEN, BAD_TOKEN, HOOK_KEY):
        assert secret not in logs, f"{secret[:8]}… in the logs"
        assert secret not in stored, f"{secret[:8]}… in the store"
        assert all(secret not in str(notice) for notice in hook.received)
    engine.dispose()


def test_health_metrics_and_status_of_a_running_worker(env: HubSpotEnv, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings_path = write_settings(
        tmp_path,
        settings_text(
            env,
            store_url,
            schedule="interval_seconds = 3600",  # one run: the first, at start
            tables='[scheduler]\nstages = ["sync"]\n',
        ),
    )
    settings, engine = load_settings(settings_path), open_store(store_url)
    worker = Worker(engine, settings, stop=threading.Event())
    server = HealthServer(worker.health, worker.metrics, port=0)
    server.start()
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not worker.health.sources.get(SOURCE, {}).get("last_status"):
            assert time.monotonic() < deadline, "no run finished in 30 s"
            time.sleep(0.1)
        health = httpx.get(f"{server.address}/healthz", timeout=5)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok" and body["store"] == "ok"
        assert body["sources"][SOURCE]["last_status"] == "succeeded"
        assert body["sources"][SOURCE]["next_run"] is not None
        metrics = httpx.get(f"{server.address}/metrics", timeout=5).text
        assert f'kpisync_pipeline_runs_total{{source="{SOURCE}",status="succeeded"}}' in metrics
        assert f'kpisync_api_calls_total{{source="{SOURCE}",stage="sync"}}' in metrics
        assert "process_resident_memory_bytes" in metrics
        assert server.address.startswith("http://127.0.0.1:")
    finally:
        worker.shutdown()
    assert httpx.get(f"{server.address}/healthz", timeout=5).status_code == 503  # stopping
    server.stop()

    row = next(r for r in instance_report(engine, settings) if r["source"] == SOURCE)
    assert row["last_status"] == "succeeded" and row["last_duration"] is not None
    assert row["upserted"] > 0 and row["api_calls"]["sync"] > 0 and row["last_error"] is None
    assert row["next_run"] is not None and row["data_age_minutes"] is not None
    engine.dispose()


def test_alerts_are_sent_once_per_incident(env: HubSpotEnv, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with webhook_receiver(statuses=[500]) as hook:  # the first delivery fails: retried once
        os.environ["KPISYNC_TEST_OPS_HOOK"] = hook.url
        settings = load_settings(
            write_settings(
                tmp_path,
                settings_text(
                    env,
                    store_url,
                    tables=(
                        "[alerts]\nfailures_in_a_row = 2\nstale_after_minutes = 0.02\n"
                        'webhook_url_env = "KPISYNC_TEST_OPS_HOOK"\n\n[scheduler]\nstages = ["sync"]\n'
                    ),
                ),
            )
        )
        engine = open_store(store_url)
        pipeline = Pipeline(engine, settings, scheduler_settings(settings), stop=threading.Event())
        slot = now_utc().replace(microsecond=0)

        def run(n: int) -> str | None:
            return pipeline.run_slot(SOURCE, slot + timedelta(minutes=n))

        env.emulator.knobs.fail_always_after_calls = 0  # every call fails: the CRM is down
        assert [run(1), run(2), run(3)] == ["failed"] * 3
        failing = [n for n in hook.received if n["kind"] == "failing"]
        assert len(failing) == 2 and failing[0] == failing[1]  # refused once, then accepted
        assert failing[0]["state"] == "open" and "3 runs" not in failing[0]["text"]
        env.emulator.knobs.fail_always_after_calls = None
        assert run(4) == "succeeded"
        assert [n["state"] for n in hook.received if n["kind"] == "failing"] == [
            "open",
            "open",
            "resolved",
        ]

        stale_before = [n for n in hook.received if n["kind"] == "stale"]
        time.sleep(1.5)  # older than 0.02 min = 1.2 s
        pipeline.review_idle([SOURCE])
        pipeline.review_idle([SOURCE])
        stale = [n for n in hook.received if n["kind"] == "stale"][len(stale_before) :]
        assert [n["state"] for n in stale] == ["open"], stale
        assert run(5) == "succeeded"
        assert [n["state"] for n in hook.received if n["kind"] == "stale"][-1] == "resolved"
        engine.dispose()


def test_a_paused_writeback_field_is_an_alert_and_shown_by_status(
    env: HubSpotEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapped field missing from the CRM pauses that mapping: the run still succeeds, so the
    admin learns of it from the log, the ops webhook and `kpisync status`, until the field is
    made (`fields apply`) and the next run writes it."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    field = "kpisync_nps_score"
    with webhook_receiver() as hook:
        os.environ["KPISYNC_TEST_OPS_HOOK"] = hook.url
        path = write_settings(
            tmp_path,
            settings_text(
                env,
                store_url,
                tables=(
                    '[alerts]\nwebhook_url_env = "KPISYNC_TEST_OPS_HOOK"\n\n'
                    '[scheduler]\nstages = ["sync", "compute", "writeback"]\n\n'
                    f'[writeback.{SOURCE}.account]\nnps_score = "{field}"\n'
                ),
            ),
        )
        settings, engine = load_settings(path), open_store(store_url)
        pipeline = Pipeline(engine, settings, scheduler_settings(settings), stop=threading.Event())
        slot = now_utc().replace(microsecond=0)

        def status() -> tuple[dict[str, Any], str]:
            as_json = CliRunner().invoke(app, ["status", "--json", "--runs", "5", "-s", str(path)])
            table = CliRunner().invoke(
                app, ["status", "--runs", "5", "-s", str(path)], env={"COLUMNS": "300"}
            )
            assert as_json.exit_code == 0 and table.exit_code == 0, as_json.output + table.output
            return json.loads(as_json.output)[0], table.output

        assert pipeline.run_slot(SOURCE, slot) == "succeeded"
        [opened] = [n for n in hook.received if n["kind"] == "writeback_paused"]
        assert opened["state"] == "open"
        assert f"account.{field}: field {field} does not exist" in opened["detail"]
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelname == "WARNING" and "paused:" in r.getMessage()
        ]
        assert warnings == [
            f"{SOURCE}: write-back of account.{field} paused: field {field} does "
            "not exist on account records (see 'kpisync fields plan'); the other "
            "fields are written, and this one resumes by itself once its field "
            "is fixed"
        ]
        row, table = status()
        assert list(row["writeback_paused"]) == [f"account.{field}"]
        assert row["scheduled_run"]["status"] == "succeeded"
        [run] = row["runs"]
        assert run["status"] == "succeeded" and run["upserted"] > 0
        assert run["stages"]["writeback"].endswith(", 1 field(s) paused"), run["stages"]
        assert f"write-back paused: account.{field}" in table
        assert f"last runs of {SOURCE}" in table and "1 field(s) paused" in table

        assert pipeline.run_slot(SOURCE, slot + timedelta(minutes=1)) == "succeeded"
        assert len([n for n in hook.received if n["kind"] == "writeback_paused"]) == 1
        applied = CliRunner().invoke(app, ["fields", "apply", SOURCE, "-s", str(path)])
        assert applied.exit_code == 0, applied.output
        assert pipeline.run_slot(SOURCE, slot + timedelta(minutes=2)) == "succeeded"
        states = [n["state"] for n in hook.received if n["kind"] == "writeback_paused"]
        assert states == ["open", "resolved"]
        row, table = status()
        assert row["writeback_paused"] == {} and "write-back paused" not in table
        written = [
            c
            for c in env.emulator.dump()["companies"].values()
            if c["properties"].get(field) not in (None, "")
        ]
        assert written, "no company got its NPS score once the field existed"
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    """A condition's wait: generous, for a loaded machine; it bounds a hang, it times nothing."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("store", [kind for kind in STORE_KINDS if kind == "postgres"])
def test_a_store_outage_is_a_503_and_one_line_then_the_worker_carries_on(
    store: str, env: HubSpotEnv, tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    direct = make_url(postgres_url)
    with (
        CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432)) as proxy,
        webhook_receiver() as hook,
    ):
        os.environ["KPISYNC_TEST_OPS_HOOK"] = hook.url
        store_url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        settings = load_settings(
            write_settings(
                tmp_path,
                settings_text(
                    env,
                    store_url,
                    schedule="interval_seconds = 2",
                    tables='[alerts]\ncheck_every_seconds = 0.5\nwebhook_url_env = "KPISYNC_TEST_OPS_HOOK"'
                    '\n\n[scheduler]\nstages = ["sync"]\n',
                ),
            )
        )
        engine = open_store(store_url)
        worker = Worker(engine, settings, stop=threading.Event())
        server = HealthServer(worker.health, worker.metrics, port=0)
        server.start()
        worker.start()
        try:

            def last_status() -> str | None:
                return worker.health.sources.get(SOURCE, {}).get("last_status")

            wait_until(lambda: last_status() == "succeeded", "a first run")
            cut_at = now_utc()
            proxy.cut()  # the database restarts, or the network to it is cut
            caplog.clear()
            time.sleep(3)  # a slot and several alert reviews pass
            health = httpx.get(f"{server.address}/healthz", timeout=10)
            assert health.status_code == 503
            assert (
                health.json()["status"] == "unavailable" and health.json()["store"] == "unreachable"
            )
            assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # no tracebacks
            assert any("the store is unreachable" in r.getMessage() for r in caplog.records)
            # the incident is recorded (and sent) once the store answers: its row decides who sends
            assert hook.received == []
            proxy.restore()
            restored = now_utc().isoformat()
            wait_until(
                lambda: (
                    last_status() == "succeeded"
                    and worker.health.sources[SOURCE]["last_finished"] > restored
                ),
                "a run after the store came back",
            )
            assert httpx.get(f"{server.address}/healthz", timeout=10).status_code == 200
            assert [(n["kind"], n["state"]) for n in hook.received] == [
                ("store", "open"),
                ("store", "resolved"),
            ]
            # the job store was down too, so no slot fired meanwhile: the one missed is made up
            # once, and the history shows no failure
            runs = run_history(engine, SOURCE, 50)
            # (a slot that fires while the made-up run still goes is coalesced into it: skipped)
            assert {run["status"] for run in runs} <= {
                "succeeded",
                "claimed",
                "running",
                "skipped",
            }, runs
            assert any(run["due_at"] > cut_at and run["status"] == "succeeded" for run in runs)
        finally:
            worker.shutdown()
            server.stop()
            engine.dispose()


def test_a_slot_the_store_cannot_record_is_given_up_in_one_line(
    env: HubSpotEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = "postgresql+psycopg://kpisync@127.0.0.1:1/kpisync"  # nothing listens on port 1
    settings = load_settings(write_settings(tmp_path, settings_text(env, gone)))
    metrics, health = RunMetrics(), HealthState(worker="test")
    pipeline = Pipeline(
        create_store_engine(gone),
        settings,
        scheduler_settings(settings),
        stop=threading.Event(),
        metrics=metrics,
        health=health,
    )
    assert pipeline.run_scheduled_slot(SOURCE, now_utc()) == STORE_UNREACHABLE
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.exc_info is None
    assert "slot" in record.getMessage() and "the store is unreachable" in record.getMessage()
    assert health.sources[SOURCE]["last_status"] == STORE_UNREACHABLE
    assert "refused" in health.sources[SOURCE]["last_error"]
    assert (
        metrics.registry.get_sample_value(
            "kpisync_pipeline_runs_total", {"source": SOURCE, "status": STORE_UNREACHABLE}
        )
        == 1
    )


def test_the_store_going_away_mid_round_does_not_end_the_scheduling(
    env: HubSpotEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APScheduler guards only its due-jobs query. When the database dropped between that and the
    round's end, its thread ended for good and no run ever started again (CI saw it once)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy.exc import OperationalError

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = load_settings(
        write_settings(
            tmp_path,
            settings_text(
                env,
                store_url,
                schedule="interval_seconds = 1",
                tables='[scheduler]\nstages = ["sync"]\n',
            ),
        )
    )
    engine = open_store(store_url)
    monkeypatch.setattr("kpisync.scheduler.worker.JOBSTORE_RETRY_SECONDS", 0.5)
    worker = Worker(engine, settings, stop=threading.Event())
    dropped: list[str] = []
    real_next, real_update = SQLAlchemyJobStore.get_next_run_time, SQLAlchemyJobStore.update_job

    def drop(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def flaky(self: Any, *args: Any) -> Any:
            if len(dropped) < 4 and worker.health.sources.get(SOURCE, {}).get("last_status"):
                dropped.append(name)  # the connection is lost just after the due-jobs query
                raise OperationalError("SELECT next_run_time", {}, Exception("server closed"))
            return real(self, *args)

        return flaky

    monkeypatch.setattr(SQLAlchemyJobStore, "get_next_run_time", drop("next", real_next))
    monkeypatch.setattr(SQLAlchemyJobStore, "update_job", drop("update", real_update))
    worker.start()
    try:
        wait_until(lambda: len(dropped) == 4, "four dropped connections")
        after = now_utc().isoformat()
        wait_until(
            lambda: worker.health.sources[SOURCE]["last_finished"] > after,
            "a run after the connections were lost",
        )
        assert worker.scheduling() and set(dropped) == {"next", "update"}
        assert worker.health.sources[SOURCE]["last_status"] == "succeeded"
    finally:
        worker.shutdown()
        engine.dispose()
    assert not worker.scheduling()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_whose_scheduler_ends_exits_with_1_for_its_service_manager(
    env: HubSpotEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever else might end APScheduler's thread, `kpisync run` does not live on without it."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from kpisync.run_command import run_worker

    path = write_settings(
        tmp_path,
        settings_text(
            env,
            f"sqlite:///{tmp_path / 'store.db'}",
            schedule="interval_seconds = 1",
            tables='[scheduler]\nstages = ["sync"]\n',
        ),
    )
    rounds = [0]
    real = BackgroundScheduler._process_jobs

    def failing(self: Any) -> Any:
        rounds[0] += 1
        if rounds[0] == 3:
            raise RuntimeError("a bug in a round")
        return real(self)

    monkeypatch.setattr(BackgroundScheduler, "_process_jobs", failing)
    started = time.monotonic()
    assert run_worker(path, [], threading.Event(), health_port=0, health_host=None) == 1
    assert time.monotonic() - started < 30
    assert any("the scheduler stopped unexpectedly" in r.getMessage() for r in caplog.records)
