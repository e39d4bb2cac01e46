"""Write-back under the admin's control, on the HubSpot emulator: mode off and approve, a plan
refused where the CRM changed since, a revert holding its fields until resumed, call counts that
agree between the run and its row, and the credential check at the start of every run. Outcomes
are read back from the emulator and the store."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, select
from sqlmodel import col

from emulators.org.generate import generate_org
from kpisync.errors import AuthError, ConfigError, WritebackError
from kpisync.store.models import model_table
from tests.kit_salesforce import KIT as SALESFORCE
from tests.kit_vtiger import KIT as VTIGER
from tests.test_writeback_e2e import (
    MAPPING,
    SOURCE,
    TOKEN,
    TOKEN_ENV,
    WRITE,
    Portal,
    expected_contact_nps,
    managed_values,
    org,
    portal,
    portal_settings,
    synced_store,
)
from writeback.models import OutboxItem, WriteRun
from writeback.options import source_plan
from writeback.runs import approve_plan, resume_fields, revert_run, run_writeback
from writeback.values import same

__all__ = ["org", "portal", "synced_store"]  # the fixtures, shared with the end-to-end tests


def first_number(pattern: str, text: str) -> int:
    """The number the first group of `pattern` matches in `text` (fails when it is not there)."""
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return int(found[1])


def run_row(portal: Portal, run_id: int | None) -> Row[Any]:
    assert run_id is not None
    with portal.engine.connect() as connection:
        return connection.execute(select(WriteRun).where(col(WriteRun.id) == run_id)).one()


def test_mode_is_validated_in_one_line(portal: Portal) -> None:
    with pytest.raises(ConfigError) as caught:
        source_plan(portal.with_writeback(**{SOURCE: {"mode": "sometimes"}}), SOURCE)
    assert (
        caught.value.message == f'writeback.{SOURCE}.mode: expected "auto", "approve" or '
        "\"off\", not 'sometimes'"
    )


def test_mode_off_writes_nothing_and_says_so(portal: Portal) -> None:
    before = portal.emulator.dump()
    settings = portal.with_writeback(
        **{SOURCE: {**portal.settings.table("writeback")[SOURCE], "mode": "off"}}
    )
    report = run_writeback(portal.engine, settings, SOURCE, portal.connector(), as_of=portal.as_of)
    assert report.status == "off" and report.run_id is None
    assert sum(portal.emulator.calls.values()) == 0
    assert portal.emulator.dump() == before


def approving(portal: Portal) -> Portal:
    settings = portal.with_writeback(
        **{SOURCE: {**portal.settings.table("writeback")[SOURCE], "mode": "approve"}}
    )
    return Portal(portal.org, portal.emulator, portal.engine, settings, portal.folder)


def test_approve_mode_plans_then_sends_exactly_the_plan(portal: Portal) -> None:
    approve = approving(portal)
    before = portal.emulator.dump()
    plan = run_writeback(
        portal.engine, approve.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert plan.status == "planned" and plan.planned > 0 and plan.run_id is not None
    assert portal.emulator.calls[WRITE] == 0 and portal.emulator.dump() == before
    assert run_row(portal, plan.run_id).status == "planned"
    # a later auto run must not send the plan's items as an "unfinished" run
    with portal.engine.connect() as connection:
        items = {
            (i.entity, i.external_id, i.field): i.new_value
            for i in connection.execute(
                select(model_table(OutboxItem)).where(col(OutboxItem.run_id) == plan.run_id)
            )
        }
    assert len(items) == plan.planned

    sent = approve_plan(portal.engine, approve.settings, plan.run_id, portal.connector())
    assert sent.status == "succeeded" and sent.written == plan.planned and not sent.refused
    row = run_row(portal, plan.run_id)
    assert row.status == "succeeded" and row.written == plan.planned
    entity_type = {"account": "companies", "contact": "contacts", "deal": "deals"}
    after = portal.emulator.dump()
    kinds = {
        (t.entity, t.field): t.score.kind for t in source_plan(portal.settings, SOURCE).targets
    }
    for (entity, rid, name), value in items.items():
        held = after[entity_type[entity]][rid]["properties"].get(name)
        assert same(kinds[(entity, name)], held, value), (entity, rid, name, held, value)
    with pytest.raises(WritebackError, match="not awaiting approval"):
        approve_plan(portal.engine, approve.settings, plan.run_id, portal.connector())


def test_approve_refuses_the_changes_whose_crm_value_changed_since_the_plan(portal: Portal) -> None:
    approve = approving(portal)
    plan = run_writeback(
        portal.engine, approve.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    contact = next(iter(expected_contact_nps(portal)))
    portal.emulator.update_record("contacts", contact, {"kpisync_nps_category": "passive"})
    portal.sync()

    assert plan.run_id is not None
    sent = approve_plan(portal.engine, approve.settings, plan.run_id, portal.connector())
    assert [(r.entity, r.external_id, r.field) for r in sent.refused] == [
        ("contact", contact, "kpisync_nps_category")
    ]
    assert "changed since the plan" in (sent.refused[0].error or "")
    assert sent.written == plan.planned - 1 and sent.failed == 0
    props = portal.emulator.dump()["contacts"][contact]["properties"]
    assert props["kpisync_nps_category"] == "passive"
    assert props["kpisync_nps_score"]  # the record's other fields were written


def test_a_revert_holds_its_fields_until_resumed(portal: Portal) -> None:
    first = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert first.written > 0 and first.run_id is not None
    undone = revert_run(portal.engine, portal.settings, first.run_id, portal.connector())
    assert undone.written == first.written
    fields = {key for key in first.counts}
    assert set(undone.held) == fields
    reverted = portal.emulator.dump()

    portal.emulator.reset_calls()
    again = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert again.planned == 0 and portal.emulator.calls[WRITE] == 0
    assert set(again.held) == fields
    assert managed_values(portal.emulator.dump()) == managed_values(reverted)

    lifted = resume_fields(portal.engine, SOURCE, "kpisync_nps_score")
    assert {(e, f) for _, e, f in lifted} == {k for k in fields if k[1] == "kpisync_nps_score"}
    partly = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert {f for _, f in partly.counts} == {"kpisync_nps_score"}
    assert partly.written == sum(
        n for (_, f), n in first.counts.items() if f == "kpisync_nps_score"
    )

    resume_fields(portal.engine, None, None)
    rest = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert rest.written + partly.written == first.written and not rest.held


def test_call_counts_agree_between_the_run_its_row_and_the_crm(portal: Portal) -> None:
    report = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    made = sum(portal.emulator.calls.values())
    assert report.api_calls == made > report.write_calls == portal.emulator.calls[WRITE]
    row = run_row(portal, report.run_id)
    assert (row.api_calls, row.write_calls) == (made, report.write_calls)


def test_a_wrong_token_fails_the_run_even_with_nothing_to_write(portal: Portal) -> None:
    run_writeback(portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of)
    os.environ[TOKEN_ENV] = "pat-na1-wrong"
    try:
        with pytest.raises(AuthError) as caught:
            run_writeback(
                portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
            )
    finally:
        os.environ[TOKEN_ENV] = TOKEN
    assert caught.value.exit_code == 3 and "\n" not in caught.value.message
    with portal.engine.connect() as connection:
        last = connection.execute(select(WriteRun).order_by(col(WriteRun.id).desc())).first()
        assert last is not None and last.status == "succeeded"  # no run row for the refused one


def settings_file(portal: Portal, **source_keys: Any) -> Path:
    """settings.toml of the portal's store and emulator, with `source_keys` in [writeback.hs]."""
    table = portal_settings(portal.emulator.base_url, str(portal.engine.url))
    lines = [
        f'[kpisync]\nstore = {json.dumps(table["kpisync"]["store"])}\ntimezone = "UTC"',
        f"[sources.{SOURCE}]",
        "portal_id = 12345",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in table["sources"][SOURCE].items()]
    lines += [f"[writeback.{SOURCE}]"] + [f"{k} = {json.dumps(v)}" for k, v in source_keys.items()]
    for entity, mapping in MAPPING.items():
        lines += [f"[writeback.{SOURCE}.{entity}]"]
        lines += [f"{score} = {json.dumps(field)}" for score, field in mapping.items()]
    path = portal.folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kpisync(*args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, TOKEN_ENV: token, "COLUMNS": "400"}
    env.pop("KPISYNC_SETTINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def calls_printed(output: str) -> int:
    return first_number(r"(\d+) API call\(s\) in all", output)


def test_the_cli_plans_approves_names_records_and_counts_calls_alike(portal: Portal) -> None:
    settings = str(settings_file(portal, mode="approve"))
    dry = kpisync("writeback", "--dry-run", "--source", SOURCE, "--csv", "--settings", settings)
    assert dry.returncode == 0, dry.stderr
    rows = list(csv.DictReader(io.StringIO(dry.stdout)))
    plan = run_writeback(
        portal.engine,
        portal.settings,
        SOURCE,
        portal.connector(),
        as_of=datetime.now(UTC),
        dry_run=True,
    )
    assert len(rows) == plan.planned > 50  # the whole plan, not the first 50
    truth = portal.emulator.dump()
    companies = [r for r in rows if r["object"] == "account"]
    assert companies
    for row in companies:
        assert row["name"] == truth["companies"][row["record"]]["properties"]["name"]
        assert row["link"] == f"https://app.hubspot.com/contacts/12345/record/0-2/{row['record']}"
    table = kpisync("writeback", "--dry-run", "--source", SOURCE, "--settings", settings)
    assert f"(first 50 of {plan.planned} shown; --all" in table.stdout
    name = companies[0]["name"]
    assert (
        name
        in kpisync(
            "writeback", "--dry-run", "--all", "--source", SOURCE, "--settings", settings
        ).stdout
    )
    both = kpisync("writeback", "--dry-run", "--csv", "--json", "--settings", settings)
    assert both.returncode == 2 and "--json and --csv together" in both.stderr

    planned = kpisync("writeback", "--source", SOURCE, "--settings", settings)
    assert planned.returncode == 0, planned.stderr
    plan_id = first_number(r"kpisync writeback approve (\d+)", planned.stdout)
    assert portal.emulator.calls[WRITE] == 0
    assert f"plan {plan_id} awaits" in kpisync("status", "--settings", settings).stdout

    portal.emulator.reset_calls()
    sent = kpisync("writeback", "approve", str(plan_id), "--settings", settings)
    assert sent.returncode == 0, sent.stderr
    assert calls_printed(sent.stdout) == sum(portal.emulator.calls.values())
    assert run_row(portal, plan_id).status == "succeeded"

    # the calls a run prints are the calls the CRM saw and the calls `writeback runs` lists
    portal.emulator.reset_calls()
    reverted = kpisync("writeback", "revert", str(plan_id), "--settings", settings)
    assert reverted.returncode == 0, reverted.stderr
    printed = calls_printed(reverted.stdout)
    assert printed == sum(portal.emulator.calls.values()) > portal.emulator.calls[WRITE] > 0
    revert_id = first_number(r"run (\d+) \(revert\)", reverted.stdout)
    runs = kpisync("writeback", "runs", "--settings", settings).stdout
    line = next(line for line in runs.splitlines() if line.startswith(f"│ {revert_id} "))
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells[-2:] == [str(portal.emulator.calls[WRITE]), str(printed)]
    as_json = json.loads(kpisync("writeback", "runs", "--json", "--settings", settings).stdout)
    [row] = [r for r in as_json if r["run"] == revert_id]
    assert (row["reverts_run"], row["write_calls"], row["api_calls"]) == (
        plan_id,
        portal.emulator.calls[WRITE],
        printed,
    )
    assert "kpisync writeback resume --source hs --field kpisync_nps_score" in reverted.stdout
    held = kpisync("writeback", "--dry-run", "--settings", settings)
    assert "held account.kpisync_nps_score" in held.stdout and "would write 0" in held.stdout
    assert (
        "held after a revert: account.kpisync_nps_category"
        in kpisync("status", "--settings", settings).stdout
    )
    resumed = kpisync("writeback", "resume", "--source", SOURCE, "--settings", settings)
    assert resumed.returncode == 0 and "resumed hs account.kpisync_nps_score" in resumed.stdout

    auto = str(settings_file(portal))
    wrong = kpisync("writeback", "--source", SOURCE, "--settings", auto, token="pat-na1-wrong")
    assert wrong.returncode == 3, wrong
    assert wrong.stderr.startswith("error: ") and "Traceback" not in wrong.stderr
    assert "pat-na1-wrong" not in wrong.stderr + wrong.stdout

    off = str(settings_file(portal, mode="off"))
    before = portal.emulator.dump()
    done = kpisync("writeback", "--settings", off)
    assert done.returncode == 0 and "write-back is off" in done.stdout
    assert portal.emulator.dump() == before
    assert "write-back off" in kpisync("status", "--settings", off).stdout


@pytest.mark.parametrize("kit", [SALESFORCE, VTIGER], ids=["salesforce", "vtiger"])
def test_record_links_and_the_credential_check_on_salesforce_and_vtiger(kit: Any) -> None:
    org = generate_org(seed=3, deals=5)
    with kit.serve(org) as served:
        connector = served.connector()
        connector.check_credentials()  # right credentials: no error
        base = served.emulator.base_url.rstrip("/")
        if kit is SALESFORCE:
            assert (
                connector.record_url("deal", "006000000000001AAA")
                == f"{base}/lightning/r/Opportunity/006000000000001AAA/view"
            )
            assert (
                connector.record_url("account", "001A") == f"{base}/lightning/r/Account/001A/view"
            )
        else:
            assert (
                connector.record_url("account", "11x42")
                == f"{base}/index.php?module=Accounts&view=Detail&record=42"
            )
            assert (
                connector.record_url("deal", "13x7")
                == f"{base}/index.php?module=Potentials&view=Detail&record=7"
            )
        with pytest.raises(AuthError):
            served.bad_token_connector().check_credentials()
