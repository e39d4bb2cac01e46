"""What a connector author hands the conformance suite: a source they control, and its truth.

`ConformanceSubject` is one source under test, fresh for each test: the suite seeds nothing
itself (a third party has no emulator of ours); the subject's constructor seeds the source, its
methods change it and say what it holds now.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import Engine, select

from kpisync.connector import Connector, FieldSpec
from kpisync.errors import ConnectorError
from kpisync.store.models import ENTITY_MODELS

# entity -> external id -> {store column: expected value}, for the records the source holds live
Truth = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class ErrorCase:
    """A failure the connector must report as one of kpisync's connector errors.

    `connector` builds a connector that meets the failure (wrong credentials, a closed port, a
    record it cannot read at the stored cursor); it must come before any record is read. `secrets`
    are strings that must never show in the error or the run's record."""

    name: str
    expected: type[ConnectorError]
    connector: Callable[[], Connector]
    found_by_check: bool = True  # `check()` reports it as a Problem
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class WriteCase:
    """A managed field the connector creates (or finds, when the subject created it as an admin
    would), written on one live record."""

    spec: FieldSpec
    external_id: str
    value: Any  # as the field's codec sends it (`FieldUpdate.values`)
    read_back: Callable[[], Any]  # the value the source holds in that field now
    missing_id: str  # an id of `spec.entity` the source does not hold


class ConformanceSubject(ABC):
    """One source under test. Subclass it, seed the source in `__init__`, and give it to the
    suite through a fixture named `conformance_subject` (docs/connector-authors.md).

    The source must hold enough records for a full read to take at least `MIN_PAGES` pages, so
    that reads can be interrupted between them."""

    MIN_PAGES: ClassVar[int] = 3
    source: str = "conformance"
    # True when the connector learns of deletes only from `list_ids` (kpisync's id comparison),
    # not from its incremental pages: the suite then asks for the comparison on every sync.
    deletes_by_id_comparison: bool = False

    @abstractmethod
    def connector(self) -> Connector:
        """A new connector on the source, as a user's settings would build it."""

    @abstractmethod
    def edit(self, seed: int) -> set[tuple[str, str]]:
        """Change a few live records (different ones for different seeds); return them as
        (entity, external id). Return once an incremental sync started now would see them (a
        source with one-second timestamps waits for its clock to pass the edit)."""

    @abstractmethod
    def delete(self) -> tuple[str, str]:
        """Delete one live record in the source's own way; return it as (entity, external id)."""

    @abstractmethod
    def error_cases(self) -> Sequence[ErrorCase]:
        """At least one failure the connector maps to kpisync's errors."""

    def write_case(self) -> WriteCase | None:
        """None for a read-only connector: it must then refuse writes (RejectedError)."""
        return None

    def truth(self) -> Truth:
        """The live records the source holds, with the store columns they must fill."""
        raise NotImplementedError(
            f"{type(self).__name__}: define truth() or override assert_store_equals_truth()"
        )

    def assert_store_equals_truth(self, engine: Engine) -> None:
        """The store's live rows of this source equal `truth()`; a subject with a deeper check of
        its own may override this."""
        assert_store_matches(engine, self.source, self.truth())


def comparable(value: Any) -> Any:
    """A value as truth checks compare it: money by value, custom fields without explicit nulls,
    aware instants in UTC."""
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, float):
        return Decimal(str(value)).normalize()
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def assert_store_matches(engine: Engine, source: str, truth: Truth) -> None:
    """Every entity of `truth`: the same live ids in the store, each column as expected."""
    for entity, records in truth.items():
        table = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
        columns = sorted({name for values in records.values() for name in values})
        with engine.connect() as connection:
            rows = {
                row.external_id: row._mapping
                for row in connection.execute(
                    select(table).where(table.c.source == source, table.c.deleted_at.is_(None))
                )
            }
        missing, extra = sorted(records.keys() - rows.keys()), sorted(rows.keys() - records.keys())
        assert not missing and not extra, (
            f"{entity}: the store lacks {missing[:5]} and holds {extra[:5]} beyond the source"
        )
        for external_id, expected in records.items():
            stored = rows[external_id]
            for column in columns:
                if column in expected:
                    assert comparable(stored[column]) == comparable(expected[column]), (
                        f"{entity} {external_id}.{column}: stored {stored[column]!r}, "
                        f"the source holds {expected[column]!r}"
                    )
