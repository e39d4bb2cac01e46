"""The probes `check()` makes: one call each, its failure turned into a Problem an admin acts on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from kpisync.connector import Problem
from kpisync.errors import KpisyncError

SETTINGS_FIX = "check the settings of this source"


def probe(
    call: Callable[[], object], *, fix: str = SETTINGS_FIX, cannot: str = ""
) -> list[Problem]:
    """No problem when `call()` succeeds; else the one its error names, after `cannot`."""
    try:
        call()
    except KpisyncError as error:
        return [Problem(f"{cannot}{error.message}", error.hint or fix)]
    return []


def unreadable(
    objects: Iterable[str], read_one: Callable[[str], object], fix: str
) -> list[Problem]:
    """A problem for each object whose one-record read fails (`fix` formatted with its name)."""
    return [
        problem
        for name in objects
        for problem in probe(
            partial(read_one, name), cannot=f"cannot read {name}: ", fix=fix.format(name)
        )
    ]
