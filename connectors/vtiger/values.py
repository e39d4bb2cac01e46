"""Reading Vtiger's wire values: every one a string, with the quirks handled on purpose.

- webservice ids '13x42': the prefix (from describe.idPrefix) names the module;
- datetimes 'YYYY-MM-DD HH:MM:SS' without an offset, in the server's time zone (a setting);
- amounts as strings with 8 decimals ('12500.50000000'), probability '10.000', booleans '0'/'1';
- '' for every empty value, '0000-00-00' for an empty date in some installs;
- Persian (U+06F0-06F9) and Arabic-Indic (U+0660-0669) digits, Arabic decimal and thousands signs;
- Jalali (Solar Hijri) dates where a Persian distribution leaks them: a year from 1300 to 1499
  cannot be a Gregorian CRM date, so it is read as Jalali and converted, never taken literally.

`CODEC` is the write-back side: how a score is sent to a Vtiger field and how its answer reads.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from kpisync.fieldcodec import ValueCodec, as_bool, as_number, same

DIGITS = str.maketrans(
    {
        **{chr(0x06F0 + i): str(i) for i in range(10)},
        **{chr(0x0660 + i): str(i) for i in range(10)},
        "\u066b": ".",
        "\u066c": "",
        ",": "",
        "\u060c": "",
    }
)
_DATE = re.compile(
    r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)
JALALI_YEARS = range(1300, 1500)
FARVARDIN_1403 = date(2024, 3, 20)  # 1 Farvardin 1403 (Nowruz 2024)
JALALI_LEAP = frozenset({1, 5, 9, 13, 17, 22, 26, 30})  # year % 33, exact for 1300-1499


def latin_digits(text: str) -> str:
    """Persian and Arabic-Indic digits (and separators) as ASCII."""
    return text.translate(DIGITS)


def text(value: object) -> str | None:
    """A value, or None for Vtiger's empty string."""
    if value.__class__ is str:  # nearly every wire value: skip the copy
        return value if value and not value.isspace() else None
    if value is None:
        return None
    out = str(value)
    return out if out.strip() != "" else None


def number(value: object) -> Decimal | None:
    raw = text(value)
    if raw is None:
        return None
    # Latin digits already: no translation needed
    digits = raw if raw.isascii() and "," not in raw else latin_digits(raw)
    try:
        return Decimal(digits.strip())
    except InvalidOperation:
        return None


def integer(value: object) -> int | None:
    parsed = number(value)
    return int(parsed) if parsed is not None else None


def flag(value: object) -> bool:
    return (text(value) or "").strip().lower() in ("1", "on", "yes", "true")


def jalali_year_length(year: int) -> int:
    return 366 if year % 33 in JALALI_LEAP else 365


def jalali_to_gregorian(year: int, month: int, day: int) -> date:
    """A Jalali date (1300-1499) as the Gregorian date, counted from 1 Farvardin 1403."""
    if year not in JALALI_YEARS or not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError(f"not a Jalali date this connector reads: {year}-{month}-{day}")
    offset = 0
    for y in range(min(year, 1403), max(year, 1403)):
        offset += jalali_year_length(y) if year > 1403 else -jalali_year_length(y)
    offset += (month - 1) * 31 if month <= 7 else 6 * 31 + (month - 7) * 30
    return FARVARDIN_1403 + timedelta(days=offset + day - 1)


def _parts(value: object) -> tuple[int, ...] | None:
    raw = text(value)
    if raw is None:
        return None
    found = _DATE.match(latin_digits(raw))
    if not found:
        raise ValueError(f"not a Vtiger date: {raw!r}")
    parts = tuple(int(p) if p else 0 for p in found.groups())
    return None if parts[0] == 0 else parts  # '0000-00-00': MySQL's empty date


def _calendar_day(year: int, month: int, day: int) -> date:
    if year in JALALI_YEARS:
        return jalali_to_gregorian(year, month, day)
    return date(year, month, day)


def day(value: object) -> date | None:
    if (
        value.__class__ is str
        and len(value) == 10
        and value.isascii()
        and value[4] == "-"
        and value[7] == "-"
        and value[:2] in ("19", "20")
    ):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass  # '2026/1/5' and the like: the careful path
    parts = _parts(value)
    return None if parts is None else _calendar_day(*parts[:3])


def instant(value: object, zone: ZoneInfo) -> datetime | None:
    """A server-time-zone datetime (or date) as an aware UTC datetime."""
    if value.__class__ is str:
        return _instant_text(value, zone)
    return _instant_parts(value, zone)


@lru_cache(maxsize=8192)  # a record's modifiedtime is read by the walk, then by the mapper
def _instant_text(value: str, zone: ZoneInfo) -> datetime | None:
    if (
        len(value) == 19
        and value.isascii()
        and value[4] == value[7] == "-"
        and value[10] == " "
        and value[:2] in ("19", "20")
    ):
        try:  # the usual 'YYYY-MM-DD HH:MM:SS' with Latin digits: never a Jalali year
            local = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (
                local.replace(tzinfo=UTC)
                if zone.key == "UTC"
                else local.replace(tzinfo=zone).astimezone(UTC)
            )
    return _instant_parts(value, zone)


def _instant_parts(value: object, zone: ZoneInfo) -> datetime | None:
    parts = _parts(value)
    if parts is None:
        return None
    local = datetime.combine(_calendar_day(*parts[:3]), datetime.min.time()).replace(
        hour=parts[3], minute=parts[4], second=parts[5], tzinfo=zone
    )
    return local.astimezone(UTC)


def seconds(value: object, zone: ZoneInfo) -> int:
    """A modifiedtime as unix seconds (the sync cursor's unit)."""
    moment = instant(value, zone)
    if moment is None:
        raise ValueError("a record without modifiedtime")
    return int(moment.timestamp())


def stamp(unix_seconds: int, zone: ZoneInfo) -> str:
    """Unix seconds as a VTQL datetime literal in the server's time zone."""
    return datetime.fromtimestamp(unix_seconds, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def combine(day_value: object, time_value: object, zone: ZoneInfo) -> datetime | None:
    """date_start + time_start of an activity, in the server's zone, as UTC."""
    start = day(day_value)
    if start is None:
        return None
    clock = latin_digits(text(time_value) or "00:00:00")
    hours, minutes, secs = (int(p) for p in (clock.split(":") + ["0", "0"])[:3])
    local = datetime(start.year, start.month, start.day, hours, minutes, secs, tzinfo=zone)
    return local.astimezone(UTC)


def module_prefix(ws_id: str) -> int | None:
    head, sep, tail = ws_id.partition("x")
    return int(head) if sep and head.isdigit() and tail.isdigit() else None


class VtigerCodec(ValueCodec):
    """Score values on a stock Vtiger 8.2 (measured on the real server):

    - a checkbox stores 1 only for "1", "on", JSON true or 1; anything else ("true" included)
      stores 0 silently. It reads "1" or "0", never empty: "unknown" cannot be held, so an
      unknown flag leaves the field as it is (holds() says any value holds it);
    - a decimal never written reads ""; once a number is in, writing "" stores 0 and reads
      "0.00": there is no way back to empty through the webservice. An empty score is therefore
      held by "", or by a zero (the emptied field), and a zero score only by a number;
    - numbers are rounded to the writing user's currency decimals: a value that came back
      rounded is a failed write, never a success;
    - every empty value is sent as "" (Vtiger ignores null in `revise`).
    """

    name = "Vtiger"

    def wire(self, kind: str, value: str | None) -> str:
        if value is None:
            return ""
        if kind == "bool":
            return "1" if as_bool(value) else "0"
        return value

    def keeps_unknown(self, kind: str) -> bool:
        return kind != "bool"

    def holds(self, kind: str, held: object, meant: str | None) -> bool:
        if kind == "bool":
            return meant is None or flag(held) == bool(as_bool(meant))
        if kind == "number":
            return self._holds_number(held, meant)
        if kind == "date":
            try:
                held_day = day(held)
            except ValueError:
                return False
            return same(kind, held_day.isoformat() if held_day else None, meant)
        return same(kind, held, meant)

    @staticmethod
    def _holds_number(held: object, meant: str | None) -> bool:
        held_number = number(held)
        if meant is None:
            return held_number is None and text(held) is None or held_number == 0
        return held_number is not None and held_number == as_number(meant)

    def mismatch(self, kind: str, name: str, held: object, meant: str | None) -> str | None:
        problem = super().mismatch(kind, name, held, meant)
        if problem and kind == "number" and meant is not None and number(held) is not None:
            problem += (
                " (Vtiger rounds numbers to the writing user's 'number of currency "
                "decimals': raise it in that user's preferences)"
            )
        return problem


CODEC = VtigerCodec()
