"""Walking one module's changes with VTQL `query` on modifiedtime, where `sync` cannot serve.

Vtiger caps a query at 100 rows, keeps one-second timestamps and orders rows that share a
modifiedtime arbitrarily, so offsets over a changing result are unsafe. The walk therefore pages
by time, not by offset: `modifiedtime >= value AND modifiedtime <= bound ORDER BY modifiedtime
LIMIT 0,100`, dropping the ids already seen at `value` (the one-second overlap, de-duplicated),
and starts the next page at the last time read. Only when one second holds a whole page and a
count says it holds more (a tie group over 100, e.g. a mass update) does it page that second by
offset, ordered by id, with
a one-row overlap that detects rows leaving the group (a shift) and restarts the group; then it
continues strictly after that second. Deletes are invisible to query: the engine's periodic id
comparison (`list_ids`) finds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

from connectors.vtiger.syncwalk import Batch
from connectors.vtiger.values import latin_digits, seconds, stamp
from kpisync.cursor import Cursor

PAGE = 100
PINNED = "pinned_offset"  # cursor state: paging the tie group at cursor.value by id
PINNED_LAST = "pinned_last"

Query = Callable[[str], list[dict[str, Any]]]


def walk_query(query: Query, module: str, cursor: Cursor, bound: int,
               zone: ZoneInfo) -> Iterator[Batch]:
    while True:
        if cursor.get(PINNED) is not None:
            for batch in _walk_tie_group(query, module, cursor, zone):
                cursor = batch.cursor
                yield batch
            cursor = Cursor(value=str(int(cursor.value or 0) + 1), state=_mode_only(cursor))
            yield Batch([], [], cursor)
            continue
        lower = f"modifiedtime >= '{stamp(int(cursor.value), zone)}' AND " if cursor.value else ""
        rows = query(f"SELECT * FROM {module} WHERE {lower}modifiedtime <= "
                     f"'{stamp(bound, zone)}' ORDER BY modifiedtime LIMIT 0,{PAGE};")
        stamped = [(seconds(r.get("modifiedtime"), zone), r) for r in rows]
        fresh = [r for t, r in stamped
                 if not (str(r.get("id")) in cursor.seen_ids and str(t) == cursor.value)]
        if len(rows) == PAGE and len({t for t, _ in stamped}) == 1:
            value = str(stamped[0][0])
            if _tie_size(query, module, int(value), zone) <= PAGE:  # the page held it all
                cursor = Cursor(value=str(int(value) + 1), state=_mode_only(cursor))
                yield Batch(fresh, [], cursor)
                continue
            pinned = Cursor(value=value, state=_mode_only(cursor)).with_state(
                **{PINNED: "0", PINNED_LAST: ""})
            yield Batch(fresh, [], pinned)
            cursor = pinned
            continue
        for t, r in stamped:
            if cursor.value is None or t >= int(cursor.value):
                cursor = cursor.advance(str(t), {str(r.get("id"))})
        yield Batch(fresh, [], cursor)
        if len(rows) < PAGE:
            return


def _walk_tie_group(query: Query, module: str, cursor: Cursor, zone: ZoneInfo
                    ) -> Iterator[Batch]:
    value = int(cursor.value or 0)
    offset = int(cursor.get(PINNED) or 0)
    last = cursor.get(PINNED_LAST) or ""
    while True:
        start = max(0, offset - 1) if last else 0
        rows = query(f"SELECT * FROM {module} WHERE modifiedtime = '{stamp(value, zone)}' "
                     f"ORDER BY id LIMIT {start},{PAGE};")
        if last and (not rows or str(rows[0].get("id")) != last):
            offset, last = 0, ""  # rows left the group: its offsets shifted, read it again
            continue
        new = rows[1:] if last else rows
        offset += len(new)
        if new:
            last = str(new[-1].get("id"))
        state = {PINNED: str(offset), PINNED_LAST: last}
        yield Batch(new, [], Cursor(value=str(value), state=cursor.state).with_state(**state))
        if len(rows) < PAGE:
            return


def _tie_size(query: Query, module: str, value: int, zone: ZoneInfo) -> int:
    rows = query(f"SELECT count(*) FROM {module} WHERE modifiedtime = '{stamp(value, zone)}';")
    return int(latin_digits(str(rows[0].get("count", "0")))) if rows else 0


def _mode_only(cursor: Cursor) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in cursor.state if k not in (PINNED, PINNED_LAST))
