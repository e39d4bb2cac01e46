"""The canonical store: one table per CRM entity plus the sync bookkeeping.

Every entity row is keyed by (source, external_id), where `source` is the connector instance's
name. References between entities hold the other row's external_id (same source), so a page can
be written without looking anything up. `custom` holds every custom field by its API name, `raw`
the vendor payload as received, `deleted_at` marks soft deletes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Integer, Numeric, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from kpisync.store.types import UTCDateTime

MONEY = Numeric(20, 4)
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def _ref() -> Any:
    return Field(default=None, max_length=64)


@dataclass(frozen=True, slots=True)
class Row:
    """One canonical record on its way from a connector to the store: cheap to build, immutable.

    Built with `Deal.row(external_id=..., name=...)`, which checks every name against the table.
    """

    entity: str
    values: Mapping[str, Any]

    @property
    def external_id(self) -> str:
        return str(self.values["external_id"])


@cache
def model_table(model: type[SQLModel]) -> Table:
    """The Table of a table model (SQLModel adds `__table__` when the class is made, unseen by
    type checkers)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _field_names(model: type[SQLModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


class RecordBase(SQLModel):
    """Columns every synced entity has."""

    entity: ClassVar[str] = ""
    reference_columns: ClassVar[dict[str, str]] = {}  # column -> entity it points to

    id: int | None = Field(default=None, primary_key=True, sa_type=ROW_ID)
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=64)
    custom: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    raw: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    modified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @classmethod
    def row(cls, **values: Any) -> Row:
        """A canonical row of this entity; unknown field names are a programming error."""
        unknown = values.keys() - _field_names(cls)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
        return Row(cls.entity, values)

    @classmethod
    def column_defaults(cls) -> dict[str, Any]:
        """Every column but the key, at its default: the base each written row starts from."""
        defaults: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            if name != "id":
                defaults[name] = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        return defaults


class User(RecordBase, table=True):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "user"
    reference_columns: ClassVar[dict[str, str]] = {"manager_id": "user"}

    name: str | None = None
    email: str | None = None
    team: str | None = None
    region: str | None = None
    manager_id: str | None = _ref()
    started_on: date | None = None
    is_active: bool = True
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Account(RecordBase, table=True):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "account"
    reference_columns: ClassVar[dict[str, str]] = {"owner_id": "user", "parent_id": "account"}

    name: str | None = None
    owner_id: str | None = _ref()
    parent_id: str | None = _ref()
    type: str | None = None
    industry: str | None = None
    country: str | None = None
    state: str | None = None
    city: str | None = None
    region: str | None = None
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Contact(RecordBase, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "contact"
    reference_columns: ClassVar[dict[str, str]] = {"account_id": "account", "owner_id": "user"}

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None
    account_id: str | None = _ref()
    owner_id: str | None = _ref()
    lead_source: str | None = None
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Lead(RecordBase, table=True):
    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "lead"
    reference_columns: ClassVar[dict[str, str]] = {
        "owner_id": "user",
        "converted_account_id": "account",
        "converted_contact_id": "contact",
        "converted_deal_id": "deal",
    }

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    status: str | None = None
    lead_source: str | None = None
    owner_id: str | None = _ref()
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    is_converted: bool = False
    converted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    converted_account_id: str | None = _ref()
    converted_contact_id: str | None = _ref()
    converted_deal_id: str | None = _ref()


class Deal(RecordBase, table=True):
    __tablename__ = "deals"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "deal"
    reference_columns: ClassVar[dict[str, str]] = {
        "account_id": "account",
        "contact_id": "contact",
        "owner_id": "user",
        "closed_owner_id": "user",
    }

    name: str | None = None
    account_id: str | None = _ref()
    contact_id: str | None = _ref()
    owner_id: str | None = _ref()
    closed_owner_id: str | None = _ref()  # owner when it closed, where the CRM keeps history
    pipeline: str | None = None
    stage: str | None = None
    is_closed: bool = False
    is_won: bool = False
    amount: Decimal | None = Field(default=None, sa_type=MONEY)
    currency: str | None = Field(default=None, max_length=64)  # the CRM's text; ISO codes convert
    probability: Decimal | None = Field(default=None, sa_type=Numeric(6, 4))
    close_date: date | None = None
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deal_type: str | None = None
    lead_source: str | None = None
    loss_reason: str | None = None
    competitor: str | None = None
    margin: Decimal | None = Field(default=None, sa_type=MONEY)


class DealStageChange(RecordBase, table=True):
    __tablename__ = "deal_stage_changes"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "deal_stage_change"
    reference_columns: ClassVar[dict[str, str]] = {"deal_id": "deal"}

    deal_id: str = Field(max_length=64, index=True)
    stage: str
    entered_at: datetime = Field(sa_type=UTCDateTime)


class LineItem(RecordBase, table=True):
    __tablename__ = "line_items"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "line_item"
    reference_columns: ClassVar[dict[str, str]] = {"deal_id": "deal"}

    deal_id: str | None = _ref()
    product: str | None = None
    quantity: Decimal | None = Field(default=None, sa_type=Numeric(20, 4))
    unit_price: Decimal | None = Field(default=None, sa_type=MONEY)


class PipelineStage(RecordBase, table=True):
    __tablename__ = "pipeline_stages"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "pipeline_stage"

    pipeline: str
    stage: str
    label: str
    display_order: int = 0
    probability: Decimal | None = Field(default=None, sa_type=Numeric(6, 4))
    is_closed: bool = False
    is_won: bool = False


class Activity(RecordBase, table=True):
    __tablename__ = "activities"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "activity"
    reference_columns: ClassVar[dict[str, str]] = {
        "owner_id": "user",
        "contact_id": "contact",
        "lead_id": "lead",
        "deal_id": "deal",
        "account_id": "account",
    }

    kind: str  # call | email | meeting | task | note
    direction: str | None = None  # outbound | inbound
    subject: str | None = None
    status: str | None = None
    occurred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_seconds: int | None = None
    owner_id: str | None = _ref()
    contact_id: str | None = _ref()
    lead_id: str | None = _ref()
    deal_id: str | None = _ref()
    account_id: str | None = _ref()


class SurveyResponse(RecordBase, table=True):
    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "survey_response"
    reference_columns: ClassVar[dict[str, str]] = {"account_id": "account", "contact_id": "contact"}

    kind: str  # nps | enps
    score: int
    contact_id: str | None = _ref()  # nps respondent
    account_id: str | None = _ref()  # nps subject
    team: str | None = None  # enps subject; the respondent of an eNPS answer is never stored
    answered_at: datetime = Field(sa_type=UTCDateTime)
    origin: str = "crm"


class ExchangeRate(RecordBase, table=True):
    """A CRM-held conversion rate: `rate` units of `currency` buy one unit of the corporate currency.

    That is Salesforce's ConversionRate, so an amount converts as amount / rate. It is in force on
    the dates in [valid_from, valid_until); an open end (None) reaches back or forward for ever.
    """

    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "exchange_rate"

    currency: str = Field(max_length=3)
    rate: Decimal = Field(sa_type=Numeric(30, 9))
    valid_from: date | None = None
    valid_until: date | None = None


class Quota(RecordBase, table=True):
    """A CRM-held revenue quota of one owner (a user's external id) for one period."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    entity: ClassVar[str] = "quota"
    reference_columns: ClassVar[dict[str, str]] = {"owner_id": "user"}

    owner_id: str | None = _ref()
    period_kind: str = Field(max_length=16)  # week | month | quarter | year
    period_start: date
    amount: Decimal | None = Field(default=None, sa_type=MONEY)
    currency: str | None = Field(default=None, max_length=3)


ENTITY_MODELS: dict[str, type[RecordBase]] = {
    model.entity: model
    for model in (
        User,
        Account,
        Contact,
        Lead,
        Deal,
        DealStageChange,
        LineItem,
        PipelineStage,
        Activity,
        SurveyResponse,
        ExchangeRate,
        Quota,
    )
}


class SyncState(SQLModel, table=True):
    """The cursor of one stream of one source, committed with the rows it covers."""

    __tablename__ = "sync_state"

    source: str = Field(primary_key=True, max_length=64)
    stream: str = Field(primary_key=True, max_length=64)
    cursor: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StoreRevision(SQLModel, table=True):
    """A counter per source, raised in the same transaction as every write to its records.

    The KPI engine compares these counters to tell whether its inputs changed since it last ran.
    """

    __tablename__ = "store_revisions"

    source: str = Field(primary_key=True, max_length=64)
    revision: int = 0
    changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    kind: str = "sync"
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = "running"  # running | succeeded | failed | interrupted
    upserted: int = 0
    deleted: int = 0
    api_calls: dict[str, int] = Field(default_factory=dict, sa_type=JSON)
    error: str | None = None


class FieldCatalog(SQLModel, table=True):
    """Every field a source has shown us: when it appeared and, if it did, when it vanished."""

    __tablename__ = "field_catalog"

    source: str = Field(primary_key=True, max_length=64)
    entity: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=128)
    label: str | None = None
    type: str | None = None
    is_custom: bool = False
    is_writable: bool = False
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RunLease(SQLModel, table=True):
    """Who may work on a name ("source:<name>", "compute") now: kpisync.locks.Lease.

    `token` grows by one at every take-over; a write is fenced by checking, in its own transaction,
    that the token is still the one its run took. `expires_at` only tells others when they may take
    it over (the holder renews it while it lives)."""

    __tablename__ = "run_leases"

    name: str = Field(primary_key=True, max_length=128)
    token: int = Field(default=0, sa_type=BigInteger)
    holder: str | None = Field(default=None, max_length=128)
    run_id: int | None = Field(default=None, sa_type=BigInteger)
    acquired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
