"""Walking one module's changes with Vtiger's `sync` operation, exactly once per record.

`sync` compares strictly (`modifiedtime > modifiedTime`, unix seconds): the first 100 rows after
it fix the page's last time, and every record up to and including that time comes back, so a page
may exceed 100 and never splits a tie group; `deleted` holds ws ids of records deleted (or, for
Leads, converted) in that window. Because a page always ends on a whole second, the next page is
asked strictly after the cursor's second (ids seen there are still dropped, for cursors written by
older versions that asked from one second earlier). Rows past the run's bound (signpost - 1 s) are
left for the next run, so a second that is still being written is never half-read. Each batch
carries the cursor that is true once stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from connectors.kit.paging import PageTokens
from connectors.vtiger.values import seconds
from kpisync.cursor import Cursor

SyncCall = Callable[[int], dict[str, Any]]  # modifiedTime -> the sync result


@dataclass(frozen=True)
class Batch:
    records: list[dict[str, Any]]
    deleted: list[str]
    cursor: Cursor


def walk_sync(
    call: SyncCall, cursor: Cursor, bound: int, zone: ZoneInfo, first: dict[str, Any] | None = None
) -> Iterator[Batch]:
    """Batches of changed records and deleted ids after `cursor`, up to `bound` (unix seconds)."""
    asked: PageTokens[int] = PageTokens("Vtiger", "sync")
    while True:
        since = max(1, int(cursor.value)) if cursor.value else 1
        asked.next(since)  # the same `modifiedTime` twice: the walk made no progress
        response = first if first is not None and since == 1 else call(since)
        first = None
        updated = list(response.get("updated") or [])
        last = int(response.get("lastModifiedTime") or since)
        more = bool(response.get("more"))
        stamped = [(seconds(r.get("modifiedtime"), zone), r) for r in updated]
        kept = [(t, r) for t, r in stamped if t <= bound]
        fresh = [
            r
            for t, r in kept
            if not (str(r.get("id")) in cursor.seen_ids and str(t) == cursor.value)
        ]
        past_bound = len(kept) < len(stamped) or last > bound
        if kept:
            top = max(t for t, _ in kept)
            at_top = {str(r.get("id")) for t, r in kept if t == top}
            cursor = cursor.advance(str(top), at_top)
        elif not past_bound and updated == [] and last > int(cursor.value or 0):
            cursor = cursor.advance(str(last), set())
        yield Batch(fresh, [str(i) for i in response.get("deleted") or []], cursor)
        if past_bound or not more:
            return
