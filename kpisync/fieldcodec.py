"""Score values at the connector border: how a value is written to a CRM and how its answer reads.

kpisync keeps every score value as canonical text (or None for "unknown"): numbers in plain
notation ("42", "0.5"), dates as ISO days, booleans as "true"/"false". A CRM takes and answers
values in its own forms (HubSpot "42.0", epoch-ms dates; Vtiger checkboxes "1"/"0", an emptied
decimal "0.00"; Salesforce JSON booleans). Each connector has one `ValueCodec` saying both ways:

    wire(kind, text)          the value to send for canonical `text` (None: clear the field)
    holds(kind, held, meant)  whether the CRM's `held` value (read by a sync or answered by a
                              write) means the canonical `meant` value
    keeps_unknown(kind)       whether the CRM can hold "unknown" for that kind at all; where it
                              cannot (a checkbox), kpisync leaves the field as it is

Write-back uses the same codec for change detection, conflict detection, the read-back after
each write and reverts, so a CRM's own representation of "empty" is never a change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def blank_to_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return None if text.strip() == "" else text


def number_text(number: Decimal) -> str:
    """Plain notation without trailing zeros: 42, 0.5, -12.3 (never 4.2E+1)."""
    if number == number.to_integral_value():
        return str(number.quantize(Decimal(1)))
    return format(number.normalize(), "f")


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


def same(kind: str, a: Any, b: Any) -> bool:
    """Whether two values of a field of `kind` mean the same; blank equals None."""
    a, b = blank_to_none(a), blank_to_none(b)
    if a is None or b is None:
        return a is b
    parse = {"number": as_number, "date": as_date, "bool": as_bool}.get(kind)
    if parse is None:
        return bool(a == b)
    left = parse(a)
    return bool(left == parse(b)) if left is not None else bool(a == b)


def shown(value: Any) -> str:
    """A held or meant value in a message: its text, or 'empty'."""
    text = blank_to_none(value)
    return "empty" if text is None else repr(text)


class ValueCodec:
    """The generic codec: canonical text on the wire, "" clears, meaning compared by kind."""

    name = "the CRM"

    def wire(self, kind: str, text: str | None) -> Any:
        return text

    def holds(self, kind: str, held: Any, meant: str | None) -> bool:
        return same(kind, held, meant)

    def keeps_unknown(self, kind: str) -> bool:
        return True

    def mismatch(self, kind: str, name: str, held: Any, meant: str | None) -> str | None:
        """Why the write of `meant` to field `name` did not land, from what the CRM answered."""
        if self.holds(kind, held, meant):
            return None
        return f"{self.name} holds {shown(held)} in {name} after the write, not {shown(meant)}"


GENERIC = ValueCodec()
