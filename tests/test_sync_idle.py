"""Syncs with nothing changed in the CRM: no row written, one call per data stream (plus
authentication), metadata read only when due, never rewritten when equal (kpisync.metadata).

Counts, not times: the calls each run makes by endpoint, the rows it counts, the store revision.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.connector import LIMIT_PREFIX
from kpisync.store.models import Deal, FieldCatalog, SyncState, User
from kpisync.store.revision import store_revisions
from kpisync.sync import SyncOptions, SyncResult, sync_source
from tests.harness import Served
from tests.kit_hubspot import KIT as HUBSPOT
from tests.kit_salesforce import KIT as SALESFORCE
from tests.kit_vtiger import KIT as VTIGER
from tests.kit_vtiger_stock82 import KIT as VTIGER_STOCK82

HUBSPOT_SEARCHED = (
    "companies",
    "contacts",
    "deals",
    "line_items",
    "calls",
    "emails",
    "meetings",
    "tasks",
    "feedback_submissions",
)
# What a run with nothing changed and its metadata kept calls, endpoint by endpoint: each data
# stream's one read, and the login.
IDLE_CALLS = {
    "hubspot": Counter({f"POST /crm/v3/objects/{t}/search": 1 for t in HUBSPOT_SEARCHED}),
    "salesforce": Counter({"GET queryAll": 8, "login (soap)": 1}),
    "vtiger": Counter({"getchallenge": 1, "login": 1, "sync": 7}),
    # by query a module costs two counts: of the rows at its cursor, and of its live rows
    # (deletes); a read only when the first finds rows
    "vtiger-stock82": Counter({"getchallenge": 1, "login": 1, "query": 14}),
}
# Calls only a run with its metadata due makes.
METADATA_CALLS: dict[str, Callable[[str], bool]] = {
    "hubspot": lambda e: e.startswith(
        ("GET /crm/v3/properties/", "GET /crm/v3/owners", "GET /crm/v3/pipelines/")
    ),
    "salesforce": lambda e: e.endswith("/describe"),
    "vtiger": lambda e: e in ("describe", "listtypes"),
    "vtiger-stock82": lambda e: e in ("describe", "listtypes"),
}
METADATA_STREAMS = {
    "hubspot": {"owners", "pipelines"},
    "salesforce": {"User", "OpportunityStage"},
    "vtiger": {"users", "stages"},
    "vtiger-stock82": {"users", "stages"},
}
# The product's defaults where the tests' environment sets another value.
DEFAULTS = {"hubspot": {"archived_every_minutes": 60.0}}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=30, deals=120)


@pytest.fixture(params=[HUBSPOT, SALESFORCE, VTIGER, VTIGER_STOCK82], ids=lambda kit: kit.name)
def served(request: pytest.FixtureRequest, org: Org) -> Iterator[Served]:
    with request.param.serve(org) as served:
        served.kit_name = request.param.name
        yield served


def run(engine: Engine, served: Served, options: SyncOptions) -> tuple[SyncResult, bool]:
    """The run's result, and whether the store's revision moved."""
    with engine.connect() as connection:
        before = store_revisions(connection).get(served.source)
    options_of = {**served.generous_limits(), **DEFAULTS.get(served.kit_name, {})}
    connector = served.connector(**options_of)
    try:
        result = sync_source(engine, served.source, connector, options)
    finally:
        connector.close()
    with engine.connect() as connection:
        moved = store_revisions(connection).get(served.source) != before
    return result, moved


def calls(result: SyncResult) -> Counter[str]:
    return Counter({k: v for k, v in result.api_calls.items() if not k.startswith(LIMIT_PREFIX)})


def read_metadata(kit: str, result: SyncResult) -> bool:
    """Whether the run read the metadata: its streams and its calls, all or none of them."""
    streams = {s.stream for s in result.streams} & METADATA_STREAMS[kit]
    count = sum(n for endpoint, n in calls(result).items() if METADATA_CALLS[kit](endpoint))
    assert (streams == METADATA_STREAMS[kit]) == (count > 0), (streams, count)
    return count > 0


def test_idle_sync_writes_nothing_and_calls_once_per_stream(engine: Engine, served: Served) -> None:
    kit = served.kit_name
    first, moved = run(engine, served, SyncOptions(purge_check_every=None))
    assert first.status == "succeeded" and first.upserted > 0 and moved

    idle, moved = run(engine, served, SyncOptions(purge_check_every=None))
    assert (idle.upserted, idle.deleted, moved) == (0, 0, False)
    assert calls(idle) == IDLE_CALLS[kit]
    assert not read_metadata(kit, idle)
    served.assert_store_equals_truth(engine)

    # Metadata due: read again (owners, stages, field lists), but equal rows are not rewritten.
    with engine.connect() as connection:
        users_before = connection.execute(select(col(User.external_id), col(User.synced_at))).all()
    due, moved = run(
        engine, served, SyncOptions(purge_check_every=None, metadata_every=timedelta(0))
    )
    assert (due.upserted, due.deleted, moved) == (0, 0, False)
    assert read_metadata(kit, due)
    with engine.connect() as connection:
        assert (
            connection.execute(select(col(User.external_id), col(User.synced_at))).all()
            == users_before
        )

    # Changed records still arrive, and are the only rows counted.
    changed = served.change_deals(3, seed=7)
    time.sleep(1.1)  # CRMs with one-second timestamps need the clock to move past the change
    after, moved = run(engine, served, SyncOptions(purge_check_every=None))
    assert moved and after.upserted > 0 and not read_metadata(kit, after)
    deal_stream = next(
        s for s in after.streams if s.stream in ("deals", "Opportunity", "potentials")
    )
    assert deal_stream.upserted >= len(changed)
    served.assert_store_equals_truth(engine)


def test_metadata_is_read_when_kept_copy_is_stale_or_after_a_full_sync(
    engine: Engine, served: Served
) -> None:
    kit = served.kit_name
    run(engine, served, SyncOptions(purge_check_every=None))
    with engine.connect() as connection:
        kept_at = connection.execute(
            select(col(SyncState.updated_at)).where(col(SyncState.stream) == "metadata")
        ).scalar_one()
    assert kept_at is not None
    full, _ = run(engine, served, SyncOptions(purge_check_every=None, full=True))
    assert read_metadata(kit, full)
    with engine.connect() as connection:
        updated_at = connection.execute(
            select(col(SyncState.updated_at)).where(col(SyncState.stream) == "metadata")
        ).scalar_one()
    assert updated_at is not None and updated_at > kept_at
    kept, _ = run(
        engine, served, SyncOptions(purge_check_every=None, metadata_every=timedelta(hours=1))
    )
    assert not read_metadata(kit, kept)
    every_run, _ = run(engine, served, SyncOptions(purge_check_every=None, metadata_every=None))
    assert read_metadata(kit, every_run)


def test_vtiger_kept_describes_are_read_again_when_records_show_a_new_field(
    sqlite_engine: Engine, org: Org
) -> None:
    with VTIGER.serve(org) as served:
        served.kit_name = VTIGER.name
        run(sqlite_engine, served, SyncOptions(purge_check_every=None))
        name = served.emulator.add_custom_field("Potentials", "Renewal risk", "string")
        deal = served.live_deals()[0]
        served.emulator.update_record("Potentials", deal, {name: "high"})
        time.sleep(1.1)  # one-second timestamps: the clock moves past the change
        moved, _ = run(sqlite_engine, served, SyncOptions(purge_check_every=None))
        assert moved.api_calls.get("describe")  # described again in the run
        with sqlite_engine.connect() as connection:
            custom = connection.execute(
                select(col(Deal.custom)).where(col(Deal.external_id) == deal)
            ).scalar_one()
            catalog = set(
                connection.execute(
                    select(col(FieldCatalog.name)).where(col(FieldCatalog.entity) == "Potentials")
                ).scalars()
            )
        assert custom[name] == "high" and name in catalog
        served.assert_store_equals_truth(sqlite_engine)
        # The new describes were kept: the next run with nothing changed describes nothing.
        idle, _ = run(sqlite_engine, served, SyncOptions(purge_check_every=None))
        assert calls(idle) == IDLE_CALLS[VTIGER.name]


def test_hubspot_lists_archived_records_when_due(sqlite_engine: Engine, org: Org) -> None:
    """Archived records cost a listing per object; it is made at most every
    archived_every_minutes, and a delete shows in the first run it is due in."""
    with HUBSPOT.serve(org) as served:
        served.kit_name = HUBSPOT.name
        run(sqlite_engine, served, SyncOptions(purge_check_every=None))
        deal = min(served.emulator.dump()["deals"])
        served.emulator.archive("deals", deal)
        not_due, _ = run(sqlite_engine, served, SyncOptions(purge_check_every=None))
        assert not_due.deleted == 0 and "GET /crm/v3/objects/deals" not in not_due.api_calls
        with sqlite_engine.connect() as connection:
            assert (
                connection.execute(
                    select(col(Deal.deleted_at)).where(col(Deal.external_id) == deal)
                ).scalar_one()
                is None
            )
        connector = served.connector(archived_every_minutes=0)  # due now
        try:
            due = sync_source(
                sqlite_engine, served.source, connector, SyncOptions(purge_check_every=None)
            )
        finally:
            connector.close()
        assert due.api_calls["GET /crm/v3/objects/deals"] == 1 and due.deleted >= 1
        served.assert_store_equals_truth(sqlite_engine)
