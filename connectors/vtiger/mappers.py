"""Pure mappers from Vtiger records (dicts of strings, as the webservice returns them) to rows.

External ids are webservice ids ('13x42'); references keep that form, so a page needs no lookups.
Custom fields (cf_NNN) go into `custom` by their API name; their labels live in the field catalog
(discover), and settings refer to them by label. Vtiger has no won flag and no stage history:
won/lost come from the configured stage labels, and every version of a potential that a sync
reads is kept as a stage observation (see `observe_stage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.vtiger import values as v
from kpisync.connector import OBSERVED_STAGE_BASIS
from kpisync.mapping import say_once
from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    Lead,
    PipelineStage,
    Row,
    SurveyResponse,
    User,
)

Record = Mapping[str, Any]
KINDS = {"call": "call", "meeting": "meeting", "email": "email", "task": "task"}
PREFIX_ENTITY = {
    "Accounts": "account",
    "Leads": "lead",
    "Potentials": "deal",
    "Contacts": "contact",
}


@dataclass(frozen=True)
class SurveyFields:
    """Field names of the module holding NPS answers (see the connector's `survey` setting)."""

    score: str = "score"
    kind: str = "survey_type"
    contact: str = "contact_id"
    account: str = "account_id"
    answered_at: str = "answered_on"


@dataclass(frozen=True)
class MappingContext:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    custom: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # module -> cf -> type
    roles: Mapping[str, str] = field(default_factory=dict)  # role -> field name (cf resolved)
    won_stages: frozenset[str] = frozenset({"Closed Won"})
    lost_stages: frozenset[str] = frozenset({"Closed Lost"})
    prefixes: Mapping[int, str] = field(default_factory=dict)  # idPrefix -> module
    team_field: str = "department"
    team_regions: Mapping[str, str] = field(default_factory=dict)
    survey: SurveyFields | None = None
    direction_field: str | None = None  # the Events field holding Inbound/Outbound, if any


def _raw(record: Record) -> dict[str, Any]:
    """The vendor record for `raw`: the decoded JSON object itself, copied only if it is not one."""
    return record if isinstance(record, dict) else dict(record)


def ref(record: Record, name: str) -> str | None:
    return v.text(record.get(name))


NUMBER_TYPES = frozenset({"integer", "double", "currency"})


def custom_of(record: Record, module: str, context: MappingContext) -> dict[str, Any]:
    """Custom values by cf name; numbers with Latin digits, dates as Gregorian ISO dates."""
    out: dict[str, Any] = {}
    for name, kind in context.custom.get(module, {}).items():  # sorted by the connector
        if name not in record:
            continue
        value = v.text(record.get(name))
        if value is not None and kind in NUMBER_TYPES:
            value = v.latin_digits(value)
        elif value is not None and kind == "date":
            value = custom_day(name, value)
        out[name] = value
    return out


def custom_day(name: str, value: str) -> str | None:
    """A custom date as a Gregorian ISO date. One that is no date at all (a database import can
    leave '2024-02-30' behind) is kept as the text it is, said once per field, and never stops
    the sync."""
    try:
        parsed = v.day(value)
    except ValueError:
        say_once(
            f"vtiger:{name}",
            "custom field %s holds %.40r, which is not a date; kept as text",
            name,
            value,
        )
        return value
    return parsed.isoformat() if parsed else None


def role(
    record: Record, context: MappingContext, name: str, default: str | None = None
) -> str | None:
    field_name = context.roles.get(name, default)
    return v.text(record.get(field_name)) if field_name else None


def map_user(record: Record, context: MappingContext) -> Row:
    team = v.text(record.get(context.team_field))
    name = (
        " ".join(
            p for p in (v.text(record.get("first_name")), v.text(record.get("last_name"))) if p
        )
        or None
    )
    return User.row(
        external_id=str(record["id"]),
        name=name,
        email=v.text(record.get("email1")),
        team=team,
        region=context.team_regions.get(team or ""),
        manager_id=ref(record, "reports_to_id"),
        is_active=(v.text(record.get("status")) or "Active") == "Active",
        created_at=v.instant(record.get("date_entered"), context.zone),
        raw=_raw(record),
    )


def map_stages(describe: Record, context: MappingContext) -> list[Row]:
    stage_field = next(
        (f for f in describe.get("fields", []) if f.get("name") == "sales_stage"), None
    )
    options = ((stage_field or {}).get("type") or {}).get("picklistValues") or []
    rows = []
    for order, option in enumerate(options):
        label = str(option.get("value") or option.get("label"))
        won = label in context.won_stages
        closed = won or label in context.lost_stages
        rows.append(
            PipelineStage.row(
                external_id=f"default:{label}",
                pipeline="default",
                stage=label,
                label=str(option.get("label") or label),
                display_order=order,
                is_closed=closed,
                is_won=won,
                raw=dict(option),
            )
        )
    return rows


def stamps(record: Record, context: MappingContext) -> dict[str, Any]:
    return {
        "created_at": v.instant(record.get("createdtime"), context.zone),
        "modified_at": v.instant(record.get("modifiedtime"), context.zone),
    }


def map_account(record: Record, context: MappingContext) -> Row:
    return Account.row(
        external_id=str(record["id"]),
        name=v.text(record.get("accountname")),
        owner_id=ref(record, "assigned_user_id"),
        parent_id=ref(record, "account_id"),
        type=v.text(record.get("accounttype")),
        industry=v.text(record.get("industry")),
        country=v.text(record.get("bill_country")),
        state=v.text(record.get("bill_state")),
        city=v.text(record.get("bill_city")),
        region=role(record, context, "account_region"),
        custom=custom_of(record, "Accounts", context),
        raw=_raw(record),
        **stamps(record, context),
    )


def map_contact(record: Record, context: MappingContext) -> Row:
    return Contact.row(
        external_id=str(record["id"]),
        first_name=v.text(record.get("firstname")),
        last_name=v.text(record.get("lastname")),
        email=v.text(record.get("email")),
        phone=v.text(record.get("phone")),
        title=v.text(record.get("title")),
        account_id=ref(record, "account_id"),
        owner_id=ref(record, "assigned_user_id"),
        lead_source=v.text(record.get("leadsource")),
        custom=custom_of(record, "Contacts", context),
        raw=_raw(record),
        **stamps(record, context),
    )


def map_lead(record: Record, context: MappingContext) -> Row:
    """A live Vtiger lead is unconverted by definition: converted ones arrive as deletes."""
    return Lead.row(
        external_id=str(record["id"]),
        first_name=v.text(record.get("firstname")),
        last_name=v.text(record.get("lastname")),
        email=v.text(record.get("email")),
        phone=v.text(record.get("phone")),
        company=v.text(record.get("company")),
        status=v.text(record.get("leadstatus")),
        lead_source=v.text(record.get("leadsource")),
        owner_id=ref(record, "assigned_user_id"),
        is_converted=False,
        custom=custom_of(record, "Leads", context),
        raw=_raw(record),
        **stamps(record, context),
    )


def map_potential(record: Record, context: MappingContext) -> list[Row]:
    stage = v.text(record.get("sales_stage"))
    won = stage in context.won_stages
    closed = won or stage in context.lost_stages
    related = ref(record, "related_to")
    related_module = context.prefixes.get(v.module_prefix(related or "") or -1)
    probability = v.number(record.get("probability"))
    owner = ref(record, "assigned_user_id")
    deal = Deal.row(
        external_id=str(record["id"]),
        name=v.text(record.get("potentialname")),
        account_id=related if related_module == "Accounts" else None,
        contact_id=ref(record, "contact_id") or (related if related_module == "Contacts" else None),
        owner_id=owner,
        closed_owner_id=owner if closed else None,
        pipeline="default",
        stage=stage,
        is_closed=closed,
        is_won=won,
        amount=v.number(record.get("amount")),
        currency=role(record, context, "currency"),
        probability=None if probability is None else probability / Decimal(100),
        close_date=v.day(record.get("closingdate")),
        deal_type=role(record, context, "deal_type", "opportunity_type"),
        lead_source=role(record, context, "lead_source", "leadsource"),
        loss_reason=role(record, context, "loss_reason"),
        competitor=role(record, context, "competitor"),
        margin=v.number(record.get(context.roles.get("margin", ""))),
        custom=custom_of(record, "Potentials", context),
        raw=_raw(record),
        **stamps(record, context),
    )
    observed = observe_stage(deal)
    return [deal] if observed is None else [deal, observed]


def observe_stage(deal: Row) -> Row | None:
    """The stage this version of the deal was in, keyed by deal and modified time.

    Vtiger's webservice exposes no stage history, so kpisync builds it from its own syncs:
    one row per version read (re-reading a version rewrites the same row). Consecutive rows with
    the same stage are one stay; a stage's entry time is the modifiedtime of the first version
    seen in it, an upper bound (exact when the stage change was the version's last edit).
    Stages entered and left between two syncs are not seen, and the first sync sees one.
    """
    if deal.values["stage"] is None or deal.values["modified_at"] is None:
        return None
    at = deal.values["modified_at"]
    return DealStageChange.row(
        external_id=f"{deal.external_id}@{int(at.timestamp())}",
        deal_id=deal.external_id,
        stage=deal.values["stage"],
        entered_at=at,
        modified_at=at,
        raw={"basis": OBSERVED_STAGE_BASIS, "observed_modifiedtime": at.isoformat()},
    )


def map_activity(record: Record, module: str, context: MappingContext) -> Row:
    kind_raw = (v.text(record.get("activitytype")) or "").lower()
    kind = "task" if module == "Calendar" else KINDS.get(kind_raw, "meeting")
    parent = ref(record, "parent_id")
    parent_entity = PREFIX_ENTITY.get(context.prefixes.get(v.module_prefix(parent or "") or -1, ""))
    hours = v.integer(record.get("duration_hours"))
    minutes = v.integer(record.get("duration_minutes"))
    duration = (
        None if hours is None and minutes is None else (hours or 0) * 3600 + (minutes or 0) * 60
    )
    status = v.text(record.get("taskstatus") if module == "Calendar" else record.get("eventstatus"))
    return Activity.row(
        external_id=str(record["id"]),
        kind=kind,
        direction=direction(record, module, context),
        subject=v.text(record.get("subject")),
        status=status.lower() if status else None,
        occurred_at=v.combine(record.get("date_start"), record.get("time_start"), context.zone),
        duration_seconds=duration,
        owner_id=ref(record, "assigned_user_id"),
        contact_id=ref(record, "contact_id"),
        lead_id=parent if parent_entity == "lead" else None,
        deal_id=parent if parent_entity == "deal" else None,
        account_id=parent if parent_entity == "account" else None,
        modified_at=v.instant(record.get("modifiedtime"), context.zone),
        raw=_raw(record),
    )


def direction(record: Record, module: str, context: MappingContext) -> str | None:
    """inbound/outbound from the configured Events picklist; tasks and meetings are outbound."""
    if module == "Calendar":
        return "outbound"
    name = context.direction_field
    said = (v.text(record.get(name)) or "").strip().lower() if name else ""
    return said if said in ("inbound", "outbound") else None


def map_survey(record: Record, context: MappingContext) -> Row | None:
    """One NPS (or eNPS) answer; a record without a score or answer time is no answer."""
    fields = context.survey or SurveyFields()
    score = v.integer(record.get(fields.score))
    answered = v.instant(record.get(fields.answered_at), context.zone)
    kind = (v.text(record.get(fields.kind)) or "NPS").strip().lower()
    if kind not in ("nps", "enps") or score is None or answered is None:
        return None
    return SurveyResponse.row(
        external_id=str(record["id"]),
        kind=kind,
        score=score,
        contact_id=ref(record, fields.contact),
        account_id=ref(record, fields.account),
        answered_at=answered,
        origin="crm",
        raw=_raw(record),
        modified_at=v.instant(record.get("modifiedtime"), context.zone),
    )
