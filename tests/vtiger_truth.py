"""What the store must hold after syncing a Vtiger emulator: derived from its truth dump, by hand.

Written independently of the connector's mappers (no connector code is imported), so a mapping
bug, a time-zone slip or a misread digit shows up as a difference.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from emulators.vtiger.records import Entity, Truth
from emulators.vtiger.schema import SURVEY_MODULE
from kpisync.store.models import Account, Activity, Contact, Deal, Lead, SurveyResponse, User
from tests.harness import normal_values


def _v(value: str | None) -> str | None:
    return None if value in (None, "") else value


def _custom(entity: Entity) -> dict[str, str]:
    return {k: v for k, v in entity.fields.items() if k.startswith("cf_") and v != ""}


def _utc(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


def _live(dump: Truth, module: str) -> dict[str, Entity]:
    return {e.ws_id: e for e in dump[module].values() if e.live}


def _start(entity: Entity, zone: ZoneInfo) -> datetime:
    local = datetime.fromisoformat(f"{entity.fields['date_start']} {entity.fields['time_start']}")
    return local.replace(tzinfo=zone).astimezone(UTC)


def _direction(entity: Entity) -> str | None:
    """Events carry one custom field, the admin's Direction picklist (Inbound / Outbound)."""
    said = [value for value in _custom(entity).values() if value in ("Inbound", "Outbound")]
    return said[0].lower() if said else None


def expected_rows(dump: Truth, zone: ZoneInfo) -> dict[str, dict[str, tuple[Any, ...]]]:
    expected: dict[str, dict[str, tuple[Any, ...]]] = {}
    expected["user"] = {
        e.ws_id: (" ".join(p for p in (e.fields["first_name"], e.fields["last_name"]) if p) or None,
                  _v(e.fields["email1"]), _v(e.fields["department"]),
                  e.fields["status"] == "Active")
        for e in dump["Users"].values()}
    expected["account"] = {
        ws: (f["accountname"], _v(f["accounttype"]), _v(f["bill_country"]),
             _v(f["assigned_user_id"]), _custom(e), _utc(e.modified))
        for ws, e in _live(dump, "Accounts").items() for f in [e.fields]}
    expected["contact"] = {
        ws: (_v(f["email"]), _v(f["lastname"]), _v(f["account_id"]), _custom(e))
        for ws, e in _live(dump, "Contacts").items() for f in [e.fields]}
    expected["lead"] = {ws: (_v(e.fields["email"]), _v(e.fields["leadstatus"]), False)
                        for ws, e in _live(dump, "Leads").items()}
    expected["deal"] = {
        ws: (_v(f["potentialname"]), Decimal(f["amount"]) if f["amount"] else None,
             f["sales_stage"], date.fromisoformat(f["closingdate"]), _v(f["assigned_user_id"]),
             f["related_to"] if f["related_to"].startswith("11x") else None, _custom(e),
             _utc(e.modified))
        for ws, e in _live(dump, "Potentials").items() for f in [e.fields]}
    activities = {}
    for module in ("Calendar", "Events"):
        for ws, e in _live(dump, module).items():
            f = e.fields
            kind = "task" if module == "Calendar" else f["activitytype"].lower()
            deal = f["parent_id"] if f["parent_id"].startswith("13x") else None
            direction = "outbound" if module == "Calendar" else _direction(e)
            activities[ws] = (kind, _v(f["assigned_user_id"]), _v(f["contact_id"]), deal,
                              _start(e, zone), direction)
    expected["activity"] = activities
    expected["survey_response"] = {
        ws: (f["survey_type"].lower(), int(f["score"]), _v(f["contact_id"]), _v(f["account_id"]),
             datetime.fromisoformat(f["answered_on"]).replace(tzinfo=zone).astimezone(UTC))
        for ws, e in _live(dump, SURVEY_MODULE).items() for f in [e.fields]}
    return expected


def store_rows(engine: Engine, source: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    queries = {
        "user": select(User.external_id, User.name, User.email, User.team, User.is_active)
        .where(User.source == source),
        "account": select(Account.external_id, Account.name, Account.type, Account.country,
                          Account.owner_id, Account.custom, Account.modified_at)
        .where(Account.deleted_at.is_(None), Account.source == source),
        "contact": select(Contact.external_id, Contact.email, Contact.last_name,
                          Contact.account_id, Contact.custom).where(Contact.deleted_at.is_(None), Contact.source == source),
        "lead": select(Lead.external_id, Lead.email, Lead.status, Lead.is_converted)
        .where(Lead.deleted_at.is_(None), Lead.is_converted.is_(False), Lead.source == source),
        "deal": select(Deal.external_id, Deal.name, Deal.amount, Deal.stage, Deal.close_date,
                       Deal.owner_id, Deal.account_id, Deal.custom, Deal.modified_at)
        .where(Deal.deleted_at.is_(None), Deal.source == source),
        "activity": select(Activity.external_id, Activity.kind, Activity.owner_id,
                           Activity.contact_id, Activity.deal_id, Activity.occurred_at,
                           Activity.direction)
        .where(Activity.deleted_at.is_(None), Activity.source == source),
        "survey_response": select(SurveyResponse.external_id, SurveyResponse.kind,
                                  SurveyResponse.score, SurveyResponse.contact_id,
                                  SurveyResponse.account_id, SurveyResponse.answered_at)
        .where(SurveyResponse.deleted_at.is_(None), SurveyResponse.source == source),
    }
    found: dict[str, dict[str, tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for entity, query in queries.items():
            rows = connection.execute(query).all()
            found[entity] = {row[0]: normal_values(tuple(row[1:])) for row in rows}
    return found


def assert_store_equals_truth(engine: Engine, source: str, dump: Truth, zone: ZoneInfo) -> None:
    expected = {entity: {k: normal_values(v) for k, v in rows.items()}
                for entity, rows in expected_rows(dump, zone).items()}
    actual = store_rows(engine, source)
    for entity, rows in expected.items():
        stored = actual[entity]
        missing, extra = rows.keys() - stored.keys(), stored.keys() - rows.keys()
        assert not missing and not extra, \
            f"{entity}: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
        wrong = [k for k in rows if rows[k] != stored[k]]
        assert not wrong, (f"{entity}: {len(wrong)} rows differ, e.g. {wrong[0]}: "
                           f"expected {rows[wrong[0]]}, stored {stored[wrong[0]]}")
