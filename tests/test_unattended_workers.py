"""Two `kpisync run` workers on one store, short intervals: every slot runs exactly once, never two
runs of one instance at a time, checked from the run history; the store ends equal to the truth.

PostgreSQL with advisory locks is the multi-worker set-up; the SQLite file lock is checked in
test_scheduler_locks.py."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.orggen import generate_org
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import (
    READY,
    assert_no_overlap,
    pipeline_runs,
    settings_text,
    start_run,
    sync_runs,
    write_settings,
)

INTERVAL = 2.0
SOURCES = (SOURCE, "hs_b")


@pytest.fixture(scope="module")
def org():  # type: ignore[no-untyped-def]
    return generate_org(seed=3, deals=20)


@pytest.fixture
def env(org) -> Iterator[HubSpotEnv]:  # type: ignore[no-untyped-def]
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        yield HubSpotEnv(org, emulator)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_workers_run_every_slot_exactly_once(env: HubSpotEnv, store_url: str,
                                                 tmp_path: Path) -> None:
    seconds, sources = 24, SOURCES  # two instances x 12 slots
    engine = open_store(store_url)  # migrate once, before the workers race to
    for source in sources:  # the first, full sync: scheduled runs are then short incremental ones
        sync_source(engine, source, env.connector(search_rate_per_second=1000), SyncOptions())
    settings = write_settings(tmp_path, settings_text(
        env, store_url, sources=sources, schedule=f"interval_seconds = {INTERVAL}",
        tables='[scheduler]\nstages = ["sync"]\nlock_wait_seconds = 1.5\n'))
    workers = [start_run(settings, tmp_path / f"worker{i}.log") for i in (1, 2)]
    for worker in workers:
        worker.wait_for(READY)
    time.sleep(seconds)
    stopped_at = datetime.now(UTC)
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.process.wait(30) == 0, worker.log.read_text("utf-8")[-2000:]

    for source in sources:
        runs = pipeline_runs(engine, source)
        slots = [run.due_at for run in runs]
        assert len(slots) == len(set(slots)), f"{source}: a slot ran twice"
        gaps = {b - a for a, b in itertools.pairwise(slots)}
        assert gaps <= {timedelta(seconds=INTERVAL)}, f"{source}: slots missed: {sorted(gaps)}"
        done = [r for r in runs if r.finished_at < stopped_at]  # the SIGTERM may cut the last
        odd = [(r.due_at, r.status, r.error) for r in done if r.status not in ("succeeded", "skipped")]
        assert not odd, f"{source}: runs that did not succeed: {odd}"
        # A slot whose instance is still busy is skipped, so how many succeed depends on the
        # machine's load; what must hold is that the schedule really ran, again and again.
        succeeded = sum(r.status == "succeeded" for r in runs)
        assert succeeded >= 3, f"{source}: only {succeeded} of {len(runs)} runs succeeded"
        started = [r for r in runs if r.started_at]  # skipped slots never start
        assert_no_overlap([(r.started_at, r.finished_at) for r in started], f"{source} runs")
        syncs = sync_runs(engine, source)
        assert len(syncs) == len(started) + 1, "a sync ran outside a claimed slot"  # + the first
        assert all(r.started_at <= s.started_at <= r.finished_at
                   for s, r in zip(syncs[1:], started, strict=True))
        assert_no_overlap([(r.started_at, r.finished_at) for r in syncs], f"{source} syncs")
        assert_store_equals_truth(engine, source, env.emulator.dump(), env.org)
    assert len({run.worker for run in pipeline_runs(engine)}) == 2, "one worker ran every slot"
    engine.dispose()
