"""Calendars that cut local dates into KPI periods: Gregorian, and the Solar Hijri (Persian) one.

A period is the half-open interval [start, end) of local dates. Under both calendars a week
starts on the configured weekday; a Gregorian month, quarter and year are the usual ones. A
Persian year starts at Nowruz (1 Farvardin); its first six months have 31 days, the next five 30
and Esfand 29, or 30 in a leap year; a quarter is three months from Farvardin. Conversions come
from persiantools (the 33-year rule with the corrections that keep it astronomical beyond 1501;
see docs/decisions/persian-calendar.md). This module is a leaf: settings, metrics and the report
all read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from persiantools.jdatetime import JalaliDate

System = Literal["gregorian", "persian"]
WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
# Days from 1 Farvardin to the first day of each Persian month, and of each quarter.
PERSIAN_MONTH_OFFSETS: tuple[int, ...] = (0, 31, 62, 93, 124, 155, 186, 216, 246, 276, 306, 336)
PERSIAN_QUARTER_OFFSETS: tuple[int, ...] = PERSIAN_MONTH_OFFSETS[::3]
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}
# Persian (U+06F0…) and Arabic-Indic (U+0660…) digits, and the separators written with them.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_DATE = re.compile(r"^\s*(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*$")


def latin_digits(text: str) -> str:
    """`text` with Persian and Arabic-Indic digits written as 0-9."""
    return text.translate(_DIGITS)


def persian_ymd(day: date) -> tuple[int, int, int]:
    """The Solar Hijri (year, month, day) of a Gregorian date."""
    jalali = JalaliDate.to_jalali(day)
    return jalali.year, jalali.month, jalali.day


def from_persian(year: int, month: int, day: int) -> date:
    """The Gregorian date of a Solar Hijri date; ValueError when there is no such day."""
    return JalaliDate(year, month, day).to_gregorian()


def nowruz(year: int) -> date:
    """1 Farvardin of Solar Hijri `year`."""
    return from_persian(year, 1, 1)


@dataclass(frozen=True)
class Calendar:
    """How local dates fall into weeks, months, quarters and years."""

    system: System = "gregorian"
    week_start: int = 0  # Python's weekday numbering: 0 = Monday … 5 = Saturday, 6 = Sunday

    def period_start(self, day: date, kind: str) -> date:
        """The first local date of the `kind` period holding `day`."""
        if kind == "week":
            return day - timedelta(days=(day.weekday() - self.week_start) % 7)
        if kind not in _MONTHS_PER:
            raise ValueError(f"unknown period {kind!r}")
        if self.system == "gregorian":
            month = {"month": day.month, "quarter": 3 * ((day.month - 1) // 3) + 1, "year": 1}[kind]
            return date(day.year, month, 1)
        year, month, _ = persian_ymd(day)
        first = {"month": month, "quarter": 3 * ((month - 1) // 3) + 1, "year": 1}[kind]
        return from_persian(year, first, 1)

    def shift(self, start: date, kind: str, steps: int) -> date:
        """The start of the period `steps` periods after (or before) the one starting at `start`."""
        if kind == "week":
            return start + timedelta(weeks=steps)
        months = _MONTHS_PER[kind] * steps
        if self.system == "gregorian":
            index = start.year * 12 + start.month - 1 + months
            return date(index // 12, index % 12 + 1, 1)
        year, month, _ = persian_ymd(start)
        index = year * 12 + month - 1 + months
        return from_persian(index // 12, index % 12 + 1, 1)

    def period_end(self, start: date, kind: str) -> date:
        return self.shift(start, kind, 1)

    def year_of(self, day: date) -> int:
        """The calendar year number of `day` (1404 for 2025-06-01 under the Persian calendar)."""
        return day.year if self.system == "gregorian" else persian_ymd(day)[0]

    def year_starts(self, first: date, last: date) -> list[date]:
        """The first day of every year that overlaps [first, last]."""
        year, end = self.year_of(first), self.year_of(last)
        start = date if self.system == "gregorian" else from_persian
        return [start(y, 1, 1) for y in range(year, end + 1)]

    def months_and_year(self, start: date) -> tuple[int, int]:
        """(month 1-12, year) of a period start in this calendar, for labels."""
        if self.system == "gregorian":
            return start.month, start.year
        year, month, _ = persian_ymd(start)
        return month, year


GREGORIAN = Calendar()
PERSIAN = Calendar("persian", WEEKDAYS.index("saturday"))


def calendar_for(system: System, week_start: str | None = None) -> Calendar:
    """The calendar of the settings; the week starts on Monday, or Saturday under Persian."""
    default = "saturday" if system == "persian" else "monday"
    return Calendar(system, WEEKDAYS.index(week_start or default))


def parse_solar_hijri(text: str) -> date:
    """A Solar Hijri date written `1405-08-15`, `1405/8/15` or `۱۴۰۵/۰۸/۱۵` (Persian or
    Arabic-Indic digits); ValueError naming the text when it is no such day."""
    match = _DATE.match(latin_digits(text))
    if match is None:
        raise ValueError(f"{text!r} is not a Solar Hijri date such as 1405/08/15")
    year, month, day = (int(part) for part in match.groups())
    try:
        return from_persian(year, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the Solar Hijri calendar") from None


def parse_gregorian(text: str) -> date:
    """An ISO date (`2026-11-06`, `2026/11/06`), digits in any of the three scripts."""
    match = _DATE.match(latin_digits(text))
    if match is None:
        raise ValueError(f"{text!r} is not a date such as 2026-11-06")
    year, month, day = (int(part) for part in match.groups())
    return date(year, month, day)


def read_date(text: str, system: System, earliest: date, latest: date) -> tuple[date, bool]:
    """A date written in either calendar, and whether the `system` setting had to decide.

    The text is read in both calendars; a reading that is no real day, or falls outside
    [earliest, latest], is dropped (`1405/08/15` is only plausible as Solar Hijri, `2026-11-06`
    only as Gregorian). When both readings stand, `system` decides and the flag says so, for the
    import summary; when neither does, the setting's reading is returned for the caller to refuse
    with its own words, or its error raised when the text is no day in the setting's calendar.
    """
    readings: dict[str, date] = {}
    problems: dict[str, str] = {}
    for name, parse in (("gregorian", parse_gregorian), ("persian", parse_solar_hijri)):
        try:
            readings[name] = parse(text)
        except ValueError as exc:
            problems[name] = str(exc)
    plausible = {name: day for name, day in readings.items() if earliest <= day <= latest}
    if len(plausible) == 1:
        return next(iter(plausible.values())), False
    if len(plausible) == 2:
        return plausible[system], True
    if system not in readings:
        raise ValueError(problems[system])
    return readings[system], False


PERSIAN_MONTHS_EN = (
    "Farvardin",
    "Ordibehesht",
    "Khordad",
    "Tir",
    "Mordad",
    "Shahrivar",
    "Mehr",
    "Aban",
    "Azar",
    "Dey",
    "Bahman",
    "Esfand",
)
PERSIAN_MONTHS_FA = (
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
)
QUARTERS_FA = ("فصل اول", "فصل دوم", "فصل سوم", "فصل چهارم")
_TO_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def persian_digits(text: str) -> str:
    """`text` with 0-9 written as Persian digits (۰-۹)."""
    return text.translate(_TO_PERSIAN)


def persian_period_label(start: date, kind: str, locale: str = "en") -> str:
    """A Solar Hijri period: "Farvardin 1405", "Q1 1405", "1405", "W01 1405" (the week of the
    year counted from the week holding Nowruz); with locale "fa": "فروردین ۱۴۰۵", "فصل اول ۱۴۰۵"."""
    year, month, _ = persian_ymd(start)
    fa = locale == "fa"
    if kind == "month":
        text = f"{(PERSIAN_MONTHS_FA if fa else PERSIAN_MONTHS_EN)[month - 1]} {year}"
    elif kind == "quarter":
        quarter = (month - 1) // 3
        text = f"{QUARTERS_FA[quarter]} {year}" if fa else f"Q{quarter + 1} {year}"
    elif kind == "week":
        first = nowruz(year) - timedelta(days=(nowruz(year).weekday() - start.weekday()) % 7)
        text = (
            f"هفته {(start - first).days // 7 + 1:02d} {year}"
            if fa
            else f"W{(start - first).days // 7 + 1:02d} {year}"
        )
    else:
        text = str(year)
    return persian_digits(text) if fa else text


CALENDAR_NAMES: dict[str, System] = {
    "gregorian": "gregorian",
    "persian": "persian",
    "jalali": "persian",
    "shamsi": "persian",
    "solar hijri": "persian",
}


def read_day(
    text: str, named: str, setting: System, earliest: date, latest: date
) -> tuple[date, bool]:
    """A date alone, as an import column holds it: in the calendar `named` (a file's or column's
    "gregorian", "persian", "jalali", "shamsi"; "" when it says nothing), else as `read_date`
    reads it under the Persian setting, else as Gregorian. Also whether the setting decided."""
    name = named.strip().lower()
    if name and name not in CALENDAR_NAMES:
        raise ValueError(f"calendar {named!r} is neither gregorian nor persian")
    system = CALENDAR_NAMES.get(name)
    if system == "persian":
        return parse_solar_hijri(text), False
    if (system or setting) == "gregorian":
        return parse_gregorian(text), False
    return read_date(text, setting, earliest, latest)
