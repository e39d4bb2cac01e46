"""Pure mappers from HubSpot records (dicts as the API returns them) to canonical store rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

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

LEAD_STAGES = frozenset({"subscriber", "lead", "marketingqualifiedlead"})
# The stages a lead moves into when sales takes it over; the earliest date among them is when it
# was converted (a contact may skip some, e.g. straight to customer).
CONVERTED_STAGES = ("salesqualifiedlead", "opportunity", "customer", "evangelist", "other")
CONVERTED_DATES = tuple(f"hs_lifecyclestage_{stage}_date" for stage in CONVERTED_STAGES)
OUTBOUND_EMAIL = frozenset({"EMAIL", "FORWARDED_EMAIL"})


@dataclass(frozen=True)
class StageInfo:
    is_closed: bool
    is_won: bool


@dataclass(frozen=True)
class MappingContext:
    """What mappers need beyond the record: stage meanings, custom names, role fields."""

    stages: Mapping[str, StageInfo] = field(default_factory=dict)
    custom: Mapping[str, frozenset[str]] = field(default_factory=dict)  # object type -> names
    roles: Mapping[str, str] = field(default_factory=dict)  # role -> deal property
    team_regions: Mapping[str, str] = field(default_factory=dict)


def text(props: Mapping[str, Any], name: str) -> str | None:
    value = props.get(name)
    return None if value is None or value == "" else str(value)


def instant(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    raw = str(value)
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)


def day(value: Any) -> date | None:
    moment = instant(value)
    return moment.date() if moment else None


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def custom_of(record: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    props = record.get("properties") or {}
    return {name: props.get(name) for name in sorted(names) if name in props}


def first_id(ids: Sequence[str] | None) -> str | None:
    return ids[0] if ids else None


def map_owner(owner: Mapping[str, Any], context: MappingContext) -> Row:
    teams = owner.get("teams") or []
    primary = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    team = primary.get("name") if primary else None
    name = " ".join(p for p in (owner.get("firstName"), owner.get("lastName")) if p) or None
    return User.row(
        external_id=str(owner["id"]),
        name=name,
        email=owner.get("email"),
        team=team,
        region=context.team_regions.get(team or ""),
        is_active=not owner.get("archived", False),
        created_at=instant(owner.get("createdAt")),
        modified_at=instant(owner.get("updatedAt")),
        raw=dict(owner),
    )


def map_stages(pipeline: Mapping[str, Any]) -> list[Row]:
    rows = []
    for stage in pipeline.get("stages", []):
        meta = stage.get("metadata") or {}
        probability = decimal(meta.get("probability"))
        closed = str(meta.get("isClosed", "false")).lower() == "true"
        rows.append(
            PipelineStage.row(
                external_id=f"{pipeline['id']}:{stage['id']}",
                pipeline=str(pipeline["id"]),
                stage=str(stage["id"]),
                label=str(stage.get("label", stage["id"])),
                display_order=int(stage.get("displayOrder", 0)),
                probability=probability,
                is_closed=closed,
                is_won=closed and probability == Decimal(1),
                modified_at=instant(stage.get("updatedAt")),
                raw=dict(stage),
            )
        )
    return rows


def map_company(record: Mapping[str, Any], context: MappingContext) -> Row:
    p = record.get("properties") or {}
    return Account.row(
        external_id=str(record["id"]),
        name=text(p, "name"),
        owner_id=text(p, "hubspot_owner_id"),
        parent_id=text(p, "hs_parent_company_id"),
        type=text(p, "type"),
        industry=text(p, "industry"),
        country=text(p, "country"),
        state=text(p, "state"),
        city=text(p, "city"),
        region=text(p, context.roles.get("account_region", ""))
        if context.roles.get("account_region")
        else None,
        created_at=instant(p.get("createdate")),
        modified_at=instant(p.get("hs_lastmodifieddate")),
        custom=custom_of(record, context.custom.get("companies", frozenset())),
        raw=dict(record),
    )


def is_lead_record(props: Mapping[str, Any]) -> bool:
    return bool(text(props, "hs_lifecyclestage_lead_date")) or (
        (text(props, "lifecyclestage") or "") in LEAD_STAGES
    )


def is_contact_record(props: Mapping[str, Any]) -> bool:
    return (text(props, "lifecyclestage") or "") not in LEAD_STAGES or bool(
        text(props, "associatedcompanyid")
    )


def converted_at(props: Mapping[str, Any]) -> datetime | None:
    """When the lead left the lead stages: the earliest date of a later lifecycle stage."""
    dates = [at for name in CONVERTED_DATES if (at := instant(props.get(name))) is not None]
    return min(dates, default=None)


def map_contact(record: Mapping[str, Any], context: MappingContext) -> list[Row]:
    """A HubSpot contact is a canonical Contact, a Lead, or both (a converted lead)."""
    p = record.get("properties") or {}
    rid = str(record["id"])
    custom = custom_of(record, context.custom.get("contacts", frozenset()))
    modified = instant(p.get("lastmodifieddate"))
    rows: list[Row] = []
    if is_contact_record(p):
        rows.append(
            Contact.row(
                external_id=rid,
                first_name=text(p, "firstname"),
                last_name=text(p, "lastname"),
                email=text(p, "email"),
                phone=text(p, "phone"),
                title=text(p, "jobtitle"),
                account_id=text(p, "associatedcompanyid"),
                owner_id=text(p, "hubspot_owner_id"),
                lead_source=text(p, "hs_analytics_source"),
                created_at=instant(p.get("createdate")),
                modified_at=modified,
                custom=custom,
                raw=dict(record),
            )
        )
    if is_lead_record(p):
        converted = (text(p, "lifecyclestage") or "lead") not in LEAD_STAGES
        rows.append(
            Lead.row(
                external_id=rid,
                first_name=text(p, "firstname"),
                last_name=text(p, "lastname"),
                email=text(p, "email"),
                phone=text(p, "phone"),
                company=text(p, "company"),
                status=text(p, "hs_lead_status"),
                lead_source=text(p, "hs_analytics_source"),
                owner_id=text(p, "hubspot_owner_id"),
                created_at=instant(p.get("hs_lifecyclestage_lead_date"))
                or instant(p.get("createdate")),
                is_converted=converted,
                converted_at=converted_at(p) if converted else None,
                converted_contact_id=rid if converted else None,
                converted_account_id=text(p, "associatedcompanyid") if converted else None,
                modified_at=modified,
                custom=custom,
                raw=dict(record),
            )
        )
    return rows


@dataclass(frozen=True)
class DealLinks:
    """What one deal needs from other endpoints: associations and property history."""

    company_ids: tuple[str, ...] = ()
    contact_ids: tuple[str, ...] = ()
    stage_history: tuple[tuple[str, datetime], ...] = ()  # (stage, entered), oldest first
    owner_history: tuple[tuple[str, datetime], ...] = ()


def map_deal(record: Mapping[str, Any], links: DealLinks, context: MappingContext) -> list[Row]:
    p = record.get("properties") or {}
    rid = str(record["id"])
    stage = text(p, "dealstage")
    info = context.stages.get(stage or "")
    closed = deal_closed(p, context)
    won = info.is_won if info else text(p, "hs_is_closed_won") == "true"
    roles = context.roles
    deal = Deal.row(
        external_id=rid,
        name=text(p, "dealname"),
        account_id=first_id(links.company_ids),
        contact_id=first_id(links.contact_ids),
        owner_id=text(p, "hubspot_owner_id"),
        closed_owner_id=owner_at_close(links, closed) or text(p, "hubspot_owner_id"),
        pipeline=text(p, "pipeline"),
        stage=stage,
        is_closed=closed,
        is_won=won,
        amount=decimal(p.get("amount")),
        currency=text(p, "deal_currency_code"),
        probability=decimal(p.get("hs_deal_stage_probability")),
        close_date=day(p.get("closedate")),
        created_at=instant(p.get("createdate")),
        deal_type=text(p, roles.get("deal_type", "dealtype")),
        lead_source=text(p, roles.get("lead_source", "hs_analytics_source")),
        loss_reason=text(p, roles.get("loss_reason", "closed_lost_reason")),
        competitor=text(p, roles.get("competitor", "competitor")),
        margin=decimal(p.get(roles.get("margin", "margin"))),
        modified_at=instant(p.get("hs_lastmodifieddate")),
        custom=custom_of(record, context.custom.get("deals", frozenset())),
        raw=dict(record),
    )
    changes = [
        DealStageChange.row(
            external_id=f"{rid}:{int(at.timestamp() * 1000)}",
            deal_id=rid,
            stage=value,
            entered_at=at,
            modified_at=deal.values["modified_at"],
        )
        for value, at in links.stage_history
    ]
    return [deal, *changes]


def deal_closed(props: Mapping[str, Any], context: MappingContext) -> bool:
    """Closed by the pipeline's stage meaning, or by HubSpot's flag for an unknown stage."""
    info = context.stages.get(text(props, "dealstage") or "")
    return info.is_closed if info else text(props, "hs_is_closed") == "true"


def owner_at_close(links: DealLinks, closed: bool) -> str | None:
    """The owner in effect when the deal entered its final (closed) stage."""
    if not closed or not links.stage_history or not links.owner_history:
        return None
    closed_at = links.stage_history[-1][1]
    owner = None
    for value, at in links.owner_history:
        if at <= closed_at:
            owner = value
    return owner


def history_of(record: Mapping[str, Any], prop: str) -> tuple[tuple[str, datetime], ...]:
    """A property's history, oldest first (HubSpot returns it newest first)."""
    entries = (record.get("propertiesWithHistory") or {}).get(prop) or []
    parsed = [(str(e.get("value")), instant(e.get("timestamp"))) for e in entries if e.get("value")]
    return tuple(sorted(((v, t) for v, t in parsed if t is not None), key=lambda item: item[1]))


def map_line_item(record: Mapping[str, Any], deal_ids: Sequence[str]) -> Row:
    """A line item as Salesforce's OpportunityLineItem fills it: the product's code (SKU), else
    the line's name; quantity; unit price (`price`; `amount` is HubSpot's price x quantity)."""
    p = record.get("properties") or {}
    return LineItem.row(
        external_id=str(record["id"]),
        deal_id=first_id(deal_ids),
        product=text(p, "hs_sku") or text(p, "name"),
        quantity=decimal(p.get("quantity")),
        unit_price=decimal(p.get("price")),
        modified_at=instant(p.get("hs_lastmodifieddate")),
        raw=dict(record),
    )


ENGAGEMENT_KINDS = {"calls": "call", "emails": "email", "meetings": "meeting", "tasks": "task"}


@dataclass(frozen=True)
class ActivityLinks:
    contact_ids: tuple[str, ...] = ()
    deal_ids: tuple[str, ...] = ()
    company_ids: tuple[str, ...] = ()


def map_engagement(object_type: str, record: Mapping[str, Any], links: ActivityLinks) -> Row:
    p = record.get("properties") or {}
    kind = ENGAGEMENT_KINDS[object_type]
    occurred = instant(p.get("hs_timestamp"))
    duration: int | None = None
    if kind == "call":
        subject, status = text(p, "hs_call_title"), text(p, "hs_call_status")
        direction = "inbound" if text(p, "hs_call_direction") == "INBOUND" else "outbound"
        millis = decimal(p.get("hs_call_duration"))
        duration = int(millis / 1000) if millis is not None else None
    elif kind == "email":
        subject, status = text(p, "hs_email_subject"), text(p, "hs_email_status")
        direction = "outbound" if text(p, "hs_email_direction") in OUTBOUND_EMAIL else "inbound"
    elif kind == "meeting":
        subject, status, direction = (
            text(p, "hs_meeting_title"),
            text(p, "hs_meeting_outcome"),
            "outbound",
        )
        start, end = instant(p.get("hs_meeting_start_time")), instant(p.get("hs_meeting_end_time"))
        occurred = start or occurred
        duration = int((end - start).total_seconds()) if start and end else None
    else:
        subject, status, direction = (
            text(p, "hs_task_subject"),
            text(p, "hs_task_status"),
            "outbound",
        )
    contact = first_id(links.contact_ids)
    return Activity.row(
        external_id=str(record["id"]),
        kind=kind,
        direction=direction,
        subject=subject,
        status=status.lower() if status else None,
        occurred_at=occurred,
        duration_seconds=duration,
        owner_id=text(p, "hubspot_owner_id"),
        contact_id=contact,
        lead_id=contact,
        deal_id=first_id(links.deal_ids),
        account_id=first_id(links.company_ids),
        modified_at=instant(p.get("hs_lastmodifieddate")),
        raw=dict(record),
    )


def map_feedback(record: Mapping[str, Any], account_id: str | None) -> Row | None:
    p = record.get("properties") or {}
    score = decimal(p.get("hs_response_value"))
    answered = instant(p.get("hs_submission_timestamp")) or instant(p.get("hs_createdate"))
    if (text(p, "hs_survey_type") or "").upper() != "NPS" or score is None or answered is None:
        return None
    return SurveyResponse.row(
        external_id=str(record["id"]),
        kind="nps",
        score=int(score),
        contact_id=text(p, "hs_contact_id"),
        account_id=account_id,
        answered_at=answered,
        origin="crm",
        modified_at=instant(p.get("hs_lastmodifieddate")),
        raw=dict(record),
    )
