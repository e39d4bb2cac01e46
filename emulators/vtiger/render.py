"""How the Vtiger emulator writes values on the wire: server-time-zone stamps and locale leaks.

`Locale` reproduces what a Persian distribution may leak into webservice output (crm-api-facts
3.5): numbers written with Persian (U+06F0-06F9) or Arabic-Indic (U+0660-0669) digits, and date
fields as Jalali (Solar Hijri) dates. The Jalali calendar here is computed by counting days from
1 Farvardin 1300 (21 March 1921) with the 33-year leap rule, which holds for 1300-1499.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from emulators.vtiger.records import Entity
from emulators.vtiger.schema import Schema

PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
JALALI_EPOCH = date(1921, 3, 21)  # 1300-01-01
NUMERIC_TYPES = frozenset({"currency", "double", "integer"})
LEAP_REMAINDERS = frozenset({1, 5, 9, 13, 17, 22, 26, 30})


def jalali_is_leap(year: int) -> bool:
    return year % 33 in LEAP_REMAINDERS


def to_jalali(day: date) -> tuple[int, int, int]:
    """A Gregorian date as (Jalali year, month, day); valid for 1300-1499 AP."""
    left = (day - JALALI_EPOCH).days
    year = 1300
    while left >= (366 if jalali_is_leap(year) else 365):
        left -= 366 if jalali_is_leap(year) else 365
        year += 1
    month = 1
    while True:
        length = 31 if month <= 6 else 30 if month <= 11 else (30 if jalali_is_leap(year) else 29)
        if left < length:
            return year, month, left + 1
        left -= length
        month += 1


@dataclass
class Locale:
    """Which leaks are on; digits alternate Persian / Arabic-Indic by crmid so both appear."""

    native_digits: bool = False
    jalali_dates: bool = False

    def digits(self, entity: Entity, text: str) -> str:
        if not self.native_digits or not text:
            return text
        return text.translate(PERSIAN if entity.crmid % 2 == 0 else ARABIC_INDIC)

    def day(self, entity: Entity, text: str) -> str:
        if not text or not self.jalali_dates:
            return self.digits(entity, text)
        y, m, d = to_jalali(date.fromisoformat(text))
        return self.digits(entity, f"{y:04d}-{m:02d}-{d:02d}")


def stamp(seconds: int, zone: ZoneInfo) -> str:
    """Unix seconds as 'YYYY-MM-DD HH:MM:SS' in the server's zone, without an offset."""
    return datetime.fromtimestamp(seconds, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def parse_stamp(text: str, zone: ZoneInfo) -> int:
    """'YYYY-MM-DD[ HH:MM:SS]' in the server's zone -> unix seconds (ValueError if malformed)."""
    text = text.strip()
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S" if " " in text else "%Y-%m-%d")
    return int(moment.replace(tzinfo=zone).timestamp())


def render(
    schema: Schema,
    entity: Entity,
    zone: ZoneInfo,
    locale: Locale,
    columns: tuple[str, ...] | None = None,
    label: bool = False,
) -> dict[str, Any]:
    """A record as query/retrieve/sync return it: strings only, id always present."""
    out: dict[str, Any] = {}
    definitions = schema.fields[entity.module]
    names = columns if columns is not None else tuple(definitions)
    for name in names:
        if name == "id":
            continue
        definition = definitions.get(name)
        if name == "createdtime":
            value = stamp(entity.created, zone)
        elif name == "modifiedtime":
            value = stamp(entity.modified, zone)
        else:
            value = entity.fields.get(name, "")
            if definition is not None and definition.type in NUMERIC_TYPES:
                value = locale.digits(entity, value)
            elif definition is not None and definition.type == "date":
                value = locale.day(entity, value)
        out[name] = value
    out["id"] = entity.ws_id
    if label:
        out["label"] = label_of(entity)
    return out


def label_of(entity: Entity) -> str:
    f = entity.fields
    for name in ("accountname", "potentialname", "subject", "user_name"):
        if f.get(name):
            return f[name]
    return " ".join(p for p in (f.get("firstname", ""), f.get("lastname", "")) if p)
