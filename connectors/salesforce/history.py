"""Opportunity history: stage changes (OpportunityHistory) and owner changes (OpportunityFieldHistory).

The Opportunity stream looks each page's history up in an index on disk (historyindex.py), so
memory stays flat whatever the org's size. The index holds:
- on a first sync, the whole history object, read once when the stream starts: through the
  object's own Bulk API 2.0 query job when it holds more than `bulk_above_records` rows, else by
  REST pages;
- on an incremental, the history of every opportunity modified after the stream's cursor (each
  row up to the run's upper bound), through one semi-join, read when the first page of
  opportunities needs it: ⌈rows/2000⌉ REST pages, where IN (...) lookups of the page's ids cost
  at least one call per few hundred opportunities; a run with no opportunity to read costs
  nothing. Semi-joins are standard SOQL (Salesforce's "Comparison Operators" page); the
  emulator parses them with their restrictions.

OpportunityFieldHistory exists only while field-history tracking is on. It is read-only and has
no SystemModstamp: CreatedDate is its only timestamp. An owner change writes two rows, one with
the user ids and one with their names; only the rows whose values are user ids (005...) are kept.
Owner changes are read oldest first by (CreatedDate, Id).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.salesforce.bulk import BulkReader
from connectors.salesforce.historyindex import History, HistoryIndex
from connectors.salesforce.mappers import OwnerEntry, StageEntry
from connectors.salesforce.paging import QueryPager, build_query

STAGES, OWNERS = "OpportunityHistory", "OpportunityFieldHistory"
STAGE_FIELDS = ("Id", "OpportunityId", "StageName", "CreatedDate")
OWNER_FIELDS = ("Id", "OpportunityId", "OldValue", "NewValue", "CreatedDate")
OWNER_FILTER = "Field = 'Owner'"
USER_PREFIX = "005"


@dataclass
class Histories:
    """What the Opportunity stream knows before its first page: whole-object indexes or None."""

    stages: HistoryIndex | None = None  # None: index the changed ones' on the first page
    owners: HistoryIndex | None = None
    tracking: bool = False  # whether owner changes exist at all (OpportunityFieldHistory)
    changed: tuple[str, str] = ("", "")  # incremental: (the walk's keyset filter, its upper bound)

    def close(self) -> None:
        for index in (self.stages, self.owners):
            if index is not None:
                index.close()


def stage_entry(row: Mapping[str, Any]) -> tuple[str, StageEntry] | None:
    """(OpportunityId, entry) of an OpportunityHistory row; None without a stage."""
    stage = row.get("StageName")
    if not stage:
        return None
    return str(row["OpportunityId"]), (str(row["CreatedDate"]), str(row["Id"]), str(stage))


def owner_entry(row: Mapping[str, Any]) -> tuple[str, OwnerEntry] | None:
    """The ids row of an owner change (the names row is left out); None for other rows."""
    old, new = row.get("OldValue") or None, row.get("NewValue") or None
    if not any(str(v).startswith(USER_PREFIX) for v in (old, new) if v):
        return None
    old_id = str(old) if old and str(old).startswith(USER_PREFIX) else None
    return str(row["OpportunityId"]), (str(row["CreatedDate"]), str(row["Id"]), old_id)


class HistoryReader:
    def __init__(self, pager: QueryPager, bulk: BulkReader, bulk_above_records: int) -> None:
        self.pager = pager
        self.bulk = bulk
        self.bulk_above_records = bulk_above_records

    def whole(
        self, sobject: str, fields: tuple[str, ...], filters: list[str | None], records: int
    ) -> Iterator[Iterable[Mapping[str, Any]]]:
        if records > self.bulk_above_records:
            yield from self.bulk.rows(sobject, fields, filters)
        else:
            yield from self.pager.pages(
                build_query(sobject, fields, filters), include_deleted=False
            )

    def stage_index(self, records: int, until: str) -> HistoryIndex:
        return HistoryIndex.of(
            self.whole(STAGES, STAGE_FIELDS, [f"CreatedDate <= {until}"], records), stage_entry
        )

    def owner_index(self, records: int, until: str) -> HistoryIndex:
        return HistoryIndex.of(
            self.whole(OWNERS, OWNER_FIELDS, [OWNER_FILTER, f"CreatedDate <= {until}"], records),
            owner_entry,
        )

    def changed_index(
        self,
        sobject: str,
        fields: tuple[str, ...],
        condition: str | None,
        changed: tuple[str, str],
        entry: Any,
    ) -> HistoryIndex:
        """The rows of `sobject`, up to the walk's upper bound, of every opportunity modified
        after the walk's cursor. Those modified past the bound too: the walk may have read one
        just before it changed again."""
        after, until = changed
        chosen = f"OpportunityId IN (SELECT Id FROM Opportunity WHERE {after})"
        soql = build_query(sobject, fields, [condition, chosen, f"CreatedDate <= {until}"])
        return HistoryIndex.of(self.pager.pages(soql, include_deleted=False), entry)

    def for_page(
        self, known: Histories, ids: Sequence[str], closed: Sequence[str]
    ) -> tuple[History, History]:
        """(stage entries, owner entries) of these opportunities; on an incremental's first
        page, the indexes of every changed opportunity's history are read first."""
        if not ids:
            return {}, {}
        if known.stages is None:
            known.stages = self.changed_index(
                STAGES, STAGE_FIELDS, None, known.changed, stage_entry
            )
            if known.tracking:
                known.owners = self.changed_index(
                    OWNERS, OWNER_FIELDS, OWNER_FILTER, known.changed, owner_entry
                )
        stages = known.stages.entries(ids)
        owners = known.owners.entries(closed) if known.owners is not None and closed else {}
        return stages, owners
