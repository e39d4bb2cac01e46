"""`kpisync db check` and `kpisync db backup`: is the store sound, and a consistent copy of it.

The check opens the store without migrating it, so it also answers for a store too damaged for
any other command: its integrity (SQLite's own check), its schema revision against this kpisync's
newest, and the rows of every table, with what a rebuild from the CRM restores and what it cannot.
The backup is SQLite's online backup (a consistent copy while a sync writes) or pg_dump (one
snapshot of the whole database).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from kpisync.errors import ConfigError, KpisyncError, StateError
from kpisync.secrets import mask
from kpisync.store.database import alembic_config, create_store_engine, store_error

# What `kpisync sync --full` and `kpisync compute` cannot rebuild: kpisync's own records.
NOT_FROM_THE_CRM = {
    "survey_responses": "imported survey answers",
    "writeback_audit": "the write-back audit (who had what value before kpisync wrote)",
    "writeback_runs": "the write-back runs (approval plans included)",
    "writeback_holds": "the fields a revert holds until 'kpisync writeback resume'",
    "kpi_snapshots": "the KPI history (values as computed at the time)",
}


@dataclass
class StoreCheck:
    url: str
    backend: str
    integrity: list[str] = field(default_factory=list)  # empty: sound
    revision: str | None = None
    newest: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # rows a rebuild would not bring back
    error: str | None = None  # the store could not be read at all

    @property
    def sound(self) -> bool:
        return self.error is None and not self.integrity and self.revision == self.newest


def check_store(url: str) -> StoreCheck:
    """Integrity, schema revision and counts of the store at `url`; never changes it."""
    backend = make_url(url).get_backend_name()
    result = StoreCheck(url=mask(url), backend=backend)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        result.error = f"no store at {path}"
        return result
    try:
        engine = create_store_engine(url)
    except KpisyncError as error:
        result.error = error.message
        return result
    try:
        with engine.connect() as connection:
            if backend == "sqlite":
                rows = connection.exec_driver_sql("PRAGMA integrity_check(20)").scalars().all()
                result.integrity = [str(row) for row in rows if row != "ok"]
            config = alembic_config(engine)
            result.newest = ScriptDirectory.from_config(config).get_current_head()
            result.revision = MigrationContext.configure(connection).get_current_revision()
            for table in sorted(inspect(connection).get_table_names()):
                if table == "alembic_version":
                    continue
                try:
                    result.counts[table] = int(
                        connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                    )
                except DBAPIError as error:
                    result.integrity.append(f"{table}: {store_error(error).message}")
                    connection.rollback()
            result.kept = kept_rows(engine, result.counts)
    except DBAPIError as error:
        result.error = store_error(error).message
    finally:
        engine.dispose()
    return result


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store; None for another database or one in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def kept_rows(engine: Engine, counts: dict[str, int]) -> dict[str, int]:
    """Rows of the tables a rebuild from the CRM does not restore (survey answers: the imported
    ones only; the others come from the CRM)."""
    kept = {table: counts[table] for table in NOT_FROM_THE_CRM if table in counts}
    if "survey_responses" in kept:
        with engine.connect() as connection, contextlib.suppress(DBAPIError):
            kept["survey_responses"] = int(
                connection.execute(
                    text("SELECT count(*) FROM survey_responses WHERE origin LIKE 'import:%'")
                ).scalar_one()
            )
    return kept


def recovery_steps(check: StoreCheck, store_path: str | None) -> list[str]:
    """How to get a sound store back, for a store that is not."""
    if check.error is None and not check.integrity and check.revision != check.newest:
        return ["run 'kpisync db upgrade' to bring the schema to the newest revision"]
    aside = (
        f"mv {store_path} {store_path}.damaged"
        if store_path
        else "point kpisync.store (or its variable) at a new, empty database"
    )
    lost = ", ".join(
        f"{label} ({check.kept[table]:,} rows)" if table in check.kept else label
        for table, label in NOT_FROM_THE_CRM.items()
    )
    return [
        f"move the damaged store aside: {aside} (with its -wal and -shm files, if any)",
        "rebuild the CRM copy: 'kpisync sync --full', then 'kpisync compute'",
        f"a rebuild cannot bring back {lost}: restore them from the newest 'kpisync db backup' "
        "instead (put the backup in the store's place, then 'kpisync sync' catches up from the "
        "backup's cursors) and import survey files received since the backup again",
    ]


def backup_store(url: str, target: Path) -> str:
    """A consistent copy of the live store at `url` into `target` (a new file); what it did."""
    if target.exists():
        raise ConfigError(
            f"{target} already exists", hint="give a new file name; a backup never overwrites one"
        )
    if not target.parent.is_dir():
        raise ConfigError(f"folder {target.parent} does not exist", hint="create it first")
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return backup_sqlite(url, target)
    return backup_postgresql(url, target)


def backup_sqlite(url: str, target: Path) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError("an in-memory store has nothing to back up")
    engine = create_store_engine(url)  # refuses a file that is not a SQLite database
    engine.dispose()
    partial = target.with_name(target.name + ".partial")
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # SQLite's online backup: one consistent state of the store
            problems = copy.execute("PRAGMA integrity_check(1)").fetchone()[0]
        finally:
            copy.close()
            source.close()
    except sqlite3.Error as error:
        partial.unlink(missing_ok=True)
        raise StateError(
            f"cannot back up the store: {error}", hint="see 'kpisync db check'"
        ) from None
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    note = "" if problems == "ok" else f"; the copy fails its integrity check: {problems}"
    return (
        f"copied the store to {target} ({target.stat().st_size:,} bytes){note}; to restore, "
        f"stop kpisync, put it in the store's place, then run 'kpisync sync'"
    )


def pg_tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise ConfigError(
            f"{name} not found",
            hint="install PostgreSQL's client programs (Debian: postgresql-client)",
        )
    return found


def backup_postgresql(url: str, target: Path) -> str:
    parsed = make_url(url)
    password = parsed.password
    libpq = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
    partial = target.with_name(target.name + ".partial")
    done = subprocess.run(
        [pg_tool("pg_dump"), "--format=custom", "--file", str(partial), "--dbname", libpq],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        reason = mask(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        raise StateError(
            f"pg_dump failed: {reason}", hint="check the store's URL and that the server is running"
        )
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    return (
        f"dumped the store to {target} ({target.stat().st_size:,} bytes, one snapshot); to "
        f"restore into an empty database: pg_restore --no-owner --dbname URL {target}"
    )
