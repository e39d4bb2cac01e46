"""From `[sources.<name>.schedule]` to an APScheduler trigger every worker computes the same way.

Intervals are anchored at a fixed instant (2000-01-01 UTC), not at the moment a worker starts, so
every worker, restarted or not, agrees on the slots: 15 minutes means :00, :15, :30, :45.
Cron expressions are read in the `kpisync.timezone` zone, with crontab's weekday numbers (0 or 7 is
Sunday): APScheduler 3 numbers weekdays from Monday = 0, so numbers are turned into names first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from kpisync.config import ScheduleSettings
from kpisync.errors import ConfigError

ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
LOOK_BACK = timedelta(days=3653)  # previous_fire's horizon
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab: 0 (and 7) is Sunday


def trigger_for(source: str, schedule: ScheduleSettings, zone: str) -> BaseTrigger | None:
    """The source's trigger, or None when it has no schedule."""
    if schedule.cron:
        try:
            return CronTrigger.from_crontab(
                crontab_weekdays(schedule.cron), timezone=ZoneInfo(zone)
            )
        except ValueError as error:
            raise ConfigError(
                f"sources.{source}.schedule.cron: {error}",
                hint='five fields: minute hour day month weekday, e.g. "*/30 * * * *"',
            ) from None
    seconds = schedule.interval_seconds or (schedule.interval_minutes or 0) * 60
    if not seconds:
        return None
    return IntervalTrigger(seconds=seconds, start_date=ANCHOR, timezone=UTC)


def crontab_weekdays(expression: str) -> str:
    """The expression with its weekday field's numbers as names: "0 6 * * 1-5" -> "... mon-fri"."""
    fields = expression.split()
    if len(fields) != 5:
        return expression  # APScheduler reports the wrong field count
    parts = []
    for part in fields[4].split(","):
        base, slash, step = part.partition("/")
        names = "-".join(WEEKDAYS[int(n) % 7] if n.isdigit() else n for n in base.split("-"))
        parts.append(names + slash + step)
    return " ".join([*fields[:4], ",".join(parts)])


def next_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's first slot after `now`."""
    fire: datetime | None = trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
    return fire


def previous_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's last slot at or before `now`, or None when it had none in ten years.

    APScheduler 3 triggers only look forward: look from ever earlier instants (doubling the
    window) until a slot comes up before `now`, then walk forward to the last one."""
    window = timedelta(seconds=1)
    while window <= LOOK_BACK:
        found: datetime | None = trigger.get_next_fire_time(None, now - window)
        if found is not None and found <= now:
            while (later := next_fire(trigger, found)) is not None and later <= now:
                found = later
            return found
        window *= 2
    return None
