"""A source no worker has run yet runs as soon as a worker starts, not at its first slot, and once
however many workers start on one store; `kpisync status` says so before, and gives the next slot
after."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.config import ScheduleSettings
from kpisync.scheduler.models import JOBS_TABLE
from kpisync.scheduler.triggers import next_fire, previous_fire, trigger_for
from kpisync.scheduler.worker import JOB_PREFIX
from kpisync.store.database import open_store
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

FIRST_RUN = f"{SOURCE}: never run: its first run starts now"


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=6, deals=15)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        yield HubSpotEnv(org, emulator)


def status_row(settings: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*RUN, "status", "--json", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    return row  # type: ignore[no-any-return]


def test_the_previous_slot_is_the_latest_at_or_before_now() -> None:
    quarter = trigger_for("hs", ScheduleSettings(interval_minutes=15), "UTC")
    weekdays = trigger_for("hs", ScheduleSettings(cron="0 6 * * 1-5"), "Europe/Warsaw")
    yearly = trigger_for("hs", ScheduleSettings(cron="0 0 1 1 *"), "UTC")
    assert quarter is not None and weekdays is not None and yearly is not None
    monday = datetime(2026, 3, 9, 4, 59, 59, tzinfo=UTC)  # 05:59:59 in Warsaw
    assert previous_fire(quarter, monday) == datetime(2026, 3, 9, 4, 45, tzinfo=UTC)
    assert previous_fire(quarter, datetime(2026, 3, 9, 5, 0, tzinfo=UTC)) == datetime(
        2026, 3, 9, 5, 0, tzinfo=UTC
    )  # a slot at now is the latest
    assert previous_fire(weekdays, monday) == datetime(2026, 3, 6, 5, 0, tzinfo=UTC)  # Friday
    assert previous_fire(yearly, monday) == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_new_source_syncs_when_the_worker_starts_not_at_its_first_slot(
    env: HubSpotEnv, tmp_path: Path
) -> None:
    """A daily slot (midnight UTC): without the first run at start nothing would arrive for
    hours. A one-second misfire grace does not drop it (the slot it claims is hours old)."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = write_settings(
        tmp_path,
        settings_text(
            env,
            store_url,
            schedule="interval_seconds = 86400",
            tables='[scheduler]\nstages = ["sync"]\nmisfire_grace_seconds = 1\n',
        ),
    )
    daily = trigger_for(SOURCE, ScheduleSettings(interval_seconds=86400), "UTC")
    assert daily is not None
    before = datetime.now(UTC)
    row = status_row(settings)
    assert "never run yet: it runs as soon as a worker starts" in row["schedule"], row
    assert before <= datetime.fromisoformat(row["next_run"]) <= datetime.now(UTC)

    worker = start_run(settings, tmp_path / "worker.log")
    engine = open_store(store_url)
    try:
        worker.wait_for(READY)
        wait_until(
            lambda: any(r.status == "succeeded" for r in pipeline_runs(engine, SOURCE)),
            "the first run of the new source",
        )
    finally:
        worker.stop()
    assert worker.process.returncode == 0, worker.log.read_text("utf-8")[-2000:]
    after = datetime.now(UTC)
    [run] = pipeline_runs(engine, SOURCE)
    assert run.due_at in {previous_fire(daily, before), previous_fire(daily, after)}
    assert run.started_at < next_fire(daily, before)  # it did not wait for the next slot
    assert any(FIRST_RUN in line["message"] for line in worker.lines())
    assert [s.status for s in sync_runs(engine, SOURCE)] == ["succeeded"]
    assert_store_equals_truth(engine, SOURCE, env.emulator.dump(), env.org)

    row = status_row(settings)  # it has run: the next run is the next slot
    assert datetime.fromisoformat(row["next_run"]) == next_fire(daily, after)
    assert "never run" not in row["schedule"] and row["scheduled_run"]["status"] == "succeeded"
    engine.dispose()


def waiting_claims(engine: Engine) -> int:
    """Connections of this database waiting for a lock to insert a run (claim a slot)."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO pipeline_runs%'"
                )
            ).scalar()
            or 0
        )


def job_waits_past(engine: Engine, moment: datetime) -> bool:
    """Whether the stored job of the source waits for a slot after `moment`."""
    with engine.connect() as connection:
        due = connection.execute(
            text(f"SELECT next_run_time FROM {JOBS_TABLE} WHERE id = :id"),
            {"id": JOB_PREFIX + SOURCE},
        ).scalar()
    return due is not None and due > moment.timestamp()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_workers_starting_on_one_store_run_a_new_source_once(
    env: HubSpotEnv, store_url: str, tmp_path: Path
) -> None:
    """The run history is locked against inserts, so every claim waits. The first worker fires
    the first run and moves the job on to next year's slot; the second starts while that claim
    is still open, sees no run, makes the job due again and fires too. Once the lock goes, one
    claim wins: one run, of the previous slot."""
    yearly = trigger_for(SOURCE, ScheduleSettings(cron="0 0 1 1 *"), "UTC")
    assert yearly is not None
    engine = open_store(store_url)  # migrated once, before the workers start
    settings = write_settings(
        tmp_path,
        settings_text(
            env, store_url, schedule='cron = "0 0 1 1 *"', tables='[scheduler]\nstages = ["sync"]\n'
        ),
    )
    workers = []
    try:
        with engine.connect() as locker:
            locker.execute(text("LOCK TABLE pipeline_runs IN EXCLUSIVE MODE"))  # reads pass
            workers.append(start_run(settings, tmp_path / "worker1.log"))
            workers[0].wait_for(READY)
            wait_until(
                lambda: waiting_claims(engine) >= 1 and job_waits_past(engine, datetime.now(UTC)),
                "worker 1's claim",
            )
            workers.append(start_run(settings, tmp_path / "worker2.log"))
            workers[1].wait_for(READY)
            wait_until(lambda: waiting_claims(engine) >= 2, "worker 2's claim of the same run")
            locker.rollback()
        wait_until(
            lambda: (
                waiting_claims(engine) == 0
                and any(r.status == "succeeded" for r in pipeline_runs(engine, SOURCE))
            ),
            "the first run",
        )
    finally:
        for worker in workers:
            worker.stop()
    assert [w.process.returncode for w in workers] == [0, 0]
    assert all(any(FIRST_RUN in line["message"] for line in w.lines()) for w in workers)
    runs = pipeline_runs(engine, SOURCE)
    assert [(r.due_at, r.status) for r in runs] == [
        (previous_fire(yearly, datetime.now(UTC)), "succeeded")
    ]
    assert len(sync_runs(engine, SOURCE)) == 1
    assert_store_equals_truth(engine, SOURCE, env.emulator.dump(), env.org)
    engine.dispose()
