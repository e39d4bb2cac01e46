"""Opening the store: engine, file permissions, and Alembic migrations applied on first use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from kpisync.errors import ConfigError, StateError
from kpisync.secrets import mask

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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
        raise ConfigError(f"kpisync.store: unsupported database {parsed.get_backend_name()!r}",
                          hint="kpisync stores into SQLite or PostgreSQL")
    return create_engine(parsed, pool_pre_ping=True, future=True)


def sqlite_engine(database: str | None) -> Engine:
    if database and database != ":memory:":
        path = Path(database)
        if not path.parent.exists():
            raise ConfigError(f"kpisync.store: folder {path.parent} does not exist",
                              hint="create it or point the store somewhere else")
        if not path.exists():
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
    engine = create_engine(f"sqlite:///{database or ':memory:'}", future=True,
                           connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_store(engine: Engine) -> None:
    """Migrate the store to the newest revision, all of it or none: a process killed halfway
    leaves the store as it was."""
    config = alembic_config(engine)
    try:
        with engine.connect() as connection:
            if not needs_upgrade(connection, config):
                return
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # Python's sqlite3 runs DDL outside any transaction unless one is begun
                # explicitly; IMMEDIATE also makes a second process wait for the first's upgrade.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StateError(f"cannot open the store: {mask(str(exc.orig))}",
                         hint="check the store's URL (kpisync.store, or the variable "
                              "kpisync.store_env names) and that the database server is "
                              "running") from None


def needs_upgrade(connection: Connection, config: Config) -> bool:
    head = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() != head


def current_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
