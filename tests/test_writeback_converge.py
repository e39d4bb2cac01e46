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
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, select

from kpisync.config import parse_settings
from kpisync.errors import WritesFailed
from kpisync.fieldcodec import ValueCodec, as_bool, as_number, blank_to_none
from kpisync.sandbox.hubspot_store import validation_error
from kpisync.sandbox.org import Org
from kpisync.sandbox.orggen import generate_org
from kpisync.store.models import ENTITY_MODELS
from tests.hubspot_env import TOKEN as HUBSPOT_TOKEN
from tests.hubspot_env import TOKEN_ENV as HUBSPOT_TOKEN_ENV
from tests.kit_hubspot import KIT as HUBSPOT
from tests.test_writeback_crms import CRMS, WANTED, Portal, SalesforceCrm, VtigerCrm
from tests.vtiger_env import KEY_ENV as VTIGER_KEY_ENV
from writeback.models import AuditEntry
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import revert_run, run_writeback
from writeback.scores import SCORES

CYCLES = 3
KIND = {(s.entity, s.name): s.kind for s in SCORES}


class HubSpotCrm:
    kit = HUBSPOT
    objects: ClassVar[dict[str, str]] = {"account": "companies", "contact": "contacts",
                                         "deal": "deals"}
    settle_seconds = 0.0

    def add_field(self, emulator: Any, entity: str, score: str) -> str:
        return f"kpisync_{score}"  # created by `fields apply` (provision_fields) below

    def write_calls(self, emulator: Any) -> int:
        return sum(n for k, n in emulator.calls.items() if k.endswith("batch/update"))

    def records(self, dump: Any, entity: str) -> dict[str, dict[str, Any]]:
        return {rid: r["properties"] for rid, r in dump[self.objects[entity]].items()
                if not r.get("archived")}

    def after_sync(self, portal: Portal) -> None:
        pass


ALL = {"hubspot": HubSpotCrm(), **CRMS}
# What each emulator keeps for a boolean score written true or false: the CRM's own form.
STORED_BOOL = {"hubspot": {True: "true", False: "false"}, "salesforce": {True: True, False: False},
               "vtiger": {True: "1", False: "0"}}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=120)


@pytest.fixture(params=sorted(ALL))
def portal(request: pytest.FixtureRequest, org: Org, engine: Engine, tmp_path: Path
           ) -> Iterator[Portal]:
    crm = ALL[request.param]
    with crm.kit.serve(org) as served:
        mapping = {entity: {score: crm.add_field(served.emulator, entity, score)
                            for score in scores} for entity, scores in WANTED.items()}
        if request.param == "vtiger":
            os.environ[VTIGER_KEY_ENV] = served.env.key
        if request.param == "hubspot":
            os.environ[HUBSPOT_TOKEN_ENV] = HUBSPOT_TOKEN
        settings = parse_settings({"kpisync": {"store": str(engine.url), "timezone": "UTC"},
                                   "sources": {served.source: served.env.options()},
                                   "writeback": {served.source: mapping}})
        portal = Portal(crm, org, served, engine, settings, mapping, tmp_path)
        steps = provision_fields(source_plan(settings, portal.source), portal.connector(),
                                 apply=request.param == "hubspot")
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
    return {(entity, rid, name): fields.get(name)
            for entity, scores in portal.mapping.items()
            for rid, fields in portal.crm.records(dump, entity).items()
            for name in scores.values()}


def score_of(portal: Portal, entity: str, name: str) -> str:
    return next(s for s, f in portal.mapping[entity].items() if f == name)


def written_rows(portal: Portal, run_id: int | None) -> list[Any]:
    a = AuditEntry.__table__  # type: ignore[attr-defined]
    with portal.engine.connect() as connection:
        return list(connection.execute(select(a).where(a.c.run_id == run_id,
                                                       a.c.result == "written")))


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
        assert_means(KIND[(row.entity, row.score)], held[(row.entity, row.external_id, row.field)],
                     row.new_value, crm)
    return len(rows)


def assert_store_reads_truth(portal: Portal, codec: ValueCodec) -> None:
    held = managed(portal)
    with portal.engine.connect() as connection:
        for entity in portal.mapping:
            t = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
            stored = {r.external_id: r.custom or {} for r in connection.execute(
                select(t.c.external_id, t.c.custom).where(t.c.source == portal.source,
                                                          t.c.deleted_at.is_(None)))}
            for (e, rid, name), value in held.items():
                if e == entity and rid in stored:  # HubSpot: a contact may be stored as a lead
                    kind = KIND[(entity, score_of(portal, entity, name))]
                    assert codec.holds(kind, stored[rid].get(name), blank_to_none(value)), \
                        (entity, rid, name, value, stored[rid].get(name))


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
        report = run_writeback(engine, settings, portal.source, portal.connector(),
                               as_of=portal.as_of)
        assert report.status == "succeeded", [(r.external_id, r.field, r.error)
                                              for r in report.failures[:5]]
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
    flags = [v for (e, _, f), v in managed(portal).items()
             if e == "account" and f == portal.mapping["account"]["upsell_flag"]]
    assert {codec.holds("bool", v, "true") for v in flags} == {True, False}, flags
    if name != "vtiger":
        assert {r.new_value for r in written_rows(portal, run_ids[0])
                if KIND[(r.entity, r.score)] == "bool"} == {"true", "false"}

    undone = revert_run(engine, settings, run_ids[0], portal.connector())
    assert undone.status == "succeeded" and undone.written == written[0] and undone.failed == 0
    after = managed(portal)
    for key, value in before.items():
        kind = KIND[(key[0], score_of(portal, key[0], key[2]))]
        assert codec.holds(kind, after[key], blank_to_none(value)), (key, value, after[key])
        if not isinstance(crm, VtigerCrm):  # HubSpot and Salesforce hold empty as empty
            assert blank_to_none(after[key]) == blank_to_none(value), (key, value, after[key])
    if name == "vtiger":  # what the emulator kept before is back, checkbox "0" included
        assert {k: blank_to_none(v) for k, v in after.items()} == \
               {k: blank_to_none(v) for k, v in before.items()}


def refuse_some(portal: Portal, every: int) -> set[str]:
    """The CRM refuses writes to every `every`-th account, as a validation rule would."""
    entity = "account"
    ids = sorted(portal.crm.records(portal.emulator.dump(), entity))[::every]
    refused = set(ids)
    emulator = portal.emulator
    if isinstance(portal.crm, HubSpotCrm):
        original = emulator.store.update

        def update(object_type: str, rid: str, props: dict[str, Any]) -> Any:
            if rid in refused:
                raise validation_error("Property values were not valid: a validation rule "
                                       "refused this record")
            return original(object_type, rid, props)
        emulator.store.update = update
    elif isinstance(portal.crm, SalesforceCrm):
        from kpisync.sandbox.salesforce_store import RecordError
        original_sf = emulator.store.update

        def update_sf(sobject: str, rid: str, values: dict[str, Any], **kw: Any) -> Any:
            if rid in refused:
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "refused by a rule")
            return original_sf(sobject, rid, values, **kw)
        emulator.store.update = update_sf
    else:
        original_vt = emulator.store.revise

        def revise(element: dict[str, Any], user: str, **kw: Any) -> Any:
            if element.get("id") in refused:
                raise KeyError("refused")  # the emulator answers an error, as Vtiger's 500
            return original_vt(element, user, **kw)
        emulator.store.revise = revise
    return refused
