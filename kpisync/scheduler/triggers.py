"""From `[sources.<name>.schedule]` to an APScheduler trigger every worker computes the same way.

Intervals are anchored at a fixed instant (2000-01-01 UTC), not at the moment a worker starts, so
every worker, restarted or not, agrees on the slots: 15 minutes means :00, :15, :30, :45.
Cron expressions are read in the `kpisync.timezone` zone.
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


def trigger_for(source: str, schedule: ScheduleSettings, zone: str) -> BaseTrigger | None:
    """The source's trigger, or None when it has no schedule."""
    if schedule.cron:
        try:
            return CronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(zone))
        except ValueError as error:
            raise ConfigError(f"sources.{source}.schedule.cron: {error}",
                              hint='five fields: minute hour day month weekday, e.g. "*/30 * * * *"') from None
    seconds = schedule.interval_seconds or (schedule.interval_minutes or 0) * 60
    if not seconds:
        return None
    return IntervalTrigger(seconds=seconds, start_date=ANCHOR, timezone=UTC)


def next_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's first slot after `now`."""
    return trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
