"""Two `kpisync run` workers on one store, short intervals: every slot runs exactly once, never two
runs of one instance at a time, checked from the run history; the store ends equal to the truth.

PostgreSQL is the multi-worker set-up; the leases themselves are checked in
test_scheduler_locks.py, their fencing through restarts, cuts and pauses in
test_unattended_lease.py."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.scheduler.models import OpsIncident
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import (
    READY,
    Worker,
    assert_no_overlap,
    assert_runs_never_overlapped,
    guarded_writes,
    log_guarded_writes,
    own_postgres,
    pipeline_runs,
    settings_text,
    start_run,
    sync_runs,
    wait_until,
    webhook_receiver,
    write_settings,
)

INTERVAL = 2.0
SOURCES = (SOURCE, "hs_b")


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=3, deals=20)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        yield HubSpotEnv(org, emulator)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_workers_run_every_slot_exactly_once(
    env: HubSpotEnv, store_url: str, tmp_path: Path
) -> None:
    seconds, sources = 24, SOURCES  # two instances x 12 slots
    engine = open_store(store_url)  # migrate once, before the workers race to
    for source in sources:  # the first, full sync: scheduled runs are then short incremental ones
        sync_source(engine, source, env.connector(search_rate_per_second=1000), SyncOptions())
    settings = write_settings(
        tmp_path,
        settings_text(
            env,
            store_url,
            sources=sources,
            schedule=f"interval_seconds = {INTERVAL}",
            tables='[scheduler]\nstages = ["sync"]\nlock_wait_seconds = 1.5\n',
        ),
    )
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
        odd = [
            (r.due_at, r.status, r.error) for r in done if r.status not in ("succeeded", "skipped")
        ]
        assert not odd, f"{source}: runs that did not succeed: {odd}"
        # A slot whose instance is still busy is skipped, so how many succeed depends on the
        # machine's load; what must hold is that the schedule really ran, again and again.
        succeeded = sum(r.status == "succeeded" for r in runs)
        assert succeeded >= 3, f"{source}: only {succeeded} of {len(runs)} runs succeeded"
        started = [r for r in runs if r.started_at]  # skipped slots never start
        assert_no_overlap([(r.started_at, r.finished_at) for r in started], f"{source} runs")
        syncs = sync_runs(engine, source)
        assert len(syncs) == len(started) + 1, "a sync ran outside a claimed slot"  # + the first
        assert all(
            r.started_at <= s.started_at <= r.finished_at
            for s, r in zip(syncs[1:], started, strict=True)
        )
        assert_no_overlap([(r.started_at, r.finished_at) for r in syncs], f"{source} syncs")
        assert_store_equals_truth(engine, source, env.emulator.dump(), env.org)
    assert len({run.worker for run in pipeline_runs(engine)}) == 2, "one worker ran every slot"
    engine.dispose()


def logged(worker: Worker, text: str, after: int = 0) -> bool:
    return any(text in line["message"] for line in worker.lines()[after:])


def every_worker_logs(
    workers: list[Worker], marks: list[int], sources: Iterable[str], line: str, what: str
) -> None:
    """Waits until each worker has logged `line` (formatted with each source) past its mark."""
    for worker, mark in zip(workers, marks, strict=True):
        for source in sources:
            wait_until(partial(logged, worker, line.format(source), mark), what)


def test_three_workers_killed_and_a_store_outage_make_one_incident_per_source(
    env: HubSpotEnv, tmp_path: Path
) -> None:
    """Workers SIGKILLed mid-run (started again) and the database stopped and started while every
    worker watches: one `store` incident per source, opened and resolved once, whatever the number
    of workers that saw it; no two runs of a source ever wrote at the same time."""
    sources = SOURCES
    with own_postgres() as server, webhook_receiver() as hook:
        os.environ["KPISYNC_TEST_OPS_HOOK"] = hook.url
        engine = open_store(server.url)
        for source in sources:
            sync_source(engine, source, env.connector(search_rate_per_second=1000), SyncOptions())
        log_guarded_writes(engine)
        settings = write_settings(
            tmp_path,
            settings_text(
                env,
                server.url,
                sources=sources,
                schedule=f"interval_seconds = {INTERVAL}",
                tables='[alerts]\ncheck_every_seconds = 0.5\nwebhook_url_env = "KPISYNC_TEST_OPS_HOOK"'
                '\n\n[scheduler]\nstages = ["sync"]\nlock_wait_seconds = 0.5\n'
                "lease_seconds = 3\n",
            ),
        )
        workers = [start_run(settings, tmp_path / f"worker{i}.log") for i in range(3)]
        try:
            for worker in workers:
                worker.wait_for(READY)

            def kill_one_mid_run() -> None:
                def running() -> Any:  # a live worker's run (a killed one's stays "running")
                    live = {w.process.pid for w in workers}
                    return next(
                        (
                            r
                            for r in pipeline_runs(engine)
                            if r.status == "running" and int(r.worker.rpartition(":")[2]) in live
                        ),
                        None,
                    )

                wait_until(lambda: running() is not None, "a run going")
                pid = int(running().worker.rpartition(":")[2])
                index = next(i for i, w in enumerate(workers) if w.process.pid == pid)
                workers[index].process.send_signal(signal.SIGKILL)
                workers[index].process.wait(30)
                workers[index] = start_run(settings, tmp_path / f"worker{index}.again.log")
                workers[index].wait_for(READY)

            kill_one_mid_run()
            marks = [len(w.lines()) for w in workers]
            server.stop()
            every_worker_logs(
                workers,
                marks,
                sources,
                "kpisync: {} cannot reach its store",
                "every worker seeing the outage of every source",
            )
            server.start()
            every_worker_logs(
                workers,
                marks,
                sources,
                "kpisync: {} reaches its store again",
                "every worker seeing the store back",
            )
            wait_until(
                lambda: len([n for n in hook.received if n["kind"] == "store"]) >= 4,
                "the outage's notices",
            )
            kill_one_mid_run()
            last = max(r.id for r in pipeline_runs(engine))
            wait_until(
                lambda: all(
                    sum(r.status == "succeeded" and r.id > last for r in pipeline_runs(engine, s))
                    >= 1
                    for s in sources
                ),
                "a good run of each source after it all",
            )
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.stop(60)
        assert [w.process.returncode for w in workers] == [0, 0, 0]
        for source in sources:
            notices = [(n["kind"], n["state"]) for n in hook.received if n["source"] == source]
            assert notices == [("store", "open"), ("store", "resolved")], (source, hook.received)
        with engine.connect() as connection:
            rows = (
                connection.execute(
                    select(col(OpsIncident.source)).where(col(OpsIncident.kind) == "store")
                )
                .scalars()
                .all()
            )
        assert sorted(rows) == sorted(sources)
        writes = guarded_writes(engine)
        for source in sources:  # runs of different sources may well work at the same time
            runs = {str(r.id) for r in pipeline_runs(engine, source)} | {f"review:{source}"}
            assert_runs_never_overlapped([w for w in writes if w.label is None or w.label in runs])
        for source in sources:
            assert_store_equals_truth(engine, source, env.emulator.dump(), env.org)
        engine.dispose()
