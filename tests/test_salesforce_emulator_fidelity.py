"""The Salesforce emulator as third-party clients find the real API (docs/decisions/
emulator-fidelity.md): fractional-second datetimes in SOQL, Bulk API 2.0 job listing and
deletion, standard compound addresses; and kpisync leaves no Bulk job behind."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator, SalesforceKnobs
from kpisync.sync import SyncOptions, sync_source
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import assert_store_equals_truth

ADDRESSES = {
    "Account": ("BillingAddress", "ShippingAddress"),
    "Contact": ("MailingAddress", "OtherAddress"),
    "Lead": ("Address",),
    "User": ("Address",),
}
ADDRESS_KEYS = {
    "street",
    "city",
    "state",
    "postalCode",
    "country",
    "latitude",
    "longitude",
    "geocodeAccuracy",
}


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=5, deals=80)


@pytest.fixture
def env(org: Org) -> Iterator[SalesforceEnv]:
    with SalesforceEmulator(org) as emulator:
        yield SalesforceEnv(org, emulator)


class Api:
    """Plain HTTPS calls with a session from the emulator's own login, as any client makes."""

    def __init__(self, emulator: SalesforceEmulator) -> None:
        login = emulator.login
        session = httpx.Client(
            verify=ssl.create_default_context(cafile=emulator.ca_path), timeout=10, trust_env=False
        )
        token = session.post(
            f"{emulator.base_url}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": login.consumer_key,
                "client_secret": login.consumer_secret,
                "username": login.username,
                "password": login.password + login.security_token,
            },
        ).json()["access_token"]
        self.session, self.base = session, f"{emulator.base_url}/services/data/v59.0"
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.session.request(method, f"{self.base}/{path}", headers=self.headers, **kwargs)


def test_soql_takes_datetimes_with_fractional_seconds(env: SalesforceEnv) -> None:
    api = Api(env.emulator)
    everyone = api("GET", "query", params={"q": "SELECT Id FROM Account"}).json()["totalSize"]
    for literal in (
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00.912Z",
        "2000-01-01T00:00:00.912000Z",
        "2000-01-01T00:00:00.9+00:00",
    ):
        found = api(
            "GET",
            "query",
            params={"q": f"SELECT Id FROM Account WHERE SystemModstamp >= {literal}"},
        )
        assert found.status_code == 200, found.text
        assert found.json()["totalSize"] == everyone
    future = api(
        "GET",
        "query",
        params={"q": "SELECT Id FROM Account WHERE SystemModstamp > 2999-10-30T19:06:00.912000Z"},
    )
    assert future.json()["totalSize"] == 0
    seven = api(
        "GET",
        "query",
        params={"q": "SELECT Id FROM Account WHERE SystemModstamp > 2026-10-30T19:06:00.9120001Z"},
    )
    assert seven.status_code == 400 and seven.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_bulk_query_jobs_are_listed_deleted_once_ended_and_aborted(env: SalesforceEnv) -> None:
    assert isinstance(env.emulator.knobs, SalesforceKnobs)
    env.emulator.knobs.bulk_polls_until_complete = 1
    api = Api(env.emulator)
    job = api(
        "POST", "jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"}
    ).json()["id"]
    listed = api("GET", "jobs/query").json()
    assert listed["done"] is True and [j["id"] for j in listed["records"]] == [job]
    assert listed["records"][0]["state"] == "InProgress"  # listing is not a poll
    refused = api("DELETE", f"jobs/query/{job}")  # not ended yet
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "API_ERROR"
    while api("GET", f"jobs/query/{job}").json()["state"] != "JobComplete":
        pass
    deleted = api("DELETE", f"jobs/query/{job}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api("GET", "jobs/query").json()["records"] == []
    assert api("GET", f"jobs/query/{job}").status_code == 404
    running = api(
        "POST", "jobs/query", json={"operation": "query", "query": "SELECT Id FROM Lead"}
    ).json()["id"]
    aborted = api("PATCH", f"jobs/query/{running}", json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert api("DELETE", f"jobs/query/{running}").status_code == 204
    assert api("GET", "jobs/query", params={"isPkChunkingEnabled": "true"}).status_code == 400
    semicolons = api(
        "POST",
        "jobs/query",
        json={"operation": "query", "columnDelimiter": "SEMICOLON", "query": "SELECT Id FROM Lead"},
    )
    assert semicolons.status_code == 400 and "columnDelimiter" in semicolons.json()[0]["message"]
    explained = api("GET", "query", params={"explain": "SELECT Id FROM Lead"})
    assert explained.status_code == 400 and "explain" in explained.json()[0]["message"]


def test_standard_compound_addresses_in_describe_and_rest_and_refused_by_bulk(
    env: SalesforceEnv,
) -> None:
    api = Api(env.emulator)
    account = next(iter(env.emulator.live("Account")))
    city = env.emulator.live("Account")[account]["BillingCity"]
    for sobject, compounds in ADDRESSES.items():
        fields = {f["name"]: f for f in api("GET", f"sobjects/{sobject}/describe").json()["fields"]}
        for compound in compounds:
            assert fields[compound]["type"] == "address" and not fields[compound]["updateable"]
            prefix = compound.removesuffix("Address")
            assert fields[f"{prefix}City"]["compoundFieldName"] == compound
            assert fields[f"{prefix}Latitude"]["type"] == "double"
    record = api("GET", f"sobjects/Account/{account}").json()
    assert (
        set(record["BillingAddress"]) == ADDRESS_KEYS and record["BillingAddress"]["city"] == city
    )
    assert record["ShippingAddress"] is None  # no component set
    queried = api(
        "GET",
        "query",
        params={"q": f"SELECT Id, BillingAddress, BillingCity FROM Account WHERE Id = '{account}'"},
    )
    row = queried.json()["records"][0]
    assert row["BillingAddress"]["city"] == row["BillingCity"] == city
    picked = api("GET", f"sobjects/Account/{account}", params={"fields": "BillingAddress"})
    assert set(picked.json()) == {"attributes", "Id", "BillingAddress"}
    bulk = api(
        "POST",
        "jobs/query",
        json={"operation": "query", "query": "SELECT Id, MailingAddress FROM Contact"},
    )
    assert bulk.status_code == 400
    assert bulk.json()[0]["errorCode"] == "FUNCTIONALITY_NOT_ENABLED"
    components = api(
        "POST",
        "jobs/query",
        json={
            "operation": "query",
            "query": "SELECT Id, MailingCity, MailingLatitude FROM Contact",
        },
    )
    assert components.status_code == 200


def test_kpisync_deletes_the_bulk_jobs_it_has_read(
    sqlite_engine: Engine, env: SalesforceEnv
) -> None:
    done = sync_source(sqlite_engine, SOURCE, env.connector(bulk_above_records=10), SyncOptions())
    assert done.status == "succeeded"
    assert_store_equals_truth(sqlite_engine, env.emulator.dump())
    assert len(env.emulator.bulk.created) >= 5  # the large objects went through Bulk jobs
    assert Api(env.emulator)("GET", "jobs/query").json()["records"] == []  # none left behind
