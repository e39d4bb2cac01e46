"""Run leases, fencing, slot claims and the slot grid: the pieces that keep one run per instance
at a time. Expiry is driven by the store (a lease's expiry set in the past, or a one-second lease
polled until free), never by a sleep sized to the machine."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from kpisync.config import ScheduleSettings
from kpisync.errors import ClaimLost
from kpisync.locks import LEASES, Lease, fenced, make_lock, run_lock
from kpisync.scheduler import history
from kpisync.scheduler.triggers import next_fire, trigger_for
from kpisync.store.models import SyncState, model_table

HOLD = """
import sys, time
from kpisync.locks import run_lock
from kpisync.store.database import open_store
with run_lock(open_store(sys.argv[1], upgrade=False), "source:hs", seconds=10) as held:
    print("held" if held else "busy", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_lock_excludes_other_holders_in_this_process(engine: Engine) -> None:
    first, second = make_lock(engine, "source:hs"), make_lock(engine, "source:hs")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert make_lock(engine, "source:other").acquire()  # other names are independent
    first.release()
    assert second.acquire(wait=1)
    second.release()


def test_lock_excludes_another_process_and_is_free_once_it_dies(
    engine: Engine, store_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, store_url, "300"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with run_lock(engine, "source:hs", wait=0.3) as held:
        assert not held  # renewed every third of its 10 s while the holder lives
    holder.kill()  # a process of this host that is gone: its lease is taken without waiting
    holder.wait()
    with run_lock(engine, "source:hs") as held:
        assert held


def test_a_lease_of_another_hosts_process_waits_for_expiry(engine: Engine) -> None:
    gone = Lease(engine, "source:hs", holder="elsewhere:1", run_id=1)
    assert gone.acquire()
    gone._stop.set()  # its host cannot be asked whether the process lives: only time tells
    assert not Lease(engine, "source:hs", holder="here:2").try_acquire()
    expire(engine, "source:hs")
    assert Lease(engine, "source:hs", holder="here:2").try_acquire()


def expire(engine: Engine, name: str) -> None:
    """As if the lease's time had run out with nobody renewing it (its holder paused)."""
    with engine.begin() as connection:
        connection.execute(
            update(LEASES)
            .where(LEASES.c.name == name)
            .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )


def write_cursor(engine: Engine, value: str) -> None:
    t = model_table(SyncState)
    with engine.begin() as connection:
        connection.execute(t.delete().where(t.c.source == "hs"))
        connection.execute(
            t.insert().values(
                source="hs", stream="deals", cursor={"v": value}, updated_at=datetime.now(UTC)
            )
        )


def cursor_values(engine: Engine) -> list[str]:
    t = model_table(SyncState)
    with engine.connect() as connection:
        return [row.cursor["v"] for row in connection.execute(select(t).where(t.c.source == "hs"))]


def test_a_taken_over_lease_refuses_its_old_holders_writes(engine: Engine) -> None:
    first = Lease(engine, "source:hs", holder="a:1", run_id=1)
    second = Lease(engine, "source:hs", holder="b:2", run_id=2)
    assert first.acquire()
    with fenced(first, label="1"):
        write_cursor(engine, "first")
    assert not second.try_acquire()  # live and renewed
    first._stop.set()  # paused: it renews no more
    expire(engine, "source:hs")
    assert second.try_acquire()
    with fenced(first, label="1"), pytest.raises(ClaimLost, match="taken over by b:2 .run 2."):
        write_cursor(engine, "first again")  # the whole transaction rolls back
    assert first.lost.is_set() and not first.still_held()
    with fenced(second, label="2"):
        write_cursor(engine, "second")
    assert cursor_values(engine) == ["second"]
    with engine.connect() as connection:
        token = connection.execute(select(LEASES.c.token).where(LEASES.c.name == "source:hs"))
        assert token.scalar() == 2  # one per take
    first.release()  # gives back nothing: the lease is the second's
    assert not Lease(engine, "source:hs", holder="c:3").try_acquire()
    second.release()
    assert Lease(engine, "source:hs", holder="c:3").try_acquire()


def test_a_lease_survives_its_holder_losing_the_store_while_nobody_took_it(engine: Engine) -> None:
    """Expired but not taken over: the token is still the holder's, so its writes go on."""
    lease = Lease(engine, "compute", holder="a:1")
    assert lease.acquire()
    lease._stop.set()
    expire(engine, "compute")
    with fenced(lease):
        write_cursor(engine, "kept")
    assert cursor_values(engine) == ["kept"] and not lease.lost.is_set()
    with engine.connect() as connection:  # and the write renewed it
        assert (
            connection.execute(
                select(func.count())
                .select_from(LEASES)
                .where(LEASES.c.expires_at > datetime.now(UTC))
            ).scalar()
            == 1
        )


def test_a_slot_is_claimed_once(engine: Engine) -> None:
    due = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    first = history.claim(engine, "hs", due, trigger="schedule", worker="a:1")
    assert first is not None
    assert history.claim(engine, "hs", due, trigger="schedule", worker="b:2") is None
    assert (
        history.claim(engine, "hs", due + timedelta(minutes=15), trigger="schedule", worker="b:2")
        is not None
    )


def test_workers_started_at_different_times_agree_on_slots() -> None:
    trigger = trigger_for("hs", ScheduleSettings(interval_minutes=15), "UTC")
    assert trigger is not None
    early = next_fire(trigger, datetime(2026, 3, 1, 9, 1, 7, tzinfo=UTC))
    late = next_fire(trigger, datetime(2026, 3, 1, 9, 13, 59, tzinfo=UTC))
    assert early == late == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    cron = trigger_for("hs", ScheduleSettings(cron="0 6 * * 1-5"), "Europe/Warsaw")
    assert cron is not None
    assert next_fire(cron, datetime(2026, 3, 6, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 9, 5, 0, tzinfo=UTC
    )  # Monday 06:00 in Warsaw (UTC+1)
