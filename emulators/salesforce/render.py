"""Wire shapes of the Salesforce emulator: record JSON, error arrays, query pages, Bulk 2.0 jobs.

Query cursors (`nextRecordsUrl`) and Bulk 2.0 query jobs keep the rows their query matched when it
ran, so later writes never reshuffle a walk in progress. Bulk results are CSV with every value
quoted, datetimes as `2024-01-01T00:00:00.000Z`, booleans `true`/`false`, nulls empty, paged by
`maxRecords` with the `Sforce-Locator` header (`null` on the last page).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from emulators.salesforce.schema import base62
from emulators.salesforce.store import Result
from emulators.server import Response, json_response

MAX_BATCH = 2000
MIN_BATCH = 200
OPEN_CURSORS = 50


def wire(value: Any) -> Any:
    """A Python field value as Salesforce's REST JSON carries it."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):  # a compound field: an address or a geolocation
        return {key: wire(part) for key, part in value.items()}
    return value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        stamp: datetime = value.astimezone(UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return str(value)


def record_json(sobject: str, row: dict[str, Any], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {
            "type": sobject,
            "url": f"/services/data/v{version}/sobjects/{sobject}/{row.get('Id')}",
        }
    }
    for name, value in row.items():
        out[name] = wire(value)
    return out


def errors(
    status: int,
    code: str,
    message: str,
    fields: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The REST API's error body: a JSON array of {message, errorCode[, fields]}."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return json_response(status, [item], headers)


@dataclass
class OpenQuery:
    result: Result
    version: str
    batch: int


class QueryCursors:
    """Open query locators: `01g...-<offset>` pages over a result kept at query time."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, OpenQuery] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def page(self, result: Result, version: str, batch: int) -> dict[str, Any]:
        batch = max(MIN_BATCH, min(MAX_BATCH, batch))
        if result.total <= batch:
            return self._body(result, version, 0, batch, None)
        locator = f"01g5g{base62(next(self._numbers), 10)}"
        with self._lock:
            self._open[locator] = OpenQuery(result, version, batch)
            while len(self._open) > OPEN_CURSORS:
                self._open.popitem(last=False)
        return self._body(result, version, 0, batch, locator)

    def more(self, token: str) -> dict[str, Any] | None:
        locator, _, offset = token.partition("-")
        with self._lock:
            opened = self._open.get(locator)
        if opened is None or not offset.isdigit():
            return None
        start = int(offset)
        body = self._body(opened.result, opened.version, start, opened.batch, locator)
        if body["done"]:
            with self._lock:
                self._open.pop(locator, None)
        return body

    @staticmethod
    def _body(
        result: Result, version: str, start: int, batch: int, locator: str | None
    ) -> dict[str, Any]:
        rows = result.rows[start : start + batch]
        body: dict[str, Any] = {
            "totalSize": result.total,
            "done": True,
            "records": [record_json(result.sobject, r, version) for r in rows],
        }
        if locator is not None and start + batch < len(result.rows):
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{start + batch}"
        return body


@dataclass
class BulkJob:
    id: str
    operation: str
    sobject: str
    query: str
    created: datetime
    result: Result
    polls: int = 0
    aborted: bool = False

    def info(self, version: str, state: str) -> dict[str, Any]:
        stamp = wire(self.created)
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": "0055g00000zZzZzAAK",
            "createdDate": stamp,
            "systemModstamp": stamp,
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.result.total if state == "JobComplete" else 0,
            "retries": 0,
            "totalProcessingTime": 0,
        }


class BulkJobs:
    def __init__(self, polls_until_complete: int = 1) -> None:
        self.polls_until_complete = polls_until_complete
        self.jobs: dict[str, BulkJob] = {}  # the org's jobs now (a deleted one is gone)
        self.created: dict[str, BulkJob] = {}  # every job ever created, for tests to count
        self._numbers = itertools.count(1)

    def create(self, operation: str, query: str, result: Result, now: datetime) -> BulkJob:
        job_id = f"7505g{base62(next(self._numbers), 10)}AAA"
        job = BulkJob(job_id, operation, result.sobject, query, now, result)
        self.jobs[job_id] = self.created[job_id] = job
        return job

    def state(self, job: BulkJob) -> str:
        """The job's state as a poll sees it (each poll brings completion nearer)."""
        job.polls += 1
        return self.current(job)

    def current(self, job: BulkJob) -> str:
        """The job's state without counting a poll."""
        if job.aborted:
            return "Aborted"
        return "JobComplete" if job.polls > self.polls_until_complete else "InProgress"

    @staticmethod
    def results(job: BulkJob, locator: str | None, max_records: int) -> Response:
        start = int(locator) if locator and locator.isdigit() else 0
        rows = job.result.rows[start : start + max_records]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(job.result.fields)
        for row in rows:
            writer.writerow([csv_value(row[name]) for name in job.result.fields])
        following = start + len(rows)
        headers = {
            "Content-Type": "text/csv",
            "Sforce-Locator": str(following) if following < job.result.total else "null",
            "Sforce-NumberOfRecords": str(len(rows)),
        }
        return Response(200, headers, buffer.getvalue().encode("utf-8"))


def json_body(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
        json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )
