"""Walking one sObject by (SystemModstamp, Id), exactly once per record, through queryAll pages.

The cursor is a keyset: `value` is the last SystemModstamp read (a SOQL datetime literal) and
state `after_id` the last Id at that instant. One query reads

    WHERE (SystemModstamp > :t OR (SystemModstamp = :t AND Id > :id)) AND SystemModstamp <= :until
    ORDER BY SystemModstamp, Id

and follows `nextRecordsUrl` (2,000 rows a page); each page carries the cursor that is true once
it is stored, so a crash resumes exactly after the last stored row, however many rows share a
timestamp. `until` is the run's signpost less a lag, so rows whose transactions commit late are
not passed. queryAll also returns rows in the recycle bin (IsDeleted = true) as deletes. A page
token seen twice is an error, never an endless loop; an expired locator re-queries from the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from simple_salesforce.api import Salesforce

from connectors.kit.paging import PageTokens
from connectors.salesforce.client import SalesforceClient
from kpisync.cursor import Cursor
from kpisync.errors import ConnectorError, RejectedError
from kpisync.prefetch import chained

AFTER_ID = "after_id"
Rows = list[dict[str, Any]]
# Salesforce refuses a call whose URI and headers pass 16,384 bytes (414/431; help article
# 000386264); a query's SOQL travels in its GET URI. The rest is room for the session and others.
QUERY_URI_BUDGET = 16_384 - 2_048
QUERY_PATH = "/services/data/v99.9/queryAll/?"


def fits_in_query_uri(scope: Scope) -> bool:
    """Whether the walk's longest REST query of `scope` (keyset and bound included) stays within
    the URI limit. An object with hundreds of fields does not: it is read by Bulk API 2.0 jobs,
    whose SOQL travels in a POST body."""
    since = Cursor(value="2000-01-01T00:00:00.000Z", state=((AFTER_ID, "0" * 18),))
    soql = build_query(
        scope.sobject,
        scope.fields,
        [keyset_filter(since), "SystemModstamp <= 2000-01-01T00:00:00.000Z"],
        order="SystemModstamp, Id",
    )
    return len(QUERY_PATH) + len(urlencode({"q": soql})) <= QUERY_URI_BUDGET


def soql_instant(value: datetime) -> str:
    """A UTC datetime as an unquoted SOQL literal with milliseconds."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def record_instant(raw: str) -> str:
    """'2024-01-01T00:00:00.000+0000' (REST) or '...000Z' (Bulk CSV) -> the SOQL literal."""
    text = raw.replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    return soql_instant(datetime.fromisoformat(text))


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def keyset_filter(cursor: Cursor) -> str | None:
    if cursor.value is None:
        return None
    after = cursor.get(AFTER_ID)
    if after is None:
        return f"SystemModstamp > {cursor.value}"
    return (
        f"(SystemModstamp > {cursor.value} OR "
        f"(SystemModstamp = {cursor.value} AND Id > {quote(after)}))"
    )


def build_query(
    sobject: str, fields: Sequence[str], filters: Sequence[str | None], order: str | None = None
) -> str:
    text = f"SELECT {', '.join(fields)} FROM {sobject}"
    wanted = [f for f in filters if f]
    if wanted:
        text += " WHERE " + " AND ".join(wanted)
    return text + (f" ORDER BY {order}" if order else "")


@dataclass(frozen=True)
class Scope:
    sobject: str
    fields: tuple[str, ...]  # Id, IsDeleted and SystemModstamp included
    batch_size: int = 2000


class QueryPager:
    """query/queryAll then nextRecordsUrl, each page through the client's retries."""

    def __init__(self, client: SalesforceClient, batch_size: int) -> None:
        self.client = client
        self.headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}

    def pages(self, soql: str, *, include_deleted: bool) -> Iterator[Rows]:
        """The rows of each page; the next page is fetched while the caller works on one."""
        endpoint = "GET queryAll" if include_deleted else "GET query"
        named = re.search(r"\bFROM (\w+)", soql)
        tokens: PageTokens[str] = PageTokens("Salesforce", named.group(1) if named else soql)

        def first() -> dict[str, Any]:
            return self.client.call(
                endpoint,
                lambda sf: sf.query(
                    soql,
                    include_deleted=include_deleted,
                    headers=self.headers,
                    timeout=self.client.timeout,
                ),
            )

        def following(response: dict[str, Any]) -> Callable[[], dict[str, Any]] | None:
            token = response.get("nextRecordsUrl")
            if response.get("done", True) or not token:
                return None
            try:
                tokens.next(token)
            except ConnectorError as error:  # raised in its turn, after the pages before it
                return partial(_raise, error)
            return partial(
                self.client.call, "GET query more", _more(token, self.client, self.headers)
            )

        for response in chained(first, following):
            yield list(response.get("records") or [])


def _raise(error: ConnectorError) -> dict[str, Any]:
    raise error


def _more(
    token: str, client: SalesforceClient, headers: dict[str, str]
) -> Callable[[Salesforce], Any]:
    return lambda sf: sf.query_more(
        token, identifier_is_url=True, headers=headers, timeout=client.timeout
    )


def walk_modified(
    pager: QueryPager, scope: Scope, cursor: Cursor, until: datetime
) -> Iterator[tuple[Rows, Cursor]]:
    """(rows, cursor after them) for everything modified after `cursor`, up to `until`."""
    first = cursor.value is None
    while True:
        soql = build_query(
            scope.sobject,
            scope.fields,
            [keyset_filter(cursor), f"SystemModstamp <= {soql_instant(until)}"],
            order="SystemModstamp, Id",
        )
        try:
            for rows in pager.pages(soql, include_deleted=not first):
                if rows:
                    last = rows[-1]
                    cursor = Cursor(
                        value=record_instant(str(last["SystemModstamp"])),
                        state=((AFTER_ID, str(last["Id"])),),
                    )
                yield rows, cursor
            return
        except RejectedError as error:
            if "INVALID_QUERY_LOCATOR" not in error.message:
                raise
            # the locator expired mid-walk: query again from the last row handed out


def list_ids(pager: QueryPager, sobject: str) -> Iterator[list[str]]:
    """Every live Id of an object, a page at a time (for the purge comparison)."""
    for rows in pager.pages(f"SELECT Id FROM {sobject} ORDER BY Id", include_deleted=False):
        yield [str(r["Id"]) for r in rows]
