"""A deal's stage path from HubSpot's v2 stage-calculated properties, where they tell it exactly.

Search returns no property history, and reading it costs a `batch/read` per 100 deals. But search
does return, for each stage S asked for by name, `hs_v2_date_entered_S` and `hs_v2_date_exited_S`
(the most recent entry into and exit from S) and `hs_v2_latest_time_in_S` /
`hs_v2_cumulative_time_in_S` (the last completed visit and all completed visits). Those give
one visit per stage: the most recent. The path they describe is the whole history exactly when
no stage was visited twice, which is checked, not assumed:

- the visits, ordered by entry, are strictly increasing and contiguous (each exit is the next
  entry), and the last one is the current stage and has no exit (a deal back in a stage it left
  before carries that earlier exit, so it fails here);
- no stage's cumulative time differs from its latest time (a second completed visit adds to the
  cumulative time only);
- and the path starts at the deal's creation, or every left stage has both times (either closes
  the last gap: an earlier, forgotten visit would leave time before the first entry uncovered, or
  make a cumulative time larger than the latest).

Anything else (a stage re-entered, a stage of a pipeline we do not know, a missing value) returns
None, and the caller reads the full history for that deal. Visits that last 0 ms are invisible to
both the calculated properties and the checks; HubSpot's history then holds two entries with one
timestamp, which the store keys by millisecond anyway.

Owner at close needs `hubspot_owner_id` history only when the current owner may not be the one
who held the deal when it closed: `hubspot_owner_assigneddate` (when the current owner was
assigned) tells which deals those are.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.hubspot.mappers import decimal, instant, text

KINDS = ("date_entered", "date_exited", "latest_time_in", "cumulative_time_in")
OWNER_ASSIGNED = "hubspot_owner_assigneddate"
Path = tuple[tuple[str, datetime], ...]


def deal_properties(stage_ids: Iterable[str]) -> tuple[str, ...]:
    """What a deal search must ask for so stage paths and owners at close can be told."""
    return (OWNER_ASSIGNED,) + tuple(
        f"hs_v2_{kind}_{stage}" for stage in stage_ids for kind in KINDS
    )


class _Visit:
    __slots__ = ("stage", "entered", "exited", "latest", "cumulative")

    def __init__(
        self,
        stage: str,
        entered: datetime,
        exited: datetime | None,
        latest: Decimal | None,
        cumulative: Decimal | None,
    ) -> None:
        self.stage, self.entered, self.exited = stage, entered, exited
        self.latest, self.cumulative = latest, cumulative


def path_from_calculated(props: Mapping[str, Any], stage_ids: Iterable[str]) -> Path | None:
    """The deal's stage path, oldest first, or None when the properties cannot prove it."""
    visits: list[_Visit] = []
    for stage in stage_ids:
        values = [props.get(f"hs_v2_{kind}_{stage}") for kind in KINDS]
        entered = instant(values[0])
        if entered is None:
            if any(v not in (None, "") for v in values):
                return None
            continue
        visits.append(
            _Visit(stage, entered, instant(values[1]), decimal(values[2]), decimal(values[3]))
        )
    if not visits:
        return None
    visits.sort(key=lambda v: v.entered)
    *left, current = visits
    if current.exited is not None or current.stage != text(props, "dealstage"):
        return None
    for visit, following in itertools.pairwise(visits):
        if following.entered <= visit.entered or visit.exited != following.entered:
            return None  # two stages entered at one instant, or not contiguous
    if any(
        v.latest is not None and v.cumulative is not None and v.latest != v.cumulative
        for v in visits
    ):
        return None
    from_creation = instant(props.get("createdate")) == visits[0].entered
    if not from_creation and any(v.latest is None or v.cumulative is None for v in left):
        return None
    return tuple((v.stage, v.entered) for v in visits)


def needs_owner_history(props: Mapping[str, Any], closed: bool, path: Path | None) -> bool:
    """Whether the owner at close may differ from the current owner (then history must tell)."""
    if not closed:
        return False  # an open deal's owner at close is its current owner
    if path is None:
        return True
    assigned = instant(props.get(OWNER_ASSIGNED))
    if text(props, "hubspot_owner_id") is None:
        return assigned is not None  # an owner was assigned once and later removed
    return assigned is None or assigned > path[-1][1]
