"""Deal stage history and owner at close equal the emulator's truth, with history read only where
search's calculated properties cannot tell it (a stage re-entered, an owner assigned after close).

The expected values are derived here from the emulator's raw property history, independently of
the connector's mappers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.store.models import Deal, DealStageChange
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv

CLOSED = ("closedwon", "closedlost")
HISTORY_READ = "POST /crm/v3/objects/deals/batch/read"


@pytest.fixture
def env() -> Iterator[HubSpotEnv]:
    org = generate_org(seed=23, deals=300)
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        yield HubSpotEnv(org, emulator)


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _history(record: dict[str, Any], prop: str) -> list[tuple[str, int]]:
    """(value, ms) oldest first, blanks dropped; a never-changed value dates from creation."""
    stored = record["propertiesWithHistory"].get(prop)
    if stored is None:
        value = record["properties"].get(prop)
        return [(value, _ms(record["createdAt"]))] if value else []
    return [(e["value"], _ms(e["timestamp"])) for e in reversed(stored) if e["value"]]


def expected(dump: dict[str, Any]) -> tuple[set[tuple[str, str, int]], dict[str, str | None]]:
    """Every (deal, stage, entered ms) and each deal's owner when it closed."""
    changes: set[tuple[str, str, int]] = set()
    closers: dict[str, str | None] = {}
    for rid, record in dump["deals"].items():
        if record["archived"]:
            continue
        stages = _history(record, "dealstage")
        changes.update((rid, stage, at) for stage, at in stages)
        owner = record["properties"].get("hubspot_owner_id") or None
        if record["properties"]["dealstage"] in CLOSED:
            closed_at = stages[-1][1]
            before = [
                value for value, at in _history(record, "hubspot_owner_id") if at <= closed_at
            ]
            owner = before[-1] if before else owner
        closers[rid] = owner
    return changes, closers


def stored(engine: Engine) -> tuple[set[tuple[str, str, int]], dict[str, str | None]]:
    with engine.connect() as connection:
        changes = {
            (deal, stage, int(at.replace(tzinfo=UTC).timestamp() * 1000))
            for deal, stage, at in connection.execute(
                select(
                    col(DealStageChange.deal_id),
                    col(DealStageChange.stage),
                    col(DealStageChange.entered_at),
                )
            )
        }
        closers = dict(
            connection.execute(select(col(Deal.external_id), col(Deal.closed_owner_id))).all()
        )
    return changes, closers


def assert_history_equals_truth(engine: Engine, emulator: HubSpotEmulator) -> None:
    want_changes, want_closers = expected(emulator.dump())
    got_changes, got_closers = stored(engine)
    assert got_changes == want_changes, (
        sorted(got_changes - want_changes)[:3],
        sorted(want_changes - got_changes)[:3],
    )
    wrong = {k: (v, got_closers.get(k)) for k, v in want_closers.items() if got_closers.get(k) != v}
    assert not wrong, list(wrong.items())[:3]


def reentered(dump: dict[str, Any]) -> int:
    return sum(
        1
        for r in dump["deals"].values()
        if len({v for v, _ in _history(r, "dealstage")}) < len(_history(r, "dealstage"))
    )


def test_history_read_only_where_calculated_properties_cannot_tell(
    sqlite_engine: Engine, env: HubSpotEnv
) -> None:
    emulator = env.emulator
    first = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert first.status == "succeeded"
    assert_history_equals_truth(sqlite_engine, emulator)
    dump = emulator.dump()
    assert 0 < reentered(dump) <= 100  # one batch/read holds them all
    assert first.api_calls[HISTORY_READ] == 1

    deals = sorted(dump["deals"].items())
    closed = [rid for rid, r in deals if r["properties"]["dealstage"] in CLOSED]
    open_ = [
        rid
        for rid, r in deals
        if r["properties"]["dealstage"] not in CLOSED and len(_history(r, "dealstage")) >= 2
    ]
    owners = sorted({r["properties"]["hubspot_owner_id"] for _, r in deals})
    reassigned, unowned, moved_back, plain = closed[0], closed[1], open_[0], open_[1]
    new_owner = next(
        o for o in owners if o != dump["deals"][reassigned]["properties"]["hubspot_owner_id"]
    )
    edits: list[tuple[str, dict[str, str]]] = [
        (reassigned, {"hubspot_owner_id": new_owner}),  # owner assigned after the close
        (unowned, {"hubspot_owner_id": ""}),  # owner removed after the close
        (plain, {"amount": "10.5"}),  # nothing about stages or owners
    ]
    stages = _history(dump["deals"][moved_back], "dealstage")
    edits += [
        (moved_back, {"dealstage": stages[-2][0]}),  # back to the stage before...
        (moved_back, {"dealstage": stages[-1][0]}),
    ]  # ...and forward again: re-entered
    for rid, props in edits:
        time.sleep(0.003)  # distinct milliseconds, as separate user edits have
        emulator.update_record("deals", rid, props)
    time.sleep(0.003)
    created = emulator.create_record(
        "deals",
        {
            "dealname": "API deal",
            "dealstage": "qualifiedtobuy",
            "pipeline": "default",
            "hubspot_owner_id": owners[0],
        },
    )
    time.sleep(0.003)
    emulator.update_record("deals", created, {"dealstage": "closedwon"})

    second = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert second.status == "succeeded"
    assert_history_equals_truth(sqlite_engine, emulator)
    assert second.api_calls[HISTORY_READ] == 1
    assert (
        stored(sqlite_engine)[1][reassigned]
        == dump["deals"][reassigned]["properties"]["hubspot_owner_id"]
    )
    assert stored(sqlite_engine)[1][created] == owners[0]


def test_calculated_properties_prove_a_path_exactly_when_no_stage_was_reentered(
    env: HubSpotEnv,
) -> None:
    from connectors.hubspot.stages import deal_properties, path_from_calculated
    from emulators.hubspot.render import render

    emulator = env.emulator
    stage_ids = emulator.schema.properties["deals"]["dealstage"].options
    names = ["dealstage", "createdate", *deal_properties(stage_ids)]
    proven = 0
    for record in emulator.dump()["deals"].values():
        props = render(emulator.schema, "deals", record, names)["properties"]
        path = path_from_calculated(props, stage_ids)
        history = _history(record, "dealstage")
        if len({v for v, _ in history}) < len(history):
            assert path is None, record["id"]
        else:
            assert path is not None, record["id"]
            assert [(stage, int(at.timestamp() * 1000)) for stage, at in path] == history
            proven += 1
    assert proven > 250
