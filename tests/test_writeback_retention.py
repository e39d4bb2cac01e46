"""Write-back retention: old finished runs lose their outbox and audit rows, never a run whose
items are still to be sent (the next run resumes those)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Table, func, select

from kpisync.store.models import model_table
from writeback.models import AuditEntry, OutboxItem, WriteRun
from writeback.outbox import drop_old_rows

NOW = datetime.now(UTC)
RUNS, OUTBOX = model_table(WriteRun), model_table(OutboxItem)
AUDIT = model_table(AuditEntry)


def add_run(engine: Engine, run_id: int, *, status: str, days_ago: int, item: str) -> None:
    at = NOW - timedelta(days=days_ago)
    with engine.begin() as connection:
        connection.execute(
            RUNS.insert().values(
                id=run_id, source="crm", status=status, started_at=at, finished_at=at
            )
        )
        connection.execute(
            OUTBOX.insert().values(
                id=run_id,
                run_id=run_id,
                source="crm",
                entity="account",
                external_id="a1",
                field="kpisync_nps_score",
                score="nps_score",
                new_value="9",
                status=item,
            )
        )
        if item == "written":
            connection.execute(
                AUDIT.insert().values(
                    run_id=run_id,
                    outbox_id=run_id,
                    source="crm",
                    entity="account",
                    external_id="a1",
                    field="kpisync_nps_score",
                    score="nps_score",
                    new_value="9",
                    result="written",
                    at=at,
                )
            )


def rows_of(engine: Engine, table: Table) -> list[int]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(table.c.run_id)).scalars())


def test_old_settled_runs_lose_their_rows_and_unsettled_or_recent_ones_keep_them(
    engine: Engine,
) -> None:
    add_run(engine, 1, status="succeeded", days_ago=100, item="written")
    add_run(engine, 2, status="failed", days_ago=100, item="pending")  # to be resumed
    add_run(engine, 3, status="succeeded", days_ago=10, item="written")
    with engine.begin() as connection:
        assert drop_old_rows(connection, "crm", NOW - timedelta(days=90)) == 1
    assert rows_of(engine, OUTBOX) == [2, 3]
    assert rows_of(engine, AUDIT) == [3]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(RUNS)).scalar_one() == 3
