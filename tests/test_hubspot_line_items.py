"""Line items: the emulator serves them as HubSpot does, and the connector syncs them exactly.

The last test proves what tests/test_kpi_parity.py's CANNOT_SERVE says of the line-item KPIs:
HubSpot and Salesforce agree on them (Vtiger, which carries no line items, is why they are listed).

The emulator part talks to it with hubspot-api-client unchanged (search, v4 associations, the
calculated `amount`). The sync part runs a full sync, then a quantity change, an archive, a purge
and a line item added through the API, and an incremental sync that must catch exactly those.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.objects import PublicObjectSearchRequest, SimplePublicObjectInputForCreate
from hubspot.crm.objects.exceptions import ApiException
from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.config import parse_settings
from kpisync.store.database import open_store
from kpisync.store.models import LineItem
from kpisync.sync import SyncOptions, sync_source
from metrics.engine import compute_values
from metrics.options import metric_config
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.kit_hubspot import KIT as HUBSPOT_KIT
from tests.kit_salesforce import KIT as SALESFORCE_KIT

LINE_ITEM_TO_DEAL = 20  # HubSpot's default association type id


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=150)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        yield HubSpotEnv(org, emulator)


def client_of(env: HubSpotEnv) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=env.emulator.base_url)


def test_emulator_serves_line_items_like_hubspot(env: HubSpotEnv, org: Org) -> None:
    client = client_of(env)
    deal = next(d for d in org.deals if len(d.line_items) >= 2)
    deal_id = env.emulator.hubspot_id("deal", deal.id)
    found = client.crm.objects.search_api.do_search(
        "line_items",
        PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}
                    ]
                }
            ],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            properties=["name", "quantity", "price", "amount", "hs_product_id"],
            limit=200,
        ),
    )
    assert found.total == sum(len(d.line_items) for d in org.deals)
    first = env.emulator.hubspot_id("line_item", deal.id * 10)
    links = client.crm.associations.v4.batch_api.get_page(
        "line_items", "deals", {"inputs": [{"id": first}]}
    )
    assert [str(t.to_object_id) for t in links.results[0].to] == [deal_id]
    assert links.results[0].to[0].association_types[0].type_id == LINE_ITEM_TO_DEAL
    record = client.crm.objects.basic_api.get_by_id(
        "line_items", first, properties=["name", "quantity", "price", "amount"]
    )
    item = deal.line_items[0]
    assert record.properties["name"] == item.product
    assert Decimal(record.properties["amount"]) == item.unit_price * item.quantity

    # amount is HubSpot's calculation: it cannot be written, and follows price and quantity
    created = client.crm.objects.basic_api.create(
        "line_items",
        SimplePublicObjectInputForCreate(
            properties={"name": "Support", "quantity": "3", "price": "12.50"},
            associations=[
                {
                    "to": {"id": deal_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": LINE_ITEM_TO_DEAL,
                        }
                    ],
                }
            ],
        ),
    )
    assert env.emulator.dump()["line_items"][created.id]["properties"]["amount"] == "37.50"
    client.crm.objects.basic_api.update("line_items", created.id, {"properties": {"quantity": "4"}})
    assert env.emulator.dump()["line_items"][created.id]["properties"]["amount"] == "50.00"
    assert created.id in env.emulator.dump()["deals"][deal_id]["associations"]["line_items"]
    with pytest.raises(ApiException) as caught:
        client.crm.objects.basic_api.update(
            "line_items", created.id, {"properties": {"amount": "1"}}
        )
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["subCategory"] == "READ_ONLY_VALUE"


def stored_items(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        return {
            r[0]: tuple(r[1:])
            for r in connection.execute(
                select(
                    col(LineItem.external_id),
                    col(LineItem.deal_id),
                    col(LineItem.product),
                    col(LineItem.quantity),
                    col(LineItem.unit_price),
                    col(LineItem.deleted_at),
                    col(LineItem.synced_at),
                )
            )
        }


def test_line_items_sync_full_then_incremental(
    sqlite_engine: Engine, env: HubSpotEnv, org: Org
) -> None:
    # Exact call counts below: the search limit (5 a second, shared by both runs' connectors)
    # must not turn a call into a 429 and its retry. Rate limits have tests of their own.
    env.emulator.search_rate_per_second = 1000
    assert sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions()).status == "succeeded"
    assert_store_equals_truth(sqlite_engine, SOURCE, env.emulator.dump(), org)
    first = stored_items(sqlite_engine)
    expected = {
        env.emulator.hubspot_id("line_item", d.id * 10 + i): (
            env.emulator.hubspot_id("deal", d.id),
            item.product,
            Decimal(item.quantity),
            item.unit_price,
        )
        for d in org.deals
        for i, item in enumerate(d.line_items)
    }
    assert {k: v[:2] + (v[2].normalize(), v[3].normalize()) for k, v in first.items()} == {
        k: v[:2] + (v[2].normalize(), v[3].normalize()) for k, v in expected.items()
    }

    changed, archived, purged = sorted(expected)[:3]
    env.emulator.update_record("line_items", changed, {"quantity": "7"})
    env.emulator.archive("line_items", archived)
    env.emulator.purge("line_items", purged)
    deal_id = env.emulator.hubspot_id("deal", org.deals[0].id)
    added = env.emulator.create_record(
        "line_items", {"name": "Onboarding", "quantity": "2", "price": "250"}, [("deals", deal_id)]
    )
    connector = env.connector()
    second = sync_source(
        sqlite_engine, SOURCE, connector, SyncOptions(purge_check_every=timedelta(0))
    )
    assert second.status == "succeeded"
    assert_store_equals_truth(sqlite_engine, SOURCE, env.emulator.dump(), org)
    after = stored_items(sqlite_engine)
    touched = {k for k, v in after.items() if first.get(k) != v}
    assert touched == {changed, archived, purged, added}
    assert after[changed][2] == Decimal(7)
    assert after[added][:4] == (deal_id, "Onboarding", Decimal(2), Decimal(250))
    assert after[archived][4] is not None and after[purged][4] is not None
    calls = connector.api_usage()
    assert calls["POST /crm/v3/objects/line_items/search"] == 1
    assert calls["POST /crm/v4/associations/line_items/deals/batch/read"] == 1
    live = sum(1 for r in env.emulator.dump()["line_items"].values() if not r["archived"])
    # the archived listing (one page), then the purge check's id listing (100 ids a page)
    assert calls["GET /crm/v3/objects/line_items"] == 1 + math.ceil(live / 100)


LINE_ITEM_KPIS = ("units_sold", "cross_sell_rate")


def test_line_item_kpis_agree_with_salesforce(tmp_path: Path) -> None:
    org = generate_org(seed=21, deals=120)
    now = datetime(2026, 10, 31, tzinfo=UTC)
    config = metric_config(
        parse_settings(
            {
                "kpisync": {"timezone": "Europe/Warsaw", "currency": "USD"},
                "metrics": {"currency_rates": {"EUR": 1.08, "GBP": 1.27, "PLN": 0.25}},
            }
        )
    )
    results = []
    for kit in (HUBSPOT_KIT, SALESFORCE_KIT):
        engine = open_store(f"sqlite:///{tmp_path / kit.name}.db")
        with kit.serve(org) as served:
            synced = sync_source(engine, served.source, served.connector(), SyncOptions())
            assert synced.status == "succeeded"
        with engine.begin() as connection:
            values = compute_values(connection, config, now=now, only=LINE_ITEM_KPIS)
        engine.dispose()
        # rep keys are each CRM's own user ids; every other grain is CRM-neutral
        results.append(
            {
                (v.kpi, v.period, v.period_start, v.grain, v.key): (
                    None if v.value is None else round(float(v.value), 6),
                    v.count,
                )
                for v in values
                if v.grain != "rep"
            }
        )
    hubspot, salesforce = results
    assert (
        sum(
            1
            for k, (value, _) in hubspot.items()
            if k[0] == "units_sold" and k[3] == "product" and value
        )
        > 50
    )
    assert sum(1 for k, (value, _) in hubspot.items() if k[0] == "cross_sell_rate" and value) > 5
    assert hubspot == salesforce
