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
from sqlmodel import col

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
        e.ws_id: (
            " ".join(p for p in (e.fields["first_name"], e.fields["last_name"]) if p) or None,
            _v(e.fields["email1"]),
            _v(e.fields["department"]),
            e.fields["status"] == "Active",
        )
        for e in dump["Users"].values()
    }
    expected["account"] = {
        ws: (
            f["accountname"],
            _v(f["accounttype"]),
            _v(f["bill_country"]),
            _v(f["assigned_user_id"]),
            _custom(e),
            _utc(e.modified),
        )
        for ws, e in _live(dump, "Accounts").items()
        for f in [e.fields]
    }
    expected["contact"] = {
        ws: (_v(f["email"]), _v(f["lastname"]), _v(f["account_id"]), _custom(e))
        for ws, e in _live(dump, "Contacts").items()
        for f in [e.fields]
    }
    expected["lead"] = {
        ws: (_v(e.fields["email"]), _v(e.fields["leadstatus"]), False)
        for ws, e in _live(dump, "Leads").items()
    }
    expected["deal"] = {
        ws: (
            _v(f["potentialname"]),
            Decimal(f["amount"]) if f["amount"] else None,
            f["sales_stage"],
            date.fromisoformat(f["closingdate"]),
            _v(f["assigned_user_id"]),
            f["related_to"] if f["related_to"].startswith("11x") else None,
            _custom(e),
            _utc(e.modified),
        )
        for ws, e in _live(dump, "Potentials").items()
        for f in [e.fields]
    }
    activities = {}
    for module in ("Calendar", "Events"):
        for ws, e in _live(dump, module).items():
            f = e.fields
            kind = "task" if module == "Calendar" else f["activitytype"].lower()
            deal = f["parent_id"] if f["parent_id"].startswith("13x") else None
            direction = "outbound" if module == "Calendar" else _direction(e)
            activities[ws] = (
                kind,
                _v(f["assigned_user_id"]),
                _v(f["contact_id"]),
                deal,
                _start(e, zone),
                direction,
            )
    expected["activity"] = activities
    expected["survey_response"] = {
        ws: (
            f["survey_type"].lower(),
            int(f["score"]),
            _v(f["contact_id"]),
            _v(f["account_id"]),
            datetime.fromisoformat(f["answered_on"]).replace(tzinfo=zone).astimezone(UTC),
        )
        for ws, e in _live(dump, SURVEY_MODULE).items()
        for f in [e.fields]
    }
    return expected


def store_rows(engine: Engine, source: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    queries = {
        "user": select(
            col(User.external_id),
            col(User.name),
            col(User.email),
            col(User.team),
            col(User.is_active),
        ).where(col(User.source) == source),
        "account": select(
            col(Account.external_id),
            col(Account.name),
            col(Account.type),
            col(Account.country),
            col(Account.owner_id),
            col(Account.custom),
            col(Account.modified_at),
        ).where(col(Account.deleted_at).is_(None), col(Account.source) == source),
        "contact": select(
            col(Contact.external_id),
            col(Contact.email),
            col(Contact.last_name),
            col(Contact.account_id),
            col(Contact.custom),
        ).where(col(Contact.deleted_at).is_(None), col(Contact.source) == source),
        "lead": select(
            col(Lead.external_id), col(Lead.email), col(Lead.status), col(Lead.is_converted)
        ).where(
            col(Lead.deleted_at).is_(None),
            col(Lead.is_converted).is_(False),
            col(Lead.source) == source,
        ),
        "deal": select(
            col(Deal.external_id),
            col(Deal.name),
            col(Deal.amount),
            col(Deal.stage),
            col(Deal.close_date),
            col(Deal.owner_id),
            col(Deal.account_id),
            col(Deal.custom),
            col(Deal.modified_at),
        ).where(col(Deal.deleted_at).is_(None), col(Deal.source) == source),
        "activity": select(
            col(Activity.external_id),
            col(Activity.kind),
            col(Activity.owner_id),
            col(Activity.contact_id),
            col(Activity.deal_id),
            col(Activity.occurred_at),
            col(Activity.direction),
        ).where(col(Activity.deleted_at).is_(None), col(Activity.source) == source),
        "survey_response": select(
            col(SurveyResponse.external_id),
            col(SurveyResponse.kind),
            col(SurveyResponse.score),
            col(SurveyResponse.contact_id),
            col(SurveyResponse.account_id),
            col(SurveyResponse.answered_at),
        ).where(col(SurveyResponse.deleted_at).is_(None), col(SurveyResponse.source) == source),
    }
    found: dict[str, dict[str, tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for entity, query in queries.items():
            rows = connection.execute(query).all()
            found[entity] = {row[0]: normal_values(tuple(row[1:])) for row in rows}
    return found


def assert_store_equals_truth(engine: Engine, source: str, dump: Truth, zone: ZoneInfo) -> None:
    expected = {
        entity: {k: normal_values(v) for k, v in rows.items()}
        for entity, rows in expected_rows(dump, zone).items()
    }
    actual = store_rows(engine, source)
    for entity, rows in expected.items():
        stored = actual[entity]
        missing, extra = rows.keys() - stored.keys(), stored.keys() - rows.keys()
        assert not missing and not extra, (
            f"{entity}: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
        )
        wrong = [k for k in rows if rows[k] != stored[k]]
        assert not wrong, (
            f"{entity}: {len(wrong)} rows differ, e.g. {wrong[0]}: "
            f"expected {rows[wrong[0]]}, stored {stored[wrong[0]]}"
        )
