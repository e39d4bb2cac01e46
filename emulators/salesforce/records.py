"""Translate the neutral synthetic org into the Salesforce emulator's truth (Salesforce shapes).

A record is a dict of field name -> Python value (str, bool, int, Decimal, date, or a UTC datetime)
holding every field of its object. Ids come from `make_id(object, neutral id)`, so the same org
always gets the same ids. A converted lead keeps its own 00Q record (IsConverted, ConvertedDate,
Converted*Id) beside the contact it became; activities logged on a converted lead point at that
contact, as Salesforce moves them on conversion. Tasks hold calls, emails and to-dos (TaskSubtype),
Events hold meetings. Each opportunity's stage path becomes OpportunityHistory rows; with
field-history tracking on, its creation and owner changes become OpportunityFieldHistory rows
(an owner change writes two, one with the user ids and one with their names, as Salesforce does
for lookup fields).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from emulators.org.model import Activity, Deal, Org, Rep
from emulators.salesforce.schema import (
    FIELD_HISTORY,
    SURVEY_OBJECT,
    Schema,
    api_name,
    make_id,
)

Record = dict[str, Any]
Truth = dict[str, dict[str, Record]]
ADMIN_NUMBER = 999_999  # the emulator's integration user, who "creates" system rows
ACCOUNT_TYPE = {
    "prospect": "Prospect",
    "customer": "Customer - Direct",
    "former_customer": "Former Customer",
}
LEAD_STATUS = {
    "new": "Open - Not Contacted",
    "working": "Working - Contacted",
    "qualified": "Qualified",
    "unqualified": "Closed - Not Converted",
    "converted": "Closed - Converted",
}
DEAL_TYPE = {
    "new": "New Customer",
    "upgrade": "Existing Customer - Upgrade",
    "cross_sell": "Existing Customer - Upgrade",
    "renewal": "Existing Customer - Replacement",
}
PRODUCTS = ("Core", "Analytics", "Support", "Onboarding", "Integrations")


def admin_id() -> str:
    return make_id("User", ADMIN_NUMBER)


def blank(schema: Schema, sobject: str) -> Record:
    """Every field of `sobject` at None."""
    return {name: None for name in schema.objects[sobject].fields}


def stamped(
    schema: Schema,
    sobject: str,
    rid: str,
    created: datetime,
    modified: datetime,
    owner: str | None,
    values: dict[str, Any],
) -> Record:
    record = blank(schema, sobject)
    record.update(values)
    by = owner or admin_id()
    record.update(
        Id=rid, IsDeleted=False, CreatedDate=created, CreatedById=by, SystemModstamp=modified
    )
    if "LastModifiedDate" in record:
        record.update(LastModifiedDate=modified, LastModifiedById=by)
    if "SystemModstamp" not in schema.objects[sobject].fields:
        del record["SystemModstamp"]
    return record


def field_history(
    schema: Schema,
    number: int,
    opportunity: str,
    at: datetime,
    by: str,
    change: tuple[str, str | None, str | None],
) -> Record:
    """One OpportunityFieldHistory row: change is (Field, OldValue, NewValue); DataType follows."""
    name, old, new = change
    kind = "EntityId" if name == "Owner" and (old or new or "").startswith("005") else "Text"
    hid = make_id(FIELD_HISTORY, number)
    return stamped(
        schema,
        FIELD_HISTORY,
        hid,
        at,
        at,
        by,
        {
            "OpportunityId": opportunity,
            "Field": name,
            "DataType": kind,
            "OldValue": old,
            "NewValue": new,
        },
    )


def owner_change_rows(
    schema: Schema,
    numbers: Iterator[int],
    opportunity: str,
    at: datetime,
    old: str | None,
    new: str | None,
    names: dict[str, str],
) -> list[Record]:
    """An owner change as tracking records it: a row of user ids, then a row of their names."""
    return [
        field_history(schema, next(numbers), opportunity, at, admin_id(), ("Owner", old, new)),
        field_history(
            schema,
            next(numbers),
            opportunity,
            at,
            admin_id(),
            ("Owner", names.get(old or ""), names.get(new or "")),
        ),
    ]


def custom_values(custom: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, value in custom.items():
        name = api_name(label)
        out[name] = Decimal(value) if types.get(name) == "double" else value
    return out


def forecast_category(is_closed: bool, is_won: bool) -> str:
    return "Closed" if is_won else "Omitted" if is_closed else "Pipeline"


def build_truth(org: Org, schema: Schema) -> Truth:
    truth: Truth = {name: {} for name in schema.objects}
    add_users(truth, schema, org)
    for number, stage in enumerate(org.stages, start=1):
        rid = make_id("OpportunityStage", number)
        at = org.now.replace(year=org.now.year - 4)
        truth["OpportunityStage"][rid] = stamped(
            schema,
            "OpportunityStage",
            rid,
            at,
            at,
            None,
            {
                "MasterLabel": stage.label,
                "ApiName": stage.label,
                "IsActive": True,
                "IsClosed": stage.is_closed,
                "IsWon": stage.is_won,
                "DefaultProbability": stage.probability * 100,
                "ForecastCategoryName": forecast_category(stage.is_closed, stage.is_won),
                "SortOrder": stage.order + 1,
            },
        )
    types = {n: f.type for obj in schema.objects.values() for n, f in obj.fields.items()}
    for acc in org.accounts:
        rid = make_id("Account", acc.id)
        truth["Account"][rid] = stamped(
            schema,
            "Account",
            rid,
            acc.created_at,
            acc.modified_at,
            user_id(acc.owner_id),
            dict(
                Name=acc.name,
                Type=ACCOUNT_TYPE[acc.type],
                Industry=acc.industry,
                BillingCountry=acc.country,
                BillingState=acc.state,
                BillingCity=acc.city,
                OwnerId=user_id(acc.owner_id),
                **custom_values(acc.custom, types),
            ),
        )
    for c in org.contacts:
        rid = make_id("Contact", c.id)
        truth["Contact"][rid] = stamped(
            schema,
            "Contact",
            rid,
            c.created_at,
            c.modified_at,
            user_id(c.owner_id),
            dict(
                FirstName=c.first_name,
                LastName=c.last_name,
                Name=f"{c.first_name} {c.last_name}",
                Email=c.email,
                Phone=c.phone,
                Title=c.title,
                AccountId=make_id("Account", c.account_id) if c.account_id else None,
                OwnerId=user_id(c.owner_id),
                LeadSource=c.lead_source,
                **custom_values(c.custom, types),
            ),
        )
    for lead in org.leads:
        rid = make_id("Lead", lead.id)
        converted = lead.converted_at is not None
        truth["Lead"][rid] = stamped(
            schema,
            "Lead",
            rid,
            lead.created_at,
            lead.modified_at,
            user_id(lead.owner_id),
            dict(
                FirstName=lead.first_name,
                LastName=lead.last_name,
                Name=f"{lead.first_name} {lead.last_name}",
                Email=lead.email,
                Phone=lead.phone,
                Company=lead.company,
                Status=LEAD_STATUS[lead.status],
                LeadSource=lead.source,
                OwnerId=user_id(lead.owner_id),
                IsConverted=converted,
                ConvertedDate=lead.converted_at.date() if lead.converted_at else None,
                ConvertedAccountId=ref("Account", lead.converted_account_id),
                ConvertedContactId=ref("Contact", lead.converted_contact_id),
                ConvertedOpportunityId=ref("Opportunity", lead.converted_deal_id),
                **custom_values(lead.custom, types),
            ),
        )
    add_deals(truth, schema, org, types)
    add_activities(truth, schema, org)
    add_answers(truth, schema, org)
    return truth


def ref(sobject: str, neutral: int | None) -> str | None:
    return make_id(sobject, neutral) if neutral else None


def user_id(rep_id: int) -> str:
    return make_id("User", rep_id)


def add_users(truth: Truth, schema: Schema, org: Org) -> None:
    teams = sorted({rep.team for rep in org.reps})
    role_ids = {team: make_id("UserRole", number) for number, team in enumerate(teams, start=1)}
    at = org.now.replace(year=org.now.year - 8)
    for team, rid in role_ids.items():
        truth["UserRole"][rid] = stamped(schema, "UserRole", rid, at, at, None, {"Name": team})
    for rep in org.reps:
        truth["User"][user_id(rep.id)] = user_record(schema, rep, role_ids)


def user_record(schema: Schema, rep: Rep, role_ids: dict[str, str]) -> Record:
    rid = user_id(rep.id)
    return stamped(
        schema,
        "User",
        rid,
        rep.created_at,
        rep.created_at,
        None,
        {
            "Username": rep.email,
            "FirstName": rep.first_name,
            "LastName": rep.last_name,
            "Name": f"{rep.first_name} {rep.last_name}",
            "Email": rep.email,
            "IsActive": rep.active,
            "UserRoleId": role_ids[rep.team],
            "ManagerId": ref("User", rep.manager_id),
            "Start_Date__c": rep.started_on,
            "TimeZoneSidKey": "Europe/London",
        },
    )


def add_deals(truth: Truth, schema: Schema, org: Org, types: dict[str, str]) -> None:
    stages = {s.key: s for s in org.stages}
    history_number = 0
    tracking = FIELD_HISTORY in truth
    names = {user_id(rep.id): f"{rep.first_name} {rep.last_name}" for rep in org.reps}
    numbers = itertools.count(1)
    for d in org.deals:
        rid = make_id("Opportunity", d.id)
        stage = stages[d.stage]
        truth["Opportunity"][rid] = stamped(
            schema,
            "Opportunity",
            rid,
            d.created_at,
            d.modified_at,
            user_id(d.owner_id),
            opportunity_values(d, stage, types),
        )
        if tracking:
            add_owner_history(truth, schema, numbers, d, names)
        for change in d.stage_history:
            history_number += 1
            hid = make_id("OpportunityHistory", history_number)
            past = stages[change.stage]
            truth["OpportunityHistory"][hid] = stamped(
                schema,
                "OpportunityHistory",
                hid,
                change.at,
                change.at,
                user_id(d.owner_id),
                {
                    "OpportunityId": rid,
                    "StageName": past.label,
                    "Amount": d.amount,
                    "CloseDate": d.close_date,
                    "Probability": past.probability * 100,
                },
            )
        for index, item in enumerate(d.line_items):
            lid = make_id("OpportunityLineItem", d.id * 10 + index)
            truth["OpportunityLineItem"][lid] = stamped(
                schema,
                "OpportunityLineItem",
                lid,
                d.created_at,
                d.created_at,
                user_id(d.owner_id),
                {
                    "OpportunityId": rid,
                    "Product2Id": make_id("Product2", PRODUCTS.index(item.product) + 1),
                    "ProductCode": item.product,
                    "Name": f"{d.name} {item.product}",
                    "Quantity": Decimal(item.quantity),
                    "UnitPrice": item.unit_price,
                    "TotalPrice": item.unit_price * item.quantity,
                },
            )


def add_owner_history(
    truth: Truth, schema: Schema, numbers: Iterator[int], d: Deal, names: dict[str, str]
) -> None:
    """The 'created' row, then two rows per reassignment (the owner history after the first)."""
    rid = make_id("Opportunity", d.id)
    rows = [
        field_history(
            schema,
            next(numbers),
            rid,
            d.created_at,
            user_id(d.owner_history[0].owner_id) if d.owner_history else admin_id(),
            ("created", None, None),
        )
    ]
    for before, after in itertools.pairwise(d.owner_history):
        rows += owner_change_rows(
            schema, numbers, rid, after.at, user_id(before.owner_id), user_id(after.owner_id), names
        )
    for row in rows:
        truth[FIELD_HISTORY][row["Id"]] = row


def opportunity_values(d: Deal, stage: Any, types: dict[str, str]) -> dict[str, Any]:
    return dict(
        Name=d.name,
        AccountId=make_id("Account", d.account_id),
        ContactId=ref("Contact", d.contact_id),
        OwnerId=user_id(d.owner_id),
        StageName=stage.label,
        Amount=d.amount,
        CurrencyIsoCode=d.currency,
        Probability=stage.probability * 100,
        CloseDate=d.close_date,
        Type=DEAL_TYPE[d.deal_type],
        IsClosed=stage.is_closed,
        IsWon=stage.is_won,
        ForecastCategoryName=forecast_category(stage.is_closed, stage.is_won),
        Loss_Reason__c=d.loss_reason,
        **custom_values(d.custom, types),
    )


def who_of(a: Activity, lead_contact: dict[int, int]) -> str | None:
    if a.contact_id is not None:
        return make_id("Contact", a.contact_id)
    if a.lead_id is not None:
        converted = lead_contact.get(a.lead_id)
        return make_id("Contact", converted) if converted else make_id("Lead", a.lead_id)
    return None


def add_activities(truth: Truth, schema: Schema, org: Org) -> None:
    lead_contact = {
        lead.id: lead.converted_contact_id
        for lead in org.leads
        if lead.converted_contact_id is not None
    }
    for a in org.activities:
        sobject = "Event" if a.kind == "meeting" else "Task"
        rid = make_id(sobject, a.id)
        what = ref("Opportunity", a.deal_id) or ref("Account", a.account_id)
        common = {
            "Subject": a.subject,
            "WhoId": who_of(a, lead_contact),
            "WhatId": what,
            "AccountId": ref("Account", a.account_id),
            "OwnerId": user_id(a.owner_id),
        }
        truth[sobject][rid] = stamped(
            schema,
            sobject,
            rid,
            a.created_at,
            a.modified_at,
            user_id(a.owner_id),
            {**common, **activity_values(a)},
        )


def activity_values(a: Activity) -> dict[str, Any]:
    if a.kind == "meeting":
        return {
            "StartDateTime": a.occurred_at,
            "ActivityDateTime": a.occurred_at,
            "EndDateTime": a.occurred_at + timedelta(seconds=a.duration_seconds),
            "DurationInMinutes": a.duration_seconds // 60,
            "EventSubtype": "Event",
            "Type": "Meeting",
        }
    done = a.status == "completed"
    values: dict[str, Any] = {
        "Status": "Completed" if done else "Not Started",
        "Priority": "Normal",
        "ActivityDate": a.occurred_at.date(),
        "IsClosed": done,
        "CompletedDateTime": a.occurred_at if done else None,
        "TaskSubtype": {"call": "Call", "email": "Email"}.get(a.kind, "Task"),
        "Type": {"call": "Call", "email": "Email"}.get(a.kind, "Other"),
    }
    if a.kind == "call":
        values.update(
            CallType="Inbound" if a.direction == "inbound" else "Outbound",
            CallDurationInSeconds=a.duration_seconds,
        )
    return values


def add_answers(truth: Truth, schema: Schema, org: Org) -> None:
    """NPS answers as NPS_Response__c records (eNPS answers stay in the survey tool)."""
    accounts = {c.id: c.account_id for c in org.contacts}
    for answer in org.survey_answers:
        if answer.kind != "nps" or answer.respondent_contact_id is None:
            continue
        rid = make_id(SURVEY_OBJECT, answer.id)
        account = answer.account_id or accounts.get(answer.respondent_contact_id)
        truth[SURVEY_OBJECT][rid] = stamped(
            schema,
            SURVEY_OBJECT,
            rid,
            answer.answered_at,
            answer.modified_at,
            None,
            {
                "Name": f"NPS-{answer.id:06d}",
                "Score__c": Decimal(answer.score),
                "Contact__c": make_id("Contact", answer.respondent_contact_id),
                "Account__c": ref("Account", account),
                "Answered_At__c": answer.answered_at,
                "Survey_Type__c": "NPS",
            },
        )


def utc_now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
