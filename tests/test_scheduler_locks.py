"""Run locks, slot claims and the slot grid: the pieces that keep one run per instance at a time."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from kpisync.config import ScheduleSettings
from kpisync.locks import make_lock, run_lock
from kpisync.scheduler import history
from kpisync.scheduler.triggers import next_fire, trigger_for

HOLD = """
import sys, time
from kpisync.locks import run_lock
from kpisync.store.database import open_store
with run_lock(open_store(sys.argv[1], upgrade=False), "source:hs") as held:
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


def test_lock_excludes_another_process_and_dies_with_it(engine: Engine, store_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, store_url, "30"], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with run_lock(engine, "source:hs", wait=0.3) as held:
        assert not held
    holder.kill()  # a killed worker's lock is released by the kernel / the server
    holder.wait()
    with run_lock(engine, "source:hs", wait=5) as held:
        assert held


def test_a_slot_is_claimed_once(engine: Engine) -> None:
    due = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    first = history.claim(engine, "hs", due, trigger="schedule", worker="a:1")
    assert first is not None
    assert history.claim(engine, "hs", due, trigger="schedule", worker="b:2") is None
    assert history.claim(engine, "hs", due + timedelta(minutes=15), trigger="schedule",
                         worker="b:2") is not None


def test_workers_started_at_different_times_agree_on_slots() -> None:
    trigger = trigger_for("hs", ScheduleSettings(interval_minutes=15), "UTC")
    assert trigger is not None
    early = next_fire(trigger, datetime(2026, 3, 1, 9, 1, 7, tzinfo=UTC))
    late = next_fire(trigger, datetime(2026, 3, 1, 9, 13, 59, tzinfo=UTC))
    assert early == late == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    cron = trigger_for("hs", ScheduleSettings(cron="0 6 * * 1-5"), "Europe/Warsaw")
    assert cron is not None
    assert next_fire(cron, datetime(2026, 3, 6, 12, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # Monday 06:00 in Warsaw (UTC+1)
