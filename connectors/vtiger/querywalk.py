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

A walk that starts a second from its beginning first counts the rows it is about to read
(`SELECT count(*)` over the same window): none, and it ends without a page call (a sync with
nothing changed costs the same calls); some, and an empty page is no "nothing changed" but a read
Vtiger emptied, `EmptyRead` (a custom field without its database column empties every SELECT *
of its module, with success).
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
Count = Callable[[str, str], int]  # (module, where clause) -> count(*)


class EmptyRead(Exception):
    """A page came back empty while count(*) over its window says `expected` rows are there."""

    def __init__(self, module: str, expected: int, since: str) -> None:
        super().__init__(f"{module}: empty page, count(*) {expected}")
        self.module = module
        self.expected = expected
        self.since = since


@dataclass(frozen=True)
class Place:
    """Every row before `second` is read, and the first `offset` rows of `second` by id,
    the last of them `last_id` (offset 0: none of that second yet)."""

    second: int | None = None
    offset: int = 0
    last_id: str = ""


def walk_query(
    query: Query,
    module: str,
    cursor: Cursor,
    bound: int,
    zone: ZoneInfo,
    count: Count | None = None,
) -> Iterator[Batch]:
    place = place_of(cursor)
    # Cursors written by older versions name the rows read at their second instead of counting them.
    seen = frozenset() if place.offset else cursor.seen_ids
    while True:
        expected = None
        if count is not None and not place.offset:
            expected = count(module, window(place, bound, zone))
            if not expected:
                yield Batch([], [], cursor_at(cursor, place))
                return
        rows = query(page_query(module, place, bound, zone))
        if expected and not rows and count is not None:
            expected = count(module, window(place, bound, zone))  # not a delete meanwhile?
            if expected:
                since = "the start" if place.second is None else stamp(place.second, zone)
                raise EmptyRead(module, expected, since)
        stamped = [(seconds(row.get("modifiedtime"), zone), row) for row in rows]
        if place.offset:
            if (
                not stamped
                or stamped[0][0] != place.second
                or str(stamped[0][1].get("id")) != place.last_id
            ):
                place = Place(place.second)  # a row read at this second left it: read it again
                continue
            stamped = stamped[1:]
        fresh = [
            row for t, row in stamped if not (t == place.second and str(row.get("id")) in seen)
        ]
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


def window(place: Place, bound: int, zone: ZoneInfo) -> str:
    """The WHERE clause of the rows from `place`'s second up to the bound."""
    lower = "" if place.second is None else f"modifiedtime >= '{stamp(place.second, zone)}' AND "
    return f" WHERE {lower}modifiedtime <= '{stamp(bound, zone)}'"


def page_query(module: str, place: Place, bound: int, zone: ZoneInfo) -> str:
    start = place.offset - 1 if place.offset else 0
    return (
        f"SELECT * FROM {module}{window(place, bound, zone)} "
        f"ORDER BY modifiedtime, id LIMIT {start},{PAGE};"
    )


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
