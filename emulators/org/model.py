"""The synthetic org: vendor-neutral records that every emulator serves in its own shapes.

`emulators.org.generate.generate_org(seed, deals)` builds one `Org`; the emulators translate it into
HubSpot, Salesforce or Vtiger payloads and keep it as their mutable truth. Ids here are neutral
integers; each emulator derives its own vendor ids from them.

All instants are timezone-aware UTC datetimes truncated to whole milliseconds; dates are `date`.
Money is `Decimal` with two places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class Stage:
    key: str  # neutral key, e.g. "qualification", "closed_won"
    label: str
    order: int
    probability: Decimal  # 0..1
    is_closed: bool
    is_won: bool


@dataclass
class Rep:
    id: int
    first_name: str
    last_name: str
    email: str
    team: str
    region: str
    manager_id: int | None
    started_on: date
    created_at: datetime
    active: bool = True


@dataclass
class Account:
    id: int
    name: str
    owner_id: int
    industry: str
    type: str  # "prospect" | "customer" | "former_customer"
    country: str
    state: str
    city: str
    created_at: datetime
    modified_at: datetime
    custom: dict[str, str] = field(default_factory=dict)  # label -> value, e.g. {"Segment": "SMB"}


@dataclass
class Contact:
    id: int
    account_id: int | None
    first_name: str
    last_name: str
    email: str
    phone: str
    title: str
    owner_id: int
    lead_source: str
    created_at: datetime
    modified_at: datetime
    custom: dict[str, str] = field(default_factory=dict)


@dataclass
class Lead:
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    company: str
    status: str  # "new" | "working" | "qualified" | "unqualified" | "converted"
    source: str
    owner_id: int
    created_at: datetime
    modified_at: datetime
    converted_at: datetime | None = None
    converted_contact_id: int | None = None
    converted_account_id: int | None = None
    converted_deal_id: int | None = None
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageChange:
    stage: str  # Stage.key
    at: datetime


@dataclass(frozen=True)
class OwnerChange:
    owner_id: int
    at: datetime


@dataclass(frozen=True)
class LineItem:
    product: str
    quantity: int
    unit_price: Decimal


@dataclass
class Deal:
    id: int
    name: str
    account_id: int
    contact_id: int | None
    owner_id: int
    stage: str  # Stage.key of the current stage
    amount: Decimal | None
    currency: str  # ISO 4217
    created_at: datetime
    close_date: date
    deal_type: str  # "new" | "upgrade" | "cross_sell" | "renewal"
    loss_reason: str | None
    competitor: str | None
    margin: Decimal | None
    modified_at: datetime
    stage_history: list[StageChange] = field(default_factory=list)  # oldest first, last == stage
    owner_history: list[OwnerChange] = field(default_factory=list)  # oldest first, last == owner
    line_items: list[LineItem] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)


@dataclass
class Activity:
    id: int
    kind: str  # "call" | "email" | "meeting" | "task"
    direction: str  # "outbound" | "inbound" ("outbound" for meetings and tasks)
    subject: str
    occurred_at: datetime
    duration_seconds: int
    owner_id: int
    contact_id: int | None
    lead_id: int | None
    deal_id: int | None
    account_id: int | None
    status: str  # "completed" | "planned"
    created_at: datetime
    modified_at: datetime


@dataclass
class SurveyAnswer:
    id: int
    kind: str  # "nps" | "enps"
    score: int  # 0..10
    respondent_contact_id: int | None  # nps: the answering contact
    respondent_rep_id: int | None  # enps: the answering employee (kept only in the survey tool)
    account_id: int | None  # nps subject
    team: str | None  # enps subject
    answered_at: datetime
    modified_at: datetime


@dataclass(frozen=True)
class CustomFieldDef:
    entity: str  # "account" | "contact" | "lead" | "deal"
    label: str  # human label; vendors derive their API names from it
    type: str  # "string" | "number" | "date" | "enumeration" | "bool"
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExchangeRate:
    """A rate the CRM keeps: `per_corporate` units of `currency` buy one corporate unit.

    `start` is None for an undated rate (multi-currency without dated rates); dated rates of one
    currency are each in force from their start until the next one's.
    """

    currency: str
    per_corporate: Decimal
    start: date | None = None


@dataclass(frozen=True)
class RepQuota:
    """A revenue quota of one rep for the quarter starting on `start`, in `currency`."""

    rep_id: int
    start: date
    amount: Decimal
    currency: str = "USD"  # the generated orgs' corporate currency


@dataclass
class Org:
    seed: int
    now: datetime  # the org's "present": every generated instant is before it
    stages: list[Stage]
    reps: list[Rep]
    accounts: list[Account]
    contacts: list[Contact]
    leads: list[Lead]
    deals: list[Deal]
    activities: list[Activity]
    survey_answers: list[SurveyAnswer]
    custom_fields: list[CustomFieldDef]
    currencies: dict[str, Decimal]  # ISO code -> rate to the corporate currency (USD)
    exchange_rates: list[ExchangeRate] = field(default_factory=list)  # none: not in the CRM
    quotas: list[RepQuota] = field(default_factory=list)  # none: no forecasting in the CRM
