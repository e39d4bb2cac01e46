"""Walking one module's changes with VTQL `query` on modifiedtime, where `sync` cannot serve.

Vtiger caps a query at 100 rows and keeps one-second timestamps, so many rows can share one
modifiedtime (a mass update stamps thousands with one second). The walk reads in one total order,
(modifiedtime, id), and keeps its place as a second and how many of that second's rows it has read:

    SELECT * FROM M WHERE modifiedtime >= 'T' AND modifiedtime <= 'bound'
        ORDER BY modifiedtime, id LIMIT k-1,100;

asks from the k-th row of second T, the last one read. When that row does not come back first,
a row read earlier at T has left the second (edited again, deleted), the offsets shifted, and the
walk reads T again from its start (rows already written are only written again). No row joins a
second at or before the bound (an edit is stamped now, later than the bound), so each restart
shrinks the group and the walk ends. A page may end anywhere, inside a tie or not: the overlap costs
one row a page, never a call. The walk's last second is complete once a short page shows nothing
after it, so the next run starts strictly after it. Deletes are invisible to query: deletecount.py
notices them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from connectors.vtiger.syncwalk import Batch
from connectors.vtiger.values import seconds, stamp
from kpisync.cursor import Cursor

PAGE = 100
# Cursor state: rows of the cursor's second already read, in id order, and the last one's id.
# (The names date from versions that paged by offset only inside a tie group over 100 rows.)
OFFSET = "pinned_offset"
LAST = "pinned_last"

Query = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Place:
    """Every row before `second` is read, and the first `offset` rows of `second` by id,
    the last of them `last_id` (offset 0: none of that second yet)."""

    second: int | None = None
    offset: int = 0
    last_id: str = ""


def walk_query(query: Query, module: str, cursor: Cursor, bound: int,
               zone: ZoneInfo) -> Iterator[Batch]:
    place = place_of(cursor)
    # Cursors written by older versions name the rows read at their second instead of counting them.
    seen = frozenset() if place.offset else cursor.seen_ids
    while True:
        rows = query(page_query(module, place, bound, zone))
        stamped = [(seconds(row.get("modifiedtime"), zone), row) for row in rows]
        if place.offset:
            if not stamped or stamped[0][0] != place.second or \
                    str(stamped[0][1].get("id")) != place.last_id:
                place = Place(place.second)  # a row read at this second left it: read it again
                continue
            stamped = stamped[1:]
        fresh = [row for t, row in stamped if not (t == place.second and str(row.get("id")) in seen)]
        seen = frozenset()
        if len(rows) < PAGE:
            if stamped:
                place = Place(stamped[-1][0] + 1)
            elif place.offset:
                place = Place((place.second or 0) + 1)
            yield Batch(fresh, [], cursor_at(cursor, place))
            return
        last_second = stamped[-1][0]
        offset = sum(1 for t, _ in stamped if t == last_second)
        if last_second == place.second:
            offset += place.offset
        place = Place(last_second, offset, str(stamped[-1][1].get("id")))
        yield Batch(fresh, [], cursor_at(cursor, place))


def page_query(module: str, place: Place, bound: int, zone: ZoneInfo) -> str:
    lower = "" if place.second is None else f"modifiedtime >= '{stamp(place.second, zone)}' AND "
    start = place.offset - 1 if place.offset else 0
    return (f"SELECT * FROM {module} WHERE {lower}modifiedtime <= '{stamp(bound, zone)}' "
            f"ORDER BY modifiedtime, id LIMIT {start},{PAGE};")


def place_of(cursor: Cursor) -> Place:
    second = int(cursor.value) if cursor.value else None
    last_id = cursor.get(LAST) or ""
    offset = int(cursor.get(OFFSET) or 0) if last_id and second is not None else 0
    return Place(second, offset, last_id if offset else "")


def cursor_at(cursor: Cursor, place: Place) -> Cursor:
    """The cursor standing at `place`, with the connector's other state kept."""
    kept = tuple((k, v) for k, v in cursor.state if k not in (OFFSET, LAST))
    moved = Cursor(value=None if place.second is None else str(place.second), state=kept)
    if place.offset:
        moved = moved.with_state(**{OFFSET: str(place.offset), LAST: place.last_id})
    return moved
