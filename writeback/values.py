"""Score values as canonical texts, and whether a CRM field accepts them.

Scores are kept as canonical text (or None for unknown); each connector's codec
(kpisync.fieldcodec) turns them into what its CRM takes and compares its answers by meaning.
`problem_with` is the drift guard's question for one value: does this field, as the CRM describes
it now, accept it?
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from kpisync.connector import FieldInfo
from kpisync.fieldcodec import as_bool, as_date, as_number, blank_to_none, number_text, same

__all__ = [
    "as_bool",
    "as_date",
    "as_number",
    "blank_to_none",
    "encode",
    "number_text",
    "problem_with",
    "same",
    "type_problem",
]

NUMBER_TYPES = frozenset({"number", "double", "percent", "currency", "int", "integer", "decimal"})
DATE_TYPES = frozenset({"date", "datetime"})
BOOL_TYPES = frozenset({"bool", "boolean", "checkbox"})
MAX_TEXT = 65_536  # HubSpot's limit for a text property; the smallest of the supported CRMs


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
    fits = {
        "number": NUMBER_TYPES,
        "date": DATE_TYPES,
        "bool": BOOL_TYPES | {"enumeration"},
        "enumeration": frozenset({"enumeration", "picklist"}),
        "string": frozenset(),
    }
    if crm in fits.get(kind, frozenset()):
        return None
    return f"its type is {info.type}, which cannot hold a {kind} score"
