"""One write-back run of one source, start to finish, and the revert of a run.

    resume   runs a crash or an error left unfinished are settled and finished first
    plan     desired values vs written vs synced (writeback.planner), vetted by the drift guard,
             stored as the run's outbox in the same transaction as the run itself
    send     the outbox in batches of the connector's size through `connector.write`
    finish   counts from the outbox onto the run

A dry run plans in a transaction that is rolled back: it shows exactly what a run would store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import ceil
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from kpisync.config import Settings
from kpisync.connector import Connector, FieldInfo, calls_in, credential_checker
from kpisync.errors import KpisyncError, WritebackError, WritesFailed
from kpisync.fieldcodec import ValueCodec
from kpisync.secrets import mask
from kpisync.store.models import ENTITY_MODELS
from writeback import outbox
from writeback.guard import Guard, record_pauses, resting_pauses
from writeback.models import AuditEntry, FieldHold, WriteRun
from writeback.options import SourcePlan, score_params, source_plan
from writeback.planner import Change, Known, Written, current_value, is_gone, plan_changes
from writeback.scores import SCORES

log = logging.getLogger(__name__)
BATCH_SIZES = {"hubspot": 100, "salesforce": 200, "vtiger": 1}  # until connectors declare theirs
SAMPLE = 50
FAILURES_SHOWN = 1000  # every failed field is named, up to this many (the audit holds them all)


@dataclass(frozen=True)
class PlannedRow:
    entity: str
    external_id: str
    field: str
    old: str | None
    new: str | None
    status: str
    conflict: bool
    error: str | None = None


@dataclass
class RunReport:
    source: str
    run_id: int | None
    kind: str = "write"
    dry_run: bool = False
    status: str = "succeeded"
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (entity, field) -> writes
    records: dict[str, int] = field(default_factory=dict)  # entity -> records to write
    write_calls: int = 0  # planned (dry run) or made
    api_calls: int = 0  # every call the connector made during the run
    written: int = 0
    failed: int = 0
    not_found: int = 0
    conflicts: int = 0
    skipped: int = 0
    unchanged_since: int = 0  # revert: fields changed since the run, left alone
    paused: dict[tuple[str, str], str] = field(default_factory=dict)
    resumed: list[tuple[str, str]] = field(default_factory=list)
    resumed_runs: list[int] = field(default_factory=list)
    resumed_failed: dict[int, int] = field(default_factory=dict)  # resumed run -> failed writes
    sample: list[PlannedRow] = field(default_factory=list)
    failures: list[PlannedRow] = field(default_factory=list)
    mode: str = "auto"
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # field -> revert run holding it
    refused: list[PlannedRow] = field(default_factory=list)  # approve: changed since the plan

    @property
    def planned(self) -> int:
        return sum(self.counts.values())

    def failure_error(self) -> WritesFailed | None:
        """The error a run with failed writes ends its command with; None when none failed."""
        if self.dry_run or not (self.failed or self.resumed_failed):
            return None
        earlier = "; ".join(
            f"interrupted run {run} finished with {n} failed write(s)"
            for run, n in sorted(self.resumed_failed.items())
        )
        if not self.failed:
            return WritesFailed(
                f"{self.source}: {earlier}",
                hint=f"'kpisync writeback runs --source {self.source}' and those "
                "runs' audit give each field and reason",
            )
        named = [
            f"{r.entity} {r.external_id} {r.field}"
            for r in self.failures
            if r.status != "not_found"
        ][:5]
        more = self.failed - len(named)
        return WritesFailed(
            f"{self.source}: write-back run {self.run_id} {self.status}: {self.failed} of "
            f"{self.written + self.failed} write(s) failed ({'; '.join(named)}"
            + (f" and {more} more" if more > 0 else "")
            + ")"
            + (f"; {earlier}" if earlier else ""),
            hint="the reason for each is in 'kpisync writeback runs' and the run's audit; the "
            "next run writes them again",
        )


def batch_size_of(connector: Connector, plan: SourcePlan | None = None) -> int:
    """Records per write call: the connector's maximum, or less where settings say so."""
    declared = getattr(connector, "write_batch_size", None)
    largest = int(declared) if declared else BATCH_SIZES.get(connector.type_name, 100)
    wanted = plan.batch_size if plan is not None else None
    return min(largest, wanted) if wanted else largest


def kinds_of(plan: SourcePlan) -> dict[tuple[str, str], str]:
    return {(t.entity, t.field): t.score.kind for t in plan.targets}


def run_writeback(
    engine: Engine,
    settings: Settings,
    source: str,
    connector: Connector,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    sample: int | None = SAMPLE,
) -> RunReport:
    """Plan and (unless `dry_run`) send the writes `source` needs now; the report shows the
    first `sample` planned changes (all of them when None)."""
    plan = source_plan(settings, source)
    if plan.mode == "off":
        return RunReport(source=source, run_id=None, dry_run=dry_run, status="off", mode="off")
    params = score_params(settings, as_of or outbox.now_utc())
    calls_before = calls_in(connector.api_usage())
    guard = Guard(connector, fields=check_credentials(connector))
    resumed = [] if dry_run else resume(engine, connector, source, batch_size_of(connector, plan))
    codec = outbox.codec_of(connector)
    with engine.connect() as connection:
        transaction = connection.begin()
        run_id = outbox.start_run(connection, source, "write", params.as_of)
        resting = resting_pauses(connection, source, outbox.now_utc())
        held = holds(connection, source)
        changes = plan_changes(
            connection, plan, params, codec, skip=frozenset(resting) | frozenset(held)
        )
        outbox.store_changes(connection, run_id, source, changes, guard, kinds_of(plan))
        scores = {(t.entity, t.field): t.score.name for t in plan.targets}
        paused, lifted = record_pauses(connection, source, guard, scores, outbox.now_utc())
        report = summarize(connection, run_id, source, batch_size_of(connector, plan), sample)
        report.paused = {**resting, **guard.problems}
        report.resumed, report.resumed_runs = lifted, resumed
        report.resumed_failed = resumed_failures(connection, resumed)
        report.mode, report.held = plan.mode, held
        if dry_run:
            transaction.rollback()
            report.run_id, report.dry_run = None, True
        else:
            if plan.mode == "approve":
                outbox.hold_for_approval(connection, source, run_id)
                report.status = "planned"
            transaction.commit()
            _log_pauses(source, {key: guard.problems[key] for key in paused}, lifted)
    if not dry_run and plan.mode == "auto":
        send_and_finish(engine, connector, run_id, report, batch_size_of(connector, plan))
        if plan.rules.keep_days:
            with engine.begin() as connection:
                outbox.drop_old_rows(
                    connection, source, outbox.now_utc() - timedelta(days=plan.rules.keep_days)
                )
    report.api_calls = calls_in(connector.api_usage()) - calls_before
    if report.run_id is not None:
        record_calls(engine, report.run_id, report.api_calls)
    return report


def refuse_changed(
    connection: Connection, plan_id: int, source: str, codec: ValueCodec
) -> list[PlannedRow]:
    """Mark `skipped` each pending change of the plan whose field the store now knows to hold
    something other than what the plan found; returns them, with the value found now."""
    refused: list[PlannedRow] = []
    for item in outbox.load_items(
        connection, (outbox.OUTBOX.c.run_id == plan_id) & (outbox.OUTBOX.c.status == "pending")
    ):
        kind = outbox.kind_of(item)
        now, _ = current_value(
            kind, known_now(connection, source, item.entity, item.external_id, item.field), codec
        )
        if codec.holds(kind, now, item.old_value):
            continue
        why = f"the CRM value changed since the plan: {now!r}, planned over {item.old_value!r}"
        connection.execute(
            update(outbox.OUTBOX)
            .where(outbox.OUTBOX.c.id == item.id)
            .values(status="skipped", error=why)
        )
        refused.append(
            PlannedRow(
                item.entity, item.external_id, item.field, now, item.new_value, "skipped", True, why
            )
        )
    return refused


def check_credentials(connector: Connector) -> list[FieldInfo] | None:
    """Every write-back run starts here, so a wrong token fails it even when nothing is to be
    written: one cheap call (`connector.check_credentials()`, which raises the CRM's auth error),
    or, for a connector without it, the field definitions the drift guard reads anyway."""
    checker = credential_checker(connector)
    if checker is not None:
        checker.check_credentials()
        return None
    return connector.discover()


def record_calls(engine: Engine, run_id: int, calls: int) -> None:
    """The run's row counts every call the run made, the figure its command printed."""
    with engine.begin() as connection:
        connection.execute(
            update(outbox.RUNS)
            .where(outbox.RUNS.c.id == run_id)
            .values(api_calls=outbox.RUNS.c.api_calls + calls)
        )


# -- holds: fields a revert put back stay as they are until resumed ------------------------------
def holds(connection: Connection, source: str) -> dict[tuple[str, str], int]:
    t = FieldHold.__table__  # type: ignore[attr-defined]
    rows = connection.execute(select(t.c.entity, t.c.field, t.c.run_id).where(t.c.source == source))
    return {(r.entity, r.field): int(r.run_id) for r in rows}


def hold_fields(
    connection: Connection, source: str, run_id: int, fields: set[tuple[str, str]]
) -> None:
    t = FieldHold.__table__  # type: ignore[attr-defined]
    known = holds(connection, source)
    for entity, name in sorted(fields):
        if (entity, name) in known:
            connection.execute(
                update(t)
                .where(t.c.source == source, t.c.entity == entity, t.c.field == name)
                .values(run_id=run_id)
            )
        else:
            connection.execute(
                t.insert().values(
                    source=source,
                    entity=entity,
                    field=name,
                    run_id=run_id,
                    held_at=outbox.now_utc(),
                )
            )


def resume_fields(
    engine: Engine, source: str | None, name: str | None
) -> list[tuple[str, str, str]]:
    """Lift the holds of `source` (every source when None) on field `name` (every field when
    None); returns the (source, entity, field) lifted."""
    t = FieldHold.__table__  # type: ignore[attr-defined]
    where = [t.c.source == source] if source else []
    if name:
        where.append(t.c.field == name)
    with engine.begin() as connection:
        rows = connection.execute(
            select(t.c.source, t.c.entity, t.c.field)
            .where(*where)
            .order_by(t.c.source, t.c.entity, t.c.field)
        ).all()
        connection.execute(delete(t).where(*where))
    return [(r.source, r.entity, r.field) for r in rows]


def resume_hint(source: str, name: str) -> str:
    return f"kpisync writeback resume --source {source} --field {name}"


# -- approve: send exactly a plan made in approve mode -------------------------------------------
def approve_plan(
    engine: Engine, settings: Settings, plan_id: int, connector: Connector
) -> RunReport:
    """Send plan `plan_id`'s changes, refusing each whose CRM value changed since the plan (by
    the store's last sync, the conflict rule of writeback.planner)."""
    with engine.connect() as connection:
        run = connection.execute(select(outbox.RUNS).where(outbox.RUNS.c.id == plan_id)).first()
    if run is None or run.kind != "write":
        raise WritebackError(
            f"no write-back plan {plan_id}",
            hint="'kpisync writeback runs' lists plans as status planned",
        )
    if run.status != "planned":
        raise WritebackError(
            f"write-back plan {plan_id} is {run.status}, not awaiting approval",
            hint=f"make a new plan: kpisync writeback --source {run.source}",
        )
    source = run.source
    plan = source_plan(settings, source)
    if plan.mode == "off":
        raise WritebackError(
            f'write-back of {source} is off (writeback.{source}.mode = "off")',
            hint=f'set writeback.{source}.mode = "approve" to send plans',
        )
    size = batch_size_of(connector, plan)
    calls_before = calls_in(connector.api_usage())
    check_credentials(connector)
    resumed = resume(engine, connector, source, size)
    codec = outbox.codec_of(connector)
    with engine.begin() as connection:
        refused = refuse_changed(connection, plan_id, source, codec)
        connection.execute(
            update(outbox.RUNS).where(outbox.RUNS.c.id == plan_id).values(status="running")
        )
        report = summarize(connection, plan_id, source, size)
    report.resumed_runs = resumed
    report.refused = refused
    send_and_finish(engine, connector, plan_id, report, size)
    report.refused = refused
    report.api_calls = calls_in(connector.api_usage()) - calls_before
    record_calls(engine, plan_id, report.api_calls)
    return report


def _log_pauses(
    source: str, paused: dict[tuple[str, str], str], lifted: list[tuple[str, str]]
) -> None:
    """Once per pause and per resumption, so that an unattended run says what stopped."""
    for (entity, name), reason in paused.items():
        log.warning(
            "%s: write-back of %s.%s paused: %s; the other fields are written, and this "
            "one resumes by itself once its field is fixed",
            source,
            entity,
            name,
            reason,
        )
    for entity, name in lifted:
        log.info("%s: write-back of %s.%s resumed", source, entity, name)


def resume(engine: Engine, connector: Connector, source: str, size: int) -> list[int]:
    """Settle and finish the runs a crash or an error left open; returns their ids (their failed
    writes: `resumed_failures`)."""
    with engine.connect() as connection:
        runs = outbox.unfinished_runs(connection, source)
    for run_id in runs:
        with engine.begin() as connection:
            landed, again = outbox.resolve_in_flight(connection, run_id, outbox.codec_of(connector))
        if landed or again:
            log.info(
                "run %d: %d in-flight writes confirmed from the store, %d to send again",
                run_id,
                landed,
                again,
            )
        send_and_finish(engine, connector, run_id, RunReport(source=source, run_id=run_id), size)
    return runs


def resumed_failures(connection: Connection, runs: list[int]) -> dict[int, int]:
    """Run id -> failed writes, for those of `runs` that ended with any."""
    if not runs:
        return {}
    r = outbox.RUNS
    rows = connection.execute(select(r.c.id, r.c.failed).where(r.c.id.in_(runs), r.c.failed > 0))
    return {int(row.id): int(row.failed) for row in rows}


def send_and_finish(
    engine: Engine, connector: Connector, run_id: int, report: RunReport, size: int
) -> None:
    try:
        send_pending(engine, connector, run_id, size)
    except KpisyncError as error:
        with engine.begin() as connection:
            outbox.finish_run(connection, run_id, "failed", mask(error.message))
        raise WritebackError(
            f"write-back run {run_id} stopped: {error.message}",
            hint="the next run resumes it; " + (error.hint or ""),
        ) from error
    with engine.begin() as connection:
        outbox.finish_run(connection, run_id, None)  # succeeded, partial or failed by its counts
        fill_results(connection, run_id, report)


def send_pending(engine: Engine, connector: Connector, run_id: int, size: int) -> None:
    with engine.connect() as connection:
        entities = [
            r[0]
            for r in connection.execute(
                select(outbox.OUTBOX.c.entity)
                .where(outbox.OUTBOX.c.run_id == run_id, outbox.OUTBOX.c.status == "pending")
                .group_by(outbox.OUTBOX.c.entity)
                .order_by(outbox.OUTBOX.c.entity)
            )
        ]
    for entity in entities:
        after = ""
        while True:
            with engine.begin() as connection:
                items = outbox.next_batch(connection, run_id, entity, after, size)
            if not items:
                break
            outbox.send_batch(engine, connector, items)
            after = max(i.external_id for i in items)


def summarize(
    connection: Connection, run_id: int, source: str, size: int, sample: int | None = SAMPLE
) -> RunReport:
    o = outbox.OUTBOX
    report = RunReport(source=source, run_id=run_id)
    for entity, name, status, n in connection.execute(
        select(o.c.entity, o.c.field, o.c.status, func.count())
        .where(o.c.run_id == run_id)
        .group_by(o.c.entity, o.c.field, o.c.status)
    ):
        if status == "skipped":
            report.skipped += n
        else:
            report.counts[(entity, name)] = report.counts.get((entity, name), 0) + n
    for entity, n in connection.execute(
        select(o.c.entity, func.count(func.distinct(o.c.external_id)))
        .where(o.c.run_id == run_id, o.c.status == "pending")
        .group_by(o.c.entity)
    ):
        report.records[entity] = n
    report.write_calls = sum(ceil(n / size) for n in report.records.values())
    report.conflicts = (
        connection.execute(
            select(func.count()).where(o.c.run_id == run_id, o.c.conflict.is_(True))
        ).scalar()
        or 0
    )
    report.sample = planned_rows(connection, (o.c.run_id == run_id), sample)
    return report


def planned_rows(connection: Connection, where: Any, limit: int | None) -> list[PlannedRow]:
    o = outbox.OUTBOX
    rows = connection.execute(
        select(
            o.c.entity,
            o.c.external_id,
            o.c.field,
            o.c.old_value,
            o.c.new_value,
            o.c.status,
            o.c.conflict,
            o.c.error,
        )
        .where(where)
        .order_by(o.c.entity, o.c.external_id, o.c.field)
        .limit(limit)
    )
    return [
        PlannedRow(
            r.entity,
            r.external_id,
            r.field,
            r.old_value,
            r.new_value,
            r.status,
            r.conflict,
            r.error,
        )
        for r in rows
    ]


def fill_results(connection: Connection, run_id: int, report: RunReport) -> None:
    run = connection.execute(select(outbox.RUNS).where(outbox.RUNS.c.id == run_id)).one()
    report.status, report.written, report.failed = run.status, run.written, run.failed
    report.not_found, report.conflicts, report.write_calls = (
        run.not_found,
        run.conflicts,
        run.write_calls,
    )
    o = outbox.OUTBOX
    report.failures = planned_rows(
        connection, (o.c.run_id == run_id) & o.c.status.in_(("failed", "not_found")), FAILURES_SHOWN
    )


# -- revert --------------------------------------------------------------------------------------
def revert_run(
    engine: Engine, settings: Settings, run_id: int, connector: Connector, *, dry_run: bool = False
) -> RunReport:
    """Put back the values run `run_id` replaced, where they are still what that run wrote."""
    with engine.connect() as connection:
        run = connection.execute(select(outbox.RUNS).where(outbox.RUNS.c.id == run_id)).first()
    if run is None:
        raise WritebackError(f"no write-back run {run_id}", hint="see the run ids in the audit")
    source = run.source
    if run.written and not audited(engine, run_id):
        raise WritebackError(
            f"write-back run {run_id} cannot be reverted: its audit rows were dropped after "
            f"writeback.keep_days",
            hint="raise keep_days to keep runs revertible for longer",
        )
    size = batch_size_of(connector, source_plan(settings, source))
    calls_before = calls_in(connector.api_usage())
    guard = Guard(connector, fields=check_credentials(connector))
    resumed = [] if dry_run else resume(engine, connector, source, size)
    with engine.connect() as connection:
        transaction = connection.begin()
        new_run = outbox.start_run(connection, source, "revert", None, reverts_run=run_id)
        changes, unchanged = revert_changes(connection, source, run_id, outbox.codec_of(connector))
        reverted = {(c.entity, c.field) for c in changes}
        hold_fields(connection, source, new_run, reverted)
        kinds = {
            (s.entity, c.field): s.kind
            for c in changes
            for s in SCORES
            if s.entity == c.entity and s.name == c.score
        }
        outbox.store_changes(connection, new_run, source, changes, guard, kinds)
        report = summarize(connection, new_run, source, size)
        report.kind, report.unchanged_since, report.resumed_runs = "revert", unchanged, resumed
        report.resumed_failed = resumed_failures(connection, resumed)
        report.paused = dict(guard.problems)
        report.held = {key: new_run for key in reverted}
        if dry_run:
            transaction.rollback()
            report.run_id, report.dry_run = None, True
        else:
            transaction.commit()
    if not dry_run:
        send_and_finish(engine, connector, new_run, report, size)
    report.api_calls = calls_in(connector.api_usage()) - calls_before
    if report.run_id is not None:
        record_calls(engine, report.run_id, report.api_calls)
    return report


def audited(engine: Engine, run_id: int) -> bool:
    a = AuditEntry.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return (
            connection.execute(select(a.c.id).where(a.c.run_id == run_id).limit(1)).first()
            is not None
        )


def revert_changes(
    connection: Connection, source: str, run_id: int, codec: ValueCodec
) -> tuple[list[Change], int]:
    """The writes undoing run `run_id`, and how many of its fields changed since (left alone).

    Each field goes back to the value the run found (the CRM's own text, e.g. a Vtiger checkbox's
    "0"). An empty number on Vtiger goes back as "", which Vtiger stores as 0.00: the codec reads
    that as empty, as it reads every emptied decimal (docs/decisions/writeback-values.md)."""
    a = AuditEntry.__table__  # type: ignore[attr-defined]
    kinds = {(s.entity, s.name): s.kind for s in SCORES}
    rows = connection.execute(
        select(a)
        .where(a.c.run_id == run_id, a.c.result == "written")
        .order_by(a.c.entity, a.c.external_id, a.c.field)
    ).all()
    changes, unchanged = [], 0
    for row in rows:
        kind = kinds.get((row.entity, row.score), "string")
        known = known_now(connection, source, row.entity, row.external_id, row.field)
        current, _ = current_value(kind, known, codec)
        if is_gone(known) or not codec.holds(kind, current, row.new_value):
            unchanged += 1
            continue
        changes.append(
            Change(
                row.entity,
                row.external_id,
                row.field,
                row.score,
                old=row.new_value,
                new=row.old_value,
            )
        )
    return changes, unchanged


def known_now(
    connection: Connection, source: str, entity: str, external_id: str, name: str
) -> Known:
    t = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
    s = outbox.STATE
    record = connection.execute(
        select(t.c.custom, t.c.synced_at).where(
            t.c.source == source, t.c.external_id == external_id
        )
    ).first()
    state = connection.execute(
        select(s.c.value, s.c.written_at, s.c.gone_at).where(
            s.c.source == source,
            s.c.entity == entity,
            s.c.external_id == external_id,
            s.c.field == name,
        )
    ).first()
    custom = (record.custom or {}) if record else {}
    return Known(
        synced=custom.get(name),
        synced_present=name in custom,
        synced_at=record.synced_at if record else None,
        written=Written(state.value, state.written_at, state.gone_at) if state else None,
    )


def latest_runs(engine: Engine, source: str | None, limit: int = 20) -> list[Any]:
    r = WriteRun.__table__  # type: ignore[attr-defined]
    query = select(r).order_by(r.c.id.desc()).limit(limit)
    if source:
        query = query.where(r.c.source == source)
    with engine.connect() as connection:
        return list(connection.execute(query))


def run_source(engine: Engine, run_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(outbox.RUNS.c.source).where(outbox.RUNS.c.id == run_id)
        ).scalar()
