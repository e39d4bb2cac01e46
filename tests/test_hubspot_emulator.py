"""Contract tests: hubspot-api-client 12 talks to the HubSpot emulator over loopback, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import PublicMergeInput
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.exceptions import ApiException, ServiceException, UnauthorizedException
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException

from emulators.hubspot.emulator import HubSpotEmulator, HubSpotKnobs, OAuthApp
from emulators.hubspot.records import iso
from emulators.org.generate import generate_org
from emulators.org.model import Org

TOKEN = "pat-na1-emulator"


class FakeClock:
    """A settable clock for record writes and token expiry."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=300)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(org: Org, clock: FakeClock) -> Iterator[HubSpotEmulator]:
    emu = HubSpotEmulator(org, search_rate_per_second=1000, clock=clock)
    with emu:
        yield emu


@pytest.fixture
def client(emulator: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emulator.base_url)


def search(client: HubSpot, object_type: str, **body: Any) -> Any:
    return client.crm.objects.search_api.do_search(object_type, PublicObjectSearchRequest(**body))


def error_of(exc: ApiException) -> dict[str, object]:
    body: dict[str, object] = json.loads(exc.body)
    return body


def test_search_pages_through_all_matches(client: HubSpot, org: Org) -> None:
    leads = {f"{30_000_000_000 + lead.id}" for lead in org.leads if lead.converted_at is None}
    seen: list[str] = []
    after = None
    flt = {
        "filters": [
            {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"},
            {"propertyName": "createdate", "operator": "GTE", "value": "0"},
        ]
    }
    while True:
        page = search(
            client,
            "contacts",
            filter_groups=[flt],
            limit=200,
            after=after,
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["lifecyclestage", "hs_lead_status"],
        )
        assert page.total == len(leads)
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) and set(seen) == leads
    stamps = [page.results[-1].properties["lastmodifieddate"]]
    assert stamps[0] is not None


def test_search_10k_wall_is_a_400(client: HubSpot) -> None:
    ok = search(client, "deals", limit=200, after="9800")
    assert ok.results == []
    with pytest.raises(ApiException) as caught:
        search(client, "deals", limit=200, after="9900")
    assert caught.value.status == 400
    with pytest.raises(ApiException):
        search(client, "deals", limit=201)


def test_search_filter_limits_and_operators(client: HubSpot, org: Org) -> None:
    groups = [{"filters": [{"propertyName": "amount", "operator": "GT", "value": "0"}]}] * 6
    with pytest.raises(ApiException) as caught:
        search(client, "deals", filter_groups=groups)
    assert error_of(caught.value)["category"] == "VALIDATION_ERROR"
    won = search(
        client,
        "deals",
        filter_groups=[
            {
                "filters": [
                    {"propertyName": "dealstage", "operator": "IN", "values": ["closedwon"]},
                    {"propertyName": "closedate", "operator": "LT", "value": iso(org.now)},
                ]
            }
        ],
        limit=1,
    )
    assert won.total == sum(d.stage == "closed_won" for d in org.deals)
    big = search(
        client,
        "deals",
        filter_groups=[
            {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "50000"}]}
        ],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        limit=5,
        properties=["amount"],
    )
    amounts = [float(r.properties["amount"]) for r in big.results]
    assert amounts == sorted(amounts, reverse=True) and min(amounts) >= 50000


def test_ties_are_not_returned_in_id_order(client: HubSpot, emulator: HubSpotEmulator) -> None:
    emulator.touch_all("deals", datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    sort = [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    first = search(client, "deals", sorts=sort, limit=100)
    ids = [r.id for r in first.results]
    assert ids != sorted(ids, key=int)
    everything = ids + [
        r.id for r in search(client, "deals", sorts=sort, limit=200, after="100").results
    ]
    assert len(set(everything)) == 300
    again = search(client, "deals", sorts=sort, limit=100)
    assert [r.id for r in again.results] == ids  # stable between calls


def test_archived_listing_and_search(
    client: HubSpot, emulator: HubSpotEmulator, clock: FakeClock
) -> None:
    deal_id = emulator.hubspot_id("deal", 7)
    client.crm.deals.basic_api.archive(deal_id)
    archived = client.crm.objects.basic_api.get_page("deals", archived=True, limit=100)
    assert [r.id for r in archived.results] == [deal_id]
    assert archived.results[0].archived and archived.results[0].archived_at == clock.now
    live = client.crm.objects.basic_api.get_page("deals", limit=100)
    assert deal_id not in {r.id for r in live.results}
    found = search(
        client,
        "deals",
        filter_groups=[
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": deal_id}]}
        ],
    )
    assert found.total == 0
    with pytest.raises(ApiException) as caught:
        client.crm.objects.basic_api.get_by_id("deals", deal_id)
    assert caught.value.status == 404
    emulator.purge("deals", deal_id)
    assert deal_id not in emulator.dump()["deals"]


def test_batch_update_partial_207_and_validation(
    client: HubSpot, emulator: HubSpotEmulator, clock: FakeClock
) -> None:
    known = emulator.hubspot_id("deal", 3)
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            {"id": known, "properties": {"dealname": "Renamed", "dealstage": "closedwon"}},
            {"id": "123", "properties": {"dealname": "Ghost"}},
        ]
    )
    result = client.crm.objects.batch_api.update("deals", batch)
    assert result.num_errors == 1
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context == {"ids": ["123"]}
    record = emulator.dump()["deals"][known]
    assert record["properties"]["dealname"] == "Renamed"
    assert record["properties"]["hs_is_closed_won"] == "true"
    assert record["properties"]["hs_lastmodifieddate"] == iso(clock.now)
    assert record["propertiesWithHistory"]["dealstage"][0]["value"] == "closedwon"
    for bad in (
        {"no_such_property": "x"},
        {"hs_lastmodifieddate": "2026-01-01T00:00:00Z"},
        {"dealstage": "not-a-stage"},
    ):
        with pytest.raises(ApiException) as caught:
            client.crm.objects.batch_api.update(
                "deals",
                BatchInputSimplePublicObjectBatchInput(inputs=[{"id": known, "properties": bad}]),
            )
        assert caught.value.status == 400
        assert error_of(caught.value)["category"] == "VALIDATION_ERROR"


def test_batch_read_with_history_and_associations(
    client: HubSpot, emulator: HubSpotEmulator, org: Org
) -> None:
    deal = org.deals[0]
    read = client.crm.objects.batch_api.read(
        "deals",
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": emulator.hubspot_id("deal", deal.id)}],
            properties=["dealstage"],
            properties_with_history=["dealstage"],
        ),
    )
    history = read.results[0].properties_with_history["dealstage"]
    assert [h.value for h in history] == [
        c.stage.replace("_", "") for c in reversed(deal.stage_history)
    ]
    links = client.crm.associations.v4.batch_api.get_page(
        "deals", "companies", {"inputs": [{"id": emulator.hubspot_id("deal", deal.id)}]}
    )
    target = links.results[0].to[0]
    assert str(target.to_object_id) == emulator.hubspot_id("company", deal.account_id)
    assert target.association_types[0].type_id == 5


def test_bad_token_is_401(emulator: HubSpotEmulator) -> None:
    bad = HubSpot(access_token="wrong", host=emulator.base_url)
    with pytest.raises(UnauthorizedException) as caught:
        bad.crm.objects.basic_api.get_page("deals")
    assert error_of(caught.value)["category"] == "INVALID_AUTHENTICATION"


def test_oauth_refresh_expiry_and_revocation(org: Org, clock: FakeClock) -> None:
    app = OAuthApp("client-1", "secret-1", "refresh-1", access_token_lifetime_seconds=1800)
    with HubSpotEmulator(org, oauth=app, clock=clock) as emu:
        anonymous = HubSpot(host=emu.base_url)
        token = anonymous.oauth.tokens_api.create(
            grant_type="refresh_token",
            refresh_token="refresh-1",
            client_id="client-1",
            client_secret="secret-1",
        )
        assert token.expires_in == 1800 and token.token_type == "bearer"
        user = HubSpot(access_token=token.access_token, host=emu.base_url)
        assert user.crm.objects.basic_api.get_page("companies", limit=1).results
        clock.now += timedelta(seconds=1801)
        with pytest.raises(UnauthorizedException) as caught:
            user.crm.objects.basic_api.get_page("companies", limit=1)
        assert error_of(caught.value)["category"] == "EXPIRED_AUTHENTICATION"
        emu.revoke_refresh_token()
        from hubspot.oauth.exceptions import ApiException as OAuthApiException

        with pytest.raises(OAuthApiException) as refused:
            anonymous.oauth.tokens_api.create(
                grant_type="refresh_token",
                refresh_token="refresh-1",
                client_id="client-1",
                client_secret="secret-1",
            )
        assert refused.value.status == 400
        assert json.loads(refused.value.body)["status"] == "BAD_REFRESH_TOKEN"


def test_search_rate_limit_is_429_secondly(org: Org) -> None:
    with HubSpotEmulator(org, search_rate_per_second=2) as emu:
        client = HubSpot(access_token=TOKEN, host=emu.base_url)
        with pytest.raises(ApiException) as caught:
            for _ in range(4):
                search(client, "deals", limit=1)
        assert caught.value.status == 429
        body = error_of(caught.value)
        assert body["policyName"] == "SECONDLY" and body["errorType"] == "RATE_LIMIT"


def test_ten_secondly_budget_headers_and_429(org: Org) -> None:
    knobs = HubSpotKnobs(ten_secondly_budget=3)
    with HubSpotEmulator(org, knobs=knobs) as emu:
        # urllib3 would honour Retry-After on a 429 GET and wait; this client must see the 429
        client = HubSpot(
            access_token=TOKEN,
            host=emu.base_url,
            retry=urllib3.Retry(total=0, respect_retry_after_header=False),
        )
        _, status, headers = client.crm.objects.basic_api.get_page_with_http_info("deals")
        assert status == 200 and headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Remaining"] == "2"
        client.crm.objects.basic_api.get_page("deals")
        client.crm.objects.basic_api.get_page("deals")
        with pytest.raises(ApiException) as caught:
            client.crm.objects.basic_api.get_page("deals")
        assert caught.value.status == 429 and "Retry-After" in caught.value.headers
        assert error_of(caught.value)["policyName"] == "TEN_SECONDLY_ROLLING"


def test_properties_create_409_and_option_validation(
    client: HubSpot, emulator: HubSpotEmulator
) -> None:
    core = client.crm.properties.core_api
    names = {p.name: p for p in core.get_all("deals").results}
    assert not names["deal_category"].hubspot_defined and names["dealstage"].hubspot_defined
    spec = PropertyCreate(
        name="health_score",
        label="Health score",
        type="enumeration",
        field_type="select",
        group_name="dealinformation",
        options=[
            {"label": "Good", "value": "good", "hidden": False},
            {"label": "Bad", "value": "bad", "hidden": False},
        ],
    )
    created = core.create("deals", spec)
    assert created.name == "health_score"
    with pytest.raises(PropertiesApiException) as caught:
        core.create("deals", spec)
    assert caught.value.status == 409
    deal_id = emulator.hubspot_id("deal", 1)
    client.crm.objects.basic_api.update("deals", deal_id, {"properties": {"health_score": "good"}})
    assert emulator.dump()["deals"][deal_id]["properties"]["health_score"] == "good"
    with pytest.raises(ApiException) as bad:
        client.crm.objects.basic_api.update(
            "deals", deal_id, {"properties": {"health_score": "great"}}
        )
    assert bad.value.status == 400


def test_merge_contacts(client: HubSpot, emulator: HubSpotEmulator) -> None:
    keep, lose = emulator.hubspot_id("contact", 1), emulator.hubspot_id("contact", 2)
    merged = client.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=keep, object_id_to_merge=lose)
    )
    assert merged.id == keep
    assert merged.properties["hs_merged_object_ids"] == lose
    truth = emulator.dump()["contacts"]
    assert lose not in truth and truth[keep]["properties"]["hs_merged_object_ids"] == lose
    with pytest.raises(ApiException):
        client.crm.objects.basic_api.get_by_id("contacts", lose)


def test_create_and_read_only_feedback(client: HubSpot, emulator: HubSpotEmulator) -> None:
    company = emulator.hubspot_id("company", 1)
    created = client.crm.objects.basic_api.create(
        "deals",
        SimplePublicObjectInputForCreate(
            properties={"dealname": "New", "dealstage": "qualifiedtobuy", "amount": "10"},
            associations=[
                {
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                }
            ],
        ),
    )
    record = emulator.dump()["deals"][created.id]
    assert record["associations"]["companies"] == {company: 5}
    assert record["properties"]["hs_is_closed"] == "false"
    feedback = client.crm.objects.basic_api.get_page(
        "feedback_submissions", limit=5, properties=["hs_response_value", "hs_survey_type"]
    )
    assert feedback.results and feedback.results[0].properties["hs_survey_type"] == "NPS"
    with pytest.raises(ApiException) as caught:
        client.crm.objects.basic_api.create(
            "feedback_submissions", SimplePublicObjectInputForCreate(properties={})
        )
    assert caught.value.status == 403


def test_fault_knobs_reach_the_client(client: HubSpot, emulator: HubSpotEmulator) -> None:
    emulator.knobs.rate_5xx = 1.0
    with pytest.raises(ServiceException) as caught:
        client.crm.objects.basic_api.get_page("deals")
    assert caught.value.status == 502
    emulator.knobs.rate_5xx = 0.0
    assert client.crm.objects.basic_api.get_page("deals").results
    emulator.reset_calls()
    emulator.knobs.fail_always_after_calls = 1
    client.crm.objects.basic_api.get_page("deals")
    with pytest.raises(ServiceException):
        client.crm.objects.basic_api.get_page("deals")
    emulator.knobs.fail_always_after_calls = None
    emulator.knobs.rate_drop = 1.0
    no_retry = HubSpot(access_token=TOKEN, host=emulator.base_url, retry=urllib3.Retry(0))
    with pytest.raises(urllib3.exceptions.HTTPError):
        no_retry.crm.objects.basic_api.get_page("deals")
    emulator.knobs.rate_drop = 0.0
    assert emulator.calls["GET /crm/v3/objects/{type}"] == 3
    assert emulator.calls_by_path["GET /crm/v3/objects/deals"] == 3


def test_owners_paging(client: HubSpot, org: Org) -> None:
    first = client.crm.owners.owners_api.get_page(limit=2)
    assert len(first.results) == 2 and first.paging.next.after == "2"
    rest = client.crm.owners.owners_api.get_page(limit=100, after="2")
    owners = first.results + rest.results
    assert [o.email for o in owners] == [r.email for r in org.reps]
    assert owners[0].teams[0].primary


def test_stage_calculated_properties_and_owner_assigned_date(
    client: HubSpot, emulator: HubSpotEmulator, clock: FakeClock
) -> None:
    """v2 stage properties are served by name (not listed, not writable); the owner assigned
    date follows owner assignments but not removals."""
    rid = emulator.create_record(
        "deals",
        {
            "dealname": "Path",
            "dealstage": "qualifiedtobuy",
            "pipeline": "default",
            "hubspot_owner_id": "70000000001",
        },
    )
    created = clock.now
    steps = [
        ("presentationscheduled", 3_600_000),
        ("qualifiedtobuy", 7_200_000),
        ("closedwon", 10_800_000),
    ]
    for stage, offset in steps:
        clock.now = created + timedelta(milliseconds=offset)
        emulator.update_record("deals", rid, {"dealstage": stage})
    names = [
        f"hs_v2_{kind}_{stage}"
        for stage in ("qualifiedtobuy", "presentationscheduled", "closedwon", "contractsent")
        for kind in ("date_entered", "date_exited", "latest_time_in", "cumulative_time_in")
    ]
    read = client.crm.objects.batch_api.read(
        "deals",
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": rid}], properties=names + ["hubspot_owner_assigneddate"]
        ),
    )
    props = read.results[0].properties

    def at(ms: int) -> str:
        return iso(created + timedelta(milliseconds=ms))

    assert props["hs_v2_date_entered_qualifiedtobuy"] == at(7_200_000)  # the latest entry
    assert props["hs_v2_date_exited_qualifiedtobuy"] == at(10_800_000)
    assert props["hs_v2_latest_time_in_qualifiedtobuy"] == "3600000"
    assert props["hs_v2_cumulative_time_in_qualifiedtobuy"] == "7200000"
    assert props["hs_v2_date_entered_presentationscheduled"] == at(3_600_000)
    assert props["hs_v2_cumulative_time_in_presentationscheduled"] == "3600000"
    assert props["hs_v2_date_entered_closedwon"] == at(10_800_000)
    assert props["hs_v2_date_exited_closedwon"] is None  # still there
    assert props["hs_v2_latest_time_in_closedwon"] is None
    assert props["hs_v2_date_entered_contractsent"] is None  # never there
    assert props["hubspot_owner_assigneddate"] == iso(created)
    found = search(
        client,
        "deals",
        filter_groups=[
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": rid}]}
        ],
        properties=names,
    )
    assert {n: found.results[0].properties[n] for n in names} == {n: props[n] for n in names}
    listed = {p.name for p in client.crm.properties.core_api.get_all("deals").results}
    assert "hubspot_owner_assigneddate" in listed and not listed & set(names)
    for bad in (
        {"hs_v2_date_entered_closedwon": "2026-01-01T00:00:00Z"},
        {"hubspot_owner_assigneddate": "2026-01-01T00:00:00Z"},
    ):
        with pytest.raises(ApiException) as caught:
            client.crm.objects.basic_api.update("deals", rid, {"properties": bad})
        assert caught.value.status == 400
        assert error_of(caught.value)["category"] == "VALIDATION_ERROR"
        assert next(iter(bad)) in str(error_of(caught.value)["message"])

    clock.now = created + timedelta(days=1)
    emulator.update_record("deals", rid, {"hubspot_owner_id": "70000000002"})
    assert emulator.dump()["deals"][rid]["properties"]["hubspot_owner_assigneddate"] == iso(
        clock.now
    )
    clock.now = created + timedelta(days=2)
    emulator.update_record("deals", rid, {"hubspot_owner_id": ""})
    assert emulator.dump()["deals"][rid]["properties"]["hubspot_owner_assigneddate"] == iso(
        created + timedelta(days=1)
    )


def test_a_portal_without_custom_objects_lists_no_schemas(client: HubSpot) -> None:
    assert client.crm.schemas.core_api.get_all().results == []
    assert client.crm.schemas.core_api.get_all(archived=True).results == []


def test_owners_are_served_500_a_page() -> None:
    org = generate_org(seed=3, deals=120, reps_per_deal=5.0)  # 600 owners
    with HubSpotEmulator(org) as emulator:
        owners = HubSpot(access_token=TOKEN, host=emulator.base_url).crm.owners.owners_api
        first = owners.get_page(limit=500)
        assert len(first.results) == 500 and first.paging.next.after == "500"
        rest = owners.get_page(limit=500, after="500")
        assert [o.email for o in first.results + rest.results] == [r.email for r in org.reps]
        assert rest.paging is None
        with pytest.raises(Exception) as caught:
            owners.get_page(limit=501)
        assert caught.value.status == 400  # type: ignore[attr-defined]


def test_tickets_have_hubspots_default_properties(client: HubSpot) -> None:
    names = {p.name for p in client.crm.properties.core_api.get_all("tickets").results}
    assert {
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "createdate",
        "hs_lastmodifieddate",
        "hubspot_owner_id",
    } <= names


def raw_search(emulator: HubSpotEmulator, body: dict[str, Any]) -> Any:
    return httpx.post(
        f"{emulator.base_url}/crm/v3/objects/deals/search",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def test_a_top_level_filters_array_is_one_filter_group(emulator: HubSpotEmulator, org: Org) -> None:
    won = {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}
    loose = raw_search(emulator, {"filters": [won], "limit": 1})
    grouped = raw_search(emulator, {"filterGroups": [{"filters": [won]}], "limit": 1})
    assert loose.status_code == grouped.status_code == 200
    assert (
        loose.json()["total"]
        == grouped.json()["total"]
        == sum(d.stage == "closed_won" for d in org.deals)
        < len(org.deals)
    )
    lost = {"propertyName": "dealstage", "operator": "EQ", "value": "closedlost"}
    both = raw_search(emulator, {"filters": [won], "filterGroups": [{"filters": [lost]}]})
    assert both.json()["total"] == sum(d.stage in ("closed_won", "closed_lost") for d in org.deals)


def test_what_the_emulator_does_not_implement_is_a_400_naming_it(emulator: HubSpotEmulator) -> None:
    refused = raw_search(emulator, {"filterGroup": [{"filters": []}], "limit": 1})
    assert refused.status_code == 400 and "filterGroup" in refused.json()["message"]
    owners = httpx.get(
        f"{emulator.base_url}/crm/v3/owners/",
        params={"idProperty": "userId"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert owners.status_code == 400 and "idProperty" in owners.json()["message"]
    listed = httpx.get(
        f"{emulator.base_url}/crm/v3/objects/deals",
        params={"sort": "amount"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert listed.status_code == 400 and "sort" in listed.json()["message"]
    batch = httpx.post(
        f"{emulator.base_url}/crm/v3/objects/deals/batch/update",
        json={"inputs": [], "upsert": True},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert batch.status_code == 400 and "upsert" in batch.json()["message"]
