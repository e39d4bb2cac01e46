"""Reading Vtiger modules: choosing sync or query per module, paging, mapping, id listings.

Per module, once (the choice is kept in the cursor's state, and made again on `--full`):
`sync` is tried with the configured syncType; an empty HTTP 500 (stock 8.2 on PHP 8) means
query. A sync that sees fewer records than `SELECT count(*)` over the same window (the owner-only
view of a non-admin user, or an install where syncType is not registered) is never used: the
module is read by query, which sees what the user may see, and a warning says why. A module whose
sync breaks later (an upgrade to 8.2) continues by query from the same cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.kit.paging import follow
from connectors.vtiger import mappers
from connectors.vtiger.client import SyncUnavailable, VtigerClient, VtigerFailure
from connectors.vtiger.deletecount import CREATED, settle, tally
from connectors.vtiger.querywalk import PAGE, EmptyRead, walk_query
from connectors.vtiger.syncwalk import Batch, walk_sync
from connectors.vtiger.values import latin_digits, module_prefix, stamp
from kpisync.connector import Deleted, Page
from kpisync.cursor import Cursor
from kpisync.errors import RejectedError, SchemaDriftError
from kpisync.mapping import map_each
from kpisync.store.models import Row, User

log = logging.getLogger(__name__)
MODE = "mode"
GROUP_PREFIX = 20  # webservice id prefix of Groups on a stock install
ENTITY = {
    "Accounts": "account",
    "Contacts": "contact",
    "Leads": "lead",
    "Potentials": "deal",
    "Calendar": "activity",
    "Events": "activity",
}


@dataclass(frozen=True)
class ReadOptions:
    read_mode: str  # auto | sync | query
    sync_type: str  # application | userandgroup | user
    batch_records: int
    survey_module: str | None = None  # the module holding NPS answers, if any


class ModuleReader:
    def __init__(
        self,
        client: VtigerClient,
        context: mappers.MappingContext,
        options: ReadOptions,
        labels: dict[str, dict[str, str]] | None = None,
        fields_moved: Callable[[str, list[dict[str, Any]] | None], None] | None = None,
    ) -> None:
        self.client = client
        self.context = context
        self.options = options
        self.labels = labels or {}  # module -> custom field name -> label
        self.fields_moved = fields_moved  # told each module's records before they are mapped
        self.owners: set[str] = set()  # assigned_user_id values of the records read this run
        self.notes: dict[str, str] = {}  # module -> why it is read by query
        self.deletes_unseen: set[str] = set()  # query-mode modules whose live count fell

    # --- calls ---------------------------------------------------------------------------------
    def sync(self, module: str, since: int) -> dict[str, Any]:
        params = {"elementType": module, "modifiedTime": str(since)}
        if self.options.sync_type != "user":
            params["syncType"] = self.options.sync_type
        return dict(self.client.call("sync", **params) or {})

    def query(self, text: str) -> list[dict[str, Any]]:
        return list(self.client.call("query", query=text) or [])

    def count(self, module: str, where: str = "") -> int:
        """`SELECT count(*)`: the records this user may see, optionally narrowed by `where`."""
        rows = self.query(f"SELECT count(*) FROM {module}{where};")
        return int(latin_digits(str(rows[0].get("count", "0")))) if rows else 0

    # --- mode ----------------------------------------------------------------------------------
    def choose_mode(self, module: str) -> tuple[str, dict[str, Any] | None]:
        """('sync', its first page) when sync serves this module fully, else ('query', None)."""
        if self.options.read_mode == "query":
            return "query", None
        try:
            first = self.sync(module, 1)
        except (SyncUnavailable, VtigerFailure) as error:
            if self.options.read_mode == "sync" or (
                isinstance(error, VtigerFailure) and error.code != "ACCESS_DENIED"
            ):
                raise
            self.notes[module] = error.message
            log.warning("%s: %s; reading %s by query", self.client.host, error.message, module)
            return "query", None
        seen, visible = self.coverage(module, first)
        if seen < visible:
            why = (
                f"sync sees {seen} of the {visible} {module} records this user can query "
                f"(syncType {self.options.sync_type!r}: owner-only view?)"
            )
            if self.options.read_mode == "sync":
                raise RejectedError(why, hint="use an admin user with sync_type = 'application'")
            self.notes[module] = why
            log.warning("%s; reading %s by query instead", why, module)
            return "query", None
        return "sync", first

    def coverage(self, module: str, first: dict[str, Any]) -> tuple[int, int]:
        """(records sync returned, records query counts) over the first sync page's window."""
        seen = len(first.get("updated") or [])
        if not first.get("more"):  # sync saw everything it will ever show: compare with all
            return seen, self.count(module)
        last = int(first.get("lastModifiedTime") or 1)
        return seen, self.count(
            module, f" WHERE modifiedtime <= '{stamp(last, self.context.zone)}'"
        )

    # --- reading -------------------------------------------------------------------------------
    def read(self, module: str, stream: str, cursor: Cursor, until: datetime) -> Iterator[Page]:
        """Pages of `module`'s changes after `cursor`, up to `until` (whole seconds)."""
        bound = int(until.timestamp())
        first = None
        if cursor.get(MODE) is None or cursor.value is None:
            mode, first = self.choose_mode(module)
            cursor = cursor.with_state(**{MODE: mode})
        pending: list[dict[str, Any]] = []
        deleted: list[str] = []
        last = cursor
        zone = self.context.zone
        for batch in self._batches(module, cursor, bound, first):
            pending.extend(batch.records)
            deleted.extend(batch.deleted)
            last = tally(
                batch.cursor.with_state(**{CREATED: last.get(CREATED)}), batch.records, zone
            )
            if len(pending) + len(deleted) >= self.options.batch_records:
                yield self._page(module, stream, pending, deleted, last)
                pending, deleted = [], []
        if last.get(MODE) == "query":  # no deleted ids by query: count what is still there
            last, left = settle(self.count, module, last, bound, zone)
            if left:
                self.deletes_unseen.add(module)
        if pending or deleted or last != cursor:
            yield self._page(module, stream, pending, deleted, last)

    def _batches(
        self, module: str, cursor: Cursor, bound: int, first: dict[str, Any] | None
    ) -> Iterator[Batch]:
        zone = self.context.zone
        if cursor.get(MODE) == "sync":
            try:
                for batch in walk_sync(
                    lambda since: self.sync(module, since), cursor, bound, zone, first
                ):
                    cursor = batch.cursor
                    yield batch
                return
            except SyncUnavailable as error:
                if self.options.read_mode == "sync":
                    raise
                log.warning("%s; continuing %s by query", error.message, module)
                cursor = cursor.with_state(**{MODE: "query"})
        try:
            yield from walk_query(self.query, module, cursor, bound, zone, self.count)
        except EmptyRead as empty:
            raise self.emptied(empty) from None

    def emptied(self, empty: EmptyRead) -> SchemaDriftError:
        """Why Vtiger answered an empty page over rows its count sees: the custom fields whose
        own read comes back empty have no database column (one query each, only here)."""
        module = empty.module
        if self.fields_moved is not None:  # kept describes may not know the field yet
            self.fields_moved(module, None)
        broken = [
            name
            for name in self.labels.get(module, {})
            if not self.query(f"SELECT {name} FROM {module} LIMIT 0,1;")
        ]
        named = ", ".join(f"{n} ('{self.labels[module][n]}')" for n in broken)
        cause = (
            f"the custom field {named} has no database column (creating it failed), which "
            f"empties every read of {module}"
            if broken
            else "a custom field without its database column (a failed ALTER TABLE: too long a "
            "Decimal, or 'Row size too large') is the usual cause"
        )
        return SchemaDriftError(
            f"Vtiger answered an empty page of {module} although its count(*) says "
            f"{empty.expected} record(s) changed since {empty.since}: {cause}",
            hint=f"delete that field in Vtiger (Settings > Module Layouts & Fields > {module}), "
            f"add it again if needed (a Decimal of at most 62 digits), then sync again; "
            f"nothing of {module} was read meanwhile",
        )

    def _page(
        self,
        module: str,
        stream: str,
        records: list[dict[str, Any]],
        deleted: list[str],
        cursor: Cursor,
    ) -> Page:
        rows = self.map_records(module, records)
        entity = "survey_response" if module == self.options.survey_module else ENTITY[module]
        gone = [Deleted(entity, ws_id) for ws_id in dict.fromkeys(deleted)]
        return Page(stream=stream, records=rows, deleted=gone, cursor=cursor)

    def map_records(self, module: str, records: list[dict[str, Any]]) -> list[Row]:
        if self.fields_moved is not None:
            self.fields_moved(module, records)
        context = self.context
        self.owners.update(str(r["assigned_user_id"]) for r in records if r.get("assigned_user_id"))
        if module == "Potentials":

            def mapper(r: dict[str, Any]) -> list[Row]:
                return list(mappers.map_potential(r, context))
        elif module in ("Calendar", "Events"):

            def mapper(r: dict[str, Any]) -> list[Row]:
                return [mappers.map_activity(r, module, context)]
        elif module == self.options.survey_module:

            def mapper(r: dict[str, Any]) -> list[Row]:
                return [row for row in (mappers.map_survey(r, context),) if row]
        else:
            one = {
                "Accounts": mappers.map_account,
                "Contacts": mappers.map_contact,
                "Leads": mappers.map_lead,
            }[module]

            def mapper(r: dict[str, Any]) -> list[Row]:
                return [one(r, context)]

        mapped = map_each(records, mapper, module, lambda record: record.get("id"))
        return [row for rows in mapped for row in rows]

    # --- full listings -------------------------------------------------------------------------
    def users(self) -> Iterator[list[dict[str, Any]]]:
        def fetch(offset: int | None) -> tuple[int, list[dict[str, Any]]]:
            start = offset or 0
            return start, self.query(f"SELECT * FROM Users ORDER BY id LIMIT {start},{PAGE};")

        def following(page: tuple[int, list[dict[str, Any]]]) -> int | None:
            start, rows = page
            return start + len(rows) if len(rows) == PAGE else None

        for _start, rows in follow(fetch, following, crm="Vtiger", stream="users"):
            yield rows

    def owners_seen(self) -> list[Row]:
        """Where the Users module is hidden (non-admins): the owners of the records read, users
        by id alone and groups (which non-admins may list) by name."""
        groups: dict[str, str] = {}
        if any(o.startswith(f"{GROUP_PREFIX}x") for o in self.owners):
            groups = {
                str(g["id"]): str(g.get("groupname") or "")
                for g in self.query("SELECT id, groupname FROM Groups LIMIT 0,100;")
            }
        return [
            User.row(external_id=owner, name=groups.get(owner) or None, raw={})
            for owner in sorted(self.owners)
        ]

    def list_ids(self, module: str) -> Iterator[list[str]]:
        """Every live id in id order; a row deleted meanwhile shifts offsets, so each page
        overlaps the last by one row and steps back when that row is no longer where it was."""
        offset, last = 0, -1
        while True:
            start = max(0, offset - 1) if last >= 0 else 0
            rows = self.query(f"SELECT id FROM {module} ORDER BY id LIMIT {start},{PAGE};")
            numbers = [(_crmid(str(r["id"])), str(r["id"])) for r in rows]
            if start > 0 and (not numbers or numbers[0][0] > last):
                offset = max(0, start - PAGE)
                continue
            yield [ws for n, ws in numbers if n > last]
            if numbers:
                last = max(last, numbers[-1][0])
            offset = start + len(rows)
            if len(rows) < PAGE:
                return


def _crmid(ws_id: str) -> int:
    return int(ws_id.partition("x")[2]) if module_prefix(ws_id) is not None else -1
