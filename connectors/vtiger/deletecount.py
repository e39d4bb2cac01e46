"""Noticing deletes in modules read by `query`, where Vtiger reports none (stock 8.2).

VTQL shows live rows only, so a record deleted (or purged, or a lead converted) simply stops
appearing. After each query-mode read the connector counts the module's live records created up
to the read's bound and keeps that count in the cursor (`live`, `live_until`). The next read counts
the records created up to that same old bound again: any other number means some of them left, and
the connector asks the engine for the id comparison (`purge_check_wanted`) of that module's entity
only (Calendar and Events together: both are activities).
Two `count(*)` calls a module a run instead of a full id listing every run. Known gaps, both closed
by the periodic check: a record restored from the recycle bin in the same interval as a delete
hides that delete; a run killed after its last page but before the id comparison forgets the ask.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from connectors.vtiger.values import stamp
from kpisync.cursor import Cursor

LIVE = "live"  # cursor state: live records created up to LIVE_UNTIL, counted after the last read
LIVE_UNTIL = "live_until"

Count = Callable[[str, str], int]  # (module, where clause) -> count(*)


def left_since_last_read(count: Count, module: str, cursor: Cursor, zone: ZoneInfo) -> bool:
    """Whether records counted after the last read are gone now (a delete, purge or conversion)."""
    live, until = cursor.get(LIVE), cursor.get(LIVE_UNTIL)
    if live is None or until is None:
        return False
    now = count(module, f" WHERE createdtime <= '{stamp(int(until), zone)}'")
    return now != int(live)


def recount(count: Count, module: str, cursor: Cursor, bound: int, zone: ZoneInfo) -> Cursor:
    """The cursor carrying the count of live records created up to `bound`."""
    live = count(module, f" WHERE createdtime <= '{stamp(bound, zone)}'")
    return cursor.with_state(**{LIVE: str(live), LIVE_UNTIL: str(bound)})
