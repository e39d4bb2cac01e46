"""Kill tests: `kpisync writeback` in a subprocess, SIGKILLed at random points of its run, then
rerun the way the scheduler runs it (sync, then write-back). Each round the CRM must end in exactly
the desired state, every planned write audited exactly once, and nothing left in the outbox."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator, HubSpotKnobs
from emulators.org.generate import generate_org
from kpisync.config import Settings, load_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from writeback.models import AuditEntry, OutboxItem, WrittenValue
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback
from writeback.values import same

TOKEN = "pat-na1-writeback-kill"
TOKEN_ENV = "KPISYNC_TEST_WRITEBACK_TOKEN"
WRITE = "POST /crm/v3/objects/{type}/batch/update"
ROUNDS = 5
KINDS = {
    "kpisync_nps_score": "number",
    "kpisync_nps_category": "enumeration",
    "kpisync_nps_last_answer": "date",
    "kpisync_upsell_flag": "bool",
    "kpisync_upsell_reason": "string",
    "kpisync_days_in_stage": "number",
    "kpisync_stalled": "bool",
}
OBJECTS = {"account": "companies", "contact": "contacts", "deal": "deals"}


def settings_text(base_url: str, store: Path, round_: int) -> str:
    """Each round moves the scores: another NPS window, upsell rule and day."""
    even = round_ % 2 == 0
    return f"""
[kpisync]
store = "sqlite:///{store}"
timezone = "UTC"

[sources.hs]
type = "hubspot"
host = "{base_url}"
token_env = "{TOKEN_ENV}"
search_lag_seconds = 0
fast_retries = true
search_rate_per_second = 1000

[metrics]
nps_window_days = {365 if even else 120}

[writeback.upsell]
promoter = {"true" if even else "false"}
active_within_days = {30 if even else 0}

[writeback.hs]
batch_size = 10

[writeback.hs.account]
nps_score = "kpisync_nps_score"
nps_category = "kpisync_nps_category"
upsell_flag = "kpisync_upsell_flag"
upsell_reason = "kpisync_upsell_reason"

[writeback.hs.deal]
days_in_stage = "kpisync_days_in_stage"
stalled = "kpisync_stalled"
"""


def wait_for_writes(
    emulator: HubSpotEmulator, before: int, wanted: int, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while emulator.calls[WRITE] - before < wanted and process.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("the write-back never reached its kill point")
        time.sleep(0.002)


def crm_matches_state(emulator: HubSpotEmulator, engine: Any) -> None:
    """Every value kpisync believes it wrote is the CRM's value, and nothing else was written."""
    truth = emulator.dump()
    with engine.connect() as connection:
        rows = connection.execute(select(WrittenValue)).all()
    believed = {(OBJECTS[r.entity], r.external_id, r.field): r.value for r in rows}
    for kind in ("companies", "deals"):
        for rid, record in truth[kind].items():
            for name in (
                n for n in KINDS if (kind, rid, n) in believed or n in record["properties"]
            ):
                crm = record["properties"].get(name)
                assert same(KINDS[name], crm, believed.get((kind, rid, name))), (kind, rid, name)


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_crm_exact_and_audit_complete(tmp_path: Path) -> None:
    os.environ[TOKEN_ENV] = TOKEN
    org = generate_org(seed=5, deals=80)
    rng = random.Random(20261124)
    store = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{store}")
    knobs = HubSpotKnobs(ten_secondly_budget=1_000_000)
    kill_points = []
    with HubSpotEmulator(
        org, access_token=TOKEN, search_rate_per_second=10_000, knobs=knobs
    ) as emulator:
        path = tmp_path / "settings.toml"
        path.write_text(settings_text(emulator.base_url, store, 0), "utf-8")
        settings = load_settings(path)
        provision_fields(
            source_plan(settings, "hs"), build_connector(settings.source("hs")), apply=True
        )
        sync_source(engine, "hs", build_connector(settings.source("hs")), SyncOptions())
        for round_ in range(ROUNDS):
            path.write_text(settings_text(emulator.base_url, store, round_), "utf-8")
            settings = load_settings(path)
            as_of = org.now + timedelta(days=round_, hours=12)
            planned = run_writeback(
                engine,
                settings,
                "hs",
                build_connector(settings.source("hs")),
                as_of=as_of,
                dry_run=True,
            )
            assert planned.planned > 0
            with engine.connect() as connection:
                first_new_run = (
                    connection.execute(select(func.max(col(AuditEntry.run_id)))).scalar() or 0
                ) + 1
            before = emulator.calls[WRITE]
            knobs.latency_seconds = 0.02  # a call takes a while: kills land inside calls too
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kpisync.cli",
                    "writeback",
                    "--settings",
                    str(path),
                    "--as-of",
                    as_of.isoformat(),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(os.environ),
            )
            wanted = rng.randrange(0, max(1, planned.write_calls))
            wait_for_writes(emulator, before, wanted, process)
            time.sleep(rng.uniform(0, 0.04))
            process.send_signal(signal.SIGKILL)
            _, err = process.communicate()
            knobs.latency_seconds = 0.0
            kill_points.append((round_, emulator.calls[WRITE] - before, process.returncode))
            assert process.returncode == -signal.SIGKILL, err.decode()[-2000:]

            # the scheduler's rerun: sync (reads back what landed), then write-back
            connector = build_connector(settings.source("hs"))
            sync_source(engine, "hs", connector, SyncOptions())
            run_writeback(engine, settings, "hs", connector, as_of=as_of)
            check_round(engine, emulator, settings, as_of, planned.planned, first_new_run)
    print("kill points (round, write calls made, return code):", kill_points)
    assert len(kill_points) == ROUNDS >= 5
    assert len({calls for _, calls, _ in kill_points}) > 1, kill_points  # kills landed apart


def check_round(
    engine: Any,
    emulator: HubSpotEmulator,
    settings: Settings,
    as_of: Any,
    planned: int,
    first_run: int,
) -> None:
    crm_matches_state(emulator, engine)
    left = run_writeback(
        engine, settings, "hs", build_connector(settings.source("hs")), as_of=as_of, dry_run=True
    )
    assert left.planned == 0, "the CRM is not in the desired state"
    with engine.connect() as connection:
        unsettled = connection.execute(
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
        written = connection.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(col(AuditEntry.run_id) >= first_run, col(AuditEntry.result) == "written")
        ).scalar()
    assert unsettled == 0
    assert audited == settled, "an outbox item without exactly one audit row"
    assert written == planned, f"{written} writes audited for {planned} planned: doubled or lost"
