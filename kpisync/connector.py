"""The connector contract: what every CRM connector offers the core, and what it hands back.

A connector is a class registered under the entry-point group `kpisync.connectors`. It never
touches the store; the store never calls a CRM. Everything crossing this border is a frozen
dataclass or a SQLModel row of `kpisync.store.models`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from kpisync.cursor import Cursor
from kpisync.store.models import RecordBase, Row

LIMIT_PREFIX = "limit:"
# The `raw["basis"]` of a deal stage change a connector built from the deal's versions it read,
# for a CRM whose API keeps no stage history (Vtiger): the KPIs that need the CRM's own history
# (every stage a deal passed, from its creation) treat such rows as not held.
OBSERVED_STAGE_BASIS = "observed by kpisync sync"


def calls_in(usage: Mapping[str, int]) -> int:
    """The calls a connector's `api_usage()` counts, without the CRM's usage counters."""
    return sum(count for key, count in usage.items() if not key.startswith(LIMIT_PREFIX))


@dataclass(frozen=True)
class StreamSpec:
    """One stream a connector reads, and the canonical entities its pages carry.

    A `whole` stream is read whole each run (no cursor): its rows are written only where they
    differ from the stored ones. A `metadata` stream (owners, stages) is read whole too, and only
    when the source's metadata is due (kpisync.metadata).
    """

    name: str
    entities: tuple[str, ...]
    metadata: bool = False
    whole: bool = False


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


class KeepsMetadata(Protocol):
    """Optional: a connector whose metadata (field lists, stages, owners' meaning) can be kept
    between runs, so a run it is not due in makes none of those calls (kpisync.metadata).

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


class ConnectorFactory(Protocol):
    """A connector class. Optional members the core uses when present: `options_model`, the
    pydantic model of the source's options, which every command validates at start without
    reading a secret or making a call; `reports_daily_limit(options)`, whether the CRM reports
    the org's daily API limit (budgets)."""

    type_name: ClassVar[str]

    def __call__(self, name: str, options: dict[str, Any]) -> Connector: ...
