"""Walking one object type by last-modified time through the search API, exactly once per record.

HubSpot search caps a query at 10,000 results and promises no order among records that share the
sort value. So: read `modified >= cursor.value` (closed bound) up to the run's signpost, sorted by
modified time, dropping ids already seen at exactly that value; when the next page would pass the
cap, start a new query from the last value read. When a whole page shares ONE value, ask how many
records share it; if they will not fit under the cap (HubSpot's bulk updates do this), walk that
value by id instead (`modified == v and id > last`, sorted by id) — keyset paging that never meets
the cap — then continue after it. Each yielded batch carries the
cursor that is true once it is stored, so a crash resumes without loss or repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.kit.paging import PageTokens
from kpisync.cursor import Cursor
from kpisync.errors import ConnectorError

SEARCH_CAP = 10_000
PAGE_SIZE = 200
PINNED = "pinned_after_id"  # cursor state: walking the tie group at cursor.value by id

Search = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SearchScope:
    object_type: str
    modified_property: str  # lastmodifieddate for contacts, hs_lastmodifieddate elsewhere
    properties: tuple[str, ...]
    page_size: int = PAGE_SIZE


def to_millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def record_millis(record: dict[str, Any], prop: str) -> int:
    raw = (record.get("properties") or {}).get(prop) or record.get("updatedAt")
    if raw is None:
        raise ConnectorError(f"record {record.get('id')} has no {prop}")
    text = str(raw)
    if text.isdigit():
        return int(text)
    return to_millis(datetime.fromisoformat(text.replace("Z", "+00:00")))


def walk_modified(
    search: Search, scope: SearchScope, cursor: Cursor, signpost: datetime
) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
    """(new records, cursor after them) for everything modified since `cursor`, up to `signpost`."""
    until = to_millis(signpost)
    while True:
        if cursor.get(PINNED) is not None:
            yield from _walk_tie_group(search, scope, cursor)
            cursor = Cursor(value=str(int(cursor.value or 0) + 1))
            yield [], cursor
            continue
        finished, cursor = yield from _walk_window(search, scope, cursor, until)
        if finished:
            return


Batches = Iterator[tuple[list[dict[str, Any]], Cursor]]


def _walk_window(
    search: Search, scope: SearchScope, cursor: Cursor, until: int
) -> Generator[tuple[list[dict[str, Any]], Cursor], None, tuple[bool, Cursor]]:
    """One query from cursor.value; returns (done, cursor) — not done means: query again."""
    since = int(cursor.value or 0)
    after = 0
    checked: set[int] = set()
    tokens: PageTokens[int] = PageTokens("HubSpot", f"{scope.object_type} (search)")
    while True:
        body = _body(
            scope,
            [_f(scope.modified_property, "GTE", since), _f(scope.modified_property, "LTE", until)],
            sort=scope.modified_property,
            after=after,
        )
        response = search(body)
        results = response.get("results", [])
        fresh = [r for r in results if not _already_seen(r, scope, cursor)]
        for record in results:
            stamp = str(record_millis(record, scope.modified_property))
            if cursor.value is None or int(stamp) >= int(cursor.value):
                cursor = cursor.advance(stamp, {str(record["id"])})
        yield fresh, cursor
        following = tokens.next(_offset(next_after(response)))
        if following is None or not results:
            return True, cursor
        after = following
        stamps = {record_millis(r, scope.modified_property) for r in results}
        if len(stamps) == 1 and not checked & stamps:
            tied = stamps.pop()
            checked.add(tied)
            if after + _tie_size(search, scope, tied) > SEARCH_CAP:
                return False, Cursor(value=str(tied), state=((PINNED, "0"),))
        if after + scope.page_size > SEARCH_CAP:
            return False, cursor


def next_after(response: dict[str, Any]) -> str | None:
    """The `after` token of a list or search answer's next page, if there is one."""
    after = ((response.get("paging") or {}).get("next") or {}).get("after")
    return None if after is None else str(after)


def _offset(after: str | None) -> int | None:
    return None if after is None else int(after)


def _tie_size(search: Search, scope: SearchScope, stamp: int) -> int:
    """How many records share one modified time (the search total of an EQ query)."""
    body = _body(scope, [_f(scope.modified_property, "EQ", stamp)], sort="hs_object_id", after=0)
    body["limit"], body["properties"] = 1, ["hs_object_id"]
    return int(search(body).get("total", 0))


def _walk_tie_group(
    search: Search, scope: SearchScope, cursor: Cursor
) -> Iterator[tuple[list[dict[str, Any]], Cursor]]:
    value = int(cursor.value or 0)
    last_id = int(cursor.get(PINNED) or 0)
    while True:
        body = _body(
            scope,
            [_f(scope.modified_property, "EQ", value), _f("hs_object_id", "GT", last_id)],
            sort="hs_object_id",
            after=0,
        )
        results = search(body).get("results", [])
        if not results:
            return
        last_id = max(int(r["id"]) for r in results)
        cursor = Cursor(value=str(value), state=((PINNED, str(last_id)),))
        yield results, cursor
        if len(results) < scope.page_size:
            return


def _already_seen(record: dict[str, Any], scope: SearchScope, cursor: Cursor) -> bool:
    return (
        str(record["id"]) in cursor.seen_ids
        and str(record_millis(record, scope.modified_property)) == cursor.value
    )


def _f(prop: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


def _body(
    scope: SearchScope, filters: list[dict[str, str]], *, sort: str, after: int
) -> dict[str, Any]:
    return {
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
        "properties": list(scope.properties),
        "limit": scope.page_size,
        "after": str(after),
    }
