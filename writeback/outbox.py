"""The outbox: planned writes stored before they are sent, sent in batches, results recorded.

A run's items are inserted in the same transaction as the run itself, so a crash leaves either the
whole plan or none of it. Each batch is marked `sending` (committed) before the call and its
results, audit rows and the values last written are committed together right after it. A crash
can therefore leave at most the one in-flight batch unknown; `resolve_in_flight` settles it from
the store: a sync after the send that read our value back proves it landed (audited as written, not
sent again); anything else goes back to `pending` and is sent again (a field write is idempotent).

A write counts as written only when the value the CRM answered holding (`WriteResult.held`)
means the value sent, by the connector's codec: anything else is a failed write with its reason.
Such a write did change the field, so the value the CRM holds is kept as the value last written:
the next sync reading it back is then not taken for a person's edit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.sql import Select

from kpisync.connector import Connector, FieldUpdate, WriteResult, value_codec_of
from kpisync.fieldcodec import GENERIC, ValueCodec, blank_to_none
from kpisync.store.models import ENTITY_MODELS
from kpisync.store.upsert import dialect_insert
from writeback.guard import Guard
from writeback.models import AuditEntry, OutboxItem, WriteRun, WrittenValue
from writeback.planner import Change
from writeback.scores import SCORES

INSERT_CHUNK = 1000
OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]
AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
RUNS = WriteRun.__table__  # type: ignore[attr-defined]
STATE = WrittenValue.__table__  # type: ignore[attr-defined]
FINAL = ("written", "failed", "not_found", "skipped")
AWAITING = ("planned",)  # a run in approve mode: its items wait for `kpisync writeback approve`


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Item:
    id: int
    run_id: int
    source: str
    entity: str
    external_id: str
    field: str
    score: str
    old_value: str | None
    new_value: str | None
    conflict: bool
    person_value: str | None


def start_run(
    connection: Connection,
    source: str,
    kind: str,
    as_of: datetime | None,
    reverts_run: int | None = None,
) -> int:
    inserted = connection.execute(
        RUNS.insert().values(
            source=source,
            kind=kind,
            reverts_run=reverts_run,
            status="running",
            started_at=now_utc(),
            as_of=as_of,
            planned=0,
            written=0,
            failed=0,
            not_found=0,
            conflicts=0,
            write_calls=0,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def store_changes(
    connection: Connection,
    run_id: int,
    source: str,
    changes: Iterable[Change],
    guard: Guard | None,
    kinds: dict[tuple[str, str], str],
) -> None:
    """Insert `changes` as pending items (skipped conflicts as `skipped`); the guard vets each."""
    rows: list[dict[str, Any]] = []
    for change in changes:
        if (
            not change.skip
            and guard is not None
            and not guard.check(
                change.entity, change.field, kinds[(change.entity, change.field)], change.new
            )
        ):
            continue
        rows.append(
            {
                "run_id": run_id,
                "source": source,
                "entity": change.entity,
                "external_id": change.external_id,
                "field": change.field,
                "score": change.score,
                "old_value": change.old,
                "new_value": change.new,
                "conflict": change.conflict,
                "person_value": change.person_value,
                "status": "skipped" if change.skip else "pending",
            }
        )
        if len(rows) >= INSERT_CHUNK:
            connection.execute(OUTBOX.insert(), rows)
            rows = []
    if rows:
        connection.execute(OUTBOX.insert(), rows)
    for entity, name in guard.problems if guard is not None else {}:
        connection.execute(
            OUTBOX.delete().where(
                OUTBOX.c.run_id == run_id, OUTBOX.c.entity == entity, OUTBOX.c.field == name
            )
        )


def runs_with_open_items() -> Select[tuple[int]]:
    """The runs that still have items to send (pending, or sending when a crash came)."""
    return select(OUTBOX.c.run_id).where(OUTBOX.c.status.in_(("pending", "sending")))


def unfinished_runs(connection: Connection, source: str) -> list[int]:
    """Runs of `source` that a crash or an error left with items not yet settled, oldest first
    (a plan awaiting approval is not unfinished: it is sent only when approved)."""
    rows = connection.execute(
        select(RUNS.c.id)
        .where(RUNS.c.source == source, RUNS.c.status.not_in(AWAITING))
        .where((RUNS.c.status == "running") | RUNS.c.id.in_(runs_with_open_items()))
        .order_by(RUNS.c.id)
    )
    return [int(r[0]) for r in rows]


def hold_for_approval(connection: Connection, source: str, run_id: int) -> None:
    """Make run `run_id` a plan awaiting approval; the source's older plans are superseded."""
    older = select(RUNS.c.id).where(
        RUNS.c.source == source, RUNS.c.status == "planned", RUNS.c.id != run_id
    )
    connection.execute(
        update(OUTBOX)
        .where(OUTBOX.c.run_id.in_(older), OUTBOX.c.status == "pending")
        .values(status="skipped", error=f"superseded by plan {run_id}")
    )
    connection.execute(
        update(RUNS).where(RUNS.c.id.in_(older)).values(status="superseded", finished_at=now_utc())
    )
    planned = (
        connection.execute(
            select(func.count()).where(OUTBOX.c.run_id == run_id, OUTBOX.c.status == "pending")
        ).scalar()
        or 0
    )
    connection.execute(
        update(RUNS).where(RUNS.c.id == run_id).values(status="planned", planned=planned)
    )


def codec_of(connector: Connector) -> ValueCodec:
    """The connector's value codec; the generic one for a connector that declares none."""
    return value_codec_of(connector) or GENERIC


def resolve_in_flight(connection: Connection, run_id: int, codec: ValueCodec) -> tuple[int, int]:
    """Settle items a crash left `sending`: (confirmed written, sent again)."""
    items = load_items(connection, and_(OUTBOX.c.run_id == run_id, OUTBOX.c.status == "sending"))
    sending_at = {
        r.id: r.sending_at
        for r in connection.execute(
            select(OUTBOX.c.id, OUTBOX.c.sending_at).where(
                OUTBOX.c.run_id == run_id, OUTBOX.c.status == "sending"
            )
        )
    }
    landed, again = [], []
    for item in items:
        synced = synced_value(connection, item)
        sent = sending_at[item.id]
        if (
            synced is not None
            and sent is not None
            and synced[1] is not None
            and synced[1] > sent
            and synced[2]
            and codec.holds(kind_of(item), synced[0], item.new_value)
        ):
            landed.append(item)
        else:
            again.append(item)
    if landed:
        when = min(sending_at[i.id] or now_utc() for i in landed)
        record_results(
            connection, landed, [WriteResult(i.external_id, ok=True) for i in landed], when, codec
        )
    if again:
        connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_([i.id for i in again]))
            .values(status="pending", sending_at=None)
        )
    return len(landed), len(again)


def kind_of(item: Item) -> str:
    return next(
        (s.kind for s in SCORES if s.entity == item.entity and s.name == item.score), "string"
    )


def synced_value(connection: Connection, item: Item) -> tuple[Any, datetime | None, bool] | None:
    """(value the last sync read, when, whether it read the field) for the item's record."""
    model = ENTITY_MODELS.get(item.entity)
    if model is None:
        return None
    t = model.__table__  # type: ignore[attr-defined]
    row = connection.execute(
        select(t.c.custom, t.c.synced_at).where(
            t.c.source == item.source, t.c.external_id == item.external_id
        )
    ).first()
    if row is None:
        return None
    custom = row.custom or {}
    return custom.get(item.field), row.synced_at, item.field in custom


def load_items(connection: Connection, where: Any) -> list[Item]:
    columns = [OUTBOX.c[name] for name in Item.__dataclass_fields__]
    rows = connection.execute(
        select(*columns).where(where).order_by(OUTBOX.c.external_id, OUTBOX.c.field)
    )
    return [Item(**row._mapping) for row in rows]


def next_batch(
    connection: Connection, run_id: int, entity: str, after: str, size: int
) -> list[Item]:
    """Pending items of the next `size` records (by id) after `after`, marked `sending`."""
    ids = [
        r[0]
        for r in connection.execute(
            select(OUTBOX.c.external_id)
            .where(
                OUTBOX.c.run_id == run_id,
                OUTBOX.c.entity == entity,
                OUTBOX.c.status == "pending",
                OUTBOX.c.external_id > after,
            )
            .group_by(OUTBOX.c.external_id)
            .order_by(OUTBOX.c.external_id)
            .limit(size)
        )
    ]
    if not ids:
        return []
    items = load_items(
        connection,
        and_(
            OUTBOX.c.run_id == run_id,
            OUTBOX.c.entity == entity,
            OUTBOX.c.status == "pending",
            OUTBOX.c.external_id.in_(ids),
        ),
    )
    connection.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_([i.id for i in items]))
        .values(status="sending", sending_at=now_utc())
    )
    return items


def updates_of(items: Sequence[Item], codec: ValueCodec) -> list[FieldUpdate]:
    by_record: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for item in items:
        by_record[item.external_id].append((item.field, codec.wire(kind_of(item), item.new_value)))
    return [FieldUpdate(external_id=rid, values=tuple(values)) for rid, values in by_record.items()]


def send_batch(engine: Engine, connector: Connector, items: Sequence[Item]) -> None:
    """One call for `items` (already marked sending); results committed as one transaction.

    A CRM that refuses a whole batch for one bad value (HubSpot: 400 VALIDATION_ERROR) gives every
    record the same error; the batch is then split in halves and each half sent on its own, so the
    good records land and each refusal ends on the record that caused it.
    """
    codec = codec_of(connector)
    updates = updates_of(items, codec)
    results = connector.write(items[0].entity, updates)
    with engine.begin() as connection:
        connection.execute(
            update(RUNS)
            .where(RUNS.c.id == items[0].run_id)
            .values(write_calls=RUNS.c.write_calls + 1)
        )
        if len(updates) > 1 and refused_whole(results):
            half = {u.external_id for u in updates[: len(updates) // 2]}
            parts = [
                [i for i in items if i.external_id in half],
                [i for i in items if i.external_id not in half],
            ]
        else:
            record_results(connection, items, results, now_utc(), codec)
            parts = []
    for part in parts:
        send_batch(engine, connector, part)


def refused_whole(results: Sequence[WriteResult]) -> bool:
    errors = {r.error for r in results if not r.ok and not r.not_found}
    return len(errors) == 1 and all(not r.ok and not r.not_found for r in results)


def verdict(item: Item, result: WriteResult, codec: ValueCodec) -> tuple[str, str | None]:
    """(written | failed | not_found, why not written) for one item's field."""
    if not result.ok:
        return ("not_found" if result.not_found else "failed"), (result.error or "refused")
    if result.held is None:  # a connector that cannot read back: taken as reported
        return "written", None
    if item.field not in result.held:
        return "failed", f"{codec.name}'s answer to the write has no value for {item.field}"
    problem = codec.mismatch(kind_of(item), item.field, result.held[item.field], item.new_value)
    return ("written", None) if problem is None else ("failed", problem)


def record_results(
    connection: Connection,
    items: Sequence[Item],
    results: Sequence[WriteResult],
    at: datetime,
    codec: ValueCodec,
) -> None:
    by_id = {r.external_id: r for r in results}
    audit, written, gone, landed_otherwise = [], [], [], []
    settled: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for item in items:
        result = by_id.get(item.external_id) or WriteResult(
            item.external_id, ok=False, error="the CRM returned no result"
        )
        status, error = verdict(item, result, codec)
        if result.ok and status == "failed" and result.held and item.field in result.held:
            landed_otherwise.append(replace(item, new_value=blank_to_none(result.held[item.field])))
        settled[(status, error)].append(item.id)
        audit.append(
            {
                "run_id": item.run_id,
                "outbox_id": item.id,
                "source": item.source,
                "entity": item.entity,
                "external_id": item.external_id,
                "field": item.field,
                "score": item.score,
                "old_value": item.old_value,
                "new_value": item.new_value,
                "conflict": item.conflict,
                "person_value": item.person_value,
                "result": status,
                "error": error,
                "at": at,
            }
        )
        if status == "written":
            written.append(item)
        elif status == "not_found":
            gone.append(item)
    for (status, error), ids in settled.items():
        connection.execute(
            update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(status=status, error=error)
        )
    if audit:
        connection.execute(AUDIT.insert(), audit)
    save_written(connection, written + landed_otherwise, at)
    mark_gone(connection, gone, at)


def _insert(connection: Connection) -> Any:
    return dialect_insert(STATE, connection.dialect.name)


KEY = [STATE.c.source, STATE.c.entity, STATE.c.external_id, STATE.c.field]


def save_written(connection: Connection, items: Sequence[Item], at: datetime) -> None:
    if not items:
        return
    statement = _insert(connection)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=KEY,
            set_={
                "value": statement.excluded.value,
                "written_at": statement.excluded.written_at,
                "run_id": statement.excluded.run_id,
                "gone_at": None,
            },
        ),
        [
            {
                "source": i.source,
                "entity": i.entity,
                "external_id": i.external_id,
                "field": i.field,
                "value": i.new_value,
                "written_at": at,
                "run_id": i.run_id,
                "gone_at": None,
            }
            for i in items
        ],
    )


def mark_gone(connection: Connection, items: Sequence[Item], at: datetime) -> None:
    if not items:
        return
    statement = _insert(connection)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=KEY, set_={"gone_at": statement.excluded.gone_at}
        ),
        [
            {
                "source": i.source,
                "entity": i.entity,
                "external_id": i.external_id,
                "field": i.field,
                "value": i.old_value,
                "written_at": at,
                "run_id": i.run_id,
                "gone_at": at,
            }
            for i in items
        ],
    )


def drop_old_rows(connection: Connection, source: str, finished_before: datetime) -> int:
    """Delete the outbox and audit rows of `source`'s runs finished before `finished_before`.

    The run rows stay, with their counts; only the per-value rows go, which a run writing days in
    stage on every open deal adds each day. A run with items still to send keeps them all, for
    the next run to resume. Returns how many audit rows were dropped.
    """
    old = select(RUNS.c.id).where(
        RUNS.c.source == source,
        RUNS.c.status != "running",
        RUNS.c.finished_at < finished_before,
        RUNS.c.id.not_in(runs_with_open_items()),
    )
    connection.execute(OUTBOX.delete().where(OUTBOX.c.run_id.in_(old)))
    return int(connection.execute(AUDIT.delete().where(AUDIT.c.run_id.in_(old))).rowcount or 0)


def outcome(written: int, failed: int) -> str:
    """A run's status from its counts: any failed write makes it partial (some landed) or failed."""
    if not failed:
        return "succeeded"
    return "partial" if written else "failed"


def finish_run(
    connection: Connection, run_id: int, status: str | None, error: str | None = None
) -> None:
    """Counts from the outbox onto the run; `status` None: from the counts (`outcome`)."""
    rows = connection.execute(
        select(OUTBOX.c.status, func.count())
        .where(OUTBOX.c.run_id == run_id)
        .group_by(OUTBOX.c.status)
    )
    counts: dict[str, int] = {str(status): int(n) for status, n in rows}
    if status is None:
        status = outcome(counts.get("written", 0), counts.get("failed", 0))
    conflicts = (
        connection.execute(
            select(func.count()).where(OUTBOX.c.run_id == run_id, OUTBOX.c.conflict.is_(True))
        ).scalar()
        or 0
    )
    connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(
            status=status,
            finished_at=now_utc(),
            error=error,
            planned=sum(counts.values()),
            written=counts.get("written", 0),
            failed=counts.get("failed", 0),
            not_found=counts.get("not_found", 0),
            conflicts=conflicts,
        )
    )
