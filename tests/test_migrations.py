"""The migrations build every table, column and type the models declare, on SQLite and PostgreSQL.

Indexes exist only in the migrations, and the scheduler's job table belongs to APScheduler, so
what the store has beyond the models ("remove_…" in Alembic's terms) is not a difference here.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import kpisync.scheduler.models  # noqa: F401  (registers every table on SQLModel.metadata)
import kpisync.store.models  # noqa: F401
import metrics.models  # noqa: F401
import writeback.models  # noqa: F401


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
