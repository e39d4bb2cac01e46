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
from typing import Any

from kpisync.sandbox.hubspot_records import iso
from kpisync.sandbox.hubspot_search import to_ms
from kpisync.sandbox.orggen import ms_to_dt

STAGE_FAMILY = re.compile(
    r"^hs_v2_(date_entered|date_exited|latest_time_in|cumulative_time_in)_(.+)$")


def is_stage_calculated(name: str, stage_ids: Container[str]) -> bool:
    """True when `name` is one of the v2 stage-calculated properties of a known stage."""
    match = STAGE_FAMILY.match(name)
    return match is not None and match.group(2) in stage_ids


def stage_calculated(history: list[dict[str, Any]], names: Iterable[str]
                     ) -> dict[str, str | None]:
    """The requested v2 properties from a `dealstage` history (entries newest first)."""
    visits = _visits(history)
    out: dict[str, str | None] = {}
    for name in names:
        match = STAGE_FAMILY.match(name)
        if match is None:
            continue
        kind, stage = match.groups()
        entries = [start for value, start, _ in visits if value == stage]
        done = [(start, end) for value, start, end in visits if value == stage and end is not None]
        value: str | None = None
        if kind == "date_entered" and entries:
            value = _iso(entries[-1])
        elif kind == "date_exited" and done:
            value = _iso(done[-1][1])
        elif kind == "latest_time_in" and done:
            value = str(done[-1][1] - done[-1][0])
        elif kind == "cumulative_time_in" and done:
            value = str(sum(end - start for start, end in done))
        out[name] = value
    return out


def _visits(history: list[dict[str, Any]]) -> list[tuple[str, int, int | None]]:
    """(stage, entered ms, left ms or None), oldest first; a null value ends a visit only."""
    oldest_first = [e for e in reversed(history) if e.get("timestamp")]
    ordered = sorted(((to_ms(str(e["timestamp"])), e.get("value")) for e in oldest_first),
                     key=lambda item: item[0])
    visits: list[tuple[str, int, int | None]] = []
    for at, value in ordered:
        if visits and visits[-1][2] is None:
            stage, start, _ = visits[-1]
            visits[-1] = (stage, start, at)
        if value:
            visits.append((str(value), at, None))
    return visits


def _iso(ms: int) -> str:
    return iso(ms_to_dt(ms))
