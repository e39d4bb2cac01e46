"""Owner at close from OpportunityFieldHistory, and stage history through its own Bulk job.

The expected owner at close is derived from the emulator's truth by hand: the owner in effect
when the deal entered its closing stage (the NewValue of the last owner change up to then, else
the OldValue of the first change after, else the current owner).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator
from kpisync.store.models import Deal
from kpisync.sync import SyncOptions, sync_source
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import (
    assert_store_equals_truth,
    expected_stage_paths,
    store_stage_paths,
)

Dump = dict[str, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=13, deals=150)


@pytest.fixture
def env(org: Org) -> Iterator[SalesforceEnv]:
    with SalesforceEmulator(org) as emulator:
        yield SalesforceEnv(org, emulator)


def closed_at(dump: Dump, opportunity: dict[str, Any]) -> datetime | None:
    """When the deal entered its current (closed) stage: the start of the last run of rows."""
    if not opportunity["IsClosed"]:
        return None
    rows = sorted(
        (
            h
            for h in dump["OpportunityHistory"].values()
            if h["OpportunityId"] == opportunity["Id"] and not h["IsDeleted"]
        ),
        key=lambda h: (h["CreatedDate"], h["Id"]),
    )
    entered = None
    for previous, row in zip([None, *rows], rows, strict=False):  # each row after its previous
        if previous is None or previous["StageName"] != row["StageName"]:
            entered = row["CreatedDate"]
    return entered if rows and rows[-1]["StageName"] == opportunity["StageName"] else None


def expected_owner_at_close(dump: Dump) -> dict[str, str]:
    changes: dict[str, list[dict[str, Any]]] = {}
    for row in dump.get("OpportunityFieldHistory", {}).values():
        if row["Field"] == "Owner" and row["DataType"] == "EntityId" and not row["IsDeleted"]:
            changes.setdefault(row["OpportunityId"], []).append(row)
    expected = {}
    for rid, opportunity in dump["Opportunity"].items():
        if opportunity["IsDeleted"]:
            continue
        at = closed_at(dump, opportunity)
        owner = opportunity["OwnerId"]
        if at is not None:
            history = sorted(changes.get(rid, []), key=lambda c: (c["CreatedDate"], c["Id"]))
            before = [c for c in history if c["CreatedDate"] <= at]
            after = [c for c in history if c["CreatedDate"] > at]
            owner = before[-1]["NewValue"] if before else after[0]["OldValue"] if after else owner
        expected[rid] = owner
    return expected


def stored_owners(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Deal.external_id), col(Deal.owner_id), col(Deal.closed_owner_id)).where(
                col(Deal.deleted_at).is_(None)
            )
        ).all()
    return {rid: (owner, closed) for rid, owner, closed in rows}


def reassign_closed(env: SalesforceEnv, count: int, skip: int = 0) -> list[str]:
    """Give `count` closed deals a new owner now, after they closed."""
    users = sorted(env.emulator.live("User"))
    closed = sorted(rid for rid, r in env.emulator.live("Opportunity").items() if r["IsClosed"])
    chosen = closed[skip : skip + count]
    for rid in chosen:
        current = env.emulator.live("Opportunity")[rid]["OwnerId"]
        env.emulator.update_record(
            "Opportunity", rid, {"OwnerId": next(u for u in users if u != current)}
        )
    return chosen


def assert_owners_equal_truth(
    engine: Engine, dump: Dump
) -> dict[str, tuple[str | None, str | None]]:
    expected = expected_owner_at_close(dump)
    stored = stored_owners(engine)
    assert stored.keys() == expected.keys()
    wrong = {
        rid: (stored[rid][1], owner) for rid, owner in expected.items() if stored[rid][1] != owner
    }
    assert not wrong, (
        f"{len(wrong)} deals with the wrong owner at close, e.g. {list(wrong.items())[:3]}"
    )
    return stored


def test_owner_at_close_follows_field_history_first_and_incremental(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    moved = reassign_closed(env, 5)
    first = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert first.status == "succeeded"
    stored = assert_owners_equal_truth(sqlite_engine, env.emulator.dump())
    assert {rid for rid, (owner, closed) in stored.items() if owner != closed} == set(moved)

    later = reassign_closed(env, 3, skip=10)
    env.emulator.update_record("Opportunity", moved[0], {"Amount": Decimal("1234.50")})
    second = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert second.status == "succeeded" and second.streams
    assert sum(s.upserted for s in second.streams if s.stream == "Opportunity") > 0
    stored = assert_owners_equal_truth(sqlite_engine, env.emulator.dump())
    assert {rid for rid, (owner, closed) in stored.items() if owner != closed} == set(moved) | set(
        later
    )
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())


def test_bulk_first_sync_reads_both_histories_through_their_own_jobs(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    moved = reassign_closed(env, 4)
    options = {"bulk_above_records": 100, "bulk_page_records": 500}
    result = sync_source(
        sqlite_engine,
        SOURCE,
        env.connector(**options),
        SyncOptions(streams=("User", "OpportunityStage", "Opportunity")),
    )
    assert result.status == "succeeded"
    jobs = sorted(job.sobject for job in env.emulator.bulk.created.values())
    assert jobs == ["Opportunity", "OpportunityFieldHistory", "OpportunityHistory"]
    # three jobs (create, poll, result pages each) and no REST query for either history
    assert result.api_calls["POST jobs/query"] == 3
    assert (
        result.api_calls.get("GET queryAll", 0) + result.api_calls["GET query"] == 3
    )  # roles, users, stages
    assert store_stage_paths(sqlite_engine) == {
        rid: path for rid, path in expected_stage_paths(env.emulator.dump()).items() if path
    }
    stored = assert_owners_equal_truth(sqlite_engine, env.emulator.dump())
    assert {rid for rid, (owner, closed) in stored.items() if owner != closed} == set(moved)


def test_tracking_off_is_said_by_check_and_the_sync_goes_on(
    sqlite_engine: Engine, org: Org
) -> None:
    with SalesforceEmulator(org, field_history=False) as emulator:
        env = SalesforceEnv(org, emulator)
        problems = env.connector().check()
        assert len(problems) == 1
        assert problems[0].what.startswith("OpportunityFieldHistory is not available")
        moved = reassign_closed(env, 2)
        result = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
        assert result.status == "succeeded"
        assert result.api_calls["GET sobjects/OpportunityFieldHistory/describe"] == 1
        assert_store_equals_truth(sqlite_engine, emulator.dump())
        stored = stored_owners(sqlite_engine)
        assert all(owner == closed for owner, closed in stored.values())  # the current owner
        assert {stored[rid][0] for rid in moved} == {
            emulator.live("Opportunity")[rid]["OwnerId"] for rid in moved
        }


def test_an_incremental_reads_the_changed_deals_history_in_one_query_each(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    first = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert first.status == "succeeded"
    opportunities = env.emulator.live("Opportunity")
    open_ids = sorted(rid for rid, r in opportunities.items() if not r["IsClosed"])[:40]
    stages = sorted(env.emulator.live("OpportunityStage").values(), key=lambda s: s["SortOrder"])
    for rid in open_ids:  # each moves one stage on, which writes an OpportunityHistory row
        current = [s["ApiName"] for s in stages].index(opportunities[rid]["StageName"])
        env.emulator.update_record(
            "Opportunity", rid, {"StageName": stages[current + 1]["ApiName"]}
        )
    moved = reassign_closed(env, 3)

    def opportunity_calls() -> list[int]:
        calls: list[int] = []
        sync_source(
            sqlite_engine,
            SOURCE,
            env.connector(),
            SyncOptions(
                on_page=lambda p: calls.append(p.api_calls) if p.stream == "Opportunity" else None
            ),
        )
        return calls

    # the walk, then one query for the changed deals' stage history and one for owner changes
    assert opportunity_calls() == [3]
    dump = env.emulator.dump()
    assert store_stage_paths(sqlite_engine) == {
        rid: path for rid, path in expected_stage_paths(dump).items() if path
    }
    stored = assert_owners_equal_truth(sqlite_engine, dump)
    assert set(moved) <= {rid for rid, (owner, closed) in stored.items() if owner != closed}
    assert_store_equals_truth(sqlite_engine, dump)
    assert opportunity_calls() == [1]  # nothing changed: the walk alone, no history query
