"""Run locks: at most one run of a connector instance at a time, across threads, processes and hosts.

    RunLock            the interface: `acquire(wait)` -> bool, `release()`
    AdvisoryLock       PostgreSQL: a session-level `pg_try_advisory_lock` held on its own connection,
                       so every `kpisync run` worker sharing the database sees it; the server drops it
                       when the holder's connection ends, a killed worker included
    FileLock           SQLite: `flock` on a file beside the database; the kernel drops it when the
                       holding process dies
    ThreadLock         an in-memory SQLite store: one process is all there is

`run_lock(engine, name)` picks the implementation from the engine's dialect. Names are hashed to the
64-bit key PostgreSQL advisory locks take, prefixed so they do not collide with other applications.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

POLL_SECONDS = 0.2
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL's advisory lock key type)."""
    digest = hashlib.blake2b(f"kpisync:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RunLock(ABC):
    """An exclusive lock on one name; `acquire` gives up after `wait` seconds."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock back; only called after a successful acquire."""

    def acquire(self, wait: float = 0.0, *, sleep: float = POLL_SECONDS) -> bool:
        deadline = time.monotonic() + wait
        while True:
            if self.try_acquire():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(sleep, max(0.0, deadline - time.monotonic())))


class AdvisoryLock(RunLock):
    def __init__(self, engine: Engine, name: str) -> None:
        super().__init__(name)
        self.engine = engine
        self.key = lock_key(name)
        self.connection: Connection | None = None

    def try_acquire(self) -> bool:
        connection = self.engine.connect()
        try:
            taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                            {"key": self.key}).scalar())
            connection.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self.connection = connection
        return True

    def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            connection.commit()
        finally:
            connection.close()


class FileLock(RunLock):
    def __init__(self, path: Path, name: str) -> None:
        super().__init__(name)
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ThreadLock(RunLock):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        with _thread_locks_guard:
            self.lock = _thread_locks.setdefault(name, threading.Lock())

    def try_acquire(self) -> bool:
        return self.lock.acquire(blocking=False)

    def release(self) -> None:
        self.lock.release()


def make_lock(engine: Engine, name: str) -> RunLock:
    """The lock implementation that fits the store behind `engine`."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, name)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        folder = Path(database).resolve().parent / f"{Path(database).name}.locks"
        safe = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
        return FileLock(folder / f"{safe}.lock", name)
    return ThreadLock(name)


@contextmanager
def run_lock(engine: Engine, name: str, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the lock on `name` for the block; yields False (and holds nothing) when it is taken."""
    lock = make_lock(engine, name)
    held = lock.acquire(wait)
    try:
        yield held
    finally:
        if held:
            lock.release()
