"""Reading Salesforce streams: which fields each object needs, REST or Bulk, rows to pages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.salesforce import mappers
from connectors.salesforce.bulk import JOB, BulkReader
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.history import OWNERS, STAGES, Histories, HistoryReader
from connectors.salesforce.paging import (
    QueryPager,
    Rows,
    Scope,
    build_query,
    fits_in_query_uri,
    keyset_filter,
    soql_instant,
    walk_modified,
)
from kpisync.connector import Deleted, Merged, Page
from kpisync.cursor import Cursor
from kpisync.mapping import map_each
from kpisync.store.models import Row

log = logging.getLogger(__name__)
SYSTEM = ("Id", "IsDeleted", "CreatedDate", "SystemModstamp")
BASE_FIELDS: dict[str, tuple[str, ...]] = {
    "User": ("Name", "Email", "IsActive", "UserRoleId", "ManagerId"),
    "OpportunityStage": (
        "MasterLabel",
        "ApiName",
        "IsActive",
        "IsClosed",
        "IsWon",
        "DefaultProbability",
        "SortOrder",
    ),
    "Account": (
        "MasterRecordId",
        "Name",
        "Type",
        "Industry",
        "BillingCountry",
        "BillingState",
        "BillingCity",
        "OwnerId",
        "ParentId",
    ),
    "Contact": (
        "MasterRecordId",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "Title",
        "AccountId",
        "OwnerId",
        "LeadSource",
    ),
    "Lead": (
        "MasterRecordId",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "Company",
        "Status",
        "LeadSource",
        "OwnerId",
        "IsConverted",
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
    ),
    "Opportunity": (
        "Name",
        "AccountId",
        "ContactId",
        "OwnerId",
        "StageName",
        "Amount",
        "CurrencyIsoCode",
        "Probability",
        "CloseDate",
        "Type",
        "LeadSource",
        "IsClosed",
        "IsWon",
    ),
    "OpportunityLineItem": ("OpportunityId", "ProductCode", "Name", "Quantity", "UnitPrice"),
    "Task": (
        "Subject",
        "Status",
        "TaskSubtype",
        "Type",
        "CallType",
        "CallDurationInSeconds",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
        "CompletedDateTime",
    ),
    "Event": (
        "Subject",
        "StartDateTime",
        "EndDateTime",
        "ActivityDateTime",
        "DurationInMinutes",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
    ),
}
ENTITIES: dict[str, tuple[str, ...]] = {
    "User": ("user",),
    "OpportunityStage": ("pipeline_stage",),
    "Account": ("account",),
    "Contact": ("contact",),
    "Lead": ("lead",),
    "Opportunity": ("deal", "deal_stage_change"),
    "OpportunityLineItem": ("line_item",),
    "Task": ("activity",),
    "Event": ("activity",),
}


@dataclass(frozen=True)
class ReadOptions:
    lag: timedelta
    batch_size: int
    bulk_above_records: int
    bulk_page_records: int
    bulk_poll_seconds: float


def record_id(record: Mapping[str, Any]) -> object:
    return record.get("Id")


class StreamReader:
    """Turns one sObject into pages of canonical rows."""

    def __init__(
        self,
        client: SalesforceClient,
        context: mappers.MappingContext,
        fields: Mapping[str, tuple[str, ...]],
        kinds: Mapping[str, Mapping[str, str]],
        options: ReadOptions,
        survey_object: str,
        tracking: bool = False,
    ) -> None:
        self.client = client
        self.context = context
        self.fields = fields  # sObject -> the fields to select
        self.kinds = kinds  # sObject -> field -> describe type
        self.options = options
        self.survey_object = survey_object
        self.pager = QueryPager(client, options.batch_size)
        self.bulk = BulkReader(
            client,
            options.bulk_page_records,
            options.bulk_poll_seconds,
            page_rows=options.batch_size,
        )
        self.tracking = tracking  # OpportunityFieldHistory exists (field-history tracking on)
        self.history = HistoryReader(self.pager, self.bulk, options.bulk_above_records)
        self.known = Histories(tracking=tracking)
        self.said_wide: set[str] = set()

    def entity_of(self, sobject: str) -> str:
        return "survey_response" if sobject == self.survey_object else ENTITIES[sobject][0]

    def read(
        self, sobject: str, cursor: Cursor, signpost: datetime, record_count: Callable[[str], int]
    ) -> Iterator[Page]:
        scope = Scope(sobject, self.fields[sobject], self.options.batch_size)
        until = signpost - self.options.lag
        large = cursor.value is None and record_count(sobject) > self.options.bulk_above_records
        bulk = cursor.get(JOB) is not None or self.too_wide(scope) or large
        if cursor.value is None:
            record_count(sobject)  # the record counts are setup, read once for every object
        if sobject == "Opportunity":
            self.known = self.histories(cursor, soql_instant(until), record_count)
        if bulk:
            batches = self.bulk.read(scope, self.kinds[sobject], cursor, soql_instant(until))
        else:
            batches = walk_modified(self.pager, scope, cursor, until)
        try:
            for rows, last in batches:
                yield self.page(sobject, rows, last)
        finally:
            self.known.close()  # the history indexes' files (none outside Opportunity)
            self.known = Histories(tracking=self.tracking)

    def page(self, sobject: str, rows: Rows, cursor: Cursor) -> Page:
        entity = self.entity_of(sobject)
        live = [r for r in rows if not mappers.flag(r.get("IsDeleted"))]
        gone = [mappers.tombstone(entity, r) for r in rows if mappers.flag(r.get("IsDeleted"))]
        records = self.map_rows(sobject, live)
        return Page(
            stream=sobject,
            records=records,
            deleted=[g for g in gone if isinstance(g, Deleted)],
            merged=[g for g in gone if isinstance(g, Merged)],
            cursor=cursor,
        )

    def map_rows(self, sobject: str, rows: Rows) -> list[Row]:
        context = self.context
        if sobject == "Opportunity":
            return self.map_opportunities(rows)
        if sobject == self.survey_object:
            answers = map_each(
                rows, lambda r: mappers.map_survey(r, context.survey), sobject, record_id
            )
            return [row for row in answers if row is not None]
        single: dict[str, Callable[[Mapping[str, Any]], Row]] = {
            "Account": lambda r: mappers.map_account(r, context),
            "Contact": lambda r: mappers.map_contact(r, context),
            "Lead": lambda r: mappers.map_lead(r, context),
            "OpportunityLineItem": mappers.map_line_item,
            "Task": mappers.map_task,
            "Event": mappers.map_event,
        }
        if sobject not in single:
            raise ValueError(f"no mapper for {sobject}")
        return map_each(rows, single[sobject], sobject, record_id)

    def map_opportunities(self, rows: Rows) -> list[Row]:
        ids = [str(r["Id"]) for r in rows]
        closed = [rid for rid, r in zip(ids, rows, strict=True) if self.closed(r)]
        stages, owners = self.history.for_page(self.known, ids, closed)
        mapped = map_each(
            rows,
            lambda r: mappers.map_opportunity(
                r, self.context, stages.get(str(r["Id"]), ()), owners.get(str(r["Id"]), ())
            ),
            "Opportunity",
            record_id,
        )
        return [row for deal_rows in mapped for row in deal_rows]

    def closed(self, record: Mapping[str, Any]) -> bool:
        info = self.context.stages.get(str(record.get("StageName")))
        return info.is_closed if info else mappers.flag(record.get("IsClosed"))

    def too_wide(self, scope: Scope) -> bool:
        """Whether the object has too many fields for a REST query's URI; said once a run."""
        if fits_in_query_uri(scope):
            return False
        if scope.sobject not in self.said_wide:
            self.said_wide.add(scope.sobject)
            log.info(
                "%s: its %d fields make a REST query longer than Salesforce takes (16,384 "
                "bytes of URI); it is read through Bulk API 2.0 query jobs instead",
                scope.sobject,
                len(scope.fields),
            )
        return True

    def histories(
        self, cursor: Cursor, until: str, record_count: Callable[[str], int]
    ) -> Histories:
        """Whole-object history indexes on a first sync (through Bulk or REST pages, whichever the
        history object's size picks); an incremental indexes the history of the opportunities its
        walk reads, on its first page (connectors.salesforce.history)."""
        first = cursor.value is None
        known = Histories(tracking=self.tracking, changed=(keyset_filter(cursor) or "", until))
        if first:
            known.stages = self.history.stage_index(record_count(STAGES), until)
        if first and self.tracking:
            known.owners = self.history.owner_index(record_count(OWNERS), until)
        return known

    def read_users(self) -> Iterator[Page]:
        """Every user (Salesforce deactivates, never deletes); team from role, else manager's."""
        roles = {
            str(r["Id"]): str(r["Name"])
            for page in self.pager.pages("SELECT Id, Name FROM UserRole", include_deleted=False)
            for r in page
        }
        scope = Scope("User", self.fields["User"], self.options.batch_size)
        pages = (
            self.bulk.typed(scope, self.kinds["User"])
            if self.too_wide(scope)
            else self.pager.pages(build_query("User", scope.fields, []), include_deleted=False)
        )
        users = [r for page in pages for r in page]
        role_of = {str(u["Id"]): roles.get(str(u.get("UserRoleId"))) for u in users}
        manager_of = {str(u["Id"]): mappers.text(u, "ManagerId") for u in users}
        rows = []
        for user in users:
            uid = str(user["Id"])
            team = role_of.get(uid) or role_of.get(manager_of.get(uid) or "")
            rows.append(mappers.map_user(user, team, self.context))
        yield Page(stream="User", records=rows, cursor=None)

    def read_stages(self) -> list[dict[str, Any]]:
        return [
            r
            for page in self.pager.pages(
                build_query(
                    "OpportunityStage", self.fields["OpportunityStage"], [], order="SortOrder"
                ),
                include_deleted=False,
            )
            for r in page
        ]
