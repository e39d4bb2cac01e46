"""Run leases: at most one run of a connector instance (or KPI computation) does work at a time,
across threads, processes and hosts, through database restarts, network cuts and paused workers.

    Lease        a row of `run_leases` per name ("source:<name>", "compute"): taken only when free or
                 expired, renewed by a background thread while the run lives, given back at its end
    fenced(...)  while active in a thread, every transaction of that thread that writes first
                 proves, in the same transaction, that each lease's token is still the one it took;
                 otherwise the write is refused with ClaimLost and the transaction rolls back
    run_lock     a lease held (and fenced) for a block: `with run_lock(engine, name) as held`

Why not a session advisory lock: a database restart ends the session and frees the lock while its
run goes on working on fresh connections, so a second worker could take the source meanwhile.
A lease is a committed row, so a restart changes nothing; and because every guarded write checks
the fencing token inside its own transaction, a run whose lease was taken over (it was paused,
cut off or too slow to renew) cannot write a single row more. The token check takes the lease
row's lock until the write commits: a take-over waits for an in-flight page rather than racing it.

A lease whose holder ran on this host in a process that is gone (killed, crashed) is taken at once
instead of after it expires, so a sync run again after a kill does not wait out the lease. The
check can only err towards taking a live holder's lease (another process namespace under the same
host name); fencing makes that safe: the old holder's next write is refused.

Time is the database's (`clock_timestamp()` on PostgreSQL), so hosts' clocks need not agree.
On PostgreSQL each fenced transaction also sets `kpisync.fence` (the run's label) and an
idle-in-transaction timeout of ten leases, so a paused worker cannot hold the row for ever (one
lease long killed KPI computations, which think between statements).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, event, func, literal, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from kpisync.errors import ClaimLost
from kpisync.store.models import RunLease
from kpisync.store.types import UTCDateTime
from kpisync.store.upsert import dialect_insert

log = logging.getLogger(__name__)
LEASES = RunLease.__table__  # type: ignore[attr-defined]
LEASE_SECONDS = 60.0
POLL_SECONDS = 0.2
# A fenced transaction idle (its client paused, or computing between statements) this many leases
# long is ended by the server, so a paused worker cannot keep the lease row locked for ever.
IDLE_FACTOR = 10
TAKE_LOCK_TIMEOUT = "1s"  # a take-over waits this long for an in-flight guarded write, then passes
LOCK_NOT_AVAILABLE = "55P03"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHECKED, _BUSY = "kpisync_fence_checked", "kpisync_fence_busy"


def now_utc() -> datetime:
    return datetime.now(UTC)


def db_time(connection: Connection, seconds: float = 0.0) -> ColumnElement[Any]:
    """The database's now (+ `seconds`) as an SQL expression; SQLite (one host) uses this one's."""
    if connection.dialect.name == "postgresql":
        clock = func.clock_timestamp(type_=DateTime(timezone=True))
        return clock + timedelta(seconds=seconds) if seconds else clock
    return literal(now_utc() + timedelta(seconds=seconds), UTCDateTime())


class Lease:
    """One run's claim on `name`. `lost` is set (and `reason` said) once it is known taken over."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        holder: str,
        seconds: float = LEASE_SECONDS,
        run_id: int | None = None,
    ) -> None:
        self.engine, self.name, self.holder = engine, name, holder[:128]
        self.seconds, self.run_id = seconds, run_id
        self.token: int | None = None
        self.lost = threading.Event()
        self.reason: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        install_fencing(engine)

    # --- taking and giving back ------------------------------------------------------------
    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired, without waiting."""
        with self.engine.begin() as connection:
            connection.execute(
                dialect_insert(LEASES, connection.dialect.name)
                .values(name=self.name, token=0, expires_at=EPOCH)
                .on_conflict_do_nothing()
            )
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text(f"SET LOCAL lock_timeout = '{TAKE_LOCK_TIMEOUT}'"))
                free = LEASES.c.expires_at <= db_time(connection)
                gone = gone_local_holder(connection, self.name)
                if gone is not None:
                    free = free | (LEASES.c.holder == gone)
                token = connection.execute(
                    update(LEASES)
                    .where(LEASES.c.name == self.name, free)
                    .values(
                        token=LEASES.c.token + 1,
                        holder=self.holder,
                        run_id=self.run_id,
                        acquired_at=db_time(connection),
                        expires_at=db_time(connection, self.seconds),
                    )
                    .returning(LEASES.c.token)
                ).scalar()
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return False  # its holder is committing a guarded write: it is alive
            raise
        if token is None:
            return False
        self.token = int(token)
        self.lost.clear()
        self.reason = None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._keep, name=f"lease:{self.name}", daemon=True)
        self._renewer.start()
        return True

    def acquire(
        self, wait: float = 0.0, *, sleep: float = POLL_SECONDS, stop: threading.Event | None = None
    ) -> bool:
        """Take the lease, waiting up to `wait` seconds for it (and no longer once `stop` is set)."""
        deadline = time.monotonic() + wait
        stop = stop or threading.Event()
        while True:
            if self.try_acquire():
                return True
            if time.monotonic() >= deadline or stop.is_set():
                return False
            stop.wait(min(sleep, max(0.0, deadline - time.monotonic())))

    def release(self) -> None:
        """Give the lease back (only if still ours); a store that cannot be reached lets it expire."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        token, self.token = self.token, None
        if token is None or self.lost.is_set():
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(LEASES)
                    .where(LEASES.c.name == self.name, LEASES.c.token == token)
                    .values(expires_at=db_time(connection), holder=None)
                )
        except SQLAlchemyError as error:
            log.info(
                "lease %s not given back (%s): it expires by itself within %.0f s",
                self.name,
                type(error).__name__,
                self.seconds,
            )

    # --- proving it ------------------------------------------------------------------------
    def check(self, connection: Connection, label: str = "") -> None:
        """In `connection`'s transaction: the token is still ours (renewing it), else ClaimLost.

        The UPDATE keeps the lease row locked until that transaction ends, so nobody takes the
        lease over between this check and the commit of the write it guards."""
        if self.token is None or self.lost.is_set():
            raise ClaimLost(self.reason or f"{self.name} is not held", hint=_HINT)
        if connection.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT set_config('idle_in_transaction_session_timeout', :ms, true), "
                    "set_config('kpisync.fence', :label, true)"
                ),
                {"ms": str(int(self.seconds * IDLE_FACTOR * 1000)), "label": label},
            )
        renewed = connection.execute(
            update(LEASES)
            .where(LEASES.c.name == self.name, LEASES.c.token == self.token)
            .values(expires_at=db_time(connection, self.seconds))
            .returning(LEASES.c.token)
        ).scalar()
        if renewed is None:
            self._lose(self._taken_by(connection))
            raise ClaimLost(self.reason or "", hint=_HINT)

    def still_held(self) -> bool:
        """Whether the store still says the lease is ours (False when it cannot say)."""
        if self.lost.is_set() or self.token is None:
            return False
        try:
            with self.engine.connect() as connection:
                token = connection.execute(
                    select(LEASES.c.token).where(LEASES.c.name == self.name)
                ).scalar()
                if token != self.token:
                    self._lose(self._taken_by(connection))
        except SQLAlchemyError:
            return False
        return not self.lost.is_set()

    def _keep(self) -> None:
        """Renew every third of the lease while held; a store outage is waited out (the token, not
        the expiry, decides whether the lease is still ours when it answers again)."""
        while not self._stop.wait(self.seconds / 3):
            try:
                with self.engine.begin() as connection:
                    renewed = connection.execute(
                        update(LEASES)
                        .where(LEASES.c.name == self.name, LEASES.c.token == self.token)
                        .values(expires_at=db_time(connection, self.seconds))
                        .returning(LEASES.c.token)
                    ).scalar()
                    if renewed is None:
                        self._lose(self._taken_by(connection))
                        return
            except SQLAlchemyError as error:
                log.debug("lease %s not renewed: %s", self.name, type(error).__name__)

    def _taken_by(self, connection: Connection) -> str:
        row = connection.execute(select(LEASES).where(LEASES.c.name == self.name)).first()
        if row is None or row.holder is None:
            return f"its lease on {self.name} expired and was released by another run"
        run = f" (run {row.run_id})" if row.run_id is not None else ""
        return f"its lease on {self.name} expired and was taken over by {row.holder}{run}"

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            log.warning("%s", reason)


_HINT = "the run stopped at its last committed write; the run holding the lease carries on"


# --- fencing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fence:
    leases: tuple[Lease, ...]
    label: str


_active: ContextVar[Fence | None] = ContextVar("kpisync_fence", default=None)


@contextmanager
def fenced(*leases: Lease, label: str = "") -> Iterator[None]:
    """Guard every write this thread makes in the block with `leases` (see the module's doc)."""
    reset = _active.set(Fence(leases, label))
    try:
        yield
    finally:
        _active.reset(reset)


def install_fencing(engine: Engine) -> None:
    if not event.contains(engine, "before_cursor_execute", _fence_writes):
        event.listen(engine, "before_cursor_execute", _fence_writes)


def _fence_writes(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    fence = _active.get()
    if fence is None or connection.info.get(_BUSY) or not _writes(statement):
        return
    transaction = connection.get_transaction()
    if transaction is not None and connection.info.get(_CHECKED) is transaction:
        return  # checked at this transaction's first write; the lease row stays locked till its end
    connection.info[_BUSY] = True
    try:
        for lease in fence.leases:
            lease.check(connection, fence.label)
    finally:
        connection.info[_BUSY] = False
    connection.info[_CHECKED] = transaction


def _writes(statement: str) -> bool:
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


# --- a lease for a block ------------------------------------------------------------------------
def make_lock(
    engine: Engine, name: str, *, holder: str = "", seconds: float = LEASE_SECONDS
) -> Lease:
    return Lease(engine, name, holder=holder or default_holder(), seconds=seconds)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def gone_local_holder(connection: Connection, name: str) -> str | None:
    """The holder of lease `name` when it is a process of this host that no longer runs."""
    holder = connection.execute(select(LEASES.c.holder).where(LEASES.c.name == name)).scalar()
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return str(holder)
    except PermissionError:  # a live process of another user
        return None
    return None


@contextmanager
def run_lock(
    engine: Engine,
    name: str,
    *,
    wait: float = 0.0,
    holder: str = "",
    seconds: float = LEASE_SECONDS,
) -> Iterator[bool]:
    """Hold the lease on `name` for the block, its writes fenced; yields False (holding nothing,
    fencing nothing) when another run holds it."""
    lease = make_lock(engine, name, holder=holder, seconds=seconds)
    if not lease.acquire(wait):
        yield False
        return
    try:
        with fenced(lease, label=name):
            yield True
    finally:
        lease.release()
