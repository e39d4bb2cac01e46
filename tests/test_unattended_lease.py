"""Two `kpisync run` workers on a PostgreSQL server of the test's own, one source, sync -> compute
-> write-back, while the first worker's run is disturbed mid-sync or mid-write-back: the server
restarted, the worker's connections cut (a proxy), or the worker paused (SIGSTOP) past its lease.

Every write to the guarded tables is logged by a trigger in its own transaction with the run that
proved the lease for it (tests/test_unattended_kit.py, log_guarded_writes). From that log: no
write without a lease, and no two runs ever writing in the same span. Then the store equals the
CRM, the write-back outbox is settled with one audit row per write, the CRM holds what kpisync
believes it wrote, and the disturbed run is recorded `lost` with its reason.

Lease expiry is not timed: the lease is 3 s, and each step waits for a state (pages committed,
the other worker's writes in the log, a run's recorded status)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.config import load_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.store.models import SyncState, model_table
from tests.cuttable_proxy import CuttableProxy
from tests.harness import normal_values
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import expected_rows, store_rows
from tests.test_unattended_kit import (
    READY,
    OwnPostgres,
    Worker,
    assert_runs_never_overlapped,
    guarded_writes,
    log_guarded_writes,
    own_postgres,
    pipeline_runs,
    settings_text,
    start_run,
    wait_until,
    write_settings,
)
from writeback.models import AuditEntry, OutboxItem, WrittenValue
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback
from writeback.values import same

ENTITY_TABLES = ("accounts", "contacts", "deals", "activities")
TABLES = (
    '[scheduler]\nstages = ["sync", "compute", "writeback"]\nlock_wait_seconds = 0.5\n'
    "lease_seconds = 3\n\n"
    f"[writeback.{SOURCE}]\nbatch_size = 1\n\n"
    f'[writeback.{SOURCE}.account]\nnps_score = "kpisync_nps_score"\n\n'
    f'[writeback.{SOURCE}.deal]\ndays_in_stage = "kpisync_days_in_stage"\n'
)
KINDS = {"kpisync_nps_score": "number", "kpisync_days_in_stage": "number"}
OBJECTS = {"account": "companies", "deal": "deals"}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=60)


@pytest.fixture
def server() -> Iterator[OwnPostgres]:
    with own_postgres() as server:
        yield server


def labels(engine: Engine, tables: tuple[str, ...]) -> list[str]:
    """Run labels of the logged writes to `tables`, one per write, oldest first."""
    return [w.label for w in guarded_writes(engine) if w.table in tables and w.label]


def run_row(engine: Engine, run_id: int) -> Any:
    return next(r for r in pipeline_runs(engine, SOURCE) if r.id == run_id)


def succeeded_after(engine: Engine, run_id: int, count: int) -> bool:
    return (
        sum(1 for r in pipeline_runs(engine, SOURCE) if r.status == "succeeded" and r.id > run_id)
        >= count
    )


def assert_store_equals_crm(engine: Engine, env: HubSpotEnv) -> None:
    """Every record as the CRM has it; the fields write-back fills are compared with the CRM
    through what kpisync believes it wrote (check_outcome), so they are left out here."""

    def without_written(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            {k: v for k, v in value.items() if k not in KINDS} if isinstance(value, dict) else value
            for value in values
        )

    expected = expected_rows(env.emulator.dump(), env.org)
    actual = store_rows(engine, SOURCE)
    for entity, rows in expected.items():
        want = {key: without_written(normal_values(values)) for key, values in rows.items()}
        have = {key: without_written(values) for key, values in actual[entity].items()}
        assert want.keys() == have.keys(), f"{entity}: {len(want)} in the CRM, {len(have)} stored"
        wrong = [key for key in want if want[key] != have[key]]
        assert not wrong, f"{entity}: {len(wrong)} differ, e.g. {want[wrong[0]]} {have[wrong[0]]}"


def check_outcome(engine: Engine, env: HubSpotEnv, settings_path: Path, disturbed: int) -> Any:
    """The shared end state; returns the disturbed run's row."""
    spans = assert_runs_never_overlapped(guarded_writes(engine))
    assert str(disturbed) in spans and len(spans) >= 3, spans
    assert_store_equals_crm(engine, env)
    with engine.connect() as connection:
        open_items = connection.execute(
            select(func.count())
            .select_from(OutboxItem)
            .where(col(OutboxItem.status).in_(("pending", "sending")))
        ).scalar()
        settled = connection.execute(
            select(func.count())
            .select_from(OutboxItem)
            .where(col(OutboxItem.status).in_(("written", "failed", "not_found")))
        ).scalar()
        audited = connection.execute(select(func.count()).select_from(AuditEntry)).scalar()
        believed = {
            (OBJECTS[r.entity], r.external_id, r.field): r.value
            for r in connection.execute(select(WrittenValue))
        }
    assert open_items == 0 and settled and audited == settled, (open_items, settled, audited)
    truth = env.emulator.dump()
    for (kind, rid, name), value in believed.items():
        assert same(KINDS[name], truth[kind][rid]["properties"].get(name), value), (kind, rid)
    settings = load_settings(settings_path)
    left = run_writeback(
        engine, settings, SOURCE, build_connector(settings.source(SOURCE)), dry_run=True
    )
    assert left.planned == 0, "the CRM is not in the state the KPIs ask for"
    runs = pipeline_runs(engine, SOURCE)
    syncs = [r.sync_run_id for r in runs if r.sync_run_id is not None]
    assert len(syncs) == len(set(syncs)), "two runs recorded the same sync"
    assert not [r for r in runs if r.status in ("running", "claimed")]
    return run_row(engine, disturbed)


@pytest.mark.parametrize("how", ["restart mid-sync", "restart mid-write-back", "cut", "pause"])
def test_a_disturbed_run_never_overlaps_the_next(
    how: str, org: Org, server: OwnPostgres, tmp_path: Path
) -> None:
    engine = open_store(server.url)
    log_guarded_writes(engine)
    direct = make_url(server.url)
    upstream = (direct.host or "127.0.0.1", direct.port or 5432)
    with (
        HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator,
        CuttableProxy(upstream) as first_proxy,
        CuttableProxy(upstream) as second_proxy,
    ):
        env = HubSpotEnv(org, emulator)
        emulator.knobs.latency_seconds = 0.08  # a run takes seconds: there is a "mid" to hit
        proxies: dict[int, CuttableProxy] = {}
        workers: list[Worker] = []
        for name, proxy in (("first", first_proxy), ("second", second_proxy)):
            folder = tmp_path / name
            folder.mkdir()
            url = direct.set(port=proxy.port).render_as_string(hide_password=False)
            path = write_settings(
                folder,
                settings_text(
                    env, url, schedule="interval_seconds = 2", batch_records=20, tables=TABLES
                ),
            )
            if not workers:
                settings = load_settings(path)
                provision_fields(
                    source_plan(settings, SOURCE),
                    build_connector(settings.source(SOURCE)),
                    apply=True,
                )
            workers.append(start_run(path, folder / "worker.log"))
            proxies[workers[-1].process.pid] = proxy
        try:
            for worker in workers:
                worker.wait_for(READY)
            watched = ("writeback_audit",) if how == "restart mid-write-back" else ENTITY_TABLES
            wait_until(lambda: len(labels(engine, watched)) >= 2, f"a run writing {watched[0]}")
            disturbed = int(labels(engine, watched)[0])
            pid = int(run_row(engine, disturbed).worker.rpartition(":")[2])
            victim = next(w for w in workers if w.process.pid == pid)
            disturb(how, server, proxies[pid], victim, engine, disturbed)
            wait_until(
                lambda: run_row(engine, disturbed).status not in ("running", "claimed"),
                "the disturbed run recorded",
                timeout=180,
            )
            emulator.knobs.latency_seconds = 0
            wait_until(
                lambda: succeeded_after(engine, disturbed, 2), "two good runs after it", timeout=180
            )
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGCONT)
                    worker.stop(60)
        logs = "\n".join(w.log.read_text("utf-8")[-3000:] for w in workers)
        assert [w.process.returncode for w in workers] == [0, 0], logs
        row = check_outcome(engine, env, path, disturbed)
        assert row.status == "lost", (row.status, row.error, logs)
        if how.startswith("restart"):
            assert "lost its store mid-run" in row.error, row.error
        else:
            assert "taken over by" in row.error, row.error
    engine.dispose()


def disturb(
    how: str,
    server: OwnPostgres,
    proxy: CuttableProxy,
    first: Worker,
    engine: Engine,
    disturbed: int,
) -> None:
    def others_wrote() -> bool:
        return any(
            label.isdigit() and int(label) > disturbed
            for label in labels(engine, ENTITY_TABLES + ("writeback_runs",))
        )

    if how.startswith("restart"):
        server.restart()
    elif how == "cut":
        proxy.cut()  # its lease goes unrenewed: the second worker takes over once it expires
        wait_until(others_wrote, "the second worker's run writing", timeout=180)
        proxy.restore()
    else:
        os.kill(first.process.pid, signal.SIGSTOP)
        try:
            wait_until(others_wrote, "the second worker's run writing", timeout=180)
        finally:
            os.kill(first.process.pid, signal.SIGCONT)


def test_the_guarded_write_log_sees_an_unfenced_write(server: OwnPostgres) -> None:
    """The log the test above trusts does catch a write made without a lease."""
    engine = open_store(server.url)
    log_guarded_writes(engine)
    with engine.begin() as connection:
        connection.execute(
            model_table(SyncState)
            .insert()
            .values(source=SOURCE, stream="deals", cursor={}, updated_at=datetime.now(UTC))
        )
    with pytest.raises(AssertionError, match="proved no lease"):
        assert_runs_never_overlapped(guarded_writes(engine))
    engine.dispose()
