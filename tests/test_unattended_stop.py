"""SIGTERM in the middle of a scheduled sync: the worker exits within seconds, the run is recorded as
interrupted, the store is consistent, and the next run ends equal to the emulator's truth."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, text
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.server import Response
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, SyncState
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import (
    READY,
    RUN,
    pipeline_runs,
    settings_text,
    start_run,
    sync_runs,
    wait_until,
    write_settings,
)


def test_sigterm_mid_sync_stops_at_a_page_and_the_next_run_resumes(tmp_path: Path) -> None:
    org = generate_org(seed=8, deals=80)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        env = HubSpotEnv(org, emulator)
        emulator.knobs.latency_seconds = 0.08  # a sync of ~45 calls takes a few seconds
        settings = write_settings(
            tmp_path,
            settings_text(
                env,
                store_url,
                schedule="interval_seconds = 1",
                batch_records=20,
                tables='[scheduler]\nstages = ["sync"]\n',
            ),
        )
        # The stop is placed by progress: from the 13th call on (discovery done, the first of
        # ~47 calls' pages under way) the emulator holds each call until the worker has said
        # that it stops.
        calls, held, answer = itertools.count(1), [], threading.Event()
        dispatch = emulator.dispatch

        def hold_from_the_13th(
            method: str, target: str, headers: dict[str, str], body: bytes
        ) -> Response:
            if next(calls) > 12:
                held.append(1)
                answer.wait()
            return dispatch(method, target, headers, body)

        emulator.dispatch = hold_from_the_13th  # type: ignore[method-assign]
        worker = start_run(settings, tmp_path / "worker.log")
        worker.wait_for(READY)  # the source never ran: its first run (a full sync) starts
        wait_until(lambda: bool(held), "the first run's 13th call")
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for("SIGTERM: stopping after the current page")
        answer.set()
        worker.process.wait(30)
        took = time.monotonic() - started
        assert worker.process.returncode == 0, worker.log.read_text("utf-8")[-2000:]
        assert took < 5, f"the worker needed {took:.1f} s to stop"

        engine = open_store(store_url)
        run = [r for r in pipeline_runs(engine, SOURCE) if r.started_at][-1]  # (a slot waiting
        # for the lease when the stop came is recorded "stopped before it started")
        assert run.status == "interrupted" and "after a committed page" in (run.error or "")
        assert sync_runs(engine, SOURCE)[-1].status == "interrupted"
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            cursors = connection.execute(
                select(func.count()).select_from(SyncState).where(col(SyncState.source) == SOURCE)
            ).scalar_one()
            rows = sum(
                connection.execute(select(func.count()).select_from(model)).scalar() or 0
                for model in ENTITY_MODELS.values()
            )
        assert rows > 0 and cursors > 0

        emulator.knobs.latency_seconds = 0
        done = subprocess.run(
            [*RUN, "run", "--settings", str(settings), "--once"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        resumed = pipeline_runs(engine, SOURCE)[-1]
        assert resumed.status == "succeeded"
        assert_store_equals_truth(engine, SOURCE, emulator.dump(), org)
        with engine.connect() as connection:
            total = sum(
                connection.execute(select(func.count()).select_from(model)).scalar() or 0
                for model in ENTITY_MODELS.values()
            )
        assert resumed.upserted < total, "the next run started over instead of resuming"
        engine.dispose()
