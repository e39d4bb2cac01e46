"""Two `kpisync run` workers on one store, short intervals: every slot runs exactly once, never two
runs of one instance at a time, checked from the run history; the store ends equal to the truth.

PostgreSQL (advisory locks) is the multi-worker set-up; SQLite (a file lock) is checked too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.orggen import generate_org
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import (
    assert_no_overlap,
    pipeline_runs,
    settings_text,
    READY,
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


def test_two_workers_run_every_slot_exactly_once(env: HubSpotEnv, store_url: str,
                                                 tmp_path: Path) -> None:
    postgres = store_url.startswith("postgresql")
    seconds = 24 if postgres else 8  # PostgreSQL: two instances x 12 slots; SQLite: one x 4
    sources = SOURCES if postgres else (SOURCE,)
    engine = open_store(store_url)  # migrate once, before the workers race to
    for source in sources:  # the first, full sync: scheduled runs are then short incremental ones
        sync_source(engine, source, env.connector(search_rate_per_second=1000), SyncOptions())
    settings = write_settings(tmp_path, settings_text(
        env, store_url, sources=sources, schedule=f"interval_seconds = {INTERVAL}",
        tables='[scheduler]\nstages = ["sync"]\nlock_wait_seconds = 1\n'))
    workers = [start_run(settings, tmp_path / f"worker{i}.log") for i in (1, 2)]
    for worker in workers:
        worker.wait_for(READY)
    time.sleep(seconds)
    for worker in workers:
        worker.stop()
        assert worker.process.returncode == 0, worker.log.read_text("utf-8")[-2000:]

    total = 0
    for source in sources:
        runs = pipeline_runs(engine, source)
        total += len(runs)
        slots = [run.due_at for run in runs]
        assert len(slots) == len(set(slots)), f"{source}: a slot ran twice"
        gaps = {b - a for a, b in zip(slots, slots[1:])}
        assert gaps <= {timedelta(seconds=INTERVAL)}, f"{source}: slots missed: {sorted(gaps)}"
        done = [run for run in runs if run.status != "interrupted" or run is not runs[-1]]
        odd = [(r.due_at, r.status, r.error) for r in done if r.status != "succeeded"]
        assert not odd, f"{source}: runs that did not succeed: {odd}"
        assert_no_overlap([(r.started_at, r.finished_at) for r in runs], f"{source} pipeline runs")
        syncs = sync_runs(engine, source)
        assert len(syncs) == len(runs) + 1, "a sync ran outside a claimed slot"  # + the first
        assert all(r.started_at <= s.started_at <= r.finished_at for s, r in zip(syncs[1:], runs))
        assert_no_overlap([(r.started_at, r.finished_at) for r in syncs], f"{source} syncs")
        assert_store_equals_truth(engine, source, env.emulator.dump(), env.org)
    assert total >= (20 if postgres else 4), f"only {total} runs"
    assert len({run.worker for run in pipeline_runs(engine)}) == 2, "one worker ran every slot"
    engine.dispose()
