"""Score values as CRMs take them: text encodings per type, equality across formats, acceptance.

Every value crosses the connector border as text (or None to clear the field). CRMs echo values back
in their own formats (HubSpot "42.0" for 42, a date as epoch milliseconds, "" for unset), so values
are compared by meaning for their type, never as raw strings. `problem_with` is the drift guard's
question for one value: does this field, as the CRM describes it now, accept it?
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kpisync.connector import FieldInfo

NUMBER_TYPES = frozenset({"number", "double", "percent", "currency", "int", "integer", "decimal"})
DATE_TYPES = frozenset({"date", "datetime"})
BOOL_TYPES = frozenset({"bool", "boolean", "checkbox"})
MAX_TEXT = 65_536  # HubSpot's limit for a text property; the smallest of the supported CRMs
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def encode(kind: str, value: Any) -> str | None:
    """`value` (a Python number, date, bool or text) as the text a CRM field of `kind` takes."""
    if value is None:
        return None
    if kind == "bool":
        return "true" if value else "false"
    if kind == "number":
        return number_text(Decimal(str(value)))
    if kind == "date":
        return (value.date() if isinstance(value, datetime) else value).isoformat()
    text = str(value)
    return text or None


def number_text(number: Decimal) -> str:
    """Plain notation without trailing zeros: 42, 0.5, -12.3 (never 4.2E+1)."""
    if number == number.to_integral_value():
        return str(number.quantize(Decimal(1)))
    return format(number.normalize(), "f")


def same(kind: str, a: str | None, b: str | None) -> bool:
    """Whether two texts of a field of `kind` mean the same value; blank equals None."""
    a, b = blank_to_none(a), blank_to_none(b)
    if a is None or b is None:
        return a is b
    if kind == "number":
        return as_number(a) == as_number(b) if as_number(a) is not None else a == b
    if kind == "date":
        return as_date(a) == as_date(b) if as_date(a) is not None else a == b
    if kind == "bool":
        return as_bool(a) == as_bool(b) if as_bool(a) is not None else a == b
    return a == b


def blank_to_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return None if text.strip() == "" else text


def as_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def as_date(text: str) -> date | None:
    raw = text.strip()
    if raw.isdigit():  # epoch milliseconds, as HubSpot returns date properties
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC).date()
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        return None


def as_bool(text: str) -> bool | None:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def problem_with(info: FieldInfo, value: str | None) -> str | None:
    """Why `info` (the field as the CRM describes it now) would refuse `value`; None if it won't."""
    if value is None:
        return None
    if info.options:
        if value not in info.options:
            return f"{value!r} is not one of its options ({', '.join(info.options)})"
        return None
    kind = info.type.lower()
    if kind in NUMBER_TYPES and as_number(value) is None:
        return f"it holds numbers and {value!r} is not one"
    if kind in DATE_TYPES and as_date(value) is None:
        return f"it holds dates and {value!r} is not one"
    if kind in BOOL_TYPES and as_bool(value) is None:
        return f"it holds true/false and {value!r} is neither"
    if len(value) > MAX_TEXT:
        return f"the value is {len(value)} characters, more than the {MAX_TEXT} it takes"
    return None


def type_problem(info: FieldInfo, kind: str) -> str | None:
    """Why a field of the CRM's type cannot hold scores of `kind` at all; None if it can."""
    crm = info.type.lower()
    if crm in ("string", "text", "textarea") or info.options:
        return None
    fits = {"number": NUMBER_TYPES, "date": DATE_TYPES, "bool": BOOL_TYPES | {"enumeration"},
            "enumeration": frozenset({"enumeration", "picklist"}), "string": frozenset()}
    if crm in fits.get(kind, frozenset()):
        return None
    return f"its type is {info.type}, which cannot hold a {kind} score"
