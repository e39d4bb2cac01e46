"""A whole history object indexed by opportunity on disk, so memory stays flat whatever its size.

SQLite's private temporary database (an empty file name) keeps a small page cache in memory and
the rest in a file removed on close. A first sync reads OpportunityHistory once, ⌈rows/2000⌉ REST
pages or one Bulk job, into the index, and each page of opportunities then looks its own up here
instead of asking Salesforce again with IN (...) queries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

History = dict[str, list[Any]]  # OpportunityId -> entries, oldest first
Entry = tuple[str, str, str | None]  # (CreatedDate, Id, a value), as the history reader makes them

IDS_PER_LOOKUP = 900  # under SQLite's oldest limit of 999 bound values a statement


class HistoryIndex:
    def __init__(self) -> None:
        # The reader thread builds and reads it; a later sync's reader thread is another thread.
        self._db = sqlite3.connect("", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE entry (opportunity TEXT NOT NULL, created TEXT NOT NULL,"
            " id TEXT NOT NULL, value TEXT)"
        )

    @classmethod
    def of(cls, pages: Iterable[Iterable[Mapping[str, Any]]], entry: Any) -> HistoryIndex:
        """The index of every row `entry` keeps, as (OpportunityId, Entry) or None."""
        index = cls()
        for page in pages:
            kept = (item for item in map(entry, page) if item is not None)
            index._db.executemany(
                "INSERT INTO entry VALUES (?, ?, ?, ?)",
                ((opportunity, *found) for opportunity, found in kept),
            )
        index._db.execute("CREATE INDEX entry_by_opportunity ON entry (opportunity, created, id)")
        return index

    def entries(self, ids: Sequence[str]) -> History:
        """The entries of these opportunities, each one's oldest first (as text sorts them:
        one read gives one timestamp format)."""
        found: History = {}
        for start in range(0, len(ids), IDS_PER_LOOKUP):
            chunk = ids[start : start + IDS_PER_LOOKUP]
            rows = self._db.execute(
                f"SELECT opportunity, created, id, value FROM entry WHERE opportunity IN "
                f"({', '.join('?' * len(chunk))}) ORDER BY opportunity, created, id",
                chunk,
            )
            for opportunity, created, row_id, value in rows:
                found.setdefault(opportunity, []).append((created, row_id, value))
        return found

    def close(self) -> None:
        self._db.close()
