"""Write-back on a real, stock Vtiger CRM 8.2.0: what the audit says was written is what the
server holds (read through the webservice and in its database), booleans true and false both
land, a second and third sync + write-back cycle write nothing, a revert restores every field, and
writes the server refuses make a run that is not `succeeded` and name each record and field.

The managed fields are made by the layout editor's own code (bringup.sh add-field); NPS answers
come in through `kpisync surveys import` (a stock Vtiger has no survey module), with respondents
named by their Vtiger ids.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from emulators.org.model import Org
from kpisync.config import Settings, parse_settings
from kpisync.connector import Connector, calls_in
from kpisync.fieldcodec import as_bool, as_number
from kpisync.registry import build_connector
from kpisync.store.models import model_table
from kpisync.sync import SyncOptions, sync_source
from metrics.survey_import import import_surveys
from tests.realvtiger.conftest import small_org
from tests.realvtiger.server import RealVtiger, Seeded
from writeback.models import AuditEntry
from writeback.provision import LABEL_PREFIX
from writeback.runs import revert_run, run_writeback
from writeback.scores import SCORES

SOURCE = "vt"
KEY_ENV = "KPISYNC_TEST_REAL_VTIGER_KEY"
MODULES = {"account": "Accounts", "contact": "Contacts", "deal": "Potentials"}
CF_TABLES = {
    "Accounts": ("vtiger_accountscf", "accountid"),
    "Contacts": ("vtiger_contactscf", "contactid"),
    "Potentials": ("vtiger_potentialscf", "potentialid"),
}
WANTED = {
    "account": ("nps_score", "nps_category", "nps_last_answer", "upsell_flag", "upsell_reason"),
    "contact": ("nps_score", "nps_category", "nps_last_answer"),
    "deal": ("days_in_stage", "stalled"),
}
LAYOUT = {
    "number": "Decimal",
    "bool": "Checkbox",
    "date": "Date",
    "enumeration": "Picklist",
    "string": "TextArea",
}
SCORE = {(s.entity, s.name): s for s in SCORES}
# Accounts with a won deal are upsell candidates: true for some, false for others.
UPSELL = {"promoter": False, "active_within_days": 0, "won_before": True, "no_open_upgrade": False}


@dataclass
class RealPortal:
    server: RealVtiger
    seeded: Seeded
    org: Org
    engine: Engine
    settings: Settings
    mapping: dict[str, dict[str, str]]  # entity -> score -> cf name
    folder: Path

    def connector(self) -> Connector:
        return build_connector(self.settings.source(SOURCE))

    def sync(self) -> None:
        result = sync_source(self.engine, SOURCE, self.connector(), SyncOptions())
        assert result.status == "succeeded", result
        self.import_answers()

    def import_answers(self) -> None:
        ids = self.seeded.ids
        path = self.folder / "nps.csv"
        accounts = {c.id: c.account_id for c in self.org.contacts}
        with path.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["kind", "score", "answered_at", "respondent", "account", "id"])
            for a in self.org.survey_answers:
                account = a.account_id or accounts.get(a.respondent_contact_id or -1)
                if (
                    a.kind != "nps"
                    or ("contact", a.respondent_contact_id) not in ids
                    or ("account", account) not in ids
                ):
                    continue
                out.writerow(
                    [
                        "nps",
                        a.score,
                        a.answered_at.isoformat(),
                        ids[("contact", a.respondent_contact_id or -1)],
                        ids[("account", account or -1)],
                        a.id,
                    ]
                )
        report = import_surveys(self.engine, path, source=SOURCE)
        assert not report.errors, report.errors[:3]

    def kind(self, entity: str, field: str) -> str:
        score = next(s for s, f in self.mapping[entity].items() if f == field)
        return SCORE[(entity, score)].kind

    def webservice(self) -> dict[tuple[str, str, str], str]:
        """(entity, ws id, cf) -> the value the webservice answers."""
        web, out = self.server.web(), {}
        for entity, fields in self.mapping.items():
            columns = ", ".join(["id", *fields.values()])
            for row in web.query_all(MODULES[entity], columns):
                for name in fields.values():
                    out[(entity, row["id"], name)] = row[name]
        return out

    def database(self) -> dict[tuple[str, str, str], str | None]:
        """(entity, ws id, cf) -> the column's value in Vtiger's database (NULL as None)."""
        prefix = {
            e: ws.partition("x")[0]
            for (k, _), ws in self.seeded.ids.items()
            for e in (k,)
            if e in MODULES
        }
        out = {}
        for entity, fields in self.mapping.items():
            table, key = CF_TABLES[MODULES[entity]]
            names = list(fields.values())
            for row in self.server.sql(f"SELECT {key}, {', '.join(names)} FROM {table}"):
                for name, value in zip(names, row[1:], strict=True):
                    out[(entity, f"{prefix[entity]}x{row[0]}", name)] = value
        return out


@pytest.fixture
def portal(
    seeded_org: tuple[RealVtiger, Seeded], sqlite_engine: Engine, tmp_path: Path
) -> RealPortal:
    engine = sqlite_engine  # the store is not under test here: one kind keeps the tier short
    server, seeded = seeded_org
    mapping: dict[str, dict[str, str]] = {}
    for entity, scores in WANTED.items():
        mapping[entity] = {}
        for score in scores:
            s = SCORE[(entity, score)]
            mapping[entity][score] = server.add_field(
                MODULES[entity], LABEL_PREFIX + s.title, LAYOUT[s.kind], list(s.options) or None
            )
    os.environ[KEY_ENV] = server.access_key
    settings = parse_settings(
        {
            "kpisync": {"store": str(engine.url), "timezone": "UTC"},
            "sources": {
                SOURCE: {
                    "type": "vtiger",
                    "url": server.url,
                    "username": "admin",
                    "access_key_env": KEY_ENV,
                    "server_timezone": "UTC",
                }
            },
            "writeback": {"upsell": UPSELL, SOURCE: mapping},
        }
    )
    portal = RealPortal(server, seeded, small_org(), engine, settings, mapping, tmp_path)
    portal.sync()
    return portal


def means(kind: str, held: str | None, meant: str | None) -> bool:
    """Whether Vtiger's text `held` is `meant`, in Vtiger's own forms (not the codec under test):
    a checkbox "1"/"0", a decimal "40.00", a date "2026-01-05"."""
    if kind == "bool":
        return held == ("1" if as_bool(meant or "") else "0")
    if kind == "number":
        return held not in (None, "") and meant is not None and as_number(held) == as_number(meant)
    return (held or None) == meant


def audit_rows(engine: Engine, run_id: int | None) -> list[Any]:
    a = model_table(AuditEntry)
    with engine.connect() as connection:
        return list(connection.execute(select(a).where(a.c.run_id == run_id)))


def test_written_values_are_held_converge_and_revert_on_a_real_vtiger(portal: RealPortal) -> None:
    engine, settings = portal.engine, portal.settings
    web_before, db_before = portal.webservice(), portal.database()
    assert {v for k, v in web_before.items() if portal.kind(k[0], k[2]) == "bool"} == {"0"}

    connector = portal.connector()
    first = run_writeback(engine, settings, SOURCE, connector)
    calls = [calls_in(connector.api_usage())]
    assert first.status == "succeeded", [(r.external_id, r.field, r.error) for r in first.failures]
    assert first.written > 0 and first.failed == 0

    web, db = portal.webservice(), portal.database()
    rows = audit_rows(engine, first.run_id)
    assert len(rows) == first.written and all(r.result == "written" for r in rows)
    for row in rows:
        key, kind = (row.entity, row.external_id, row.field), portal.kind(row.entity, row.field)
        assert means(kind, web[key], row.new_value), (key, web[key], row.new_value)
        assert means(kind, db[key], row.new_value), (key, db[key], row.new_value)
    flag = portal.mapping["account"]["upsell_flag"]
    flags = {
        rid: web[("account", rid, flag)] for (e, rid, f) in web if e == "account" and f == flag
    }
    assert set(flags.values()) == {"1", "0"}, flags  # true written as 1; false reads 0
    assert {r.new_value for r in rows if r.field == flag} == {"true"}

    for cycle in (2, 3):  # nothing changed in the CRM: nothing to write, no conflict
        time.sleep(1.1)  # past the second of our last write: the sync reads every one back
        portal.sync()
        connector = portal.connector()
        again = run_writeback(engine, settings, SOURCE, connector)
        calls.append(calls_in(connector.api_usage()))
        assert (again.status, again.planned, again.written, again.conflicts) == (
            "succeeded",
            0,
            0,
            0,
        ), (cycle, again.sample[:5])
        assert calls[-1] == 2, (cycle, calls)  # only the credential check: challenge and login
    assert portal.webservice() == web and portal.database() == db

    assert first.run_id is not None
    undone = revert_run(engine, settings, first.run_id, portal.connector())
    assert undone.status == "succeeded" and undone.written == first.written
    web_after, db_after = portal.webservice(), portal.database()
    for key, value in web_before.items():
        kind = portal.kind(key[0], key[2])
        if value == "" and db_before[key] is None:  # never written: NULL in the database
            # the webservice has no way to write NULL: an empty text, picklist or date is stored
            # as "" (read "" as before); an empty decimal as 0, read "0.00" (README)
            emptied = "0.00" if kind == "number" else ""
            assert web_after[key] in ("", emptied) and db_after[key] in (None, emptied), (
                key,
                web_after[key],
                db_after[key],
            )
            continue
        assert web_after[key] == value and db_after[key] == db_before[key], (
            key,
            value,
            web_after[key],
            db_before[key],
            db_after[key],
        )
    # the revert wrote false over true: false lands as 0
    reverted = [r for r in audit_rows(engine, undone.run_id) if r.field == flag]
    assert reverted and all(
        flags[r.external_id] == "1" and web_after[("account", r.external_id, flag)] == "0"
        for r in reverted
    )


def test_writes_a_real_vtiger_refuses_fail_the_run_naming_each_field(portal: RealPortal) -> None:
    """A field the layout editor could not add (its column missing) makes every `revise` of that
    module answer INTERNAL_SERVER_ERROR on a stock 8.2: those writes fail, the rest land."""
    done = portal.server.run(
        "add-field",
        "Contacts",
        "Broken",
        "Decimal",
        extra_env={"VT_FIELD_LENGTH": "100"},
        check=False,
    )
    assert done.returncode == 1, done.stderr[-500:]
    report = run_writeback(portal.engine, portal.settings, SOURCE, portal.connector(), as_of=None)
    assert report.status == "partial" and report.written > 0 and report.failed > 0
    rows = audit_rows(portal.engine, report.run_id)
    failed = {(r.external_id, r.field) for r in rows if r.result == "failed"}
    assert failed and all(
        rid.startswith(portal.seeded.of("contact")[0].partition("x")[0] + "x") for rid, _ in failed
    )
    assert {(r.external_id, r.field) for r in report.failures} == failed
    error = report.failure_error()
    assert error is not None and error.exit_code == 7
    assert f"{len(failed)} of {report.written + report.failed} write(s) failed" in error.message
    assert all(r.error for r in rows if r.result == "failed")
    db = portal.database()  # nothing failed was written, nothing written failed to land
    for r in rows:
        key = (r.entity, r.external_id, r.field)
        if r.result == "written":
            assert means(portal.kind(r.entity, r.field), db[key], r.new_value), key
        else:
            assert db[key] in (None, ""), key

    path = settings_file(portal)  # the command line: the refused fields again, exit 7
    done = subprocess.run(
        [sys.executable, "-m", "kpisync.cli", "writeback", "--settings", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert done.returncode == 7, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed:" in done.stdout and "write(s) failed" in done.stderr
    for rid, name in failed:
        assert any(
            f"{rid} {name}:" in line and "not written" in line for line in done.stdout.splitlines()
        ), (rid, name)


def settings_file(portal: RealPortal) -> Path:
    """settings.toml of the portal, for `kpisync` subprocesses."""
    lines = [
        f'[kpisync]\nstore = "{portal.engine.url}"\ntimezone = "UTC"\n',
        (
            f'[sources.{SOURCE}]\ntype = "vtiger"\nurl = "{portal.server.url}"\n'
            f'username = "admin"\naccess_key_env = "{KEY_ENV}"\nserver_timezone = "UTC"\n'
        ),
        "[writeback.upsell]",
        *(f"{k} = {str(v).lower()}" for k, v in UPSELL.items()),
    ]
    for entity, fields in portal.mapping.items():
        lines.append(f"\n[writeback.{SOURCE}.{entity}]")
        lines += [f'{score} = "{name}"' for score, name in fields.items()]
    path = portal.folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_value_vtiger_changes_on_the_way_is_a_failed_write(portal: RealPortal) -> None:
    """The server keeps another value than the one sent (a text field cut to its length): the
    write is failed with what the server holds, never written."""
    short = portal.server.add_field("Accounts", "kpisync: short reason", "Text", length=20)
    extra = dict(portal.settings.extra or {})
    extra["writeback"] = {
        "upsell": UPSELL,
        SOURCE: {
            **portal.mapping,
            "account": {**portal.mapping["account"], "upsell_reason": short},
        },
    }
    settings = dataclasses.replace(portal.settings, extra=extra)
    report = run_writeback(portal.engine, settings, SOURCE, portal.connector())
    cut = [r for r in report.failures if r.field == short]
    assert report.status == "partial" and cut, report.failures[:3]
    assert all(r.error and "Vtiger holds" in r.error for r in cut), cut[:3]
