"""Salesforce's own hazards over loopback HTTPS through simple-salesforce: re-login, SOQL errors,
Bulk API 2.0 first syncs, the daily allowance floor, timestamp ties, merges, purges and writes.

The generic ones (kills, faults, deletes, bad credentials) are in tests/test_conformance.py."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from connectors.salesforce.paging import QueryPager
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator, SalesforceKnobs
from kpisync.connector import FieldSpec, FieldUpdate, Page
from kpisync.cursor import Cursor
from kpisync.errors import ConnectorError, Interrupted, RateLimited, RejectedError, SchemaDriftError
from kpisync.store.models import Account, Activity, Contact, Deal, RecordBase, SyncRun, User
from kpisync.sync import SyncOptions, sync_source
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import assert_store_equals_truth


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=13, deals=150)


@pytest.fixture
def env(org: Org) -> Iterator[SalesforceEnv]:
    with SalesforceEmulator(org) as emulator:
        yield SalesforceEnv(org, emulator)


def cursor_of(page: Page) -> Cursor:
    assert page.cursor is not None, page.stream
    return page.cursor


def count(engine: Engine, model: type[RecordBase]) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar() or 0)


def test_session_expiring_mid_sync_logs_in_again_once(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    connector = env.connector()
    expired: list[str] = []

    def expire_once(page: Page) -> None:
        if page.stream == "Contact" and not expired:
            env.emulator.expire_sessions()
            expired.append(page.stream)

    result = sync_source(sqlite_engine, SOURCE, connector, SyncOptions(on_page=expire_once))
    assert result.status == "succeeded" and expired
    assert result.api_calls["login (soap)"] == 2
    assert 0 < result.api_calls["limit:api-usage-used"] <= result.api_calls["limit:api-usage-max"]
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())


def test_unsupported_soql_is_malformed_query_and_never_retried(env: SalesforceEnv) -> None:
    connector = env.connector()
    client = connector.client
    bad = "SELECT Id FROM Opportunity WHERE Amount > 5 AND Name = 'a' OR Name = 'b'"
    with pytest.raises(SalesforceMalformedRequest) as raw:
        client.connect().query(bad)
    content: Any = raw.value.content  # annotated bytes by simple-salesforce: the parsed body
    assert content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(RejectedError) as caught:
        client.call("GET query", lambda sf: sf.query(bad))
    assert "MALFORMED_QUERY" in caught.value.message and client.calls["GET query"] == 1
    rows = client.call(
        "GET query",
        lambda sf: sf.query(
            "SELECT Id, StageName FROM Opportunity WHERE (Amount > 5000 AND IsWon = true) OR "
            "StageName IN ('Closed Lost') ORDER BY StageName DESC, Id LIMIT 7"
        ),
    )["records"]
    assert len(rows) == 7 and rows[0]["StageName"] == "Closed Won"
    with pytest.raises(SchemaDriftError):  # a date literal against a datetime field (INVALID_FIELD)
        client.call(
            "GET query",
            lambda sf: sf.query("SELECT Id FROM Opportunity WHERE SystemModstamp > 2024-01-01"),
        )


def test_semi_joins_pick_rows_by_another_objects_and_keep_the_real_restrictions(
    env: SalesforceEnv,
) -> None:
    client = env.connector().client
    truth = env.emulator.dump()
    won = {rid for rid, r in truth["Opportunity"].items() if r["IsWon"] and not r["IsDeleted"]}
    history = {
        rid: r["OpportunityId"]
        for rid, r in truth["OpportunityHistory"].items()
        if not r["IsDeleted"]
    }

    def ids(soql: str) -> set[str]:
        rows = client.call("GET query", lambda sf: sf.query_all(soql))["records"]
        return {row["Id"] for row in rows}

    chosen = "(SELECT Id FROM Opportunity WHERE IsWon = true)"
    assert won and ids(f"SELECT Id FROM OpportunityHistory WHERE OpportunityId IN {chosen}") == {
        rid for rid, opportunity in history.items() if opportunity in won
    }
    assert ids(f"SELECT Id FROM OpportunityHistory WHERE OpportunityId NOT IN {chosen}") == {
        rid for rid, opportunity in history.items() if opportunity not in won
    }
    refused = [
        f"SELECT Id FROM OpportunityHistory WHERE OpportunityId IN {chosen} OR StageName = 'x'",
        "SELECT Id FROM OpportunityHistory WHERE OpportunityId IN (SELECT Name FROM Opportunity)",
        "SELECT Id FROM OpportunityHistory WHERE StageName IN (SELECT Id FROM Opportunity)",
        "SELECT Id FROM Opportunity WHERE Id IN (SELECT Id FROM Opportunity)",
        "SELECT Id FROM OpportunityHistory WHERE OpportunityId IN "
        "(SELECT Id FROM Opportunity ORDER BY Id)",
        "SELECT Id FROM OpportunityHistory WHERE OpportunityId IN (SELECT Id FROM Opportunity "
        "WHERE AccountId IN (SELECT Id FROM Account))",
    ]
    for soql in refused:

        def ask(sf: Salesforce, soql: str = soql) -> Any:
            return sf.query(soql)

        with pytest.raises(RejectedError) as caught:
            client.call("GET query", ask)
        assert "MALFORMED_QUERY" in caught.value.message, soql


def test_bulk_first_sync_resumes_at_its_locator_then_goes_incremental(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    options = {"bulk_above_records": 100, "bulk_page_records": 150}
    pages: list[Page] = []
    stop = SyncOptions(streams=("Task",), should_stop=lambda: len(pages) >= 2, on_page=pages.append)
    with pytest.raises(Interrupted):
        sync_source(sqlite_engine, SOURCE, env.connector(**options), stop)
    assert cursor_of(pages[-1]).get("bulk_job") and cursor_of(pages[-1]).get("bulk_locator")
    first = sync_source(sqlite_engine, SOURCE, env.connector(**options), SyncOptions())
    assert first.status == "succeeded"
    objects = sorted(job.sobject for job in env.emulator.bulk.created.values())
    big = sorted(
        o
        for o in (
            "Account",
            "Contact",
            "Lead",
            "Opportunity",
            "OpportunityLineItem",
            "Task",
            "Event",
            "NPS_Response__c",
            "OpportunityHistory",
            "OpportunityFieldHistory",
        )
        if len(env.emulator.live(o)) > 100
    )
    assert "OpportunityHistory" in big  # stage history through its own job, not IN queries
    # one job each: the interrupted Task job resumed at its locator; or, when the read-ahead had
    # read it whole before the stop (kpisync then deleted it), run again with the same bounds
    tasks = [job.query for job in env.emulator.bulk.created.values() if job.sobject == "Task"]
    assert [o for o in objects if o != "Task"] == [o for o in big if o != "Task"]
    assert len(tasks) in (1, 2) and set(tasks) == {tasks[0]} and not env.emulator.bulk.jobs
    jobs = len(objects)
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())

    changed = sorted(env.emulator.live("Contact"))[:3]
    for rid in changed:
        env.emulator.update_record("Contact", rid, {"Title": "Chief Kpisync Officer"})
    second = sync_source(sqlite_engine, SOURCE, env.connector(**options), SyncOptions())
    assert "POST jobs/query" not in second.api_calls and len(env.emulator.bulk.created) == jobs
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())


def test_a_bulk_result_page_is_handed_on_in_parts_and_a_stop_between_them_reads_it_again(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    options = {"bulk_above_records": 100, "bulk_page_records": 450, "batch_records": 200}
    jobs = len(env.emulator.bulk.created)
    pages: list[Page] = []
    stop = SyncOptions(streams=("Task",), should_stop=lambda: len(pages) >= 1, on_page=pages.append)
    with pytest.raises(Interrupted):
        sync_source(sqlite_engine, SOURCE, env.connector(**options), stop)
    assert len(pages[0].records) == 200  # a part of the first 450-row result page
    assert cursor_of(pages[0]).get("bulk_job") and not cursor_of(pages[0]).get("bulk_locator")
    assert count(sqlite_engine, Activity) == 200
    done = sync_source(
        sqlite_engine, SOURCE, env.connector(**options), SyncOptions(streams=("Task",))
    )
    assert done.status == "succeeded"
    tasks = [job.query for job in list(env.emulator.bulk.created.values())[jobs:]]
    assert len(tasks) in (1, 2) and set(tasks) == {tasks[0]}  # resumed, or (read whole and
    # deleted before the stop) run again with the same bounds
    assert count(sqlite_engine, Activity) == len(env.emulator.live("Task")) > 450


def test_a_bulk_job_that_expired_between_runs_is_run_again_and_nothing_is_lost(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    options = {"bulk_above_records": 100, "bulk_page_records": 150}
    pages: list[Page] = []
    stop = SyncOptions(streams=("Task",), should_stop=lambda: len(pages) >= 2, on_page=pages.append)
    with pytest.raises(Interrupted):
        sync_source(sqlite_engine, SOURCE, env.connector(**options), stop)
    stale = cursor_of(pages[-1]).get("bulk_job")
    assert stale and cursor_of(pages[-1]).get("bulk_locator")
    # Gone by the next run: expired, or already read to its end and deleted by the read-ahead
    env.emulator.bulk.jobs.pop(stale, None)
    done = sync_source(
        sqlite_engine, SOURCE, env.connector(**options), SyncOptions(streams=("Task",))
    )
    assert done.status == "succeeded" and stale not in env.emulator.bulk.jobs
    tasks = [job.id for job in env.emulator.bulk.created.values() if job.sobject == "Task"]
    assert tasks[0] == stale and len(tasks) == 2  # the one gone, and one run again
    with sqlite_engine.connect() as connection:
        stored = set(connection.execute(select(col(Activity.external_id))).scalars())
    assert stored == set(env.emulator.live("Task"))


def test_sync_refuses_to_start_below_the_allowance_floor(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    assert isinstance(env.emulator.knobs, SalesforceKnobs)
    env.emulator.knobs.daily_api_limit = 900
    env.emulator.api_used = 880
    connector = env.connector(min_api_remaining=1000)
    with pytest.raises(RateLimited) as caught:
        sync_source(sqlite_engine, SOURCE, connector, SyncOptions())
    assert "refusing to sync" in caught.value.message and "19 of 900" in caught.value.message
    assert count(sqlite_engine, Deal) == 0
    with sqlite_engine.connect() as connection:
        run = connection.execute(select(col(SyncRun.status), col(SyncRun.error))).one()
    assert run.status == "failed" and "min_api_remaining" in run.error
    problems = connector.check()
    assert any("daily API calls left" in p.what for p in problems)
    env.emulator.api_used = 900  # spent: every call is refused with REQUEST_LIMIT_EXCEEDED
    with pytest.raises(RateLimited):
        env.connector(min_api_remaining=0).discover()


def test_thousand_tasks_on_one_timestamp_are_walked_by_id_across_a_restart(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions(streams=("Task",)))
    env.emulator.touch_all("Task", datetime.now(UTC) - timedelta(seconds=5))
    tasks = len(env.emulator.live("Task"))
    assert tasks > 1000
    pages: list[Page] = []
    with pytest.raises(Interrupted):
        sync_source(
            sqlite_engine,
            SOURCE,
            env.connector(batch_records=200),
            SyncOptions(
                streams=("Task",), on_page=pages.append, should_stop=lambda: len(pages) == 3
            ),
        )
    assert len({cursor_of(p).value for p in pages}) == 1  # one timestamp; the Id moves the keyset
    assert len({cursor_of(p).get("after_id") for p in pages}) == 3
    done = sync_source(
        sqlite_engine, SOURCE, env.connector(batch_records=200), SyncOptions(streams=("Task",))
    )
    read = sum(s.upserted for s in done.streams)
    assert read == tasks - 3 * 200  # exactly the rest: none lost, none read twice
    assert done.api_calls["GET queryAll"] + done.api_calls["GET query more"] == -(-read // 200)
    assert count(sqlite_engine, Activity) == tasks


def test_deletes_merges_and_purges(sqlite_engine: Engine, env: SalesforceEnv) -> None:
    sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    master, loser = sorted(env.emulator.live("Account"))[:2]
    env.emulator.merge("Account", master, loser)
    purged = max(env.emulator.live("Contact"))
    env.emulator.purge("Contact", purged)
    created = env.emulator.create_record("Account", {"Name": "Nowa Spółka", "OwnerId": None})
    result = sync_source(
        sqlite_engine, SOURCE, env.connector(), SyncOptions(purge_check_every=timedelta(0))
    )
    assert result.status == "succeeded"
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())
    with sqlite_engine.connect() as connection:
        gone = dict(
            connection.execute(select(col(Account.external_id), col(Account.deleted_at))).all()
        )
        assert gone[loser] is not None and gone[created] is None
        assert (
            connection.execute(
                select(col(Contact.deleted_at)).where(col(Contact.external_id) == purged)
            ).scalar()
            is not None
        )
        assert (
            connection.execute(
                select(func.count())
                .select_from(Contact)
                .where(col(Contact.account_id) == loser, col(Contact.deleted_at).is_(None))
            ).scalar()
            == 0
        )


def test_collections_write_with_per_record_results(env: SalesforceEnv) -> None:
    connector = env.connector()
    ids = sorted(env.emulator.live("Opportunity"))
    env.emulator.delete("Opportunity", ids[5])
    updates = [FieldUpdate(rid, (("Margin__c", "0.5"),)) for rid in ids[:150]]
    updates += [FieldUpdate(rid, (("Deal_category__c", "renewal"),)) for rid in ids[150:]]
    updates += [
        FieldUpdate(ids[0][:-3] + "zzz", (("Margin__c", "1"),)),
        FieldUpdate(ids[1], (("No_Such_Field__c", "x"),)),
    ]
    results = connector.write("deal", updates * 2)
    assert len(results) == len(updates) * 2
    assert connector.api_usage()["PATCH composite/sobjects"] == 2
    by_id = {r.external_id: r for r in results}
    assert by_id[ids[5]].not_found and not by_id[ids[5]].ok
    assert not by_id[ids[1]].ok and "INVALID_FIELD" in (by_id[ids[1]].error or "")
    assert by_id[ids[2]].ok and env.emulator.live("Opportunity")[ids[2]]["Margin__c"] == Decimal(
        "0.5"
    )


def test_ensure_fields_says_how_to_create_missing_fields(env: SalesforceEnv) -> None:
    steps = env.connector().ensure_fields(
        [
            FieldSpec("deal", "Margin__c", "Margin", "number"),
            FieldSpec("account", "Kpisync_NPS__c", "kpisync NPS", "number"),
        ],
        apply=True,
    )
    assert [s.action for s in steps] == ["exists", "manual"]
    assert (
        "Object Manager > Account > Fields & Relationships > New: Data Type Number"
        in steps[1].detail
    )


def test_certificates_are_checked(env: SalesforceEnv) -> None:
    problems = env.connector(ca_bundle=None).check()
    assert problems and "certificate" in problems[0].what.lower()
    with pytest.raises(ConnectorError):
        env.connector(ca_bundle=None).discover()


def test_a_start_date_role_on_a_text_field_falls_back_to_the_creation_date(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    connector = env.connector(roles={"deal_type": "Deal_category__c", "user_start_date": "Email"})
    result = sync_source(sqlite_engine, SOURCE, connector, SyncOptions(streams=("User",)))
    assert result.status == "succeeded"
    with sqlite_engine.connect() as connection:
        started = {
            rid: day
            for rid, day in connection.execute(select(col(User.external_id), col(User.started_on)))
        }
    users = env.emulator.live("User")
    assert started == {
        rid: date.fromisoformat(str(u["CreatedDate"])[:10]) for rid, u in users.items()
    }


def test_the_next_page_is_asked_for_while_the_one_before_is_in_hand(env: SalesforceEnv) -> None:
    pager = QueryPager(env.connector().client, batch_size=200)
    more = "GET /services/data/v{version}/query/{locator}"
    pages = pager.pages("SELECT Id FROM Task ORDER BY Id", include_deleted=False)
    first = next(pages)
    deadline = time.monotonic() + 5
    while env.emulator.calls[more] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert env.emulator.calls[more] == 1  # page 2 (and no further) while page 1 is in hand
    ids = [row["Id"] for page in [first, *pages] for row in page]
    assert len(first) == 200 and sorted(ids) == ids
    assert set(ids) == {i for i, row in env.emulator.dump()["Task"].items() if not row["IsDeleted"]}
    assert env.emulator.calls[more] == 5  # 1,004 rows: 6 pages, one query and five more


def test_fields_apply_fails_until_a_person_has_added_the_fields(
    env: SalesforceEnv, tmp_path: Path
) -> None:
    settings = env.settings_file(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    with settings.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[writeback.{SOURCE}.account]\nnps_score = "kpisync_NPS__c"\n')

    def fields_apply() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "kpisync.cli",
                "fields",
                "apply",
                SOURCE,
                "--settings",
                str(settings),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=120,
        )

    done = fields_apply()
    assert done.returncode == 6, done
    assert "needs a person" in done.stdout and "Object Manager > Account" in done.stdout
    assert done.stderr.startswith(
        "error: 1 managed field(s) of sf are not ready: account.kpisync_NPS__c"
    ), done.stderr
    assert f"kpisync fields plan {SOURCE}" in done.stderr
    env.emulator.add_custom_field("Account", "kpisync_NPS__c", "number", "kpisync: NPS (window)")
    done = fields_apply()
    assert done.returncode == 0, done
    assert "exists" in done.stdout and not done.stderr


def test_an_object_too_wide_for_a_query_uri_is_read_by_bulk_jobs_every_run(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    """Hundreds of custom fields make a REST query's GET URI longer than Salesforce takes (414):
    that object goes through Bulk API 2.0 jobs, whose SOQL travels in a POST body, on the first
    sync and on incrementals (queryAll, so deletes come too); the narrow objects stay on REST."""
    emulator = env.emulator
    wide = [
        emulator.add_custom_field(
            "Opportunity",
            f"Territory_Planning_Note_{n:03d}",
            "string",
            f"Territory planning note {n:03d}",
        )
        for n in range(500)
    ]
    checklist = [
        emulator.add_custom_field(
            "User",
            f"Enablement_Checklist_Item_{n:03d}",
            "bool",
            f"Enablement checklist item {n:03d}",
        )
        for n in range(500)
    ]
    rep = sorted(emulator.dump()["User"])[0]
    emulator.update_record("User", rep, {checklist[-1]: True})
    deals = sorted(emulator.live("Opportunity"))
    for n, rid in enumerate(deals[:20]):
        emulator.update_record("Opportunity", rid, {wide[n]: f"note {n}", wide[-1]: "last"})
    soql = f"SELECT {', '.join(['Id', *wide])} FROM Opportunity"
    refused = httpx.get(
        f"{emulator.base_url}/services/data/v59.0/query/",
        params={"q": soql},
        verify=ssl.create_default_context(cafile=emulator.ca_path),
        timeout=10,
    )
    assert refused.status_code == 414 and emulator.refused_too_long == 1

    first = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert first.status == "succeeded" and emulator.refused_too_long == 1
    jobs = list(emulator.bulk.created.values())
    assert sorted((job.sobject, job.operation) for job in jobs) == [
        ("Opportunity", "query"),
        ("User", "query"),
    ]
    assert first.api_calls["GET query"] > 0  # the other objects, by REST
    assert_store_equals_truth(sqlite_engine, emulator.dump())
    with sqlite_engine.connect() as connection:
        custom: dict[str, dict[str, Any]] = dict(
            connection.execute(select(col(Deal.external_id), col(Deal.custom))).all()
        )
        users: dict[str, dict[str, Any]] = dict(
            connection.execute(select(col(User.external_id), col(User.custom))).all()
        )
    assert custom[deals[3]][wide[3]] == "note 3" and custom[deals[3]][wide[-1]] == "last"
    assert users[rep][checklist[-1]] is True and users[rep][checklist[0]] is None

    emulator.update_record(
        "Opportunity", deals[30], {wide[7]: "changed", "StageName": "Closed Won"}
    )
    emulator.delete("Opportunity", deals[31])
    for rid in deals[40:52]:
        emulator.update_record("Opportunity", rid, {wide[8]: "touched"})
    pages: list[Page] = []
    small = {"bulk_page_records": 5}  # the job's 14 rows in three result pages
    with pytest.raises(Interrupted):  # stopped amid the incremental's job
        sync_source(
            sqlite_engine,
            SOURCE,
            env.connector(**small),
            SyncOptions(
                streams=("Opportunity",), on_page=pages.append, should_stop=lambda: len(pages) >= 1
            ),
        )
    cursor = pages[-1].cursor
    assert cursor is not None and cursor.get("bulk_job") and cursor.value is not None
    second = sync_source(sqlite_engine, SOURCE, env.connector(**small), SyncOptions())
    assert second.status == "succeeded" and emulator.refused_too_long == 1
    # The stopped job is resumed; or, when the read-ahead had read it whole before the stop
    # (kpisync then deleted it), run again with the same bounds: nothing skipped either way.
    jobs = [j for j in list(emulator.bulk.created.values())[2:] if j.sobject == "Opportunity"]
    assert len(jobs) in (1, 2) and {j.query for j in jobs} == {jobs[0].query}
    assert jobs[0].operation == "queryAll" and "SystemModstamp >" in jobs[0].query
    assert not emulator.bulk.jobs  # none left behind
    assert_store_equals_truth(sqlite_engine, emulator.dump())
    with sqlite_engine.connect() as connection:
        rows = dict(connection.execute(select(col(Deal.external_id), col(Deal.deleted_at))).all())
    assert rows[deals[31]] is not None and rows[deals[30]] is None


def test_custom_addresses_and_geolocations_are_read_as_their_components(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    """The Bulk API refuses compound fields (FUNCTIONALITY_NOT_ENABLED): a custom address or
    geolocation is read as its components on either path, so a Bulk first sync of an object
    that has one works, and REST incrementals store the same shape."""
    emulator = env.emulator
    office = emulator.add_compound_field(
        "Account", "Office_Location", "location", "Office location"
    )
    delivery = emulator.add_compound_field(
        "Account", "Delivery_Address", "address", "Delivery address"
    )
    accounts = sorted(emulator.live("Account"))
    emulator.update_record(
        "Account",
        accounts[0],
        {
            "Office_Location__Latitude__s": "52.2297",
            "Office_Location__Longitude__s": "21.0122",
            "Delivery_Address__City__s": "Kraków",
        },
    )
    rest = QueryPager(env.connector().client, 2000)  # REST returns the compound as one object
    [[row]] = list(
        rest.pages(
            f"SELECT Id, {office}, {delivery} FROM Account WHERE Id = '{accounts[0]}'",
            include_deleted=False,
        )
    )
    assert row[office] == {"latitude": Decimal("52.2297"), "longitude": Decimal("21.0122")}
    assert row[delivery] == {
        "street": None,
        "city": "Kraków",
        "postalCode": None,
        "state": None,
        "country": None,
    }

    first = sync_source(sqlite_engine, SOURCE, env.connector(bulk_above_records=10), SyncOptions())
    assert first.status == "succeeded"
    assert "Account" in {job.sobject for job in emulator.bulk.created.values()}
    assert_store_equals_truth(sqlite_engine, emulator.dump())
    emulator.update_record("Account", accounts[1], {"Delivery_Address__Street__s": "ul. Długa 1"})
    second = sync_source(sqlite_engine, SOURCE, env.connector(bulk_above_records=10), SyncOptions())
    assert second.status == "succeeded"
    assert_store_equals_truth(sqlite_engine, emulator.dump())
    with sqlite_engine.connect() as connection:
        custom: dict[str, dict[str, Any]] = dict(
            connection.execute(select(col(Account.external_id), col(Account.custom))).all()
        )
    assert custom[accounts[0]]["Office_Location__Latitude__s"] == "52.2297"
    assert custom[accounts[1]]["Delivery_Address__Street__s"] == "ul. Długa 1"
    assert office not in custom[accounts[0]] and delivery not in custom[accounts[1]]
