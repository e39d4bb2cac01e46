"""Opportunity history: stage changes (OpportunityHistory) and owner changes (OpportunityFieldHistory).

A page of opportunities gets its history one of two ways:
- from an index of the whole object, read once when the Opportunity stream starts: through the
  object's own Bulk API 2.0 query job when it holds more than `bulk_above_records` rows, else by
  REST pages. Every first sync reads stage and owner history this way (a Bulk job's few calls,
  or ⌈rows/2000⌉ REST pages, instead of one IN query per 300 opportunities). The index lives on
  disk (historyindex.py), so memory stays flat whatever the org's size.
- by IN (...) queries of a few hundred ids for the page's opportunities: stage history on REST
  syncs, owner changes of the page's closed opportunities on incremental ones.

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
from connectors.salesforce.paging import QueryPager, build_query, quote

STAGES, OWNERS = "OpportunityHistory", "OpportunityFieldHistory"
STAGE_FIELDS = ("Id", "OpportunityId", "StageName", "CreatedDate")
OWNER_FIELDS = ("Id", "OpportunityId", "OldValue", "NewValue", "CreatedDate")
OWNER_FILTER = "Field = 'Owner'"
IDS_PER_QUERY = 300  # keeps the GET URL of an IN (...) query well under 16 KB
USER_PREFIX = "005"


@dataclass
class Histories:
    """What the Opportunity stream knows before its first page: whole-object indexes or None."""

    stages: HistoryIndex | None = None  # None: look each page up
    owners: HistoryIndex | None = None
    tracking: bool = False  # whether owner changes exist at all (OpportunityFieldHistory)

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


def collect(pages: Iterable[Iterable[Mapping[str, Any]]], entry: Any) -> History:
    found: History = {}
    for page in pages:
        for row in page:
            item = entry(row)
            if item is not None:
                found.setdefault(item[0], []).append(item[1])
    for entries in found.values():
        entries.sort()  # one format per read, so (CreatedDate, Id) sorts as text
    return found


class HistoryReader:
    def __init__(self, pager: QueryPager, bulk: BulkReader, bulk_above_records: int) -> None:
        self.pager = pager
        self.bulk = bulk
        self.bulk_above_records = bulk_above_records

    def whole(self, sobject: str, fields: tuple[str, ...], filters: list[str | None],
              records: int) -> Iterator[Iterable[Mapping[str, Any]]]:
        if records > self.bulk_above_records:
            yield from self.bulk.rows(sobject, fields, filters)
        else:
            yield from self.pager.pages(build_query(sobject, fields, filters),
                                        include_deleted=False)

    def stage_index(self, records: int, until: str) -> HistoryIndex:
        return HistoryIndex.of(
            self.whole(STAGES, STAGE_FIELDS, [f"CreatedDate <= {until}"], records), stage_entry)

    def owner_index(self, records: int, until: str) -> HistoryIndex:
        return HistoryIndex.of(self.whole(OWNERS, OWNER_FIELDS,
                                          [OWNER_FILTER, f"CreatedDate <= {until}"], records),
                               owner_entry)

    def stages_of(self, ids: Sequence[str]) -> History:
        return collect(self.lookup(STAGES, STAGE_FIELDS, None, ids), stage_entry)

    def owners_of(self, ids: Sequence[str]) -> History:
        return collect(self.lookup(OWNERS, OWNER_FIELDS, OWNER_FILTER, ids), owner_entry)

    def lookup(self, sobject: str, fields: tuple[str, ...], condition: str | None,
               ids: Sequence[str]) -> Iterator[Iterable[Mapping[str, Any]]]:
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            soql = build_query(sobject, fields, [
                condition, f"OpportunityId IN ({', '.join(quote(i) for i in chunk)})"],
                order="OpportunityId, CreatedDate, Id")
            yield from self.pager.pages(soql, include_deleted=False)

    def for_page(self, known: Histories, ids: Sequence[str], closed: Sequence[str]
                 ) -> tuple[History, History]:
        """(stage entries, owner entries) of these opportunities, from the indexes or looked up."""
        stages = known.stages.entries(ids) if known.stages is not None else self.stages_of(ids)
        if not known.tracking or not closed:
            owners: History = {}
        elif known.owners is not None:
            owners = known.owners.entries(closed)
        else:
            owners = self.owners_of(closed)
        return stages, owners
