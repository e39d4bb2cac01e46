"""Sync a seeded org from the HubSpot emulator over loopback and compare the store with the truth.

Runs on SQLite and PostgreSQL: a full sync, then changes, deletes, additions, a merge and a purge
in the emulator, then an incremental sync that must catch exactly those.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.store.models import Account, Contact, Deal, DealStageChange, FieldCatalog, RecordBase
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth, owners_in_store


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=150)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        yield HubSpotEnv(org, emulator)


def synced_at(engine: Engine, model: type[RecordBase]) -> dict[str, object]:
    with engine.connect() as connection:
        return dict(connection.execute(select(col(model.external_id), col(model.synced_at))).all())


def test_full_then_incremental_sync_equals_truth(engine: Engine, env: HubSpotEnv) -> None:
    connector = env.connector()
    first = sync_source(engine, SOURCE, connector, SyncOptions())
    assert first.status == "succeeded"
    assert_store_equals_truth(engine, SOURCE, env.emulator.dump(), env.org)
    owners = owners_in_store(engine)
    assert len(owners) == len(env.org.reps)
    assert {team for _, team, _ in owners.values()} == {rep.team for rep in env.org.reps}

    dump = env.emulator.dump()
    deal_ids = sorted(dump["deals"])[:5]
    for rid in deal_ids:
        env.emulator.update_record("deals", rid, {"amount": "1234.56", "competitor": "Nowa Firma"})
    archived_contact = sorted(dump["contacts"])[3]
    env.emulator.archive("contacts", archived_contact)
    purged_deal = sorted(dump["deals"])[-1]
    env.emulator.purge("deals", purged_deal)
    new_company = env.emulator.create_record(
        "companies", {"name": "Новая Компания", "country": "PL"}
    )
    survivor, loser = sorted(dump["companies"])[:2]
    response = httpx.post(
        f"{env.emulator.base_url}/crm/v3/objects/companies/merge",
        json={"primaryObjectId": survivor, "objectIdToMerge": loser},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    before = {model: synced_at(engine, model) for model in (Deal, Account)}

    second = sync_source(
        engine, SOURCE, env.connector(), SyncOptions(purge_check_every=timedelta(0))
    )
    assert second.status == "succeeded"
    truth = env.emulator.dump()
    assert_store_equals_truth(engine, SOURCE, truth, env.org)

    after = {model: synced_at(engine, model) for model in (Deal, Account)}
    touched_deals = {k for k, v in after[Deal].items() if before[Deal].get(k) != v}
    assert touched_deals == set(deal_ids)
    touched_accounts = {k for k, v in after[Account].items() if before[Account].get(k) != v}
    assert touched_accounts == {survivor, str(new_company)}
    with engine.connect() as connection:
        gone = dict(connection.execute(select(col(Deal.external_id), col(Deal.deleted_at))).all())
        assert gone[purged_deal] is not None
        contact_gone = connection.execute(
            select(col(Contact.deleted_at)).where(col(Contact.external_id) == archived_contact)
        ).scalar()
        assert contact_gone is not None
        pointing_at_loser = connection.execute(
            select(col(Contact.external_id)).where(
                col(Contact.account_id) == loser, col(Contact.deleted_at).is_(None)
            )
        ).all()
        assert pointing_at_loser == []


def test_stage_history_and_custom_field_drift(sqlite_engine: Engine, env: HubSpotEnv) -> None:
    sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    dump = env.emulator.dump()
    with sqlite_engine.connect() as connection:
        stored = connection.execute(
            select(col(DealStageChange.deal_id), col(DealStageChange.stage))
        ).all()
    by_deal: dict[str, list[str]] = {}
    for deal_id, stage in stored:
        by_deal.setdefault(deal_id, []).append(stage)
    for rid, record in dump["deals"].items():
        history = record["propertiesWithHistory"]["dealstage"]
        assert sorted(by_deal[rid]) == sorted(entry["value"] for entry in history)

    headers = {"Authorization": f"Bearer {TOKEN}"}
    created = httpx.post(
        f"{env.emulator.base_url}/crm/v3/properties/deals",
        headers=headers,
        json={
            "name": "renewal_risk",
            "label": "Renewal risk",
            "type": "string",
            "fieldType": "text",
            "groupName": "dealinformation",
        },
    )
    assert created.status_code == 201, created.text
    rid = sorted(dump["deals"])[0]
    env.emulator.update_record("deals", rid, {"renewal_risk": "high"})
    # A new field is seen when the metadata is next due (daily by default): due now.
    sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions(metadata_every=timedelta(0)))
    with sqlite_engine.connect() as connection:
        custom = connection.execute(
            select(col(Deal.custom)).where(col(Deal.external_id) == rid)
        ).scalar()
        assert custom is not None and custom["renewal_risk"] == "high"
        seen = connection.execute(
            select(col(FieldCatalog.removed_at)).where(
                col(FieldCatalog.entity) == "deals", col(FieldCatalog.name) == "renewal_risk"
            )
        ).one()
        assert seen.removed_at is None
