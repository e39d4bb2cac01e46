"""Change detection: desired value vs the value last written vs the value last synced.

For one field of one record:

    W  the value kpisync last wrote there (writeback_state), with the time it was written
    S  the value the last sync read (the record's `custom`), with the time of that sync
    D  the desired value, from writeback.scores

The CRM's current value is best known as S when the record was synced after our write (or never
written), else W: a sync that ran before our write is stale, and a sync after it that read W back
is our own write coming home (it moved the CRM's modified time, nothing else). A sync after our
write that read something other than W means a person changed the field: a conflict. Overwritten by
default (the person's value goes to the audit), left alone when `on_conflict = "skip"`.
A write happens only where D differs from that best-known value, so a second run with nothing
changed plans nothing and costs no call. "Differs" and "read something other than W" are the
connector's codec's `holds` (kpisync.fieldcodec): by meaning, with the CRM's own forms of empty
(a Vtiger checkbox's 0, an emptied decimal's 0.00) equal to "unknown" where the CRM cannot hold
it; an unknown score on a field that cannot hold "unknown" leaves the field as it is. A record the
CRM reported gone is skipped until a later
sync shows it alive again; records deleted in the store are never selected at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from kpisync.fieldcodec import ValueCodec
from writeback.models import WrittenValue
from writeback.options import SourcePlan, Target
from writeback.rules import ScoreParams
from writeback.scores import ScoreBook, inputs_query
from writeback.values import blank_to_none

CHUNK = 1000


@dataclass(frozen=True)
class Written:
    value: str | None
    written_at: datetime
    gone_at: datetime | None


@dataclass(frozen=True)
class Change:
    entity: str
    external_id: str
    field: str
    score: str
    old: str | None  # the CRM's current value as best known
    new: str | None
    conflict: bool = False
    person_value: str | None = None
    skip: bool = False  # a conflict left alone (on_conflict = "skip")


@dataclass(frozen=True)
class Known:
    """What the store knows of one field on one record."""

    synced: str | None
    synced_present: bool  # the last sync read the field at all
    synced_at: datetime | None
    written: Written | None


def current_value(kind: str, known: Known, codec: ValueCodec) -> tuple[str | None, str | None]:
    """(the CRM's value as best known, the value a person put over ours or None)."""
    w = known.written
    if w is None:
        return blank_to_none(known.synced), None
    synced_after = known.synced_at is not None and known.synced_at > w.written_at
    if synced_after and known.synced_present and not codec.holds(kind, known.synced, w.value):
        return blank_to_none(known.synced), blank_to_none(known.synced)
    return w.value, None


def is_gone(known: Known) -> bool:
    gone = known.written.gone_at if known.written else None
    return gone is not None and (known.synced_at is None or known.synced_at <= gone)


def decide(
    target: Target,
    external_id: str,
    desired: str | None,
    known: Known,
    on_conflict: str,
    codec: ValueCodec,
) -> Change | None:
    """The write `target` needs on this record, or None."""
    if is_gone(known):
        return None
    kind = target.score.kind
    current, person = current_value(kind, known, codec)
    if codec.holds(kind, current, desired):
        return None
    change = Change(
        target.entity,
        external_id,
        target.field,
        target.score.name,
        current,
        desired,
        conflict=person is not None,
        person_value=person,
    )
    if change.conflict and on_conflict == "skip":
        return Change(**{**change.__dict__, "skip": True})
    return change


def plan_changes(
    connection: Connection,
    plan: SourcePlan,
    params: ScoreParams,
    codec: ValueCodec,
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> Iterator[Change]:
    """Every write `plan` needs, entity by entity, streamed; `skip` holds (entity, field) pairs."""
    for entity in plan.entities:
        targets = [t for t in plan.for_entity(entity) if (entity, t.field) not in skip]
        if targets:
            yield from plan_entity(connection, plan, entity, targets, params, codec)


def plan_entity(
    connection: Connection,
    plan: SourcePlan,
    entity: str,
    targets: Sequence[Target],
    params: ScoreParams,
    codec: ValueCodec,
) -> Iterator[Change]:
    book = ScoreBook(connection, entity, plan.source, params)
    query = inputs_query(connection, entity, plan.source, params)
    result = connection.execute(query.execution_options(yield_per=CHUNK))
    for rows in result.mappings().partitions(CHUNK):
        written = load_written(
            connection,
            plan.source,
            entity,
            [r["external_id"] for r in rows],
            [t.field for t in targets],
        )
        for row in rows:
            desired = book.values_of(dict(row))
            custom: dict[str, Any] = row["custom"] or {}
            for target in targets:
                known = Known(
                    synced=custom.get(target.field),
                    synced_present=target.field in custom,
                    synced_at=row["synced_at"],
                    written=written.get((row["external_id"], target.field)),
                )
                change = decide(
                    target,
                    row["external_id"],
                    desired[target.score.name],
                    known,
                    plan.on_conflict,
                    codec,
                )
                if change is not None:
                    yield change


def load_written(
    connection: Connection, source: str, entity: str, ids: Sequence[str], fields: Sequence[str]
) -> dict[tuple[str, str], Written]:
    t = WrittenValue.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(t.c.external_id, t.c.field, t.c.value, t.c.written_at, t.c.gone_at).where(
            t.c.source == source,
            t.c.entity == entity,
            t.c.external_id.in_(list(ids)),
            t.c.field.in_(list(fields)),
        )
    )
    return {(r.external_id, r.field): Written(r.value, r.written_at, r.gone_at) for r in rows}
