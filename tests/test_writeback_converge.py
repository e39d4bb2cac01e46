"""Write-back says only what is true and settles, on the HubSpot, Salesforce and Vtiger emulators.

- every value a run's audit says it wrote is the value the CRM holds, in the CRM's own form
  (a Vtiger checkbox "1"/"0", a Salesforce boolean, HubSpot "true"/"false"), and a sync reads it
  back; booleans true and false both land;
- sync then write-back, repeated with nothing changed in the CRM, writes nothing after the first
  cycle and sees no conflict;
- a revert puts every field back to what it held before (by the CRM's codec where the CRM has its
  own form of empty);
- a CRM that refuses some writes, or keeps another value than the one sent, makes a run that is
  not `succeeded`, counts what failed and names each failed record and field.

The org and the Vtiger/Salesforce adapters are tests/test_writeback_crms.py's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, select

from emulators.hubspot.store import validation_error
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.store import RecordError
from emulators.vtiger.store import VtigerError
from kpisync.config import parse_settings
from kpisync.errors import WritebackError, WritesFailed
from kpisync.fieldcodec import ValueCodec, as_bool, as_number, blank_to_none
from kpisync.health import HealthState, RunMetrics
from kpisync.pipeline import Pipeline
from kpisync.scheduler.history import now_utc
from kpisync.scheduler.models import PipelineRun
from kpisync.scheduler.options import scheduler_settings
from kpisync.store.models import ENTITY_MODELS, model_table
from tests.harness import toml_value
from tests.hubspot_env import TOKEN as HUBSPOT_TOKEN
from tests.hubspot_env import TOKEN_ENV as HUBSPOT_TOKEN_ENV
from tests.kit_hubspot import KIT as HUBSPOT
from tests.test_writeback_crms import CRMS, WANTED, Portal, SalesforceCrm, VtigerCrm
from tests.vtiger_env import KEY_ENV as VTIGER_KEY_ENV
from writeback.models import AuditEntry, OutboxItem, WriteRun
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import revert_run, run_writeback
from writeback.scores import SCORES

CYCLES = 3
CLI = [sys.executable, "-m", "kpisync.cli"]
RUN_COMMAND = [sys.executable, "-m", "kpisync.cli"]
KIND = {(s.entity, s.name): s.kind for s in SCORES}


class HubSpotCrm:
    kit = HUBSPOT
    objects: ClassVar[dict[str, str]] = {
        "account": "companies",
        "contact": "contacts",
        "deal": "deals",
    }
    settle_seconds = 0.0

    def add_field(self, emulator: Any, entity: str, score: str) -> str:
        return f"kpisync_{score}"  # created by `fields apply` (provision_fields) below

    def write_calls(self, emulator: Any) -> int:
        return sum(n for k, n in emulator.calls.items() if k.endswith("batch/update"))

    def records(self, dump: Any, entity: str) -> dict[str, dict[str, Any]]:
        return {
            rid: r["properties"]
            for rid, r in dump[self.objects[entity]].items()
            if not r.get("archived")
        }

    def after_sync(self, portal: Portal) -> None:
        pass


ALL: dict[str, Any] = {"hubspot": HubSpotCrm(), **CRMS}
# What each emulator keeps for a boolean score written true or false: the CRM's own form.
STORED_BOOL: dict[str, dict[bool | None, Any]] = {
    "hubspot": {True: "true", False: "false"},
    "salesforce": {True: True, False: False},
    "vtiger": {True: "1", False: "0"},
}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=120)


@pytest.fixture(params=sorted(ALL))
def portal(
    request: pytest.FixtureRequest, org: Org, engine: Engine, tmp_path: Path
) -> Iterator[Portal]:
    crm = ALL[request.param]
    with crm.kit.serve(org) as served:
        mapping = {
            entity: {score: crm.add_field(served.emulator, entity, score) for score in scores}
            for entity, scores in WANTED.items()
        }
        if request.param == "vtiger":
            os.environ[VTIGER_KEY_ENV] = served.env.key
        if request.param == "hubspot":
            os.environ[HUBSPOT_TOKEN_ENV] = HUBSPOT_TOKEN
        settings = parse_settings(
            {
                "kpisync": {"store": str(engine.url), "timezone": "UTC"},
                "sources": {served.source: served.env.options()},
                "writeback": {served.source: mapping},
            }
        )
        portal = Portal(crm, org, served, engine, settings, mapping, tmp_path)
        steps = provision_fields(
            source_plan(settings, portal.source),
            portal.connector(),
            apply=request.param == "hubspot",
        )
        assert [s.problem for s in steps if s.problem] == []
        portal.sync()
        served.emulator.reset_calls()
        yield portal


def crm_name(portal: Portal) -> str:
    return next(name for name, crm in ALL.items() if crm is portal.crm)


def codec_of(portal: Portal) -> ValueCodec:
    codec = portal.connector().value_codec  # type: ignore[attr-defined]
    assert isinstance(codec, ValueCodec)
    return codec


def managed(portal: Portal) -> dict[tuple[str, str, str], Any]:
    """(entity, record, field) -> the value the CRM holds, as the emulator keeps it."""
    dump = portal.emulator.dump()
    return {
        (entity, rid, name): fields.get(name)
        for entity, scores in portal.mapping.items()
        for rid, fields in portal.crm.records(dump, entity).items()
        for name in scores.values()
    }


def score_of(portal: Portal, entity: str, name: str) -> str:
    return next(s for s, f in portal.mapping[entity].items() if f == name)


def written_rows(portal: Portal, run_id: int | None) -> list[Any]:
    a = model_table(AuditEntry)
    with portal.engine.connect() as connection:
        return list(
            connection.execute(select(a).where(a.c.run_id == run_id, a.c.result == "written"))
        )


def assert_means(kind: str, held: Any, meant: str | None, crm: str) -> None:
    """`held` (as the emulator keeps it) is `meant`, checked without the codec under test."""
    if kind == "bool":
        assert meant is not None
        assert held == STORED_BOOL[crm][as_bool(meant)], (held, meant)
    elif kind == "number":
        assert meant is not None and as_number(str(held)) == as_number(meant), (held, meant)
    elif kind == "date":
        assert meant is not None
        day = held if isinstance(held, date) else None
        text = str(held)
        if day is None and text.isdigit():  # HubSpot: epoch milliseconds
            day = datetime.fromtimestamp(int(text) / 1000).date()
        assert (day or date.fromisoformat(text[:10])) == date.fromisoformat(meant), (held, meant)
    else:
        assert blank_to_none(held) == meant, (held, meant)


def assert_audit_is_truth(portal: Portal, run_id: int | None) -> int:
    """Every value the run's audit says it wrote is what the CRM holds, and what a sync reads."""
    held, crm, rows = managed(portal), crm_name(portal), written_rows(portal, run_id)
    for row in rows:
        assert_means(
            KIND[(row.entity, row.score)],
            held[(row.entity, row.external_id, row.field)],
            row.new_value,
            crm,
        )
    return len(rows)


def assert_store_reads_truth(portal: Portal, codec: ValueCodec) -> None:
    held = managed(portal)
    with portal.engine.connect() as connection:
        for entity in portal.mapping:
            t = model_table(ENTITY_MODELS[entity])
            stored = {
                r.external_id: r.custom or {}
                for r in connection.execute(
                    select(t.c.external_id, t.c.custom).where(
                        t.c.source == portal.source, t.c.deleted_at.is_(None)
                    )
                )
            }
            for (e, rid, name), value in held.items():
                if e == entity and rid in stored:  # HubSpot: a contact may be stored as a lead
                    kind = KIND[(entity, score_of(portal, entity, name))]
                    assert codec.holds(kind, stored[rid].get(name), blank_to_none(value)), (
                        entity,
                        rid,
                        name,
                        value,
                        stored[rid].get(name),
                    )


# -- the tests ----------------------------------------------------------------------------------
def test_writes_read_back_converge_and_revert_exactly(portal: Portal) -> None:
    emulator, engine, settings, crm = portal.emulator, portal.engine, portal.settings, portal.crm
    codec, name = codec_of(portal), crm_name(portal)
    before = managed(portal)
    written, calls, conflicts, run_ids = [], [], [], []
    for cycle in range(CYCLES):
        if cycle:
            time.sleep(crm.settle_seconds)
            portal.sync()
        emulator.reset_calls()
        report = run_writeback(
            engine, settings, portal.source, portal.connector(), as_of=portal.as_of
        )
        assert report.status == "succeeded", [
            (r.external_id, r.field, r.error) for r in report.failures[:5]
        ]
        written.append(report.written)
        calls.append(crm.write_calls(emulator))
        conflicts.append(report.conflicts)
        run_ids.append(report.run_id)
        if cycle == 0:
            assert report.written > 0 and report.failed == 0
            assert assert_audit_is_truth(portal, report.run_id) == report.written
    assert written[1:] == [0] * (CYCLES - 1) and calls[1:] == [0] * (CYCLES - 1), (written, calls)
    assert conflicts == [0] * CYCLES
    assert_store_reads_truth(portal, codec)

    # both true and false are held: written in the CRM's form (assert_audit_is_truth), or, for a
    # false flag on a Vtiger checkbox that already reads 0, held without a write
    flags = [
        v
        for (e, _, f), v in managed(portal).items()
        if e == "account" and f == portal.mapping["account"]["upsell_flag"]
    ]
    assert {codec.holds("bool", v, "true") for v in flags} == {True, False}, flags
    if name != "vtiger":
        assert {
            r.new_value
            for r in written_rows(portal, run_ids[0])
            if KIND[(r.entity, r.score)] == "bool"
        } == {"true", "false"}

    assert run_ids[0] is not None
    undone = revert_run(engine, settings, run_ids[0], portal.connector())
    assert undone.status == "succeeded" and undone.written == written[0] and undone.failed == 0
    after = managed(portal)
    for key, value in before.items():
        kind = KIND[(key[0], score_of(portal, key[0], key[2]))]
        assert codec.holds(kind, after[key], blank_to_none(value)), (key, value, after[key])
        if not isinstance(crm, VtigerCrm):  # HubSpot and Salesforce hold empty as empty
            assert blank_to_none(after[key]) == blank_to_none(value), (key, value, after[key])
    if name == "vtiger":  # what Vtiger held before is back, checkbox "0" included; an empty
        # decimal cannot be emptied again once written: it reads "0.00" (as on the real server)
        for key, value in before.items():
            emptied = (
                KIND[(key[0], score_of(portal, key[0], key[2]))] == "number"
                and blank_to_none(value) is None
            )
            assert after[key] == ("0.00" if emptied and after[key] else value), (
                key,
                value,
                after[key],
            )


def refuse_some(portal: Portal, every: int) -> set[str]:
    """The CRM refuses writes to every `every`-th account from now on, each in its own way: a
    HubSpot validation error, a Salesforce validation rule, Vtiger's INTERNAL_SERVER_ERROR (what
    the real server answers `revise` on a module with a broken field)."""
    emulator = portal.emulator
    refused = set(sorted(portal.crm.records(emulator.dump(), "account"))[::every])
    store = emulator.store
    if isinstance(portal.crm, HubSpotCrm):
        update = store.update

        def hubspot_update(object_type: str, rid: str, props: dict[str, Any]) -> Any:
            if rid in refused:
                raise validation_error("Property values were not valid: refused by a rule")
            return update(object_type, rid, props)

        store.update = hubspot_update
    elif isinstance(portal.crm, SalesforceCrm):
        sf_update = store.update

        def salesforce_update(sobject: str, rid: str, values: dict[str, Any], **kw: Any) -> Any:
            if rid in refused:
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "refused by a rule")
            return sf_update(sobject, rid, values, **kw)

        store.update = salesforce_update
    else:
        revise = store.revise

        def vtiger_revise(element: dict[str, Any], user: str, **kw: Any) -> Any:
            if element.get("id") in refused:
                raise VtigerError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request")
            return revise(element, user, **kw)

        store.revise = vtiger_revise
    return refused


def test_refused_writes_make_a_partial_run_naming_each_failed_field(portal: Portal) -> None:
    before = managed(portal)
    refused = refuse_some(portal, every=4)
    report = run_writeback(
        portal.engine, portal.settings, portal.source, portal.connector(), as_of=portal.as_of
    )
    assert report.status == "partial" and report.written > 0
    failed = {(r.external_id, r.field) for r in report.failures if r.status == "failed"}
    expected = {
        (rid, name)
        for rid in refused
        for name in portal.mapping["account"].values()
        if (rid, name) in planned_fields(portal, report.run_id)
    }
    assert failed == expected and report.failed == len(expected) > 0
    assert all(r.error for r in report.failures)
    error = report.failure_error()
    assert isinstance(error, WritesFailed) and error.exit_code == 7
    assert f"{report.failed} of {report.written + report.failed} write(s) failed" in error.message
    assert min(refused) in error.message
    held = managed(portal)  # nothing refused was taken for written
    assert {(r.external_id, r.field) for r in written_rows(portal, report.run_id)} & failed == set()
    assert assert_audit_is_truth(portal, report.run_id) == report.written
    assert all(held[("account", rid, f)] == before[("account", rid, f)] for rid, f in failed)

    again = run_writeback(
        portal.engine, portal.settings, portal.source, portal.connector(), as_of=portal.as_of
    )  # only the refused fields are tried again
    assert again.status == "failed" and again.written == 0 and again.failed == len(expected)


def planned_fields(portal: Portal, run_id: int | None) -> set[tuple[str, str]]:
    o = model_table(OutboxItem)
    with portal.engine.connect() as connection:
        return {
            (r.external_id, r.field)
            for r in connection.execute(
                select(o.c.external_id, o.c.field).where(o.c.run_id == run_id)
            )
        }


def settings_file(portal: Portal, folder: Path) -> Path:
    """settings.toml of the portal's source and mapping, for `kpisync` subprocesses."""
    store = portal.engine.url.render_as_string(hide_password=False)
    lines = [f'[kpisync]\nstore = "{store}"\ntimezone = "UTC"\n', f"[sources.{portal.source}]"]
    options = portal.served.env.options()
    lines += [f"{k} = {toml_value(v)}" for k, v in options.items() if v is not None]
    for entity, fields in portal.mapping.items():
        lines.append(f"\n[writeback.{portal.source}.{entity}]")
        lines += [f'{score} = "{name}"' for score, name in fields.items()]
    lines.append('\n[scheduler]\nstages = ["sync", "writeback"]\n')
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("portal", ["vtiger", "hubspot"], indirect=True)
def test_refused_writes_exit_7_from_writeback_and_fail_a_scheduled_run(
    portal: Portal, tmp_path: Path
) -> None:
    refused = refuse_some(portal, every=3)
    path = settings_file(portal, tmp_path)
    wide = {**os.environ, "COLUMNS": "300"}
    done = subprocess.run(
        [*CLI, "writeback", "--settings", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=wide,
    )
    assert done.returncode == 7, done.stdout[-2000:] + done.stderr[-2000:]
    assert "partial:" in done.stdout and "write(s) failed" in done.stderr
    runs = model_table(WriteRun)
    with portal.engine.connect() as connection:
        last = connection.execute(select(runs).order_by(runs.c.id.desc())).first()
    assert last is not None and last.status == "partial" and last.failed > 0 and last.written > 0
    failed = {(rid, name) for rid, name in planned_fields(portal, last.id) if rid in refused}
    assert len(failed) == last.failed
    for rid, name in failed:  # each failed record and field named, with its reason
        line = next((x for x in done.stdout.splitlines() if f"{rid} {name}:" in x), None)
        assert line is not None and "not written" in line and "refused" in line, (rid, name)

    done = subprocess.run(
        [*RUN_COMMAND, "run", "--settings", str(path), "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=wide,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"{portal.source}: failed" in done.stdout
    scheduled = model_table(PipelineRun)
    with portal.engine.connect() as connection:
        run = connection.execute(select(scheduled).order_by(scheduled.c.id.desc())).first()
    assert run is not None and run.status == "failed"
    assert "write(s) failed" in (run.error or "") and min(refused) in (run.error or "")
    with portal.engine.connect() as connection:
        last = connection.execute(select(runs).order_by(runs.c.id.desc())).first()
    assert last is not None and last.status == "failed" and last.written == 0


@pytest.mark.parametrize("portal", ["salesforce"], indirect=True)
def test_a_scheduled_run_with_refused_writes_is_failed_in_health_and_metrics(
    portal: Portal,
) -> None:
    refused = refuse_some(portal, every=3)
    metrics, health = RunMetrics(), HealthState(worker="test")
    options = scheduler_settings(portal.settings).model_copy(
        update={"stages": ("sync", "writeback")}
    )
    pipeline = Pipeline(
        portal.engine,
        portal.settings,
        options,
        stop=threading.Event(),
        metrics=metrics,
        health=health,
    )
    assert pipeline.run_scheduled_slot(portal.source, now_utc(), trigger="once") == "failed"
    state = health.sources[portal.source]
    assert state["last_status"] == "failed" and min(refused) in state["last_error"]
    assert "write(s) failed" in state["last_error"]
    sample = metrics.registry.get_sample_value
    assert sample("kpisync_pipeline_runs_total", {"source": portal.source, "status": "failed"}) == 1
    assert sample("kpisync_failures_in_a_row", {"source": portal.source}) == 1
    assert sample("kpisync_last_success_timestamp_seconds", {"source": portal.source}) is None
    assert (
        sample("kpisync_api_calls_total", {"source": portal.source, "stage": "writeback"}) or 0
    ) > 0


@pytest.mark.parametrize("portal", ["vtiger"], indirect=True)
def test_failures_of_an_interrupted_run_finished_later_are_reported_then(portal: Portal) -> None:
    refused = refuse_some(portal, every=4)
    emulator = portal.emulator
    emulator.reset_calls()
    emulator.knobs.fail_always_after_calls = 12  # the CRM goes down amid the sends
    with pytest.raises(WritebackError, match="stopped"):
        run_writeback(
            portal.engine, portal.settings, portal.source, portal.connector(), as_of=portal.as_of
        )
    emulator.knobs.fail_always_after_calls = None
    report = run_writeback(
        portal.engine, portal.settings, portal.source, portal.connector(), as_of=portal.as_of
    )
    assert report.resumed_runs and report.resumed_failed
    [(run, failed)] = report.resumed_failed.items()
    error = report.failure_error()
    assert error is not None and error.exit_code == 7
    assert f"interrupted run {run} finished with {failed} failed write(s)" in error.message
    runs = model_table(WriteRun)
    with portal.engine.connect() as connection:
        status = connection.execute(select(runs.c.status).where(runs.c.id == run)).scalar()
    assert status == "partial" and refused
