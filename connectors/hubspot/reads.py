"""Reading HubSpot streams: search walks, the links each batch needs, archived and merged records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.hubspot import mappers, stages
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.search import SearchScope, next_after, walk_modified
from connectors.kit.paging import follow
from kpisync.connector import Deleted, Merged, Page
from kpisync.cursor import Cursor
from kpisync.mapping import map_each
from kpisync.store.models import Row

BATCH_READ_MAX = 100
ASSOCIATION_READ_MAX = 1000
LIST_MAX = 100

BASE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": (
        "name",
        "industry",
        "type",
        "country",
        "state",
        "city",
        "hubspot_owner_id",
        "hs_parent_company_id",
        "createdate",
        "hs_lastmodifieddate",
        "hs_merged_object_ids",
    ),
    "contacts": (
        "firstname",
        "lastname",
        "email",
        "phone",
        "jobtitle",
        "hubspot_owner_id",
        "associatedcompanyid",
        "lifecyclestage",
        "hs_lead_status",
        "hs_analytics_source",
        "hs_lifecyclestage_lead_date",
        *mappers.CONVERTED_DATES,
        "company",
        "createdate",
        "lastmodifieddate",
        "hs_merged_object_ids",
    ),
    "deals": (
        "dealname",
        "amount",
        "deal_currency_code",
        "dealstage",
        "pipeline",
        "closedate",
        "createdate",
        "hs_lastmodifieddate",
        "hubspot_owner_id",
        "dealtype",
        "closed_lost_reason",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_deal_stage_probability",
        "hs_analytics_source",
        "hs_merged_object_ids",
    ),
    "calls": (
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_call_title",
        "hs_call_direction",
        "hs_call_duration",
        "hs_call_status",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    "emails": (
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_email_subject",
        "hs_email_direction",
        "hs_email_status",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    "meetings": (
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_meeting_title",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "hs_meeting_outcome",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    "tasks": (
        "hs_timestamp",
        "hubspot_owner_id",
        "hs_task_subject",
        "hs_task_status",
        "hs_task_type",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    "feedback_submissions": (
        "hs_survey_type",
        "hs_response_value",
        "hs_submission_timestamp",
        "hs_contact_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
    "line_items": (
        "name",
        "hs_sku",
        "quantity",
        "price",
        "hs_product_id",
        "hs_createdate",
        "hs_lastmodifieddate",
    ),
}
DEFAULT_MODIFIED = "hs_lastmodifieddate"
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}
DEAL_ROLES = ("deal_type", "lead_source", "loss_reason", "competitor", "margin")
ENTITIES = {
    "companies": ("account",),
    "contacts": ("contact", "lead"),
    "deals": ("deal",),
    "calls": ("activity",),
    "emails": ("activity",),
    "meetings": ("activity",),
    "tasks": ("activity",),
    "feedback_submissions": ("survey_response",),
    "line_items": ("line_item",),
}
MERGEABLE = ("companies", "contacts", "deals")


ARCHIVED = "archived_listed_at"  # cursor state: when the stream's archived records were listed


@dataclass(frozen=True)
class ReadOptions:
    lag: timedelta
    batch_records: int
    archived_every: timedelta = timedelta(0)  # 0: list archived records every run


def record_id(record: dict[str, Any]) -> object:
    return record.get("id")


class StreamReader:
    """Turns one HubSpot object type into pages of canonical rows."""

    def __init__(
        self, client: HubSpotClient, context: mappers.MappingContext, options: ReadOptions
    ) -> None:
        self.client = client
        self.context = context
        self.options = options

    def search(self, object_type: str) -> Any:
        endpoint = f"POST /crm/v3/objects/{object_type}/search"
        return lambda body: self.client.call(
            endpoint, self.client.search.do_search_with_http_info, object_type, body
        )

    def read(self, object_type: str, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        custom = tuple(sorted(self.context.custom.get(object_type, frozenset())))
        extra: tuple[str, ...] = ()
        if object_type == "deals":
            extra = tuple(p for role, p in self.context.roles.items() if role in DEAL_ROLES)
            extra += stages.deal_properties(self.context.stages)
        scope = SearchScope(
            object_type,
            MODIFIED_PROPERTY.get(object_type, DEFAULT_MODIFIED),
            tuple(dict.fromkeys(BASE_PROPERTIES[object_type] + custom + extra)),
        )
        pending: list[dict[str, Any]] = []
        last = cursor
        for records, last in walk_modified(
            self.search(object_type), scope, cursor, signpost - self.options.lag
        ):
            pending.extend(records)
            # Flush before the next search page could push the batch past batch_records: a
            # batch of at most 1,000 records costs one association read per target type.
            if len(pending) + scope.page_size > self.options.batch_records:
                yield self._page(object_type, pending, last)
                pending = []
        listed = cursor.get(ARCHIVED)
        due = cursor.value is not None and (
            listed is None
            or signpost - datetime.fromisoformat(listed) >= self.options.archived_every
        )
        if due:
            yield from self.read_archived(object_type)
        # A first sync has nothing to delete: it stamps the listing as done.
        stamped = last.with_state(
            **{ARCHIVED: signpost.isoformat() if due or listed is None else listed}
        )
        if pending or stamped != cursor:
            yield self._page(object_type, pending, stamped)

    def _page(self, object_type: str, records: list[dict[str, Any]], cursor: Cursor) -> Page:
        rows = self.map_records(object_type, records)
        merged = merges_of(object_type, records) if object_type in MERGEABLE else []
        return Page(stream=object_type, records=rows, merged=merged, cursor=cursor)

    def map_records(self, object_type: str, records: list[dict[str, Any]]) -> list[Row]:
        if not records:
            return []
        ids = [str(r["id"]) for r in records]
        rows: list[Row] = []
        if object_type == "companies":
            rows = map_each(
                records, lambda r: mappers.map_company(r, self.context), object_type, record_id
            )
        elif object_type == "contacts":
            mapped = map_each(
                records, lambda r: mappers.map_contact(r, self.context), object_type, record_id
            )
            rows = [row for contact_rows in mapped for row in contact_rows]
        elif object_type == "deals":
            rows = self._map_deals(records, ids)
        elif object_type in mappers.ENGAGEMENT_KINDS:
            links = {
                to: self.associations(object_type, to, ids)
                for to in ("contacts", "deals", "companies")
            }

            def engagement(r: dict[str, Any]) -> Row:
                i = str(r["id"])
                return mappers.map_engagement(
                    object_type,
                    r,
                    mappers.ActivityLinks(
                        contact_ids=links["contacts"].get(i, ()),
                        deal_ids=links["deals"].get(i, ()),
                        company_ids=links["companies"].get(i, ()),
                    ),
                )

            rows = map_each(records, engagement, object_type, record_id)
        elif object_type == "line_items":
            deals = self.associations("line_items", "deals", ids)
            rows = map_each(
                records,
                lambda r: mappers.map_line_item(r, deals.get(str(r["id"]), ())),
                object_type,
                record_id,
            )
        elif object_type == "feedback_submissions":
            contacts = [
                c
                for c in (mappers.text(r.get("properties") or {}, "hs_contact_id") for r in records)
                if c
            ]
            companies = self.associations("contacts", "companies", sorted(set(contacts)))

            def feedback(r: dict[str, Any]) -> Row | None:
                contact = mappers.text(r.get("properties") or {}, "hs_contact_id")
                return mappers.map_feedback(r, mappers.first_id(companies.get(contact or "", ())))

            answers = map_each(records, feedback, object_type, record_id)
            rows = [row for row in answers if row is not None]
        return rows

    def _map_deals(self, records: list[dict[str, Any]], ids: list[str]) -> list[Row]:
        """Deals with their links; property history is read only where search cannot tell it."""
        paths: dict[str, stages.Path | None] = {}
        unsure: list[str] = []
        for record, rid in zip(records, ids, strict=True):
            props = record.get("properties") or {}
            path = paths[rid] = stages.path_from_calculated(props, self.context.stages)
            closed = mappers.deal_closed(props, self.context)
            if path is None or stages.needs_owner_history(props, closed, path):
                unsure.append(rid)
        history = self.property_history("deals", unsure, ("dealstage", "hubspot_owner_id"))
        companies = self.associations("deals", "companies", ids)
        contacts = self.associations("deals", "contacts", ids)
        read = set(unsure)

        def deal(record: dict[str, Any]) -> list[Row]:
            rid = str(record["id"])
            past = history.get(rid, {})
            links = mappers.DealLinks(
                company_ids=companies.get(rid, ()),
                contact_ids=contacts.get(rid, ()),
                stage_history=mappers.history_of(past, "dealstage")
                if rid in read
                else paths[rid] or (),
                owner_history=mappers.history_of(past, "hubspot_owner_id"),
            )
            return list(mappers.map_deal(record, links, self.context))

        return [
            row for deal_rows in map_each(records, deal, "deals", record_id) for row in deal_rows
        ]

    def property_history(
        self, object_type: str, ids: Sequence[str], props: tuple[str, ...]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        endpoint = f"POST /crm/v3/objects/{object_type}/batch/read"
        for start in range(0, len(ids), BATCH_READ_MAX):
            body = {
                "inputs": [{"id": i} for i in ids[start : start + BATCH_READ_MAX]],
                "properties": [],
                "propertiesWithHistory": list(props),
            }
            response = self.client.call(
                endpoint, self.client.batch.read_with_http_info, object_type, body
            )
            for result in response.get("results", []):
                found[str(result["id"])] = result
        return found

    def associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        found: dict[str, tuple[str, ...]] = {}
        endpoint = f"POST /crm/v4/associations/{from_type}/{to_type}/batch/read"
        for start in range(0, len(ids), ASSOCIATION_READ_MAX):
            body = {"inputs": [{"id": i} for i in ids[start : start + ASSOCIATION_READ_MAX]]}
            response = self.client.call(
                endpoint, self.client.associations.get_page_with_http_info, from_type, to_type, body
            )
            for result in response.get("results", []):
                source_id = str((result.get("from") or {}).get("id"))
                targets = sorted(result.get("to", []), key=_primary_first)
                found[source_id] = tuple(str(t["toObjectId"]) for t in targets)
        return found

    def read_archived(self, object_type: str) -> Iterator[Page]:
        """Archived records become deletes; HubSpot cannot filter them by time, so list them all."""
        entities = ENTITIES[object_type]
        for page in self.list_pages(object_type, archived=True):
            deleted = [
                Deleted(entity, str(r["id"]), mappers.instant(r.get("archivedAt")))
                for r in page
                for entity in entities
            ]
            if deleted:
                yield Page(stream=object_type, records=(), deleted=deleted, cursor=None)

    def list_pages(self, object_type: str, *, archived: bool) -> Iterator[list[dict[str, Any]]]:
        endpoint = f"GET /crm/v3/objects/{object_type}"

        def fetch(after: str | None) -> Any:  # the parsed answer
            return self.client.call(
                endpoint,
                self.client.basic.get_page_with_http_info,
                object_type,
                limit=LIST_MAX,
                archived=archived,
                properties=["hs_object_id"],
                **({"after": after} if after else {}),
            )

        stream = f"{object_type} (archived)" if archived else object_type
        for response in follow(fetch, next_after, crm="HubSpot", stream=stream):
            yield response.get("results", [])


def _primary_first(target: dict[str, Any]) -> tuple[int, str]:
    labels = target.get("associationTypes") or []
    primary = any((t.get("label") or "").lower() == "primary" for t in labels)
    return (0 if primary else 1, str(target.get("toObjectId")))


def merges_of(object_type: str, records: list[dict[str, Any]]) -> list[Merged]:
    merged: list[Merged] = []
    for record in records:
        losers = mappers.text(record.get("properties") or {}, "hs_merged_object_ids")
        for loser in (losers or "").split(";"):
            if loser.strip():
                merged.extend(
                    Merged(entity, loser.strip(), str(record["id"]))
                    for entity in ENTITIES[object_type]
                )
    return merged
