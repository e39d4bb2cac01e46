"""How numbers and periods are written for people: by the KPI's unit, in full or compact (axes)."""

from __future__ import annotations

from datetime import date

from kpisync.calendars import (
    GREGORIAN,
    PERSIAN_MONTHS_FA,
    Calendar,
    persian_digits,
    persian_period_label,
)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MINUS = "\u2212"


def show_value(value: float | None, unit: str, currency: str = "") -> str:
    """`value` in full: 47.3%, 60,699 USD, 34.2 days, +36 …; "no data" when None."""
    if value is None:
        return "no data"
    if unit == "ratio":
        return signed(f"{value * 100:,.1f}") + "%"
    if unit == "money":
        return signed(f"{value:,.0f}") + (f" {currency}" if currency else "")
    if unit == "score":
        text = signed(f"{value:,.0f}")
        return text if text.startswith(MINUS) or text == "0" else "+" + text
    if unit == "days":
        return signed(f"{value:,.1f}") + " days"
    if unit == "hours":
        return signed(f"{value:,.1f}") + " h"
    if unit == "multiple":
        return signed(f"{value:,.2f}") + "\u00d7"
    if unit == "count":
        return signed(f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}")
    return signed(f"{value:,.2f}")


def show_axis(value: float, unit: str) -> str:
    """`value` compact, for chart axes: 61k, 35%, 12 d."""
    if unit == "ratio":
        return signed(f"{value * 100:.0f}") + "%"
    magnitude = abs(value)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            text = f"{value / size:.1f}".removesuffix(".0") + suffix
            return signed(text)
    return signed(f"{value:.1f}".removesuffix(".0"))


def signed(text: str) -> str:
    """A real minus sign instead of the hyphen Python writes."""
    return MINUS + text[1:] if text.startswith("-") else text


def period_label(start: date, kind: str, calendar: Calendar = GREGORIAN, locale: str = "en") -> str:
    """The period starting at `start`: "W44 2026", "Oct 2026", "Q4 2026", "2026"; under the
    Persian calendar "Farvardin 1405", "Q1 1405" (locale fa: "فروردین ۱۴۰۵", "فصل اول ۱۴۰۵")."""
    if calendar.system == "persian":
        return persian_period_label(start, kind, locale)
    if kind == "week":
        year, week, _ = start.isocalendar()
        return f"W{week:02d} {year}"
    if kind == "month":
        return f"{MONTHS[start.month - 1]} {start.year}"
    if kind == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    return str(start.year)


def period_tick(start: date, kind: str, calendar: Calendar = GREGORIAN, locale: str = "en") -> str:
    """A short label for an axis tick: "W44", "Oct", "Q4 26", "2026" (Persian: "Far 05")."""
    if calendar.system == "persian" and locale == "fa":
        number, in_year = calendar.months_and_year(start)
        short = {
            "week": persian_period_label(start, kind, "fa").split()[1],
            "month": PERSIAN_MONTHS_FA[number - 1],
            "year": str(in_year),
            "quarter": f"فصل {(number - 1) // 3 + 1} {in_year % 100:02d}",
        }[kind]
        return persian_digits(short)
    if calendar.system == "persian":
        name, year = (persian_period_label(start, kind).split() + [""])[:2]
        if kind == "month":
            first = start == calendar.period_start(start, "year")
            return f"{name[:3]} {year[-2:]}" if first else name[:3]
        return {"week": name, "quarter": f"{name} {year[-2:]}"}.get(kind, name)
    if kind == "week":
        return f"W{start.isocalendar()[1]:02d}"
    if kind == "month":
        return MONTHS[start.month - 1] if start.month != 1 else f"Jan {start.year % 100:02d}"
    if kind == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year % 100:02d}"
    return str(start.year)
