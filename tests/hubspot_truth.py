"""What the store must hold after syncing a HubSpot emulator: derived from its truth dump, by hand.

Written independently of the connector's mappers, so a mapping bug shows up as a difference.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from emulators.hubspot.schema import snake_case
from emulators.org.model import Org
from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    Lead,
    LineItem,
    SurveyResponse,
    User,
)
from tests.harness import normal_values

LEAD_STAGES = {"subscriber", "lead", "marketingqualifiedlead"}
SALES_STAGES = ("salesqualifiedlead", "opportunity", "customer", "evangelist", "other")
CUSTOM_OF = {"account": "companies", "contact": "contacts", "lead": "contacts", "deal": "deals"}


def custom_names(org: Org) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for field in org.custom_fields:
        names.setdefault(CUSTOM_OF.get(field.entity, field.entity), set()).add(
            snake_case(field.label)
        )
    return names


def _live(
    dump: dict[str, dict[str, dict[str, Any]]], object_type: str
) -> dict[str, dict[str, Any]]:
    return {rid: r for rid, r in dump.get(object_type, {}).items() if not r["archived"]}


def _none(value: Any) -> Any:
    return None if value in (None, "") else value


def _custom(record: dict[str, Any], names: set[str]) -> dict[str, Any]:
    props = record["properties"]
    return {n: _none(props.get(n)) for n in names if _none(props.get(n)) is not None}


def _assoc(record: dict[str, Any], to_type: str) -> str | None:
    linked = sorted((record.get("associations") or {}).get(to_type, {}))
    return linked[0] if linked else None


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _converted_at(props: dict[str, Any]) -> datetime | None:
    """The first day in a sales stage: when the lead was handed over."""
    dates = [
        _instant(_none(props.get(f"hs_lifecyclestage_{stage}_date"))) for stage in SALES_STAGES
    ]
    return min((d for d in dates if d is not None), default=None)


def _day(value: str | None) -> date | None:
    return (
        datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()
        if value
        else None
    )


def _live_deal(deal_id: str | None, live_deals: set[str] | dict[str, Any]) -> str | None:
    return deal_id if deal_id in live_deals else None


def expected_rows(dump: dict[str, Any], org: Org) -> dict[str, dict[str, tuple[Any, ...]]]:
    """entity -> external_id -> the tuple of fields the store must hold."""
    custom = custom_names(org)
    expected: dict[str, dict[str, tuple[Any, ...]]] = {}
    expected["account"] = {
        rid: (
            p["name"],
            _none(p.get("type")),
            _none(p.get("country")),
            _none(p.get("hubspot_owner_id")),
            _custom(r, custom.get("companies", set())),
        )
        for rid, r in _live(dump, "companies").items()
        for p in [r["properties"]]
    }
    contacts, leads = {}, {}
    for rid, r in _live(dump, "contacts").items():
        p = r["properties"]
        stage = p.get("lifecyclestage") or ""
        if stage not in LEAD_STAGES or _none(p.get("associatedcompanyid")):
            contacts[rid] = (
                _none(p.get("email")),
                _none(p.get("lastname")),
                _none(p.get("associatedcompanyid")),
                _custom(r, custom.get("contacts", set())),
            )
        if _none(p.get("hs_lifecyclestage_lead_date")) or stage in LEAD_STAGES:
            converted = stage not in LEAD_STAGES
            leads[rid] = (
                _none(p.get("email")),
                _none(p.get("hs_lead_status")),
                converted,
                _converted_at(p) if converted else None,
            )
    expected["contact"], expected["lead"] = contacts, leads
    expected["deal"] = {
        rid: (
            _none(p.get("dealname")),
            Decimal(p["amount"]) if _none(p.get("amount")) else None,
            p.get("dealstage"),
            _day(_none(p.get("closedate"))),
            _none(p.get("hubspot_owner_id")),
            _assoc(r, "companies"),
            _custom(r, custom.get("deals", set())),
        )
        for rid, r in _live(dump, "deals").items()
        for p in [r["properties"]]
    }
    # A line item's or an activity's deal is checked only while that deal is live: HubSpot does
    # not date the loss of an association (a purged deal's line items and activities keep their
    # modified time, so no incremental sync sees it), and the KPIs join them to live deals only.
    live_deals = set(_live(dump, "deals"))
    expected["line_item"] = {
        rid: (
            _live_deal(_assoc(r, "deals"), live_deals),
            _none(p.get("hs_sku")) or _none(p.get("name")),
            Decimal(p["quantity"]) if _none(p.get("quantity")) else None,
            Decimal(p["price"]) if _none(p.get("price")) else None,
        )
        for rid, r in _live(dump, "line_items").items()
        for p in [r["properties"]]
    }
    activities = {}
    for object_type in ("calls", "emails", "meetings", "tasks"):
        for rid, r in _live(dump, object_type).items():
            activities[rid] = (
                object_type.rstrip("s"),
                _none(r["properties"].get("hubspot_owner_id")),
                _assoc(r, "contacts"),
                _live_deal(_assoc(r, "deals"), live_deals),
            )
    expected["activity"] = activities
    expected["survey_response"] = {
        rid: (
            int(r["properties"]["hs_response_value"]),
            _none(r["properties"].get("hs_contact_id")),
        )
        for rid, r in _live(dump, "feedback_submissions").items()
    }
    return expected


def store_rows(engine: Engine, source: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """The same shape read back from the store (live rows only)."""
    queries = {
        "account": select(
            col(Account.external_id),
            col(Account.name),
            col(Account.type),
            col(Account.country),
            col(Account.owner_id),
            col(Account.custom),
        ).where(col(Account.deleted_at).is_(None)),
        "contact": select(
            col(Contact.external_id),
            col(Contact.email),
            col(Contact.last_name),
            col(Contact.account_id),
            col(Contact.custom),
        ).where(col(Contact.deleted_at).is_(None)),
        "lead": select(
            col(Lead.external_id),
            col(Lead.email),
            col(Lead.status),
            col(Lead.is_converted),
            col(Lead.converted_at),
        ).where(col(Lead.deleted_at).is_(None)),
        "deal": select(
            col(Deal.external_id),
            col(Deal.name),
            col(Deal.amount),
            col(Deal.stage),
            col(Deal.close_date),
            col(Deal.owner_id),
            col(Deal.account_id),
            col(Deal.custom),
        ).where(col(Deal.deleted_at).is_(None)),
        "line_item": select(
            col(LineItem.external_id),
            col(LineItem.deal_id),
            col(LineItem.product),
            col(LineItem.quantity),
            col(LineItem.unit_price),
        ).where(col(LineItem.deleted_at).is_(None)),
        "activity": select(
            col(Activity.external_id),
            col(Activity.kind),
            col(Activity.owner_id),
            col(Activity.contact_id),
            col(Activity.deal_id),
        ).where(col(Activity.deleted_at).is_(None)),
        "survey_response": select(
            col(SurveyResponse.external_id),
            col(SurveyResponse.score),
            col(SurveyResponse.contact_id),
        ).where(col(SurveyResponse.deleted_at).is_(None)),
    }
    found: dict[str, dict[str, tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for entity, query in queries.items():
            table = query.get_final_froms()[0]
            rows = connection.execute(
                query.where(query.selected_columns[0].is_not(None), table.c.source == source)
            ).all()
            found[entity] = {row[0]: normal_values(tuple(row[1:])) for row in rows}
    found["line_item"] = {
        rid: (_live_deal(row[0], found["deal"]), *row[1:])
        for rid, row in found["line_item"].items()
    }
    found["activity"] = {
        rid: (*row[:3], _live_deal(row[3], found["deal"])) for rid, row in found["activity"].items()
    }
    return found


def assert_store_equals_truth(engine: Engine, source: str, dump: dict[str, Any], org: Org) -> None:
    expected = expected_rows(dump, org)
    for rows in expected.values():
        for key, values in rows.items():
            rows[key] = normal_values(values)
    actual = store_rows(engine, source)
    for entity in expected:
        missing = expected[entity].keys() - actual[entity].keys()
        extra = actual[entity].keys() - expected[entity].keys()
        assert not missing and not extra, (
            f"{entity}: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
        )
        wrong = [k for k in expected[entity] if expected[entity][k] != actual[entity][k]]
        assert not wrong, (
            f"{entity}: {len(wrong)} rows differ, e.g. {wrong[0]}: "
            f"expected {expected[entity][wrong[0]]}, stored {actual[entity][wrong[0]]}"
        )


def owners_in_store(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        return {
            r[0]: tuple(r[1:])
            for r in connection.execute(
                select(col(User.external_id), col(User.name), col(User.team), col(User.is_active))
            )
        }
