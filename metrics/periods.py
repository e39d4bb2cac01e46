"""Periods in the org's time zone: their boundaries in Python and their buckets in SQL.

A period is the half-open interval [start, end) of local dates, cut by the org's calendar
(kpisync.calendars: Gregorian, weeks from Monday, by default; or Solar Hijri). Instants are
stored in UTC and bucketed in the org's zone: PostgreSQL converts with `timezone(zone, instant)`;
SQLite has no zone database, so the instant is shifted by the zone's UTC offset, chosen by a
balanced CASE over the zone's offset changes (daylight saving), computed here with zoneinfo: for
period buckets, the changes inside the computed window (with its lead-in year); for a local date
(`local_date`, which also dates records from before the window: a deal's creation, a lead's), every
change since 1970. Dates (a deal's close date) are bucketed as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Computed,
    Date,
    DateTime,
    Integer,
    String,
    case,
    cast,
    column,
    func,
    literal,
    null,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnElement

from kpisync.calendars import (
    GREGORIAN,
    Calendar,
)
from kpisync.store.types import UTCDateTime

KINDS: tuple[str, ...] = ("week", "month", "quarter", "year")
YEARS_BEFORE, YEARS_AFTER = 3, 2  # Solar Hijri years bucketed in SQL around the window; NULL beyond
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # local dates before it take its offset


def period_start(day: date, kind: str, calendar: Calendar = GREGORIAN) -> date:
    """The first local date of the `kind` period holding `day`."""
    return calendar.period_start(day, kind)


def shift(start: date, kind: str, steps: int, calendar: Calendar = GREGORIAN) -> date:
    """The start of the period `steps` periods after (or before) the one starting at `start`."""
    return calendar.shift(start, kind, steps)


def period_end(start: date, kind: str, calendar: Calendar = GREGORIAN) -> date:
    return calendar.shift(start, kind, 1)


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which local `day` begins (zoneinfo resolves gaps and folds)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The span every KPI is computed over: from the start of the earliest year to the current period."""

    start: date  # local date, a year start
    end: date  # local date, exclusive: the end of the current year
    now: datetime  # aware UTC
    today: date  # local date of `now`
    recent: tuple[tuple[str, int], ...] = ()  # (kind, n): keep only the n latest periods of kind
    calendar: Calendar = GREGORIAN

    @property
    def first_day(self) -> date:
        """The first local date any period of the window covers (the first day of its first week)."""
        return self.calendar.period_start(self.start, "week")

    @property
    def lead_in(self) -> date:
        """The first local date of the year before the window, the first day of its week: growth
        compares the window's first periods with periods of that year, so their inputs are
        computed too."""
        return self.calendar.period_start(self.calendar.shift(self.start, "year", -1), "week")

    def lead_in_periods(self, kind: str) -> list[date]:
        """Starts of the periods of `kind` from the lead-in year to before the first shown one."""
        starts, current = [], period_start(self.lead_in, kind)
        while current < self.first_shown(kind):
            starts.append(current)
            current = shift(current, kind, 1)
        return starts

    def first_shown(self, kind: str) -> date:
        """The start of the earliest period of `kind` that is shown."""
        return self.periods(kind)[0]

    def periods(self, kind: str) -> list[date]:
        """Starts of the window's periods of `kind`: up to the current one, the latest `recent`."""
        starts, current = [], self.calendar.period_start(self.start, kind)
        while current <= self.today:
            starts.append(current)
            current = self.calendar.shift(current, kind, 1)
        keep = dict(self.recent).get(kind)
        return starts[-keep:] if keep else starts


def history_window(
    now: datetime,
    zone: ZoneInfo,
    years: int,
    recent: dict[str, int] | None = None,
    calendar: Calendar = GREGORIAN,
) -> Window:
    today = now.astimezone(zone).date()
    this_year = calendar.period_start(today, "year")
    return Window(
        start=calendar.shift(this_year, "year", 1 - years),
        end=calendar.shift(this_year, "year", 1),
        now=now.astimezone(UTC),
        today=today,
        recent=tuple(sorted((recent or {}).items())),
        calendar=calendar,
    )


def offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """(UTC instant, new offset in minutes) for each change of the zone's offset in [start, end)."""

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset() or timedelta(0)
        return int(delta.total_seconds() // 60)

    changes: list[tuple[datetime, int]] = []
    day, current = start, offset(start)
    while day < end:
        following = day + timedelta(days=1)
        if offset(following) != current:
            low, high = day, following  # the change lies in (low, high]
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            current = offset(high)
            changes.append((high.replace(second=0, microsecond=0), current))
        day = following
    return changes


def offset_minutes(zone: ZoneInfo, at: datetime) -> int:
    return int((at.astimezone(zone).utcoffset() or timedelta(0)).total_seconds() // 60)


@lru_cache(maxsize=16)
def all_offset_changes(zone: ZoneInfo, end: datetime) -> tuple[tuple[datetime, int], ...]:
    """Every offset change of `zone` from 1970 to `end` (computed once per zone and window end)."""
    return tuple(offset_changes(zone, EPOCH, end))


class Bucketer:
    """SQL expressions that put an instant or a date into its local period start."""

    def __init__(self, dialect: str, zone: ZoneInfo, window: Window) -> None:
        self.dialect = dialect
        self.zone = zone
        self.window = window
        first = local_midnight_utc(window.lead_in, zone) - timedelta(days=2)
        last = local_midnight_utc(window.end, zone) + timedelta(days=2)
        self.changes_from = first
        self.initial_offset = offset_minutes(zone, first)
        self.changes = offset_changes(zone, first, last)
        self.epoch_offset = offset_minutes(zone, EPOCH)
        self.all_changes = all_offset_changes(zone, last)
        self.calendar = window.calendar
        # Year starts from well before the window to well after it: dates outside get no period.
        self.year_starts = self.calendar.year_starts(
            self.calendar.shift(window.start, "year", -YEARS_BEFORE),
            self.calendar.shift(window.end, "year", YEARS_AFTER),
        )

    @property
    def native(self) -> bool:
        """Whether the database's own truncation (Gregorian, weeks from Monday) is the calendar."""
        return self.calendar.system == "gregorian" and self.calendar.week_start == 0

    def local_date(self, instant: Any) -> ColumnElement[Any]:
        """The local calendar date of a UTC instant column, whenever it is (not only inside the
        window: a deal created years before it closed is dated with that day's offset)."""
        if self.dialect == "postgresql":
            return cast(func.timezone(self.zone.key, instant), Date)
        before = [change for change in self.all_changes if change[0] < self.changes_from]
        if not before:
            return func.date(self.local_datetime(instant))
        return func.date(
            case(  # most instants are recent: the window's short CASE first
                (
                    instant >= literal(self.changes_from, UTCDateTime()),
                    self.local_datetime(instant),
                ),
                else_=self._shifted(instant, self.epoch_offset, before),
            )
        )

    def local_datetime(self, instant: Any) -> ColumnElement[Any]:
        """SQLite only: the local wall-clock time of a UTC instant column of the window (and its
        lead-in year), as text."""
        return self._shifted(instant, self.initial_offset, self.changes)

    def _shifted(
        self, instant: Any, before: int, changes: Sequence[tuple[datetime, int]]
    ) -> ColumnElement[Any]:
        if not changes and before == 0:
            return func.datetime(instant)
        return func.datetime(instant, self._offset_case(instant, before, changes))

    def _offset_case(
        self, instant: Any, before: int, changes: Sequence[tuple[datetime, int]]
    ) -> ColumnElement[Any]:
        """A balanced CASE: log2(changes) comparisons per row pick the offset in force."""
        if not changes:
            return literal(f"{before:+d} minutes", String)
        middle = len(changes) // 2
        at, after = changes[middle]
        return case(
            (
                instant < literal(at, UTCDateTime()),
                self._offset_case(instant, before, changes[:middle]),
            ),
            else_=self._offset_case(instant, after, changes[middle + 1 :]),
        )

    def instant(self, instant: Any, kind: str) -> ColumnElement[Any]:
        """The local period start of a UTC instant column."""
        if self.dialect == "postgresql":
            if self.native:
                return cast(func.date_trunc(kind, func.timezone(self.zone.key, instant)), Date)
            return self.day(self.local_date(instant), kind)
        return self._truncate(self.local_datetime(instant), kind)

    def staged_instant(self, instant: Any, prefix: str) -> list[ColumnElement[Any]]:
        """What staging selects for an instant column: on PostgreSQL its four period starts; on
        SQLite its local time, computed once (the offset CASE is the costly part), from which
        the staged table's stored generated columns cut the periods."""
        if self.dialect == "postgresql":
            return [self.instant(instant, kind).label(prefix + kind) for kind in KINDS]
        return [self.local_datetime(instant).label(prefix + "local")]

    def staged_period_columns(self, prefix: str) -> list[Column[Any]]:
        """The staged table's columns for an instant: `<prefix><kind>` period starts."""
        if self.dialect == "postgresql":
            return [Column(prefix + kind, Date) for kind in KINDS]
        local: ColumnElement[Any] = column(prefix + "local")
        return [
            Column(prefix + "local", String),
            *[
                Column(
                    prefix + kind,
                    Date,
                    Computed(
                        str(
                            self._truncate(local, kind).compile(
                                dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
                            )
                        ),
                        persisted=True,
                    ),
                )
                for kind in KINDS
            ],
        ]

    def day(self, day: Any, kind: str) -> ColumnElement[Any]:
        """The period start of a date column."""
        if self.dialect == "postgresql" and self.native:
            return cast(func.date_trunc(kind, cast(day, DateTime())), Date)
        return self._truncate(day, kind)

    def _truncate(self, text: Any, kind: str) -> ColumnElement[Any]:
        """The period start of a date (SQLite: date or local time text; PostgreSQL: a date)."""
        if kind == "week":
            return self._week(text)
        if self.calendar.system == "persian":
            return self._persian(text, kind)
        if kind == "month":
            return func.date(text, "start of month")
        if kind == "year":
            return func.date(text, "start of year")
        months_back = (cast(func.strftime("%m", text), Integer) - 1) % 3
        return func.date(text, "start of month", func.printf("-%d months", months_back))

    def _week(self, day: Any) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            weekday = cast(func.extract("isodow", day), Integer) - 1  # 0 = Monday
            back = (weekday - self.calendar.week_start + 7) % 7
            return cast(day, Date) - back
        # SQLite: forward to the week's last day (its weekday numbers Sunday 0), back six days
        return func.date(day, f"weekday {self.calendar.week_start}", "-6 days")

    def _persian(self, day: Any, kind: str) -> ColumnElement[Any]:
        """A Solar Hijri month, quarter or year start, looked up by the day's Gregorian month:
        the period in force on its first day, or the one starting within it once the day has
        reached that start. Two simple CASEs on "YYYY-MM": shallow enough for SQLite's parser
        whatever the day's own expression (the staged reps' start is a CASE over offsets)."""
        postgres = self.dialect == "postgresql"
        key = func.to_char(day, "YYYY-MM") if postgres else func.substr(day, 1, 7)
        in_force, starting = self.persian_starts(kind)
        begun = case(starting, value=key, else_=null())
        return case((day >= begun, begun), else_=case(in_force, value=key, else_=null()))

    def persian_starts(
        self, kind: str
    ) -> tuple[dict[str, ColumnElement[Any]], dict[str, ColumnElement[Any]]]:
        """Per Gregorian month "YYYY-MM" of the bucketed span: the `kind` period start in force on
        its first day, and the start of a period beginning later within it (if one does)."""
        in_force, starting = {}, {}
        month = date(self.year_starts[0].year, 1, 1)
        while month < self.year_starts[-1]:
            following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            first = self.calendar.period_start(month, kind)
            last = self.calendar.period_start(following - timedelta(days=1), kind)
            key = month.isoformat()[:7]
            in_force[key] = self._date_literal(first)
            if last != first:
                starting[key] = self._date_literal(last)
            month = following
        return in_force, starting

    def _date_literal(self, day: date) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return literal(day, Date)
        return literal(day.isoformat(), String)  # SQLite keeps dates as ISO text

    def window_instants(self) -> tuple[datetime, datetime]:
        return (
            local_midnight_utc(self.window.first_day, self.zone),
            local_midnight_utc(self.window.end, self.zone),
        )

    def lead_in_instant(self) -> datetime:
        """The UTC instant the window's lead-in year begins (see `Window.lead_in`)."""
        return local_midnight_utc(self.window.lead_in, self.zone)
