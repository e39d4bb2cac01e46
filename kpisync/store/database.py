"""Opening the store: engine, file permissions, and Alembic migrations applied on first use.

A store kpisync cannot use is one line (`store_error`): a file that is not a SQLite database is
refused before anything touches it (its mode included); a store on a read-only file system (or a
read-only file) opens read-only, so `status`, `kpis` and `report` still work, and a command that
writes to it stops at its first write with the reason."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from kpisync.errors import ConfigError, StateError
from kpisync.secrets import mask

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_HEADER = b"SQLite format 3\x00"
RECOVER = "see 'kpisync db check' for how to recover"


def open_store(url: str, *, upgrade: bool = True) -> Engine:
    """An engine on `url`, its schema migrated to the newest revision when `upgrade`."""
    engine = create_store_engine(url)
    if upgrade:
        upgrade_store(engine)
    return engine


def create_store_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"kpisync.store: {mask(url)!r} is not a database URL",
            hint="use sqlite:///path/to/kpisync.db or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):  # libpq's spellings: take psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return sqlite_engine(parsed.database)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"kpisync.store: unsupported database {parsed.get_backend_name()!r}",
            hint="kpisync stores into SQLite or PostgreSQL",
        )
    return create_engine(parsed, pool_pre_ping=True, future=True)


def sqlite_engine(database: str | None) -> Engine:
    read_only = False
    if database and database != ":memory:":
        path = Path(database)
        if not path.parent.exists():
            raise ConfigError(
                f"kpisync.store: folder {path.parent} does not exist",
                hint="create it or point the store somewhere else",
            )
        if path.is_dir():
            raise ConfigError(
                f"kpisync.store: {path} is a folder",
                hint="point kpisync.store at a file, e.g. sqlite:///kpisync.db",
            )
        if not path.exists():
            try:
                path.touch(mode=0o600)
            except OSError as exc:
                raise StateError(
                    f"cannot create the store {path}: {exc.strerror}",
                    hint="make its folder writable, or point kpisync.store elsewhere",
                ) from None
        check_sqlite_file(path)
        read_only = not writable(path)
        if not read_only and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    if read_only:
        # immutable: the -wal and -shm files cannot be created, and nobody can write either
        immutable = "" if os.access(Path(database or "").parent, os.W_OK) else "&immutable=1"
        url = f"sqlite:///file:{quote(str(database))}?mode=ro{immutable}&uri=true"
    else:
        url = f"sqlite:///{database or ':memory:'}"
    engine = create_engine(url, future=True, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database before anything opens or changes it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StateError(
            f"cannot read the store {path}: {exc.strerror}",
            hint="check the file's owner and mode (kpisync keeps it 0600)",
        ) from None
    if header and header != SQLITE_HEADER[: len(header)] or 0 < len(header) < len(SQLITE_HEADER):
        raise StateError(
            f"the store {path} is not a SQLite database (file is not a database)",
            hint=f"point kpisync.store at the right file, or {RECOVER}",
        )


def writable(path: Path) -> bool:
    """Whether kpisync can write the store file (and so its folder's journal files)."""
    if not os.access(path, os.W_OK):
        return False
    try:
        return not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        return True


def is_read_only(engine: Engine) -> bool:
    return engine.url.query.get("mode") == "ro"


def require_writable(engine: Engine, command: str) -> None:
    """Stop a command that writes before it does anything, when the store is read-only."""
    if is_read_only(engine):
        raise StateError(
            f"the store is read-only (a read-only file or file system); '{command}' writes to it",
            hint="make the store writable, or run only status, kpis and report",
        )


def store_error(error: DBAPIError) -> StateError:
    """The store's own failure as one line naming the cause and the way out."""
    original = error.orig
    text = (
        str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    )
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return StateError(
            f"the store is read-only: {text}",
            hint="make the store file and its folder writable, or run only status, kpis and report",
        )
    if "malformed" in lowered or "not a database" in lowered or "disk i/o" in lowered:
        return StateError(f"the store is damaged: {text}", hint=RECOVER)
    if "database or disk is full" in lowered or "no space" in lowered:
        return StateError(
            f"the store's disk is full: {text}", hint="free some space; nothing was half-written"
        )
    if "locked" in lowered or "busy" in lowered:
        return StateError(
            f"the store is busy: {text}",
            hint="another kpisync process holds it; try again when it is done",
        )
    if isinstance(original, sqlite3.Error) or isinstance(error, OperationalError):
        return StateError(
            f"the store failed: {mask(text)}",
            hint="check the store's URL and that the database server is running; " + RECOVER,
        )
    return StateError(f"the store refused a statement: {mask(text)}", hint=RECOVER)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_store(engine: Engine) -> None:
    """Migrate the store to the newest revision, all of it or none: a process killed halfway
    leaves the store as it was. A read-only store must already be at the newest revision."""
    config = alembic_config(engine)
    try:
        with engine.connect() as connection:
            if not needs_upgrade(connection, config):
                return
        if is_read_only(engine):
            raise StateError(
                "the store is read-only and at an older schema than this kpisync",
                hint="make it writable once so that kpisync can upgrade it",
            )
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # Python's sqlite3 runs DDL outside any transaction unless one is begun
                # explicitly; IMMEDIATE also makes a second process wait for the first's upgrade.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        if engine.dialect.name == "sqlite":
            raise store_error(exc) from None
        raise StateError(
            f"cannot open the store: {mask(str(exc.orig))}",
            hint="check the store's URL (kpisync.store, or the variable "
            "kpisync.store_env names) and that the database server is "
            "running",
        ) from None
    except DBAPIError as exc:
        raise store_error(exc) from None


def needs_upgrade(connection: Connection, config: Config) -> bool:
    head = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() != head


def current_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
