"""The migrations build every table, column and type the models declare, on SQLite and PostgreSQL.

Indexes exist only in the migrations, and the scheduler's job table belongs to APScheduler, so
what the store has beyond the models ("remove_…" in Alembic's terms) is not a difference here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

# imported to register every table on SQLModel.metadata
import kpisync.scheduler.models
import kpisync.store.models  # noqa: F401
import metrics.models  # noqa: F401
import writeback.models  # noqa: F401
from kpisync.store.database import open_store


def flattened(diffs: list[Any]) -> list[tuple[Any, ...]]:
    """Alembic nests column changes in lists; one tuple per difference."""
    out: list[tuple[Any, ...]] = []
    for diff in diffs:
        out += flattened(diff) if isinstance(diff, list) else [diff]
    return out


def test_the_migrated_store_has_everything_the_models_declare(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = flattened(compare_metadata(context, SQLModel.metadata))
    missing = [diff for diff in diffs if not str(diff[0]).startswith("remove_")]
    assert missing == []


KILLED_MIDWAY = """
import os, signal, sys
from sqlalchemy import event
from kpisync.store.database import create_store_engine, upgrade_store

engine = create_store_engine(sys.argv[1])
created = 0

@event.listens_for(engine, "after_cursor_execute")
def kill_after_the_fifth_table(connection, cursor, statement, *rest):
    global created
    created += statement.lstrip().upper().startswith("CREATE TABLE")
    if created == 5:
        os.kill(os.getpid(), signal.SIGKILL)

upgrade_store(engine)
"""


def test_a_process_killed_amid_the_first_migration_leaves_a_store_the_next_opens(
    store_url: str,
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MIDWAY, store_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    engine = open_store(store_url)  # before: "table ... already exists" on SQLite, every time
    try:
        assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
