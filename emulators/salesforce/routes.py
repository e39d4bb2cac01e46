"""The Salesforce emulator's endpoints; `register_routes(host)` adds them all to an emulator,
`RouteHost` is what they need from it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from emulators.salesforce.auth import OAuthError, Sessions
from emulators.salesforce.render import (
    MAX_BATCH,
    BulkJob,
    BulkJobs,
    QueryCursors,
    errors,
    json_body,
    record_json,
)
from emulators.salesforce.schema import SURVEY_OBJECT, Schema
from emulators.salesforce.store import RecordError, SalesforceStore, compound_value
from emulators.server import Handler, Knobs, Request, Response

DATA = r"/services/data/v(?P<version>\d+\.\d)"
SOBJECT = r"(?P<sobject>[A-Za-z0-9_]+)"
RID = r"(?P<id>[A-Za-z0-9]{15,18})"
COLLECTION_MAX = 200
COLLECTION_CHUNKS = 10


class RouteHost(Protocol):
    """What the endpoints need from the emulator serving them: its records and schema, query
    cursors, Bulk jobs, logins, clock, knobs, the API calls counted and its own URL."""

    @property
    def store(self) -> SalesforceStore: ...
    @property
    def schema(self) -> Schema: ...
    @property
    def cursors(self) -> QueryCursors: ...
    @property
    def bulk(self) -> BulkJobs: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def knobs(self) -> Knobs: ...
    @property
    def api_used(self) -> int: ...
    @property
    def base_url(self) -> str: ...
    def add_route(
        self, method: str, regex: str, handler: Handler, key: str | None = None
    ) -> None: ...


def register_routes(em: RouteHost) -> None:
    routes = Routes(em)
    em.add_route("POST", r"/services/Soap/u/(?P<version>\d+\.\d)/?", routes.soap_login)
    em.add_route("POST", r"/services/oauth2/token", routes.oauth_token)
    em.add_route("GET", f"{DATA}/limits/recordCount", routes.record_count)
    em.add_route("GET", f"{DATA}/limits/?", routes.limits)
    em.add_route("GET", f"{DATA}/query/?", routes.query)
    em.add_route("GET", f"{DATA}/queryAll/?", routes.query_all)
    em.add_route(
        "GET",
        f"{DATA}/(?:query|queryAll)/(?P<locator>01g[A-Za-z0-9]+-\\d+)",
        routes.query_more,
        key="GET /services/data/v{version}/query/{locator}",
    )
    em.add_route("GET", f"{DATA}/sobjects/?", routes.global_describe)
    em.add_route("GET", f"{DATA}/sobjects/{SOBJECT}/describe/?", routes.describe)
    em.add_route("POST", f"{DATA}/sobjects/{SOBJECT}/?", routes.create)
    em.add_route("GET", f"{DATA}/sobjects/{SOBJECT}/{RID}/?", routes.get)
    em.add_route("PATCH", f"{DATA}/sobjects/{SOBJECT}/{RID}/?", routes.update)
    em.add_route("DELETE", f"{DATA}/sobjects/{SOBJECT}/{RID}/?", routes.delete)
    em.add_route("PATCH", f"{DATA}/composite/sobjects/?", routes.collection_update)
    em.add_route("POST", f"{DATA}/jobs/query/?", routes.bulk_create)
    em.add_route(
        "GET", f"{DATA}/jobs/query/(?P<job>750[A-Za-z0-9]+)/results/?", routes.bulk_results
    )
    em.add_route("GET", f"{DATA}/jobs/query/(?P<job>750[A-Za-z0-9]+)/?", routes.bulk_info)
    em.add_route("GET", f"{DATA}/jobs/query/?", routes.bulk_list)
    em.add_route("DELETE", f"{DATA}/jobs/query/(?P<job>750[A-Za-z0-9]+)/?", routes.bulk_delete)
    em.add_route("PATCH", f"{DATA}/jobs/query/(?P<job>750[A-Za-z0-9]+)/?", routes.bulk_abort)


class Routes:
    """Handlers bound to one emulator."""

    def __init__(self, em: RouteHost) -> None:
        self.em = em

    # --- logins --------------------------------------------------------------------------------
    def soap_login(self, request: Request) -> Response:
        status, xml = self.em.sessions.soap_login(
            request.body, self.em.base_url, request.params["version"]
        )
        return Response(status, {"Content-Type": "text/xml;charset=UTF-8"}, xml.encode("utf-8"))

    def oauth_token(self, request: Request) -> Response:
        try:
            return json_body(self.em.sessions.token(request.form(), self.em.base_url))
        except OAuthError as error:
            return json_body(error.body(), error.status)

    # --- limits --------------------------------------------------------------------------------
    def limits(self, request: Request) -> Response:
        limit = int(getattr(self.em.knobs, "daily_api_limit", 1_000_000))
        jobs = len(self.em.bulk.jobs)
        return json_body(
            {
                "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - self.em.api_used)},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - jobs},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DataStorageMB": {"Max": 1024, "Remaining": 1000},
            }
        )

    def record_count(self, request: Request) -> Response:
        wanted = request.arg_list("sObjects") or list(self.em.store.truth)
        counts = []
        for name in wanted:
            real = self.em.schema.sobject_name(name)
            if real is not None:
                live = sum(1 for r in self.em.store.truth[real].values() if not r["IsDeleted"])
                counts.append({"count": live, "name": real})
        return json_body({"sObjects": counts})

    # --- queries -------------------------------------------------------------------------------
    def query(self, request: Request, include_deleted: bool = False) -> Response:
        unknown = sorted(set(request.query) - {"q"})
        if unknown:
            return errors(400, "INVALID_PARAMETER", f"Unsupported parameter: {unknown[0]}")
        soql = request.arg("q")
        if not soql:
            return errors(400, "MALFORMED_QUERY", "A query string has to be specified")
        result = self.em.store.run_query(soql, include_deleted)
        return json_body(
            self.em.cursors.page(result, request.params["version"], batch_size(request))
        )

    def query_all(self, request: Request) -> Response:
        return self.query(request, include_deleted=True)

    def query_more(self, request: Request) -> Response:
        body = self.em.cursors.more(request.params["locator"])
        if body is None:
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return json_body(body)

    # --- describe ------------------------------------------------------------------------------
    def global_describe(self, request: Request) -> Response:
        version = request.params["version"]
        return json_body(
            {
                "encoding": "UTF-8",
                "maxBatchSize": MAX_BATCH,
                "sobjects": [
                    {
                        "name": o.name,
                        "label": o.label,
                        "custom": o.custom,
                        "queryable": True,
                        "updateable": True,
                        "keyPrefix": o.describe(version)["keyPrefix"],
                        "urls": {
                            "describe": f"/services/data/v{version}/sobjects/{o.name}/describe"
                        },
                    }
                    for o in self.em.schema.objects.values()
                ],
            }
        )

    def describe(self, request: Request) -> Response:
        real = self.em.schema.sobject_name(request.params["sobject"])
        if real is None:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        return json_body(self.em.schema.objects[real].describe(request.params["version"]))

    # --- single records ------------------------------------------------------------------------
    def _sobject(self, request: Request) -> str:
        real = self.em.schema.sobject_name(request.params["sobject"])
        if real is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        return real

    def get(self, request: Request) -> Response:
        """A record with every field, compound ones as REST gives them (an object of their
        components); `fields` names the ones wanted, and an unknown one is INVALID_FIELD."""
        unknown = sorted(set(request.query) - {"fields"})
        if unknown:
            return errors(400, "INVALID_PARAMETER", f"Unsupported parameter: {unknown[0]}")
        sobject = self._sobject(request)
        record = self.em.store.get(sobject, request.params["id"])
        parts = self.em.schema.compound_parts(sobject)
        row = {**record, **{name: compound_value(record, part) for name, part in parts.items()}}
        wanted = request.arg_list("fields")
        if wanted:
            real = []
            for name in wanted:
                found = self.em.schema.field_of(sobject, name)
                if found is None:
                    return errors(
                        400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'"
                    )
                real.append(found[0])
            row = {"Id": row["Id"], **{name: row[name] for name in real}}
        return json_body(record_json(sobject, row, request.params["version"]))

    def create(self, request: Request) -> Response:
        sobject = self._sobject(request)
        if sobject in ("OpportunityHistory", "OpportunityStage"):
            return errors(
                400, "INVALID_TYPE_FOR_OPERATION", f"entity type {sobject} does not support insert"
            )
        record = self.em.store.create(sobject, request.json() or {})
        return json_body({"id": record["Id"], "success": True, "errors": []}, 201)

    def update(self, request: Request) -> Response:
        self.em.store.update(self._sobject(request), request.params["id"], request.json() or {})
        return Response(204)

    def delete(self, request: Request) -> Response:
        self.em.store.delete(self._sobject(request), request.params["id"])
        return Response(204)

    # --- sObject Collections -------------------------------------------------------------------
    def collection_update(self, request: Request) -> Response:
        body = request.json() or {}
        records = body.get("records")
        if not isinstance(records, list) or not records:
            return errors(400, "INVALID_FIELD", "records: a non-empty list is required")
        if len(records) > COLLECTION_MAX:
            return errors(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more "
                f"than {COLLECTION_MAX} records into this call",
            )
        if chunks(records) > COLLECTION_CHUNKS:
            return errors(
                400,
                "INVALID_BATCH_REQUEST",
                "Cannot have more than 10 chunks in a single operation.",
            )
        all_or_none = bool(body.get("allOrNone", False))
        results = [self._update_one(item, dry_run=all_or_none) for item in records]
        if all_or_none and any(not r["success"] for r in results):
            return json_body(
                [
                    r
                    if not r["success"]
                    else {
                        "id": r["id"],
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were valid and the "
                                "request was using AllOrNone header",
                                "fields": [],
                            }
                        ],
                    }
                    for r in results
                ]
            )
        if all_or_none:
            results = [self._update_one(item, dry_run=False) for item in records]
        return json_body(results)

    def _update_one(self, item: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        rid = str(item.get("id") or item.get("Id") or "")
        try:
            sobject = (item.get("attributes") or {}).get("type")
            real = self.em.schema.sobject_name(str(sobject or ""))
            if real is None:
                raise RecordError("INVALID_TYPE", f"sObject type '{sobject}' is not supported")
            found, _ = self.em.store.find(rid)
            if found != real:
                raise RecordError(
                    "MALFORMED_ID", f"{real} ID: id value of incorrect type: {rid}", ["Id"]
                )
            if dry_run:
                self.em.store.coerce(real, item, creating=False)
            else:
                self.em.store.update(real, rid, item)
        except RecordError as error:
            return {"id": rid or None, "success": False, "errors": [error.body()]}
        return {"id": rid, "success": True, "errors": []}

    # --- Bulk API 2.0 query jobs ---------------------------------------------------------------
    def bulk_create(self, request: Request) -> Response:
        body = request.json() or {}
        unknown = sorted(
            set(body) - {"operation", "query", "contentType", "columnDelimiter", "lineEnding"}
        )
        if unknown:
            return errors(400, "INVALIDJOB", f"Unsupported job field: {unknown[0]}")
        for name, served in (
            ("contentType", "CSV"),
            ("columnDelimiter", "COMMA"),
            ("lineEnding", "LF"),
        ):
            if body.get(name, served) != served:
                return errors(
                    400,
                    "INVALIDJOB",
                    f"{name} {body[name]!r}: only {served} is served by this emulator",
                )
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            return errors(400, "INVALIDJOB", "Invalid operation: expected query or queryAll")
        result = self.em.store.run_query(str(body.get("query") or ""), operation == "queryAll")
        if set(result.fields) & set(self.em.schema.compound_parts(result.sobject)):
            return errors(
                400,
                "FUNCTIONALITY_NOT_ENABLED",
                "Selecting compound data not supported in Bulk Query",
            )
        job = self.em.bulk.create(operation, str(body["query"]), result, self.em.clock())
        return json_body(job.info(request.params["version"], "UploadComplete"))

    def _job(self, request: Request) -> BulkJob:
        job = self.em.bulk.jobs.get(request.params["job"])
        if job is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", http_status=404)
        return job

    def bulk_info(self, request: Request) -> Response:
        job = self._job(request)
        return json_body(job.info(request.params["version"], self.em.bulk.state(job)))

    def bulk_list(self, request: Request) -> Response:
        """Get Information About All Query Jobs: one page holds them all here."""
        unknown = sorted(set(request.query) - {"jobType"})
        if unknown:
            return errors(400, "INVALIDURL", f"Unsupported query parameter: {unknown[0]}")
        kind = request.arg("jobType")
        version = request.params["version"]
        records = [
            job.info(version, self.em.bulk.current(job))
            for job in self.em.bulk.jobs.values()
            if kind in (None, "V2Query")
        ]
        return json_body({"done": True, "records": records, "nextRecordsUrl": None})

    def bulk_delete(self, request: Request) -> Response:
        """Only a job that has ended (JobComplete, Aborted, Failed) can be deleted: 204."""
        job = self._job(request)
        if self.em.bulk.current(job) == "InProgress":
            return errors(
                400,
                "API_ERROR",
                "Error encountered when deleting the job because the job is not terminated",
            )
        del self.em.bulk.jobs[job.id]
        return Response(204, {}, b"")

    def bulk_abort(self, request: Request) -> Response:
        """PATCH {"state": "Aborted"} aborts a job that has not ended."""
        job = self._job(request)
        body = request.json() or {}
        if set(body) != {"state"} or body["state"] != "Aborted":
            return errors(400, "INVALIDJOBSTATE", 'Only {"state": "Aborted"} is accepted')
        if self.em.bulk.current(job) != "InProgress":
            return errors(400, "INVALIDJOBSTATE", "The job has already ended")
        job.aborted = True
        return json_body(job.info(request.params["version"], "Aborted"))

    def bulk_results(self, request: Request) -> Response:
        job = self._job(request)
        unknown = sorted(set(request.query) - {"maxRecords", "locator"})
        if unknown:
            return errors(400, "INVALID_PARAMETER", f"Unsupported parameter: {unknown[0]}")
        if job.polls <= self.em.bulk.polls_until_complete:
            return errors(400, "API_ERROR", "Results are not available: the job is not complete")
        max_records = int(request.arg("maxRecords") or 50_000)
        return self.em.bulk.results(job, request.arg("locator"), max(1, max_records))


def batch_size(request: Request) -> int:
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdigit():
            return int(value)
    return MAX_BATCH


def chunks(records: list[dict[str, Any]]) -> int:
    count, last = 0, None
    for item in records:
        kind = (item.get("attributes") or {}).get("type")
        if kind != last:
            count, last = count + 1, kind
    return count


__all__ = ["SURVEY_OBJECT", "register_routes"]
