"""Deal properties HubSpot calculates on read: the v2 stage-calculated family.

For every stage id S of the deal pipelines HubSpot serves, on request by name (they are not in the
properties list), values derived from the deal's `dealstage` history:

- `hs_v2_date_entered_S`: when the deal most recently entered S;
- `hs_v2_date_exited_S`: when the deal most recently left S (a deal back in S after an earlier
  visit keeps that earlier exit, so it is then before the entry);
- `hs_v2_latest_time_in_S`: milliseconds of the most recent *completed* visit to S (none while
  the first visit lasts);
- `hs_v2_cumulative_time_in_S`: milliseconds of all completed visits to S together.

A stage never visited has no value (null) for any of them. They are read-only and cannot be set.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from functools import lru_cache
from typing import Any

from emulators.hubspot.search import to_ms

STAGE_FAMILY = re.compile(
    r"^hs_v2_(date_entered|date_exited|latest_time_in|cumulative_time_in)_(.+)$"
)


def stage_calculated(
    history: list[dict[str, Any]], names: Iterable[str], stage_ids: Container[str]
) -> dict[str, str | None]:
    """The requested v2 properties of known stages from a `dealstage` history (newest first);
    other names are left out."""
    wanted = [
        (name, kind, stage) for name, kind, stage in _parse(tuple(names)) if stage in stage_ids
    ]
    if not wanted:
        return {}
    summary: dict[str, _Stage] = {}
    for stage, start, end in _visits(history):
        summary.setdefault(stage, _Stage()).add(start, end)
    out: dict[str, str | None] = {}
    for name, kind, stage in wanted:
        known = summary.get(stage)
        out[name] = known.value(kind) if known else None
    return out


@lru_cache(maxsize=64)
def _parse(names: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(name, kind, stage id) of each name of the v2 stage-calculated family."""
    found = ((name, STAGE_FAMILY.match(name)) for name in names)
    return tuple((name, m.group(1), m.group(2)) for name, m in found if m is not None)


Instant = tuple[int, str]  # epoch ms and the history entry's own timestamp text


class _Stage:
    """One stage's visits folded: latest entry, latest completed visit, all completed time."""

    __slots__ = ("entered", "exited", "latest", "cumulative")

    def __init__(self) -> None:
        self.entered = ""
        self.exited: str | None = None
        self.latest: int | None = None
        self.cumulative: int | None = None

    def add(self, start: Instant, end: Instant | None) -> None:
        self.entered = start[1]
        if end is not None:
            self.exited, self.latest = end[1], end[0] - start[0]
            self.cumulative = (self.cumulative or 0) + end[0] - start[0]

    def value(self, kind: str) -> str | None:
        if kind == "date_entered":
            return self.entered
        if kind == "date_exited":
            return self.exited
        number = self.latest if kind == "latest_time_in" else self.cumulative
        return None if number is None else str(number)


def _visits(history: list[dict[str, Any]]) -> list[tuple[str, Instant, Instant | None]]:
    """(stage, entered, left or None), oldest first; a null value ends a visit only."""
    oldest_first = [e for e in reversed(history) if e.get("timestamp")]
    ordered = sorted(
        (((to_ms(str(e["timestamp"])), str(e["timestamp"])), e.get("value")) for e in oldest_first),
        key=lambda item: item[0][0],
    )
    visits: list[tuple[str, Instant, Instant | None]] = []
    for at, value in ordered:
        if visits and visits[-1][2] is None:
            stage, start, _ = visits[-1]
            visits[-1] = (stage, start, at)
        if value:
            visits.append((str(value), at, None))
    return visits
