"""What the store must hold after syncing a Salesforce emulator: derived from its truth dump, by hand.

Written independently of the connector's mappers, so a mapping bug shows up as a difference.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    ExchangeRate,
    Lead,
    LineItem,
    Quota,
    RecordBase,
    SurveyResponse,
    User,
)
from tests.harness import normal_values

Dump = dict[str, dict[str, dict[str, Any]]]


def _live(dump: Dump, sobject: str) -> dict[str, dict[str, Any]]:
    return {rid: r for rid, r in dump.get(sobject, {}).items() if not r["IsDeleted"]}


def _custom(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in record.items():
        if name.endswith(("__c", "__s")) and value is not None:  # __s: compound components
            out[name] = format(value.normalize(), "f") if isinstance(value, Decimal) else value
    return out


def _prefixed(value: str | None, prefix: str) -> str | None:
    return value if value and value.startswith(prefix) else None


def expected_rows(dump: Dump) -> dict[str, dict[str, tuple[Any, ...]]]:
    roles = {rid: r["Name"] for rid, r in dump["UserRole"].items()}
    expected: dict[str, dict[str, tuple[Any, ...]]] = {
        "user": {
            rid: (
                r["Name"],
                r["Email"],
                roles.get(r["UserRoleId"]),
                r["ManagerId"],
                r["Start_Date__c"],
                r["IsActive"],
            )
            for rid, r in dump["User"].items()
        },
        "account": {
            rid: (r["Name"], r["Type"], r["BillingCountry"], r["OwnerId"], _custom(r))
            for rid, r in _live(dump, "Account").items()
        },
        "contact": {
            rid: (r["Email"], r["LastName"], r["AccountId"], _custom(r))
            for rid, r in _live(dump, "Contact").items()
        },
        "lead": {
            rid: (r["Email"], r["Status"], r["IsConverted"], r["ConvertedContactId"])
            for rid, r in _live(dump, "Lead").items()
        },
        "deal": {
            rid: (
                r["Name"],
                r["Amount"],
                r["StageName"],
                r["IsWon"],
                r["CloseDate"],
                r["OwnerId"],
                r["AccountId"],
                r["CurrencyIsoCode"],
                _custom(r),
            )
            for rid, r in _live(dump, "Opportunity").items()
        },
        "line_item": {
            rid: (r["OpportunityId"], r["ProductCode"], r["Quantity"], r["UnitPrice"])
            for rid, r in _live(dump, "OpportunityLineItem").items()
        },
        "survey_response": {
            rid: (int(r["Score__c"]), r["Contact__c"])
            for rid, r in _live(dump, "NPS_Response__c").items()
        },
    }
    activities = {}
    for rid, r in _live(dump, "Task").items():
        kind = {"Call": "call", "Email": "email"}.get(r["TaskSubtype"], "task")
        activities[rid] = (
            kind,
            r["OwnerId"],
            _prefixed(r["WhoId"], "003"),
            _prefixed(r["WhatId"], "006"),
        )
    for rid, r in _live(dump, "Event").items():
        activities[rid] = (
            "meeting",
            r["OwnerId"],
            _prefixed(r["WhoId"], "003"),
            _prefixed(r["WhatId"], "006"),
        )
    expected["activity"] = activities
    expected.update(expected_rates_and_quotas(dump))
    return expected


def expected_rates_and_quotas(dump: Dump) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Dated rates where the org has them, else CurrencyType; revenue (IsAmount) quotas."""

    def open_end(day: date | None, edge: int) -> date | None:
        return None if day is None or day.year == edge else day

    if "DatedConversionRate" in dump:
        rates = {
            rid: (
                r["IsoCode"],
                r["ConversionRate"],
                open_end(r["StartDate"], 1),
                open_end(r["NextStartDate"], 9999),
            )
            for rid, r in dump["DatedConversionRate"].items()
        }
    else:
        rates = {
            rid: (r["IsoCode"], r["ConversionRate"], None, None)
            for rid, r in dump.get("CurrencyType", {}).items()
        }
    quotas = {
        rid: (r["QuotaOwnerId"], "quarter", r["StartDate"], r["QuotaAmount"])
        for rid, r in dump.get("ForecastingQuota", {}).items()
        if r["IsAmount"]
    }
    return {"exchange_rate": rates, "quota": quotas}


def expected_stage_paths(dump: Dump) -> dict[str, list[str]]:
    """Per live opportunity, the stages it entered, oldest first (repeats of a stage collapsed)."""
    paths: dict[str, list[str]] = {rid: [] for rid in _live(dump, "Opportunity")}
    rows = sorted(
        _live(dump, "OpportunityHistory").values(),
        key=lambda h: (h["OpportunityId"], h["CreatedDate"], h["Id"]),
    )
    for row in rows:
        path = paths.get(row["OpportunityId"])
        if path is not None and (not path or path[-1] != row["StageName"]):
            path.append(row["StageName"])
    return paths


def store_rows(engine: Engine) -> dict[str, dict[str, tuple[Any, ...]]]:
    def live(model: type[RecordBase]) -> ColumnElement[bool]:
        return col(model.deleted_at).is_(None)

    queries = {
        "user": select(
            col(User.external_id),
            col(User.name),
            col(User.email),
            col(User.team),
            col(User.manager_id),
            col(User.started_on),
            col(User.is_active),
        ),
        "account": select(
            col(Account.external_id),
            col(Account.name),
            col(Account.type),
            col(Account.country),
            col(Account.owner_id),
            col(Account.custom),
        ).where(live(Account)),
        "contact": select(
            col(Contact.external_id),
            col(Contact.email),
            col(Contact.last_name),
            col(Contact.account_id),
            col(Contact.custom),
        ).where(live(Contact)),
        "lead": select(
            col(Lead.external_id),
            col(Lead.email),
            col(Lead.status),
            col(Lead.is_converted),
            col(Lead.converted_contact_id),
        ).where(live(Lead)),
        "deal": select(
            col(Deal.external_id),
            col(Deal.name),
            col(Deal.amount),
            col(Deal.stage),
            col(Deal.is_won),
            col(Deal.close_date),
            col(Deal.owner_id),
            col(Deal.account_id),
            col(Deal.currency),
            col(Deal.custom),
        ).where(live(Deal)),
        "line_item": select(
            col(LineItem.external_id),
            col(LineItem.deal_id),
            col(LineItem.product),
            col(LineItem.quantity),
            col(LineItem.unit_price),
        ).where(live(LineItem)),
        "survey_response": select(
            col(SurveyResponse.external_id),
            col(SurveyResponse.score),
            col(SurveyResponse.contact_id),
        ).where(live(SurveyResponse)),
        "activity": select(
            col(Activity.external_id),
            col(Activity.kind),
            col(Activity.owner_id),
            col(Activity.contact_id),
            col(Activity.deal_id),
        ).where(live(Activity)),
        "exchange_rate": select(
            col(ExchangeRate.external_id),
            col(ExchangeRate.currency),
            col(ExchangeRate.rate),
            col(ExchangeRate.valid_from),
            col(ExchangeRate.valid_until),
        ).where(live(ExchangeRate)),
        "quota": select(
            col(Quota.external_id),
            col(Quota.owner_id),
            col(Quota.period_kind),
            col(Quota.period_start),
            col(Quota.amount),
        ).where(live(Quota)),
    }
    with engine.connect() as connection:
        return {
            entity: {row[0]: normal_values(tuple(row[1:])) for row in connection.execute(query)}
            for entity, query in queries.items()
        }


def store_stage_paths(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(DealStageChange.deal_id), col(DealStageChange.stage))
            .where(col(DealStageChange.deleted_at).is_(None))
            .order_by(
                col(DealStageChange.deal_id),
                col(DealStageChange.entered_at),
                col(DealStageChange.external_id),
            )
        ).all()
    paths: dict[str, list[str]] = {}
    for deal_id, stage in rows:
        paths.setdefault(deal_id, []).append(stage)
    return paths


def assert_store_equals_truth(engine: Engine, dump: Dump) -> None:
    expected = {
        entity: {k: normal_values(v) for k, v in rows.items()}
        for entity, rows in expected_rows(dump).items()
    }
    actual = store_rows(engine)
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
    paths = store_stage_paths(engine)
    for rid, path in expected_stage_paths(dump).items():
        assert paths.get(rid, []) == path, f"stage history of {rid}: {paths.get(rid)} != {path}"
