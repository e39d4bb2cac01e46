"""Pure mappers from Salesforce records (dicts as REST or Bulk return them) to canonical rows.

Values arrive as REST JSON (numbers as Decimal, booleans as bool, instants as
'2024-01-01T00:00:00.000+0000') or as typed Bulk CSV rows (instants as '...000Z'); both parse here.
Stage meaning (closed, won) comes from OpportunityStage, never from the stage's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from kpisync.connector import Deleted, Merged
from kpisync.mapping import say_once
from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    LineItem,
    PipelineStage,
    Row,
    SurveyResponse,
    User,
)

Record = Mapping[str, Any]
StageEntry = tuple[str, str, str]  # (CreatedDate, Id, StageName) of an OpportunityHistory row
OwnerEntry = tuple[str, str, str | None]  # (CreatedDate, Id, OldValue) of an owner change
ZERO = timedelta(0)
PIPELINE = "Opportunity"  # Salesforce has one stage picklist; sales processes only subset it


@dataclass(frozen=True)
class StageInfo:
    is_closed: bool
    is_won: bool


@dataclass(frozen=True)
class SurveyFields:
    score: str = "Score__c"
    contact: str = "Contact__c"
    account: str = "Account__c"
    answered_at: str = "Answered_At__c"
    kind: str = "Survey_Type__c"


@dataclass(frozen=True)
class MappingContext:
    stages: Mapping[str, StageInfo] = field(default_factory=dict)
    custom: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # sObject -> __c names
    roles: Mapping[str, str] = field(default_factory=dict)  # canonical role -> field name
    team_regions: Mapping[str, str] = field(default_factory=dict)
    survey: SurveyFields = SurveyFields()


def text(record: Record, name: str) -> str | None:
    value = record.get(name) if name else None
    return None if value is None or value == "" else str(value)


def instant(value: Any) -> datetime | None:
    """REST '...000+0000', Bulk '...000Z' or a date; fromisoformat reads all three (3.11)."""
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.utcoffset() == ZERO else parsed.astimezone(UTC)


def day(value: Any) -> date | None:
    if value is None or value == "":
        return None
    return date.fromisoformat(str(value)[:10])


def role_day(record: Record, name: str) -> date | None:
    """The date in a field picked by role. A role may point at a text field: a value that is not
    a date counts as missing (said once per field and process) and never stops the sync."""
    value = text(record, name)
    try:
        return day(value)
    except ValueError:
        say_once(
            f"salesforce:{name}",
            "%s holds %.40r, which is not a date (YYYY-MM-DD); such "
            "values count as missing: point the role at a date field",
            name,
            value,
        )
        return None


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def custom_of(record: Record, names: Sequence[str]) -> dict[str, Any]:
    return {name: json_safe(record.get(name)) for name in names if name in record}


def json_safe(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


def raw_of(record: Record) -> dict[str, Any]:
    """The payload as received, less `attributes`; Decimals as plain text for JSON."""
    raw = dict(record)
    raw.pop("attributes", None)
    for key, value in raw.items():
        if type(value) is Decimal:
            raw[key] = format(value.normalize(), "f")
    return raw


def modified(record: Record) -> datetime | None:
    return instant(record.get("SystemModstamp") or record.get("LastModifiedDate"))


def tombstone(entity: str, record: Record) -> Deleted | Merged:
    """A row from the recycle bin: merged into MasterRecordId, or simply deleted."""
    master = text(record, "MasterRecordId")
    if master:
        return Merged(entity, str(record["Id"]), master)
    return Deleted(entity, str(record["Id"]), modified(record))


def prefix_of(value: str | None, prefix: str) -> str | None:
    return value if value and value.startswith(prefix) else None


def map_user(record: Record, team: str | None, context: MappingContext) -> Row:
    start = role_day(record, context.roles.get("user_start_date", "Start_Date__c"))
    return User.row(
        external_id=str(record["Id"]),
        name=text(record, "Name"),
        email=text(record, "Email"),
        team=team,
        region=context.team_regions.get(team or ""),
        manager_id=text(record, "ManagerId"),
        started_on=start or day(record.get("CreatedDate")),
        is_active=flag(record.get("IsActive")),
        created_at=instant(record.get("CreatedDate")),
        modified_at=modified(record),
        custom=custom_of(record, context.custom.get("User", ())),
        raw=raw_of(record),
    )


def map_stage(record: Record) -> Row:
    probability = decimal(record.get("DefaultProbability"))
    return PipelineStage.row(
        external_id=str(record["Id"]),
        pipeline=PIPELINE,
        stage=str(record["ApiName"]),
        label=str(record.get("MasterLabel") or record["ApiName"]),
        display_order=int(record.get("SortOrder") or 0),
        probability=probability / 100 if probability is not None else None,
        is_closed=flag(record.get("IsClosed")),
        is_won=flag(record.get("IsWon")),
        modified_at=modified(record),
        raw=raw_of(record),
    )


def map_account(record: Record, context: MappingContext) -> Row:
    region = context.roles.get("account_region")
    return Account.row(
        external_id=str(record["Id"]),
        name=text(record, "Name"),
        owner_id=text(record, "OwnerId"),
        parent_id=text(record, "ParentId"),
        type=text(record, "Type"),
        industry=text(record, "Industry"),
        country=text(record, "BillingCountry"),
        state=text(record, "BillingState"),
        city=text(record, "BillingCity"),
        region=text(record, region) if region else None,
        created_at=instant(record.get("CreatedDate")),
        modified_at=modified(record),
        custom=custom_of(record, context.custom.get("Account", ())),
        raw=raw_of(record),
    )


def map_contact(record: Record, context: MappingContext) -> Row:
    return Contact.row(
        external_id=str(record["Id"]),
        first_name=text(record, "FirstName"),
        last_name=text(record, "LastName"),
        email=text(record, "Email"),
        phone=text(record, "Phone"),
        title=text(record, "Title"),
        account_id=text(record, "AccountId"),
        owner_id=text(record, "OwnerId"),
        lead_source=text(record, "LeadSource"),
        created_at=instant(record.get("CreatedDate")),
        modified_at=modified(record),
        custom=custom_of(record, context.custom.get("Contact", ())),
        raw=raw_of(record),
    )


def map_lead(record: Record, context: MappingContext) -> Row:
    converted = flag(record.get("IsConverted"))
    converted_on = day(record.get("ConvertedDate"))
    return Lead.row(
        external_id=str(record["Id"]),
        first_name=text(record, "FirstName"),
        last_name=text(record, "LastName"),
        email=text(record, "Email"),
        phone=text(record, "Phone"),
        company=text(record, "Company"),
        status=text(record, "Status"),
        lead_source=text(record, "LeadSource"),
        owner_id=prefix_of(text(record, "OwnerId"), "005"),  # a queue (00G) owns no lead for KPIs
        created_at=instant(record.get("CreatedDate")),
        is_converted=converted,
        converted_at=datetime(converted_on.year, converted_on.month, converted_on.day, tzinfo=UTC)
        if converted and converted_on
        else None,
        converted_account_id=text(record, "ConvertedAccountId"),
        converted_contact_id=text(record, "ConvertedContactId"),
        converted_deal_id=text(record, "ConvertedOpportunityId"),
        modified_at=modified(record),
        custom=custom_of(record, context.custom.get("Lead", ())),
        raw=raw_of(record),
    )


def map_opportunity(
    record: Record,
    context: MappingContext,
    stages: Sequence[StageEntry] = (),
    owners: Sequence[OwnerEntry] = (),
) -> list[Row]:
    """The deal, then the stages it entered; owner at close from the owner changes after it."""
    rid = str(record["Id"])
    stage = text(record, "StageName")
    info = context.stages.get(stage or "")
    closed = info.is_closed if info else flag(record.get("IsClosed"))
    won = info.is_won if info else flag(record.get("IsWon"))
    roles = context.roles
    probability = decimal(record.get("Probability"))
    modified_at = modified(record)
    owner = text(record, "OwnerId")
    changes = stage_changes(rid, stages, modified_at)
    closed_at = (
        changes[-1].values["entered_at"]
        if closed and changes and changes[-1].values["stage"] == stage
        else None
    )
    deal = Deal.row(
        external_id=rid,
        name=text(record, "Name"),
        account_id=text(record, "AccountId"),
        contact_id=text(record, "ContactId"),
        owner_id=owner,
        closed_owner_id=owner_at_close(owners, closed_at, owner),
        pipeline=PIPELINE,
        stage=stage,
        is_closed=closed,
        is_won=won,
        amount=decimal(record.get("Amount")),
        currency=text(record, "CurrencyIsoCode"),
        probability=probability / 100 if probability is not None else None,
        close_date=day(record.get("CloseDate")),
        created_at=instant(record.get("CreatedDate")),
        deal_type=text(record, roles.get("deal_type", "Type")),
        lead_source=text(record, roles.get("lead_source", "LeadSource")),
        loss_reason=text(record, roles.get("loss_reason", "Loss_Reason__c")),
        competitor=text(record, roles.get("competitor", "Competitor__c")),
        margin=decimal(record.get(roles.get("margin", "Margin__c"))),
        modified_at=modified_at,
        custom=custom_of(record, context.custom.get("Opportunity", ())),
        raw=raw_of(record),
    )
    return [deal, *changes]


def stage_changes(
    deal_id: str, history: Sequence[StageEntry], deal_modified: datetime | None
) -> list[Row]:
    """OpportunityHistory entries (one opportunity, oldest first) -> the stages it entered.

    Salesforce also writes a history row when only the amount, close date or probability
    changed; a row that repeats the previous stage is not a stage change.
    """
    rows: list[Row] = []
    previous: str | None = None
    for created, hid, stage in history:
        at = instant(created)
        if at is None or stage == previous:
            continue
        previous = stage
        rows.append(
            DealStageChange.row(
                external_id=hid,
                deal_id=deal_id,
                stage=stage,
                entered_at=at,
                modified_at=deal_modified,
                raw={
                    "Id": hid,
                    "OpportunityId": deal_id,
                    "StageName": stage,
                    "CreatedDate": created,
                },
            )
        )
    return rows


def owner_at_close(
    owners: Sequence[OwnerEntry], closed_at: datetime | None, current: str | None
) -> str | None:
    """The owner when the deal entered its closing stage: the old value of the first owner
    change after that instant, or the current owner when none came after (or it is open)."""
    if closed_at is None:
        return current
    for created, _hid, old in owners:
        at = instant(created)
        if at is not None and at > closed_at:
            return old or current
    return current


def map_line_item(record: Record) -> Row:
    return LineItem.row(
        external_id=str(record["Id"]),
        deal_id=text(record, "OpportunityId"),
        product=text(record, "ProductCode") or text(record, "Name"),
        quantity=decimal(record.get("Quantity")),
        unit_price=decimal(record.get("UnitPrice")),
        modified_at=modified(record),
        raw=raw_of(record),
    )


def map_task(record: Record) -> Row:
    subtype = (text(record, "TaskSubtype") or text(record, "Type") or "").lower()
    kind = {"call": "call", "email": "email", "listemail": "email"}.get(subtype, "task")
    direction = "inbound" if (text(record, "CallType") or "").lower() == "inbound" else "outbound"
    seconds = record.get("CallDurationInSeconds")
    status = text(record, "Status")
    return Activity.row(
        external_id=str(record["Id"]),
        kind=kind,
        direction=direction,
        subject=text(record, "Subject"),
        status=status.lower() if status else None,
        occurred_at=instant(record.get("CompletedDateTime")) or instant(record.get("CreatedDate")),
        duration_seconds=int(seconds) if seconds not in (None, "") and kind == "call" else None,
        **links(record),
        modified_at=modified(record),
        raw=raw_of(record),
    )


def map_event(record: Record) -> Row:
    start, end = instant(record.get("StartDateTime")), instant(record.get("EndDateTime"))
    minutes = record.get("DurationInMinutes")
    duration = (
        int((end - start).total_seconds())
        if start and end
        else (int(minutes) * 60 if minutes not in (None, "") else None)
    )
    return Activity.row(
        external_id=str(record["Id"]),
        kind="meeting",
        direction="outbound",
        subject=text(record, "Subject"),
        status=None,
        occurred_at=start or instant(record.get("ActivityDateTime")),
        duration_seconds=duration,
        **links(record),
        modified_at=modified(record),
        raw=raw_of(record),
    )


def links(record: Record) -> dict[str, str | None]:
    who, what = text(record, "WhoId"), text(record, "WhatId")
    return {
        "owner_id": text(record, "OwnerId"),
        "contact_id": prefix_of(who, "003"),
        "lead_id": prefix_of(who, "00Q"),
        "deal_id": prefix_of(what, "006"),
        "account_id": text(record, "AccountId") or prefix_of(what, "001"),
    }


def map_survey(record: Record, fields: SurveyFields) -> Row | None:
    score = decimal(record.get(fields.score))
    answered = instant(record.get(fields.answered_at)) or instant(record.get("CreatedDate"))
    kind = (text(record, fields.kind) or "NPS").lower()
    if kind not in ("nps", "enps") or score is None or answered is None:
        return None
    return SurveyResponse.row(
        external_id=str(record["Id"]),
        kind=kind,
        score=int(score),
        contact_id=text(record, fields.contact),
        account_id=text(record, fields.account),
        answered_at=answered,
        origin="crm",
        modified_at=modified(record),
        raw=raw_of(record),
    )
