"""On the Vtiger emulator (stock 8.2): a read Vtiger empties is a failure, not "no changes"; a
non-admin user syncs with owners by id and a warning (tests/realvtiger shows both on the real
server)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.org.generate import generate_org
from emulators.vtiger.emulator import VtigerEmulator
from emulators.vtiger.records import Entity
from kpisync.errors import SchemaDriftError
from kpisync.store.models import Lead, SyncRun
from kpisync.sync import SyncOptions, sync_source
from tests.vtiger_env import SOURCE, VtigerEnv
from tests.vtiger_truth import assert_store_equals_truth


def test_a_field_without_its_column_fails_the_sync_naming_it(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    org = generate_org(seed=11, deals=40)
    with VtigerEmulator(org) as emulator:
        env = VtigerEnv(org, emulator)
        assert (
            sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions()).status == "succeeded"
        )
        name = emulator.break_field("Potentials", "Broken")
        deal = next(e.ws_id for e in emulator.dump()["Potentials"].values() if e.live)
        emulator.update_record("Potentials", deal, {"nextstep": "call back"})
        time.sleep(1.1)  # a run reads up to the second before it started
        with pytest.raises(SchemaDriftError) as caught:
            sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
        message = caught.value.message + " " + (caught.value.hint or "")
        assert f"{name} ('Broken')" in message and "empty page of Potentials" in message
        assert "Module Layouts & Fields > Potentials" in message
        with sqlite_engine.connect() as connection:
            last = connection.execute(
                select(col(SyncRun.status), col(SyncRun.error)).order_by(col(SyncRun.id).desc())
            ).first()
        assert last is not None and last.status == "failed" and name in (last.error or "")
        settings = env.settings_file(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
        first = subprocess.run(
            [sys.executable, "-m", "kpisync.cli", "sync", "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.returncode == 3 and "Broken" in first.stderr, first.stderr


def test_a_sync_with_nothing_changed_makes_no_more_calls_for_the_check(
    sqlite_engine: Engine,
) -> None:
    """The count before a walk replaces its empty page: one call a module either way."""
    org = generate_org(seed=11, deals=40)
    with VtigerEmulator(org) as emulator:
        env = VtigerEnv(org, emulator)
        sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
        time.sleep(1.1)
        emulator.reset_calls()
        result = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
        assert result.status == "succeeded"
        queries = emulator.op_calls["query"]
        modules = 7  # six standard ones and the survey module
        # per module one count at the cursor, one live count; no users page (metadata kept)
        assert queries == 2 * modules


def test_a_non_admin_syncs_owners_by_id_with_a_warning(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    org = generate_org(seed=11, deals=40)
    with VtigerEmulator(org) as emulator:
        rep = next(
            e.fields["user_name"]
            for e in emulator.store.truth["Users"].values()
            if e.fields["is_admin"] == "off" and e.fields["status"] == "Active"
        )
        env = VtigerEnv(org, emulator, key=emulator.access_key(rep))
        problems = env.connector(username=rep).check()
        assert len(problems) == 1 and f"'{rep}' is not an admin" in problems[0].what
        assert "admin user's access key" in problems[0].fix
        result = sync_source(sqlite_engine, SOURCE, env.connector(username=rep), SyncOptions())
        assert result.status == "succeeded"
        assert any("cannot see the Users module" in r.getMessage() for r in caplog.records)
        dump = emulator.dump()
        owners = {
            e.owner
            for m in (
                "Accounts",
                "Contacts",
                "Leads",
                "Potentials",
                "Calendar",
                "Events",
                "NPSResponses",
            )
            for e in dump[m].values()
            if e.live
        }
        dump["Users"] = {
            int(o.partition("x")[2]): Entity(
                "Users",
                int(o.partition("x")[2]),
                {
                    "first_name": "",
                    "last_name": "",
                    "email1": "",
                    "department": "",
                    "status": "Active",
                },
                0,
                0,
            )
            for o in owners
        }
        assert_store_equals_truth(sqlite_engine, SOURCE, dump, emulator.zone)


def test_a_converted_lead_is_recorded_converted_and_a_deleted_one_deleted(
    sqlite_engine: Engine,
) -> None:
    org = generate_org(seed=11, deals=40)
    with VtigerEmulator(org) as emulator:
        env = VtigerEnv(org, emulator)
        sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
        converted, deleted = sorted(e.ws_id for e in emulator.dump()["Leads"].values() if e.live)[
            :2
        ]
        made = emulator.convert_lead(converted, deal=True)
        emulator.delete("Leads", deleted)
        at = emulator.dump()["Leads"][int(converted.partition("x")[2])].modified
        time.sleep(1.1)
        assert (
            sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions()).status == "succeeded"
        )
        with sqlite_engine.connect() as connection:
            rows = {
                r.external_id: r
                for r in connection.execute(
                    select(Lead).where(col(Lead.external_id).in_([converted, deleted]))
                )
            }
        lead = rows[converted]
        assert lead.deleted_at is None and lead.is_converted
        assert lead.converted_at is not None and int(lead.converted_at.timestamp()) == at
        assert (lead.converted_contact_id, lead.converted_account_id, lead.converted_deal_id) == (
            made["Contacts"],
            made["Accounts"],
            made["Potentials"],
        )
        assert rows[deleted].deleted_at is not None and not rows[deleted].is_converted
