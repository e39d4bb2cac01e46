"""The Salesforce emulator's mutable truth: SOQL execution, query cursors, record writes.

Deleting moves a record to the recycle bin (IsDeleted = true, SystemModstamp moved), where
queryAll still sees it; `purge` empties it from the bin (a hard delete). Opportunity writes keep
IsClosed/IsWon/Probability/ForecastCategoryName in step with the stage, as the stage picklist's
settings do, and add an OpportunityHistory row when stage, amount, close date or probability
change. With field-history tracking on (the OpportunityFieldHistory object exists), creating an
opportunity writes its 'created' row and changing its owner writes the two Owner rows.
Merging deletes the losers with MasterRecordId set to the survivor.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from emulators.salesforce.records import (
    Record,
    Truth,
    admin_id,
    field_history,
    forecast_category,
    owner_change_rows,
)
from emulators.salesforce.schema import FIELD_HISTORY, Schema, make_id, object_of
from emulators.salesforce.soql import Query, parse, parse_datetime, sort_key

HISTORY_FIELDS = ("StageName", "Amount", "CloseDate", "Probability")
FIRST_API_NUMBER = 50_000_000  # records created through the API get numbers from here
SYSTEM_FIELDS = {
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
}


class RecordError(Exception):
    """One record's failure, in the shape of a sObject Collections per-record error."""

    def __init__(
        self,
        status_code: str,
        message: str,
        fields: list[str] | None = None,
        http_status: int = 400,
    ) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message
        self.fields = fields or []
        self.http_status = http_status

    def body(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}


@dataclass
class Result:
    """A query's rows (projected at query time, so later writes do not change them)."""

    sobject: str
    fields: tuple[str, ...]
    rows: list[Record]
    total: int


class SalesforceStore:
    def __init__(self, truth: Truth, schema: Schema, clock: Callable[[], datetime]) -> None:
        self.truth = truth
        self.schema = schema
        self.clock = clock
        self.lock = threading.RLock()
        self._numbers = itertools.count(FIRST_API_NUMBER)
        self.stage_meta = {r["ApiName"]: r for r in truth["OpportunityStage"].values()}

    # --- queries ---------------------------------------------------------------------------------
    def run_query(self, soql: str, include_deleted: bool) -> Result:
        query = parse(soql, self.schema, self.live_records)
        records = self.truth[query.sobject].values()
        matched = [
            r
            for r in records
            if (include_deleted or not r["IsDeleted"]) and (query.where is None or query.where(r))
        ]
        if query.count_only:
            return Result(query.sobject, (), [], len(matched))
        if query.order:
            matched.sort(key=sort_key(query.order, self.schema.kinds(query.sobject)))
        if query.limit is not None:
            matched = matched[: query.limit]
        fields = query.fields
        parts = self.schema.compound_parts(query.sobject)
        rows = [
            {
                name: compound_value(record, parts[name]) if name in parts else record[name]
                for name in fields
            }
            for record in matched
        ]
        return Result(query.sobject, fields, rows, len(rows))

    def parsed(self, soql: str) -> Query:
        return parse(soql, self.schema, self.live_records)

    def live_records(self, sobject: str) -> list[Record]:
        """What a semi-join's sub-select reads: the object's records outside the recycle bin."""
        return [r for r in self.truth[sobject].values() if not r["IsDeleted"]]

    # --- reads -----------------------------------------------------------------------------------
    def get(self, sobject: str, rid: str) -> Record:
        record = self.truth[sobject].get(rid)
        if record is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        if record["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", http_status=404)
        return record

    def find(self, rid: str) -> tuple[str, Record]:
        sobject = object_of(rid)
        if sobject is None or sobject not in self.truth:
            raise RecordError("MALFORMED_ID", f"malformed id {rid}", ["Id"])
        return sobject, self.get(sobject, rid)

    # --- writes ----------------------------------------------------------------------------------
    def coerce(self, sobject: str, values: dict[str, Any], creating: bool) -> dict[str, Any]:
        """Validated, typed field values; RecordError on unknown, read-only or mistyped ones."""
        obj = self.schema.objects[sobject]
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name in ("attributes", "id", "Id"):
                continue
            real = obj.lower.get(name.lower())
            if real is None:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name]
                )
            definition = obj.fields[real]
            if real in SYSTEM_FIELDS or (not definition.updateable and not creating):
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update "
                    f"fields: {real}. Please check the security settings of this "
                    "field and verify that it is read/write for your profile or "
                    "permission set.",
                    [real],
                )
            clean[real] = typed_value(definition.type, real, value)
        return clean

    def update(
        self, sobject: str, rid: str, values: dict[str, Any], *, system: bool = False
    ) -> Record:
        record = self.get(sobject, rid)
        clean = values if system else self.coerce(sobject, values, creating=False)
        now = self.clock()
        before = {name: record.get(name) for name in (*HISTORY_FIELDS, "OwnerId")}
        record.update(clean)
        if sobject == "Opportunity":
            self._follow_stage(record, "StageName" in clean)
        self._touch(record, now)
        if sobject == "Opportunity" and any(record.get(n) != before[n] for n in HISTORY_FIELDS):
            self._history(record, now)
        if (
            sobject == "Opportunity"
            and record.get("OwnerId") != before["OwnerId"]
            and FIELD_HISTORY in self.truth
        ):
            self._track(
                owner_change_rows(
                    self.schema,
                    self._numbers,
                    rid,
                    now,
                    before["OwnerId"],
                    record.get("OwnerId"),
                    self._user_names(),
                )
            )
        return record

    def create(self, sobject: str, values: dict[str, Any], *, system: bool = False) -> Record:
        clean = values if system else self.coerce(sobject, values, creating=True)
        now = self.clock()
        rid = make_id(sobject, next(self._numbers))
        record: Record = {name: None for name in self.schema.objects[sobject].fields}
        record.update(clean)
        record.update(Id=rid, IsDeleted=False, CreatedDate=now, CreatedById=admin_id())
        if sobject in ("Contact", "Lead", "User"):
            record["Name"] = " ".join(
                p for p in (record.get("FirstName"), record.get("LastName")) if p
            )
        if sobject == "Opportunity":
            self._follow_stage(record, True)
        self._touch(record, now)
        self.truth[sobject][rid] = record
        if sobject == "Opportunity":
            self._history(record, now)
        if sobject == "Opportunity" and FIELD_HISTORY in self.truth:
            self._track(
                [
                    field_history(
                        self.schema,
                        next(self._numbers),
                        rid,
                        now,
                        admin_id(),
                        ("created", None, None),
                    )
                ]
            )
        return record

    def delete(self, sobject: str, rid: str, master: str | None = None) -> None:
        record = self.get(sobject, rid)
        record["IsDeleted"] = True
        if master is not None:
            record["MasterRecordId"] = master
        self._touch(record, self.clock())
        if sobject == "Opportunity":
            for child in ("OpportunityHistory", "OpportunityLineItem", FIELD_HISTORY):
                for row in self.truth.get(child, {}).values():
                    if row["OpportunityId"] == rid and not row["IsDeleted"]:
                        row["IsDeleted"] = True
                        if "SystemModstamp" in row:
                            row["SystemModstamp"] = record["SystemModstamp"]

    def purge(self, sobject: str, rid: str) -> None:
        if self.truth[sobject].pop(rid, None) is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)

    def merge(self, sobject: str, master: str, loser: str) -> None:
        """Merge `loser` into `master` (Account, Contact, Lead): references move, loser deleted."""
        self.get(sobject, master)
        self.get(sobject, loser)
        for other in self.truth.values():
            for record in other.values():
                for name, value in record.items():
                    if (
                        value == loser
                        and name not in ("Id", "MasterRecordId")
                        and not record["IsDeleted"]
                    ):
                        record[name] = master
                        self._touch(record, self.clock())
        self.delete(sobject, loser, master=master)

    def touch_all(self, sobject: str, at: datetime) -> None:
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # Salesforce keeps milliseconds
        for record in self.truth[sobject].values():
            record["SystemModstamp"] = at
            if "LastModifiedDate" in record:
                record["LastModifiedDate"] = at

    def _touch(self, record: Record, now: datetime) -> None:
        record["SystemModstamp"] = now
        if "LastModifiedDate" in record:
            record["LastModifiedDate"] = now
            record["LastModifiedById"] = admin_id()

    def _follow_stage(self, record: Record, stage_changed: bool) -> None:
        stage = self.stage_meta.get(record.get("StageName") or "")
        if stage is None:
            raise RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Stage: bad value for restricted picklist field: {record.get('StageName')}",
                ["StageName"],
            )
        record["IsClosed"], record["IsWon"] = stage["IsClosed"], stage["IsWon"]
        record["ForecastCategoryName"] = forecast_category(stage["IsClosed"], stage["IsWon"])
        if stage_changed:
            record["Probability"] = stage["DefaultProbability"]

    def _track(self, rows: list[Record]) -> None:
        """Field history rows (callers check that tracking is on: the object exists)."""
        for row in rows:
            self.truth[FIELD_HISTORY][row["Id"]] = row

    def _user_names(self) -> dict[str, str]:
        return {rid: str(u.get("Name")) for rid, u in self.truth["User"].items()}

    def _history(self, opportunity: Record, now: datetime) -> None:
        hid = make_id("OpportunityHistory", next(self._numbers))
        row: Record = {name: None for name in self.schema.objects["OpportunityHistory"].fields}
        row.update(
            Id=hid,
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=admin_id(),
            SystemModstamp=now,
            OpportunityId=opportunity["Id"],
            **{name: opportunity.get(name) for name in HISTORY_FIELDS},
        )
        self.truth["OpportunityHistory"][hid] = row


def compound_value(record: Record, parts: dict[str, str]) -> dict[str, Any] | None:
    """An address or a geolocation as REST returns it: its components in one object."""
    values = {key: record.get(component) for key, component in parts.items()}
    return values if any(v is not None for v in values.values()) else None


def typed_value(kind: str, name: str, value: Any) -> Any:
    """A JSON value as the field's Python type; RecordError when it cannot be one."""
    if value is None or value == "":
        return None
    try:
        if kind in ("double", "currency", "percent"):
            return Decimal(str(value))
        if kind == "int":
            return int(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError(value)
        if kind == "date":
            return date.fromisoformat(str(value)[:10])
        if kind == "datetime":
            return parse_datetime(str(value))
    except (ValueError, InvalidOperation, TypeError):
        raise RecordError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from value {value!r} for field {name}",
            [name],
        ) from None
    return str(value)
