"""Write-back end to end on the Salesforce emulator (Vtiger: see CRMS), as tests/test_writeback_e2e.py
does on HubSpot: the managed fields are added to the emulator as an admin would (Setup / the
layout editor), then sync, dry run, write-back, a second run and one after a re-sync (both with
no write call), and a revert. Expectations are computed from the synthetic org itself.

Vtiger has no survey object: its NPS answers come in through `kpisync surveys import`, as they
would from the survey tool's export, with respondents named by their Vtiger ids.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from math import ceil
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from emulators.org.generate import generate_org
from emulators.org.model import Org, SurveyAnswer
from emulators.salesforce.records import ref
from kpisync.config import Settings, parse_settings
from kpisync.connector import Connector
from kpisync.registry import build_connector
from kpisync.store.models import ENTITY_MODELS, model_table
from kpisync.sync import SyncOptions, sync_source
from metrics import records
from metrics.options import metric_config
from metrics.survey_import import import_surveys
from tests.kit_salesforce import KIT as SALESFORCE
from tests.kit_vtiger import KIT as VTIGER
from tests.vtiger_env import KEY_ENV as VTIGER_KEY_ENV
from tests.vtiger_env import VtigerEnv
from writeback.models import AuditEntry
from writeback.options import source_plan
from writeback.provision import LABEL_PREFIX, provision_fields
from writeback.runs import revert_run, run_writeback
from writeback.scores import SCORES
from writeback.values import same

WANTED = {
    "account": ("nps_score", "nps_category", "nps_last_answer", "upsell_flag", "upsell_reason"),
    "contact": ("nps_score", "nps_category", "nps_last_answer"),
    "deal": ("days_in_stage", "stalled"),
}
SCORE = {(s.entity, s.name): s for s in SCORES}


def text(value: Any) -> str | None:
    """A CRM value as text, whatever the emulator keeps it as."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def blank(value: Any) -> bool:
    return value is None or value == ""


# -- one adapter per CRM: its objects, ids, custom fields, write calls and records --------------
class SalesforceCrm:
    kit = SALESFORCE
    objects: ClassVar[dict[str, str]] = {
        "account": "Account",
        "contact": "Contact",
        "deal": "Opportunity",
    }
    moving: ClassVar[set[str]] = {"LastModifiedDate", "LastModifiedById", "SystemModstamp"}
    batch = 200
    stalled_values: ClassVar[set[str]] = {"true", "false"}  # OpportunityHistory: usual stays
    settle_seconds = 0.0

    def add_field(self, emulator: Any, entity: str, score: str) -> str:
        s = SCORE[(entity, score)]
        return str(
            emulator.add_custom_field(
                self.objects[entity], f"kpisync_{score}", s.kind, LABEL_PREFIX + s.title, s.options
            )
        )

    def record_id(self, emulator: Any, entity: str, neutral: int) -> str:
        return str(ref(self.objects[entity], neutral))

    def write_calls(self, emulator: Any) -> int:
        return sum(
            n
            for k, n in emulator.calls.items()
            if k.startswith("PATCH") and "composite/sobjects" in k
        )

    def records(self, dump: Any, entity: str) -> dict[str, dict[str, Any]]:
        return {rid: r for rid, r in dump[self.objects[entity]].items() if not r["IsDeleted"]}

    def unmanaged(self, dump: Any, managed: dict[str, set[str]]) -> dict[Any, Any]:
        out = {}
        for sobject, rows in dump.items():
            skip = managed.get(sobject, set()) | self.moving
            for rid, record in rows.items():
                out[(sobject, rid)] = {k: v for k, v in record.items() if k not in skip}
        return out

    def after_sync(self, portal: Portal) -> None:
        pass

    def stage_entered(self, deal: Any, before: Any, rid: str) -> datetime:
        """OpportunityHistory holds the org's stage changes."""
        entered: datetime = deal.stage_history[-1].at if deal.stage_history else deal.created_at
        return entered


class VtigerCrm:
    kit = VTIGER
    objects: ClassVar[dict[str, str]] = {
        "account": "Accounts",
        "contact": "Contacts",
        "deal": "Potentials",
    }
    batch = 1
    # No stage history: after one sync no stay has ended, so no stage has a usual stay and
    # "stalled" is unknown: a checkbox cannot hold that, so it is left as it is, reading "0" as
    # every checkbox never written does on Vtiger 8.2.
    stalled_values: ClassVar[set[str]] = {"0"}
    settle_seconds = 1.5  # a sync leaves rows of the second still filling to the next run

    def add_field(self, emulator: Any, entity: str, score: str) -> str:
        s = SCORE[(entity, score)]
        return str(
            emulator.add_custom_field(
                self.objects[entity], LABEL_PREFIX + s.title, s.kind, s.options
            )
        )

    def record_id(self, emulator: Any, entity: str, neutral: int) -> str:
        return str(emulator.ws_id(entity, neutral))

    def write_calls(self, emulator: Any) -> int:
        return int(emulator.op_calls["revise"])

    def records(self, dump: Any, entity: str) -> dict[str, dict[str, Any]]:
        return {e.ws_id: e.fields for e in dump[self.objects[entity]].values() if e.live}

    def unmanaged(self, dump: Any, managed: dict[str, set[str]]) -> dict[Any, Any]:
        out = {}
        for module, entities in dump.items():
            skip = managed.get(module, set()) | {"modifiedby"}
            for crmid, e in entities.items():
                out[(module, crmid)] = (
                    {k: v for k, v in e.fields.items() if k not in skip},
                    e.created,
                    e.deleted,
                    e.converted,
                    dict(e.extra),
                )
        return out

    def stage_entered(self, deal: Any, before: Any, rid: str) -> datetime:
        """Vtiger keeps no stage history: a stay starts at the modified time of the first version
        a sync saw in that stage, here the potential's modifiedtime before any write-back."""
        entity = next(e for e in before["Potentials"].values() if e.ws_id == rid)
        return datetime.fromtimestamp(entity.modified, UTC)

    def after_sync(self, portal: Portal) -> None:
        """The org's NPS answers, imported from the survey tool's export (idempotent)."""
        path = portal.folder / "nps.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["kind", "score", "answered_at", "respondent", "account", "id"])
            for answer, account in held_answers(portal.org):
                out.writerow(
                    [
                        "nps",
                        answer.score,
                        answer.answered_at.isoformat(),
                        self.record_id(
                            portal.emulator, "contact", answer.respondent_contact_id or 0
                        ),
                        self.record_id(portal.emulator, "account", account),
                        answer.id,
                    ]
                )
        report = import_surveys(portal.engine, path, source=portal.source)
        assert not report.errors, report.errors[:3]


# Vtiger has no stage history: a re-sync after write-back reads each written potential again and
# stores that version as one more observation of the same stage; stays_query merges consecutive
# observations of one stage, so the re-sync changes no score and causes no write.
CRMS: dict[str, SalesforceCrm | VtigerCrm] = {"salesforce": SalesforceCrm(), "vtiger": VtigerCrm()}


def held_answers(org: Org) -> list[tuple[SurveyAnswer, int]]:
    """NPS answers with a respondent, each with the account it is about."""
    accounts = {c.id: c.account_id for c in org.contacts}
    out = []
    for answer in org.survey_answers:
        if answer.kind != "nps" or answer.respondent_contact_id is None:
            continue
        account = answer.account_id or accounts.get(answer.respondent_contact_id)
        if account:
            out.append((answer, account))
    return out


@dataclass
class Portal:
    crm: Any
    org: Org
    served: Any
    engine: Engine
    settings: Settings
    mapping: dict[str, dict[str, str]]
    folder: Path

    @property
    def emulator(self) -> Any:
        return self.served.emulator

    @property
    def source(self) -> str:
        return str(self.served.source)

    @property
    def as_of(self) -> datetime:
        return self.org.now + timedelta(hours=12)

    def connector(self) -> Connector:
        return build_connector(self.settings.source(self.source))

    def sync(self) -> None:
        result = sync_source(self.engine, self.source, self.connector(), SyncOptions())
        assert result.status == "succeeded", result
        self.crm.after_sync(self)

    def managed(self) -> dict[str, set[str]]:
        return {self.crm.objects[e]: set(fields.values()) for e, fields in self.mapping.items()}

    def write_calls(self) -> int:
        return int(self.crm.write_calls(self.emulator))

    def id_of(self, entity: str, neutral: int) -> str:
        return str(self.crm.record_id(self.emulator, entity, neutral))

    def values(self, entity: str, score: str) -> dict[str, str | None]:
        name = self.mapping[entity][score]
        return {
            rid: text(r.get(name))
            for rid, r in self.crm.records(self.emulator.dump(), entity).items()
        }


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=120)


@pytest.fixture(params=sorted(CRMS))
def portal(
    request: pytest.FixtureRequest, org: Org, engine: Engine, tmp_path: Path
) -> Iterator[Portal]:
    crm = CRMS[request.param]
    with crm.kit.serve(org) as served:
        mapping = {
            entity: {score: crm.add_field(served.emulator, entity, score) for score in scores}
            for entity, scores in WANTED.items()
        }
        options = served.env.options()
        if isinstance(served.env, VtigerEnv):
            os.environ[VTIGER_KEY_ENV] = served.env.key  # what its env sets when it connects
        settings = parse_settings(
            {
                "kpisync": {"store": str(engine.url), "timezone": "UTC"},
                "sources": {served.source: options},
                "writeback": {served.source: mapping},
            }
        )
        portal = Portal(crm, org, served, engine, settings, mapping, tmp_path)
        steps = provision_fields(
            source_plan(settings, portal.source), portal.connector(), apply=False
        )
        assert [
            (s.field, s.action, s.problem) for s in steps if s.action != "exists" or s.problem
        ] == []
        portal.sync()
        served.emulator.reset_calls()
        yield portal


# -- expectations computed from the org, not from the store --------------------------------------
def expected_contact_nps(portal: Portal) -> dict[str, tuple[int, str]]:
    latest: dict[int, SurveyAnswer] = {}
    for answer, _ in held_answers(portal.org):
        cid = answer.respondent_contact_id
        assert cid is not None
        held = latest.get(cid)
        if answer.answered_at <= portal.as_of and (
            held is None or answer.answered_at > held.answered_at
        ):
            latest[cid] = answer
    return {
        portal.id_of("contact", cid): (a.score, a.answered_at.date().isoformat())
        for cid, a in latest.items()
    }


def expected_account_nps(portal: Portal) -> dict[str, int]:
    since = portal.as_of - timedelta(days=365)
    scores: dict[int, list[int]] = {}
    for answer, account in held_answers(portal.org):
        if since <= answer.answered_at <= portal.as_of:
            scores.setdefault(account, []).append(answer.score)
    out = {}
    for account, values in scores.items():
        promoters = sum(v >= 9 for v in values)
        detractors = sum(v <= 6 for v in values)
        nps = 100 * (promoters - detractors) / len(values)
        out[portal.id_of("account", account)] = int(nps + 0.5) if nps >= 0 else -int(-nps + 0.5)
    return out


def expected_days_in_stage(portal: Portal, before: Any) -> dict[str, int]:
    out = {}
    for deal in portal.org.deals:
        if any(s.key == deal.stage and s.is_closed for s in portal.org.stages):
            continue
        rid = portal.id_of("deal", deal.id)
        entered = portal.crm.stage_entered(deal, before, rid)
        out[rid] = int((portal.as_of - entered).total_seconds() // 86_400)
    return out


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def assert_store_reread(portal: Portal, run_id: int | None) -> None:
    """Every field the run wrote was read back by a sync after the write."""
    a, written = model_table(AuditEntry), 0
    kinds = {(s.entity, s.name): s.kind for s in SCORES}
    with portal.engine.connect() as connection:
        rows = connection.execute(
            select(a.c.entity, a.c.external_id, a.c.field, a.c.score, a.c.new_value, a.c.at).where(
                a.c.run_id == run_id, a.c.result == "written"
            )
        ).all()
        for row in rows:
            t = model_table(ENTITY_MODELS[row.entity])
            custom, synced_at = connection.execute(
                select(t.c.custom, t.c.synced_at).where(
                    t.c.source == portal.source, t.c.external_id == row.external_id
                )
            ).one()
            assert synced_at > row.at, row
            assert same(
                kinds[(row.entity, row.score)], text((custom or {}).get(row.field)), row.new_value
            ), row
            written += 1
    assert written


# -- the test -------------------------------------------------------------------------------------
def test_end_to_end_exact_scores_idempotent_and_reversible(portal: Portal) -> None:
    emulator, engine, settings, crm = portal.emulator, portal.engine, portal.settings, portal.crm
    codec = portal.connector().value_codec  # type: ignore[attr-defined]
    before = emulator.dump()
    unmanaged_before = crm.unmanaged(before, portal.managed())

    dry = run_writeback(
        engine, settings, portal.source, portal.connector(), as_of=portal.as_of, dry_run=True
    )
    assert dry.planned > 0 and dry.run_id is None
    assert portal.write_calls() == 0
    assert crm.unmanaged(emulator.dump(), {}) == crm.unmanaged(before, {})  # nothing written
    expected_calls = sum(ceil(n / crm.batch) for n in dry.records.values())
    assert dry.write_calls == expected_calls

    emulator.reset_calls()
    report = run_writeback(engine, settings, portal.source, portal.connector(), as_of=portal.as_of)
    assert report.status == "succeeded" and report.failed == 0 and report.not_found == 0
    assert report.written == dry.planned
    assert portal.write_calls() == expected_calls == report.write_calls
    assert report.api_calls == emulator.total_calls  # every request, not the org's usage count

    after = emulator.dump()
    assert crm.unmanaged(after, portal.managed()) == unmanaged_before, (
        "a field kpisync does not manage changed"
    )

    contacts = expected_contact_nps(portal)
    assert contacts
    score, kind, day = (
        portal.values("contact", n) for n in ("nps_score", "nps_category", "nps_last_answer")
    )
    for rid in score:
        if rid in contacts:
            want, answered = contacts[rid]
            assert same("number", score[rid], str(want)), rid
            assert kind[rid] == category(want), rid
            assert same("date", day[rid], answered), rid
        else:
            assert blank(score[rid]) and blank(kind[rid]) and blank(day[rid]), rid

    accounts = expected_account_nps(portal)
    assert accounts
    score = portal.values("account", "nps_score")
    flags, reasons = (
        portal.values("account", "upsell_flag"),
        portal.values("account", "upsell_reason"),
    )
    for rid in score:
        assert same("number", score[rid], None if rid not in accounts else str(accounts[rid])), rid
        assert codec.holds("bool", flags[rid], "true") or codec.holds("bool", flags[rid], "false")
        assert reasons[rid], rid

    days = expected_days_in_stage(portal, before)
    assert days
    in_stage, stalled = portal.values("deal", "days_in_stage"), portal.values("deal", "stalled")
    for rid in in_stage:
        assert same("number", in_stage[rid], None if rid not in days else str(days[rid])), rid
    stages = records.open_deal_stages(
        engine, metric_config(settings), portal.source, now=portal.as_of
    )  # the KPI engine's stalled verdicts
    for rid in in_stage:
        found = stages.get(rid)
        verdict = None if found is None or found.usual_days is None else found.stalled
        assert codec.holds(
            "bool", stalled[rid], None if verdict is None else str(verdict).lower()
        ), rid
    assert {v for v in stalled.values() if not blank(v)} == crm.stalled_values

    emulator.reset_calls()
    again = run_writeback(engine, settings, portal.source, portal.connector(), as_of=portal.as_of)
    # nothing to write costs the credential check only: a login (Vtiger: getchallenge and login;
    # Salesforce: the token request and GET limits)
    assert again.planned == 0 and emulator.total_calls == 2

    time.sleep(crm.settle_seconds)  # past the second a sync leaves for the next one
    portal.sync()  # re-reads every record we wrote: our writes moved their modified time
    assert_store_reread(portal, report.run_id)
    emulator.reset_calls()
    resynced = run_writeback(
        engine, settings, portal.source, portal.connector(), as_of=portal.as_of
    )
    assert resynced.planned == 0 and resynced.conflicts == 0
    assert emulator.total_calls == 2

    with engine.connect() as connection:
        audited = connection.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(col(AuditEntry.run_id) == report.run_id, col(AuditEntry.result) == "written")
        ).scalar()
    assert audited == report.written and report.run_id is not None

    emulator.reset_calls()
    undone = revert_run(engine, settings, report.run_id, portal.connector())
    assert undone.written == report.written and undone.failed == 0
    assert portal.write_calls() == expected_calls
    reverted = emulator.dump()
    for entity, fields in portal.mapping.items():
        for name in fields.values():
            score_kind = next(SCORE[(entity, s)].kind for s, f in fields.items() if f == name)
            assert all(
                codec.holds(score_kind, r.get(name), None)
                for r in crm.records(reverted, entity).values()
            ), name
    assert crm.unmanaged(reverted, portal.managed()) == unmanaged_before
