"""The connector contract: what every CRM connector offers the core, and what it hands back.

A connector is a class registered under the entry-point group `kpisync.connectors`. It never
touches the store; the store never calls a CRM. Everything crossing this border is a frozen
dataclass or a SQLModel row of `kpisync.store.models`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from pydantic import BaseModel

from kpisync.cursor import Cursor
from kpisync.fieldcodec import ValueCodec
from kpisync.store.models import RecordBase, Row

LIMIT_PREFIX = "limit:"
# The `raw["basis"]` of a deal stage change a connector built from the deal's versions it read,
# for a CRM whose API keeps no stage history (Vtiger): the KPIs that need the CRM's own history
# (every stage a deal passed, from its creation) treat such rows as not held.
OBSERVED_STAGE_BASIS = "observed by kpisync sync"


def calls_in(usage: Mapping[str, int]) -> int:
    """The calls a connector's `api_usage()` counts, without the CRM's usage counters."""
    return sum(count for key, count in usage.items() if not key.startswith(LIMIT_PREFIX))


class ReadMode(StrEnum):
    """How a stream is read each run."""

    INCREMENTAL = "incremental"  # after its stored cursor, by `cursor_field`
    FULL = "full"  # whole each run, no cursor: only rows that differ are written
    METADATA = "metadata"  # whole, and only when the source's metadata is due (kpisync.metadata)


@dataclass(frozen=True)
class StreamSpec:
    """One stream a connector reads, stated as data: the canonical entities its pages carry,
    how it is read, and for an incremental stream the CRM field its cursor follows, the key of
    its records and its lag (how far behind the run's signpost its upper bound stays, for rows
    whose transactions commit late). Every incremental bound is closed (`>=` the cursor) with
    the ids seen at the cursor dropped, so no stream needs a lookback below its cursor.
    `check_stream_specs` says what makes a list of specs consistent.
    """

    name: str
    entities: tuple[str, ...]
    mode: ReadMode = ReadMode.INCREMENTAL
    cursor_field: str | None = None
    primary_key: str = "id"
    lag: timedelta = timedelta(0)

    @property
    def metadata(self) -> bool:
        return self.mode is ReadMode.METADATA

    @property
    def whole(self) -> bool:
        """Read whole (metadata streams too): rows are written only where they differ."""
        return self.mode is not ReadMode.INCREMENTAL


def check_stream_specs(specs: Sequence[StreamSpec]) -> list[str]:
    """What is inconsistent in a connector's stream specs (empty when nothing)."""
    problems: list[str] = []
    names = [spec.name for spec in specs]
    problems += [
        f"stream {n!r} is declared twice" for n in sorted(set(names)) if names.count(n) > 1
    ]
    for spec in specs:
        if not spec.entities:
            problems.append(f"stream {spec.name!r} carries no entity")
        if not spec.primary_key:
            problems.append(f"stream {spec.name!r} has no primary key")
        if spec.lag < timedelta(0):
            problems.append(f"stream {spec.name!r} has a negative lag")
        if spec.mode is ReadMode.INCREMENTAL and not spec.cursor_field:
            problems.append(f"incremental stream {spec.name!r} has no cursor field")
        if spec.mode is not ReadMode.INCREMENTAL and spec.cursor_field:
            problems.append(
                f"stream {spec.name!r} is read whole but names a cursor field ({spec.cursor_field})"
            )
    return problems


@dataclass(frozen=True)
class Deleted:
    entity: str
    external_id: str
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class Merged:
    """`loser` was merged into `survivor`: the loser is deleted, references move to the survivor."""

    entity: str
    loser_id: str
    survivor_id: str


@dataclass(frozen=True)
class Page:
    stream: str
    records: Sequence[Row | RecordBase]  # Row (e.g. Deal.row(...)) is the fast way
    deleted: Sequence[Deleted] = ()
    merged: Sequence[Merged] = ()
    cursor: Cursor | None = None  # None: the cursor does not move with this page
    api_calls: int = 0


@dataclass(frozen=True)
class FieldInfo:
    entity: str
    name: str
    label: str
    type: str
    is_custom: bool
    is_writable: bool
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """One thing `check()` found wrong, in words an admin can act on."""

    what: str
    fix: str


@dataclass(frozen=True)
class FieldUpdate:
    external_id: str
    values: tuple[tuple[str, Any], ...]  # (CRM field name, value from its codec's `wire`)


@dataclass(frozen=True)
class WriteResult:
    external_id: str
    ok: bool
    error: str | None = None
    not_found: bool = False
    # field -> the value the CRM answered holding after the write (read back); None when the
    # connector cannot tell, and then the write is taken as the CRM reported it
    held: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FieldSpec:
    """A managed field kpisync wants on a CRM object."""

    entity: str
    name: str
    label: str
    type: str  # string | number | date | enumeration | bool
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProvisionStep:
    spec: FieldSpec
    action: str  # exists | create | manual
    detail: str = ""


@runtime_checkable
class Connector(Protocol):
    """What the core needs from a CRM."""

    type_name: ClassVar[str]

    def check(self) -> list[Problem]: ...

    def discover(self) -> list[FieldInfo]: ...

    def streams(self) -> list[StreamSpec]: ...

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]: ...

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        """(entity, chunk of live ids) covering every listable entity, for purge checks."""
        ...

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]: ...

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]: ...

    def api_usage(self) -> dict[str, int]:
        """Calls made per endpoint; keys starting with LIMIT_PREFIX carry the CRM's own usage
        counters (e.g. Salesforce's org-wide count), which are not calls: see `calls_in`."""
        ...

    def close(self) -> None: ...


class Capability(StrEnum):
    """What a connector can do beyond the contract, declared in its `capabilities` class
    attribute; each names the members it brings (`CAPABILITY_MEMBERS`)."""

    VALIDATES_OPTIONS = "validates_options"  # options_model: settings checked before any call
    KEEPS_METADATA = "keeps_metadata"  # metadata_snapshot(), restore_metadata(): KeepsMetadata
    METADATA_MOVES = "metadata_moves"  # metadata_moved(): kept metadata was read again mid-run
    ASKS_PURGE_CHECK = "asks_purge_check"  # purge_check_wanted(): an id comparison, now
    EXPLAINS_MISSING = "explains_missing"  # explain_missing(): ids gone from a listing, not deleted
    REPORTS_ALLOWANCE = "reports_allowance"  # api_allowance(), reports_daily_limit(options)
    CHECKS_CREDENTIALS = "checks_credentials"  # check_credentials(): one cheap call
    LINKS_RECORDS = "links_records"  # record_url(): a record's page in the CRM
    CODES_VALUES = "codes_values"  # value_codec: how scores are written to the CRM's fields


CAPABILITY_MEMBERS: dict[Capability, tuple[str, ...]] = {
    Capability.VALIDATES_OPTIONS: ("options_model",),
    Capability.KEEPS_METADATA: ("metadata_snapshot", "restore_metadata"),
    Capability.METADATA_MOVES: ("metadata_moved",),
    Capability.ASKS_PURGE_CHECK: ("purge_check_wanted",),
    Capability.EXPLAINS_MISSING: ("explain_missing",),
    Capability.REPORTS_ALLOWANCE: ("api_allowance", "reports_daily_limit"),
    Capability.CHECKS_CREDENTIALS: ("check_credentials",),
    Capability.LINKS_RECORDS: ("record_url",),
    Capability.CODES_VALUES: ("value_codec",),
}


def capabilities_of(connector: object) -> frozenset[Capability]:
    """What a connector (or its class) declares; nothing for one that declares no `capabilities`
    (a third-party connector written against the bare contract)."""
    return frozenset(Capability(c) for c in getattr(connector, "capabilities", ()))


def check_capabilities(factory: object) -> list[str]:
    """Where a connector class's declared capabilities and its members disagree."""
    declared = capabilities_of(factory)
    problems = []
    for capability, members in CAPABILITY_MEMBERS.items():
        present = [m for m in members if hasattr(factory, m)]
        if capability in declared and len(present) < len(members):
            missing = ", ".join(m for m in members if m not in present)
            problems.append(f"declares {capability} but has no {missing}")
        if capability not in declared and present:
            problems.append(f"has {', '.join(present)} but does not declare {capability}")
    return problems


class KeepsMetadata(Protocol):
    """Capability.KEEPS_METADATA: metadata (field lists, stages, owners' meaning) kept between
    runs, so a run it is not due in makes none of those calls (kpisync.metadata).

    `metadata_snapshot()` returns what this run read, as JSON; `restore_metadata(snapshot)` takes a
    kept one instead of reading, or returns False when it cannot use it (then it is read again).
    """

    def metadata_snapshot(self) -> dict[str, Any]: ...

    def restore_metadata(self, snapshot: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True)
class Allowance:
    """What a connector learnt from the CRM about its org's allowance (None: not reported)."""

    daily_limit: int | None = None
    daily_remaining: int | None = None


@runtime_checkable
class ReportsAllowance(Protocol):
    """Optional connector method: the org's daily limit and what is left, as last seen."""

    def api_allowance(self) -> Allowance: ...


class MetadataMoves(Protocol):
    """Capability.METADATA_MOVES: whether kept metadata had to be read again during the run."""

    def metadata_moved(self) -> bool: ...


class AsksPurgeCheck(Protocol):
    """Capability.ASKS_PURGE_CHECK: after reading, whether the engine should compare ids now
    (records went missing where pages cannot carry deletes); `list_ids` then lists those."""

    def purge_check_wanted(self) -> bool: ...


class ExplainsMissing(Protocol):
    """Capability.EXPLAINS_MISSING: of ids missing from a listing, those the CRM still holds
    under another guise (e.g. converted leads): id -> what to record instead of a delete."""

    def explain_missing(self, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]: ...


class ValidatesOptions(Protocol):
    options_model: ClassVar[type[BaseModel]]


class ReportsDailyLimit(Protocol):
    """Capability.REPORTS_ALLOWANCE, on the class: whether a source with these options hears
    the org's daily API limit from the CRM (HubSpot: private apps only)."""

    def reports_daily_limit(self, options: Mapping[str, Any]) -> bool: ...


class LinksRecords(Protocol):
    def record_url(self, entity: str, external_id: str) -> str | None: ...


class ChecksCredentials(Protocol):
    def check_credentials(self) -> None: ...


class CodesValues(Protocol):
    value_codec: ClassVar[ValueCodec]


def options_model_of(factory: object) -> type[BaseModel] | None:
    if Capability.VALIDATES_OPTIONS not in capabilities_of(factory):
        return None
    return cast(ValidatesOptions, factory).options_model


def reports_daily_limit(factory: object, options: Mapping[str, Any]) -> bool:
    if Capability.REPORTS_ALLOWANCE not in capabilities_of(factory):
        return False
    return bool(cast(ReportsDailyLimit, factory).reports_daily_limit(options))


def record_linker(connector: object) -> LinksRecords | None:
    return (
        cast(LinksRecords, connector)
        if Capability.LINKS_RECORDS in capabilities_of(connector)
        else None
    )


def credential_checker(connector: object) -> ChecksCredentials | None:
    return (
        cast(ChecksCredentials, connector)
        if Capability.CHECKS_CREDENTIALS in capabilities_of(connector)
        else None
    )


def value_codec_of(connector: object) -> ValueCodec | None:
    if Capability.CODES_VALUES not in capabilities_of(connector):
        return None
    return cast(CodesValues, connector).value_codec


def metadata_keeper(connector: object) -> KeepsMetadata | None:
    return (
        cast(KeepsMetadata, connector)
        if Capability.KEEPS_METADATA in capabilities_of(connector)
        else None
    )


def metadata_mover(connector: object) -> MetadataMoves | None:
    return (
        cast(MetadataMoves, connector)
        if Capability.METADATA_MOVES in capabilities_of(connector)
        else None
    )


def purge_asker(connector: object) -> AsksPurgeCheck | None:
    return (
        cast(AsksPurgeCheck, connector)
        if Capability.ASKS_PURGE_CHECK in capabilities_of(connector)
        else None
    )


def explainer(connector: object) -> ExplainsMissing | None:
    return (
        cast(ExplainsMissing, connector)
        if Capability.EXPLAINS_MISSING in capabilities_of(connector)
        else None
    )


class ConnectorFactory(Protocol):
    """A connector class. What it can do beyond the contract it declares in `capabilities`:
    e.g. Capability.VALIDATES_OPTIONS with `options_model`, the pydantic model of the source's
    options, which every command validates at start without reading a secret or making a call;
    Capability.REPORTS_ALLOWANCE with `reports_daily_limit(options)` where the CRM reports the
    org's daily API limit only in some setups (budgets)."""

    type_name: ClassVar[str]

    def __call__(self, name: str, options: dict[str, Any]) -> Connector: ...
