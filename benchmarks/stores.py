"""Throwaway stores for the benchmarks: a SQLite file in a temporary folder, or a fresh database
on a PostgreSQL server (its admin URL in KPISYNC_BENCH_POSTGRES_URL or KPISYNC_TEST_POSTGRES_URL).
Each is removed when its block ends."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine

from kpisync.store.database import open_store

BACKENDS = ("sqlite", "postgres")


@contextmanager
def sqlite_store() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="kpisync-bench-") as folder:
        engine = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def postgres_store() -> Iterator[Engine]:
    admin_url = os.environ.get("KPISYNC_BENCH_POSTGRES_URL") or os.environ.get(
        "KPISYNC_TEST_POSTGRES_URL"
    )
    if not admin_url:
        raise SystemExit("set KPISYNC_BENCH_POSTGRES_URL to an admin URL of a PostgreSQL server")
    name = f"kpisync_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = open_store(f"{admin_url.rpartition('/')[0]}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def throwaway_store(backend: str) -> Iterator[Engine]:
    """An empty store of `backend`, one of BACKENDS."""
    with sqlite_store() if backend == "sqlite" else postgres_store() as engine:
        yield engine
