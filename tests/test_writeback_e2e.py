"""Write-back end to end on the HubSpot emulator: sync, plan, dry run, write, re-run, revert,
conflicts, partial batch failures and the target drift guard. The official client talks to the
emulator over loopback; expectations are computed from the synthetic org itself."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.config import Settings, parse_settings
from kpisync.connector import Connector
from kpisync.errors import WritebackError
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.store.models import model_table
from kpisync.sync import SyncOptions, sync_source
from writeback.models import AuditEntry, OutboxItem, WriteRun
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import revert_run, run_writeback
from writeback.values import same

TOKEN = "pat-na1-writeback-tests"
TOKEN_ENV = "KPISYNC_TEST_WRITEBACK_TOKEN"
SOURCE = "hs"
MAPPING = {
    "account": {
        "nps_score": "kpisync_nps_score",
        "nps_category": "kpisync_nps_category",
        "nps_last_answer": "kpisync_nps_last_answer",
        "upsell_flag": "kpisync_upsell_flag",
        "upsell_reason": "kpisync_upsell_reason",
    },
    "contact": {
        "nps_score": "kpisync_nps_score",
        "nps_category": "kpisync_nps_category",
        "nps_last_answer": "kpisync_nps_last_answer",
    },
    "deal": {"days_in_stage": "kpisync_days_in_stage", "stalled": "kpisync_stalled"},
}
MANAGED = {
    "companies": set(MAPPING["account"].values()),
    "contacts": set(MAPPING["contact"].values()),
    "deals": set(MAPPING["deal"].values()),
}
MOVING = {"hs_lastmodifieddate", "lastmodifieddate"}  # our writes move these, nothing else
WRITE = "POST /crm/v3/objects/{type}/batch/update"
CHECK = "GET /crm/v3/owners/"  # the credential check


@dataclass
class Portal:
    org: Org
    emulator: HubSpotEmulator
    engine: Engine
    settings: Settings
    folder: Path

    @property
    def as_of(self) -> Any:
        return self.org.now + timedelta(hours=12)

    def connector(self) -> Connector:
        return build_connector(self.settings.source(SOURCE))

    def sync(self) -> None:
        sync_source(self.engine, SOURCE, self.connector(), SyncOptions())

    def with_writeback(self, **changes: Any) -> Settings:
        extra = dict(self.settings.extra or {})
        extra["writeback"] = {**extra["writeback"], **changes}
        return dataclasses.replace(self.settings, extra=extra)


def portal_settings(base_url: str, store: str, **writeback: Any) -> dict[str, Any]:
    return {
        "kpisync": {"store": store, "timezone": "UTC"},
        "sources": {
            SOURCE: {
                "type": "hubspot",
                "host": base_url,
                "token_env": TOKEN_ENV,
                "search_lag_seconds": 0,
                "fast_retries": True,
                "search_rate_per_second": 1000,
            }
        },
        "writeback": {SOURCE: {**MAPPING, **writeback}},
    }


def open_portal(
    engine: Engine, tmp_path: Path, org: Org, *, synced: bool = False
) -> Iterator[Portal]:
    """A fresh emulator of `org` with the managed fields; the store synced from it."""
    os.environ[TOKEN_ENV] = TOKEN
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=10_000) as emulator:
        settings = parse_settings(portal_settings(emulator.base_url, str(engine.url)))
        portal = Portal(org, emulator, engine, settings, tmp_path)
        provision_fields(source_plan(settings, SOURCE), portal.connector(), apply=True)
        if not synced:
            portal.sync()
        emulator.reset_calls()
        yield portal


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=120)


@pytest.fixture(scope="module")
def synced_store(org: Org, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sync of the org, copied into each test: the org and its ids are deterministic."""
    folder = tmp_path_factory.mktemp("writeback-template")
    engine = open_store(f"sqlite:///{folder / 'store.db'}")
    for _ in open_portal(engine, folder, org):
        pass
    engine.dispose()
    return folder / "store.db"


@pytest.fixture
def portal(org: Org, synced_store: Path, tmp_path: Path) -> Iterator[Portal]:
    shutil.copyfile(synced_store, tmp_path / "store.db")
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield from open_portal(engine, tmp_path, org, synced=True)
    engine.dispose()


def managed_values(truth: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {
        (kind, rid, name): record["properties"].get(name)
        for kind, names in MANAGED.items()
        for rid, record in truth[kind].items()
        for name in names
    }


def unmanaged(truth: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Every record with its managed fields and modification stamps taken out."""
    out = {}
    for kind, records in truth.items():
        for rid, record in records.items():
            props = {
                k: v
                for k, v in record["properties"].items()
                if k not in MANAGED.get(kind, set()) and k not in MOVING
            }
            history = {
                k: v
                for k, v in record.get("propertiesWithHistory", {}).items()
                if k not in MANAGED.get(kind, set()) and k not in MOVING
            }
            rest = {
                k: v
                for k, v in record.items()
                if k not in ("properties", "propertiesWithHistory", "updatedAt")
            }
            out[(kind, rid)] = (props, history, rest)
    return out


def blank(value: Any) -> bool:
    return value is None or value == ""


# -- expectations computed from the org, not from the store ---------------------------------------
def expected_contact_nps(portal: Portal) -> dict[str, tuple[int, str]]:
    latest: dict[int, Any] = {}
    for answer in portal.org.survey_answers:
        if answer.kind != "nps" or answer.respondent_contact_id is None:
            continue
        held = latest.get(answer.respondent_contact_id)
        if answer.answered_at <= portal.as_of and (
            held is None or answer.answered_at > held.answered_at
        ):
            latest[answer.respondent_contact_id] = answer
    return {
        portal.emulator.hubspot_id("contact", cid): (a.score, a.answered_at.date().isoformat())
        for cid, a in latest.items()
    }


def expected_account_nps(portal: Portal) -> dict[str, int]:
    since = portal.as_of - timedelta(days=365)
    scores: dict[int, list[int]] = {}
    for answer in portal.org.survey_answers:
        if (
            answer.kind == "nps"
            and answer.account_id
            and since <= answer.answered_at <= portal.as_of
        ):
            scores.setdefault(answer.account_id, []).append(answer.score)
    out = {}
    for account, values in scores.items():
        promoters = sum(v >= 9 for v in values)
        detractors = sum(v <= 6 for v in values)
        nps = 100 * (promoters - detractors) / len(values)
        out[portal.emulator.hubspot_id("account", account)] = (
            int(nps + 0.5) if nps >= 0 else -int(-nps + 0.5)
        )
    return out


def expected_days_in_stage(portal: Portal) -> dict[str, int]:
    out = {}
    for deal in portal.org.deals:
        if any(s.key == deal.stage and s.is_closed for s in portal.org.stages):
            continue
        entered = deal.stage_history[-1].at if deal.stage_history else deal.created_at
        out[portal.emulator.hubspot_id("deal", deal.id)] = int(
            (portal.as_of - entered).total_seconds() // 86_400
        )
    return out


# -- the tests ------------------------------------------------------------------------------------
@pytest.fixture
def any_store_portal(engine: Engine, tmp_path: Path, org: Org) -> Iterator[Portal]:
    yield from open_portal(engine, tmp_path, org)


def test_end_to_end_exact_scores_idempotent_and_reversible(any_store_portal: Portal) -> None:
    portal = any_store_portal
    emulator, engine, settings = portal.emulator, portal.engine, portal.settings
    before = emulator.dump()

    dry = run_writeback(
        engine, settings, SOURCE, portal.connector(), as_of=portal.as_of, dry_run=True
    )
    assert dry.planned > 0 and dry.run_id is None
    # the credential check, then the field definitions (9 object types), never a write
    assert sum(emulator.calls.values()) == 1 + 9 and emulator.calls[CHECK] == 1
    assert emulator.calls[WRITE] == 0
    expected_calls = sum(-(-n // 100) for n in dry.records.values())
    assert dry.write_calls == expected_calls

    emulator.reset_calls()
    report = run_writeback(engine, settings, SOURCE, portal.connector(), as_of=portal.as_of)
    assert report.status == "succeeded" and report.failed == 0
    assert report.written == dry.planned
    assert emulator.calls[WRITE] == expected_calls == report.write_calls

    after = emulator.dump()
    assert unmanaged(after) == unmanaged(before), "a field kpisync does not manage changed"
    contacts = expected_contact_nps(portal)
    assert contacts
    for rid, record in after["contacts"].items():
        props = record["properties"]
        if rid in contacts:
            score, day = contacts[rid]
            assert same("number", props["kpisync_nps_score"], str(score)), rid
            assert props["kpisync_nps_category"] == (
                "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            )
            assert same("date", props["kpisync_nps_last_answer"], day)
        else:
            assert blank(props.get("kpisync_nps_score"))
    accounts = expected_account_nps(portal)
    assert accounts
    for rid, record in after["companies"].items():
        assert same(
            "number",
            record["properties"].get("kpisync_nps_score"),
            None if rid not in accounts else str(accounts[rid]),
        ), rid
        assert record["properties"].get("kpisync_upsell_flag") in ("true", "false")
        assert record["properties"].get("kpisync_upsell_reason")
    days = expected_days_in_stage(portal)
    assert days
    for rid, record in after["deals"].items():
        value = record["properties"].get("kpisync_days_in_stage")
        assert same("number", value, None if rid not in days else str(days[rid])), rid

    emulator.reset_calls()
    again = run_writeback(engine, settings, SOURCE, portal.connector(), as_of=portal.as_of)
    # nothing to write costs one call: the credential check every run starts with
    assert again.planned == 0 and sum(emulator.calls.values()) == 1 == emulator.calls[CHECK]

    portal.sync()  # re-reads every record we wrote: our writes moved their modified time
    emulator.reset_calls()
    resynced = run_writeback(engine, settings, SOURCE, portal.connector(), as_of=portal.as_of)
    assert resynced.planned == 0 and resynced.conflicts == 0
    assert sum(emulator.calls.values()) == 1 == emulator.calls[CHECK]

    with engine.connect() as connection:
        audited = connection.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(col(AuditEntry.run_id) == report.run_id, col(AuditEntry.result) == "written")
        ).scalar()
    assert audited == report.written and report.run_id is not None

    undone = revert_run(engine, settings, report.run_id, portal.connector())
    assert undone.written == report.written
    reverted = emulator.dump()
    assert all(blank(v) for v in managed_values(reverted).values())
    assert unmanaged(reverted) == unmanaged(before)


def test_person_edits_are_conflicts_overwritten_with_the_audit_keeping_theirs(
    portal: Portal,
) -> None:
    first = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    contact = next(iter(expected_contact_nps(portal)))
    portal.emulator.update_record(
        "contacts",
        contact,
        {
            "kpisync_nps_category": "passive"
            if portal.emulator.dump()["contacts"][contact]["properties"]["kpisync_nps_category"]
            != "passive"
            else "promoter"
        },
    )
    typed = portal.emulator.dump()["contacts"][contact]["properties"]["kpisync_nps_category"]
    portal.sync()

    skipping = portal.with_writeback(on_conflict="skip")
    portal.emulator.reset_calls()
    left = run_writeback(portal.engine, skipping, SOURCE, portal.connector(), as_of=portal.as_of)
    assert left.skipped == 1 and left.planned == 0 and left.conflicts == 1
    assert portal.emulator.calls[WRITE] == 0
    assert (
        portal.emulator.dump()["contacts"][contact]["properties"]["kpisync_nps_category"] == typed
    )

    report = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert report.conflicts == 1 and report.written == 1 and first.run_id != report.run_id
    with portal.engine.connect() as connection:
        row = connection.execute(
            select(AuditEntry).where(col(AuditEntry.run_id) == report.run_id)
        ).one()
    assert row.conflict and row.person_value == typed and row.old_value == typed
    assert (
        portal.emulator.dump()["contacts"][contact]["properties"]["kpisync_nps_category"]
        == row.new_value
        != typed
    )


def test_records_archived_between_plan_and_send_are_reported_and_never_recreated(
    portal: Portal,
) -> None:
    companies = sorted(portal.emulator.dump()["companies"])
    gone = companies[:3]
    for rid in gone:  # archived in the CRM after the last sync: the store still holds them
        portal.emulator.archive("companies", rid)
    report = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert report.not_found == len(report.failures) >= 3 * 2  # at least flag and reason each
    assert report.failed == 0
    assert {row.external_id for row in report.failures} == set(gone)
    assert all("OBJECT_NOT_FOUND" in (row.error or "") for row in report.failures)
    truth = portal.emulator.dump()
    assert all(truth["companies"][rid]["archived"] for rid in gone)
    assert sum(1 for r in truth["companies"].values() if not r["archived"]) == len(companies) - 3
    live = [
        rid
        for rid in companies[3:]
        if not blank(truth["companies"][rid]["properties"].get("kpisync_upsell_flag"))
    ]
    assert len(live) == len(companies) - 3

    portal.emulator.reset_calls()
    again = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert again.planned == 0 and portal.emulator.calls[WRITE] == 0


def test_values_the_crm_refuses_fail_per_record_and_are_retried(portal: Portal) -> None:
    connector = portal.connector()
    connector.discover()  # the guard's view is taken now; the CRM changes after it
    definitions = portal.emulator.schema.properties["contacts"]
    original = definitions["kpisync_nps_category"]
    definitions["kpisync_nps_category"] = dataclasses.replace(
        original, options=tuple(o for o in original.options if o != "detractor")
    )
    report = run_writeback(portal.engine, portal.settings, SOURCE, connector, as_of=portal.as_of)
    refused = {row.external_id for row in report.failures}
    assert report.status == "partial" and report.failure_error() is not None
    detractors = {rid for rid, (score, _) in expected_contact_nps(portal).items() if score <= 6}
    assert refused == detractors and refused
    assert all(
        "INVALID_OPTION" in (row.error or "") or "allowed options" in (row.error or "")
        for row in report.failures
    )
    truth = portal.emulator.dump()["contacts"]
    for rid in expected_contact_nps(portal):
        landed = truth[rid]["properties"].get("kpisync_nps_score")
        assert blank(landed) == (rid in detractors), rid  # the rest of each batch landed

    definitions["kpisync_nps_category"] = original
    retried = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert retried.failed == 0 and retried.written == 3 * len(detractors)
    truth = portal.emulator.dump()["contacts"]
    assert all(
        truth[rid]["properties"]["kpisync_nps_category"] == "detractor" for rid in detractors
    )


def test_drift_guard_pauses_only_the_broken_mapping(portal: Portal) -> None:
    definitions = portal.emulator.schema.properties["deals"]
    removed = definitions.pop("kpisync_stalled")
    report = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert set(report.paused) == {("deal", "kpisync_stalled")}
    assert "does not exist" in report.paused[("deal", "kpisync_stalled")]
    assert report.failed == 0 and report.written > 0
    assert ("deal", "kpisync_days_in_stage") in report.counts
    assert not any(name == "kpisync_stalled" for _, name in report.counts)

    definitions["kpisync_stalled"] = removed
    with portal.engine.begin() as connection:  # make the daily re-check due now
        from writeback.models import MappingPause

        connection.execute(
            model_table(MappingPause).update().values(checked_at=portal.as_of - timedelta(days=30))
        )
    resumed = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert resumed.resumed == [("deal", "kpisync_stalled")] and not resumed.paused
    assert resumed.counts.get(("deal", "kpisync_stalled"), 0) > 0


def test_outbox_items_all_settle(portal: Portal) -> None:
    run_writeback(portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of)
    with portal.engine.connect() as connection:
        open_items = connection.execute(
            select(func.count())
            .select_from(OutboxItem)
            .where(col(OutboxItem.status).in_(("pending", "sending")))
        ).scalar()
    assert open_items == 0


def test_runs_older_than_keep_days_drop_their_rows_and_say_they_cannot_be_reverted(
    portal: Portal,
) -> None:
    first = run_writeback(
        portal.engine, portal.settings, SOURCE, portal.connector(), as_of=portal.as_of
    )
    assert first.written > 0
    runs = model_table(WriteRun)
    with portal.engine.begin() as connection:  # it finished 91 days ago
        connection.execute(
            update(runs)
            .where(runs.c.id == first.run_id)
            .values(finished_at=datetime.now(UTC) - timedelta(days=91))
        )
    second = run_writeback(
        portal.engine,
        portal.settings,
        SOURCE,
        portal.connector(),
        as_of=portal.as_of + timedelta(days=1),
    )
    with portal.engine.connect() as connection:

        def rows(model: Any, run_id: int | None) -> int:
            table = model_table(model)
            return int(
                connection.execute(
                    select(func.count()).select_from(table).where(table.c.run_id == run_id)
                ).scalar_one()
            )

        assert rows(AuditEntry, first.run_id) == rows(OutboxItem, first.run_id) == 0
        assert rows(AuditEntry, second.run_id) == second.written > 0  # the recent run keeps them
        kept = connection.execute(select(runs.c.written).where(runs.c.id == first.run_id))
        assert kept.scalar_one() == first.written  # the run itself stays, with its counts
    with pytest.raises(WritebackError, match="keep_days"):
        revert_run(portal.engine, portal.settings, first.run_id or 0, portal.connector())
