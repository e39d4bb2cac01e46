"""Opening the store: engine, file permissions, and Alembic migrations applied on first use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
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
    try:
        with engine.begin() as connection:
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StateError(f"cannot open the store: {mask(str(exc.orig))}",
                         hint="check the store's URL (kpisync.store, or the variable "
                              "kpisync.store_env names) and that the database server is "
                              "running") from None


def current_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
