"""Shared fixtures: a fresh store on SQLite and on PostgreSQL.

PostgreSQL comes from KPISYNC_TEST_POSTGRES_URL (an admin URL; each test gets its own database).
Without it the PostgreSQL variants fail, loudly, rather than pass unseen; set
KPISYNC_TEST_NO_POSTGRES=1 to deselect them on a machine without a server.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from kpisync.store.database import open_store

POSTGRES_ADMIN_URL = os.environ.get("KPISYNC_TEST_POSTGRES_URL", "")
NO_POSTGRES = os.environ.get("KPISYNC_TEST_NO_POSTGRES") == "1"
STORE_KINDS = ["sqlite"] if NO_POSTGRES else ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in process (typer's CliRunner) sets up logging on a stream that is closed
    once it returns; later records would hit it. Each test leaves the root logger as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _postgres_database() -> Iterator[str]:
    if not POSTGRES_ADMIN_URL:
        pytest.fail(
            "KPISYNC_TEST_POSTGRES_URL is not set: start PostgreSQL (see .ci/run) "
            "or set KPISYNC_TEST_NO_POSTGRES=1"
        )
    name = f"kpisync_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()
