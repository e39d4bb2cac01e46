"""Mapping vendor records one at a time, so that a record a mapper cannot read is named.

A value no mapper expected (a date that is no date, a number that is no number) would otherwise
surface as a bare ValueError: the sync stops with "unexpected error", and the admin cannot tell
which record to correct. `map_each` turns it into a ConnectorError that names the object and the
record's id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from kpisync.errors import ConnectorError

R = TypeVar("R")
T = TypeVar("T")
UNREADABLE = (ValueError, TypeError, KeyError, IndexError, ArithmeticError, AttributeError)

log = logging.getLogger(__name__)
_said: set[str] = set()


def map_each(
    records: Iterable[R], map_one: Callable[[R], T], what: str, id_of: Callable[[R], object]
) -> list[T]:
    """`map_one` of every record, in order; the first record it cannot read stops the page with
    an error naming `what` and the record's id."""
    out: list[T] = []
    for record in records:
        try:
            out.append(map_one(record))
        except UNREADABLE as error:
            raise ConnectorError(
                f"{what} {id_of(record)} cannot be read: {type(error).__name__}: {error}",
                hint="correct the record in the CRM, or the setting that points at the field; "
                "the next sync resumes at this page",
            ) from error
    return out


def say_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time `key` (a field, say) comes up in this process: a field whose
    values a mapper reads around would otherwise log one line per record."""
    if key not in _said:
        _said.add(key)
        log.warning(message, *args)
