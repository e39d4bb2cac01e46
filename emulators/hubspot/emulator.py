"""HubSpot CRM v3 emulator: the synthetic org served over loopback HTTP in HubSpot's shapes.

`hubspot-api-client` 12 talks to it unchanged: `HubSpot(access_token=..., host=emulator.start())`.
Served: objects (list, read, create, update, archive, batch read/create/update/archive, merge,
search) for companies, contacts, deals, calls, emails, meetings, tasks, notes, line_items and the
read-only feedback_submissions; properties and groups; owners; deal pipelines; v4 associations;
OAuth refresh (`POST /oauth/v1/token`). Reproduced limits: page sizes, 100-input batches with 207
partial results, search (5/10/25 filter limits, limit 200, the 10,000-result wall, ties not in id
order, SECONDLY 429), the TEN_SECONDLY_ROLLING budget with X-HubSpot-RateLimit-* headers, 401s.
Module map: schema (types, properties), records (org -> truth, ids), store (mutations, search),
search (filters), render (JSON shapes), calculated (deals' v2 stage-calculated properties, served
by name), auth (tokens, limiters), meta (non-object endpoints).
"""

from __future__ import annotations

import copy
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulators.hubspot.auth import OAuthApp, SlidingLimiter, TokenBook
from emulators.hubspot.meta import (
    refuse_unknown,
    refuse_unknown_fields,
    register_meta_routes,
)
from emulators.hubspot.records import (
    FIRST_API_ID,
    Truth,
    base_id,
    build_owners,
    build_truth,
    iso,
)
from emulators.hubspot.render import (
    batch_envelope,
    error_response,
    not_found_error,
    rate_limit_body,
    render,
    target_type_of,
)
from emulators.hubspot.schema import (
    READ_ONLY_TYPES,
    Schema,
    build_properties,
    normalize_type,
    pipeline_json,
    stage_id,
)
from emulators.hubspot.store import HubSpotError, HubSpotStore, validation_error
from emulators.org.model import Org
from emulators.server import EmulatorServer, Knobs, Request, Response, json_response

MAX_BATCH = 100
TYPE = r"(?P<type>[A-Za-z0-9_-]+)"
OBJ = f"/crm/v3/objects/{TYPE}"

__all__ = ["HubSpotEmulator", "HubSpotKnobs", "OAuthApp"]


@dataclass
class HubSpotKnobs(Knobs):
    """The shared fault knobs plus HubSpot's request budgets."""

    ten_secondly_budget: int = 190
    daily_budget: int = 500_000


def utc_now_ms() -> datetime:
    """The real UTC time truncated to milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class HubSpotEmulator(EmulatorServer):
    """A stateful HubSpot portal built from one synthetic org."""

    def __init__(
        self,
        org: Org,
        *,
        access_token: str = "pat-na1-emulator",
        oauth: OAuthApp | None = None,
        knobs: Knobs | None = None,
        search_rate_per_second: float = 5.0,
        clock: Callable[[], datetime] = utc_now_ms,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(knobs or HubSpotKnobs(), ssl_context)
        self.org = org
        self.search_rate_per_second = search_rate_per_second
        self.clock = clock
        self.lead_contact = {
            lead.id: lead.converted_contact_id
            for lead in org.leads
            if lead.converted_contact_id is not None
        }
        stage_meta = {
            stage_id(s.key): (s.is_closed, s.is_won, str(s.probability)) for s in org.stages
        }
        self.schema = Schema(build_properties(org.stages, list(org.currencies), org.custom_fields))
        self.store = HubSpotStore(
            build_truth(org, self.lead_contact), self.schema, clock, stage_meta, FIRST_API_ID
        )
        self.owners = build_owners(org)
        self.pipeline = pipeline_json(org.stages, iso(org.now.replace(year=org.now.year - 4)))
        self.tokens = TokenBook(access_token, oauth, clock)
        self.ten_second = SlidingLimiter(10.0)
        self.per_second = SlidingLimiter(1.0)
        self.daily_used = 0
        self._register_object_routes()
        register_meta_routes(self)

    # --- request pipeline ----------------------------------------------------------------------
    def handle(self, request: Request, handler: Callable[[Request], Response]) -> Response:
        """Auth, rate limits, the handler under the store lock, rate-limit headers."""
        if request.route_key.startswith("POST /oauth/"):
            return handler(request)
        try:
            token = self.tokens.check(request.headers.get("authorization"))
        except HubSpotError as exc:
            return error_response(exc)
        headers: dict[str, str] = {}
        if request.route_key.endswith("/search"):
            allowed, _ = self.per_second.hit(token, self.search_rate_per_second)
            if not allowed:
                return json_response(429, rate_limit_body("SECONDLY"))
        else:
            limited = self._budget(token, headers)
            if limited is not None:
                return limited
        with self.store.lock:
            try:
                response = handler(request)
            except HubSpotError as exc:
                response = error_response(exc)
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as exc:
                response = error_response(validation_error(f"Invalid input JSON: {exc}"))
        response.headers.update(headers)
        return response

    def _budget(self, token: str, headers: dict[str, str]) -> Response | None:
        budget = int(getattr(self.knobs, "ten_secondly_budget", 190))
        daily = int(getattr(self.knobs, "daily_budget", 500_000))
        allowed, used = self.ten_second.hit(token, budget)
        if allowed:
            self.daily_used += 1
        headers.update(
            {
                "X-HubSpot-RateLimit-Max": str(budget),
                "X-HubSpot-RateLimit-Remaining": str(max(0, budget - used)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Daily": str(daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily - self.daily_used)),
            }
        )
        if self.daily_used > daily:
            return json_response(429, rate_limit_body("DAILY"), dict(headers))
        if not allowed:
            wait = max(1, round(self.ten_second.retry_after(token)))
            return json_response(
                429, rate_limit_body("TEN_SECONDLY_ROLLING"), {**headers, "Retry-After": str(wait)}
            )
        return None

    def fault_response(self, kind: str) -> Response:
        """Injected faults in HubSpot's shapes."""
        if kind == "429":
            return json_response(429, rate_limit_body("TEN_SECONDLY_ROLLING"), {"Retry-After": "1"})
        return json_response(
            502,
            {
                "status": "error",
                "message": "Bad Gateway (injected)",
                "correlationId": "injected",
                "category": "INTERNAL_ERROR",
            },
        )

    # --- helpers -------------------------------------------------------------------------------
    def object_type(self, request: Request, writing: bool = False) -> str:
        """The canonical type of the path; 400 unknown, 403 writes to read-only types."""
        name = normalize_type(request.params["type"])
        if name is None:
            raise validation_error(f"Unable to infer object type from: {request.params['type']}")
        if writing and name in READ_ONLY_TYPES:
            raise HubSpotError(
                403,
                "MISSING_SCOPES",
                f"This app does not have write access to {name}; the object is read-only.",
            )
        return name

    def _associations_in(
        self, object_type: str, specs: list[dict[str, Any]] | None
    ) -> list[tuple[str, str, int | None]]:
        out: list[tuple[str, str, int | None]] = []
        for spec in specs or []:
            to_id = str(spec["to"]["id"])
            for kind in spec.get("types") or []:
                type_id = int(kind["associationTypeId"])
                target = target_type_of(object_type, type_id)
                if target is None:
                    raise validation_error(f"Unknown association type {type_id}")
                out.append((target, to_id, type_id))
        return out

    # --- object routes -------------------------------------------------------------------------
    def _register_object_routes(self) -> None:
        self.add_route("POST", f"{OBJ}/search", self.search)
        for op in ("read", "create", "update", "archive"):
            self.add_route("POST", f"{OBJ}/batch/{op}", getattr(self, f"batch_{op}"))
        self.add_route("POST", f"{OBJ}/merge", self.merge)
        self.add_route("GET", OBJ, self.list_objects)
        self.add_route("POST", OBJ, self.create_object)
        self.add_route("GET", f"{OBJ}/(?P<id>[^/]+)", self.get_object)
        self.add_route("PATCH", f"{OBJ}/(?P<id>[^/]+)", self.update_object)
        self.add_route("DELETE", f"{OBJ}/(?P<id>[^/]+)", self.archive_object)

    def list_objects(self, request: Request) -> Response:
        """GET /crm/v3/objects/{type}: id-ordered pages, archived=true lists only archived."""
        object_type = self.object_type(request)
        refuse_unknown(
            request,
            {"limit", "after", "properties", "propertiesWithHistory", "associations", "archived"},
        )
        history = request.arg_list("propertiesWithHistory")
        limit = int(request.arg("limit") or 10)
        cap = 50 if history else 100
        if limit < 1 or limit > cap:
            raise validation_error(f"limit must be between 1 and {cap}")
        archived = (request.arg("archived") or "false").lower() == "true"
        page, after = self.store.list_page(object_type, archived, request.arg("after"), limit)
        props = request.arg_list("properties") or None
        assoc = [t for t in map(normalize_type, request.arg_list("associations")) if t]
        body: dict[str, Any] = {
            "results": [render(self.schema, object_type, r, props, history, assoc) for r in page]
        }
        if after is not None:
            body["paging"] = {
                "next": {"after": after, "link": f"{self.base_url}{request.path}?after={after}"}
            }
        return json_response(200, body)

    def get_object(self, request: Request) -> Response:
        """GET /crm/v3/objects/{type}/{id}."""
        object_type = self.object_type(request)
        refuse_unknown(request, {"properties", "propertiesWithHistory", "associations", "archived"})
        archived = (request.arg("archived") or "false").lower() == "true"
        record = self.store.get(object_type, request.params["id"], archived)
        if record is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")
        assoc = [t for t in map(normalize_type, request.arg_list("associations")) if t]
        return json_response(
            200,
            render(
                self.schema,
                object_type,
                record,
                request.arg_list("properties") or None,
                request.arg_list("propertiesWithHistory"),
                assoc,
            ),
        )

    def create_object(self, request: Request) -> Response:
        """POST /crm/v3/objects/{type} -> 201."""
        object_type = self.object_type(request, writing=True)
        body = request.json() or {}
        refuse_unknown_fields(body, {"properties", "associations"})
        props = self.store.normalize(object_type, body.get("properties") or {})
        links = self._associations_in(object_type, body.get("associations"))
        record = self.store.create(object_type, props, links)
        return json_response(201, render(self.schema, object_type, record, list(props)))

    def update_object(self, request: Request) -> Response:
        """PATCH /crm/v3/objects/{type}/{id}."""
        object_type = self.object_type(request, writing=True)
        body = request.json() or {}
        refuse_unknown_fields(body, {"properties"})
        props = self.store.normalize(object_type, body.get("properties") or {})
        record = self.store.update(object_type, request.params["id"], props)
        return json_response(200, render(self.schema, object_type, record, list(props)))

    def archive_object(self, request: Request) -> Response:
        """DELETE /crm/v3/objects/{type}/{id} archives -> 204."""
        object_type = self.object_type(request, writing=True)
        self.store.archive(object_type, request.params["id"])
        return Response(204)

    def _inputs(self, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = request.json() or {}
        refuse_unknown_fields(
            body,
            {"inputs", "properties", "propertiesWithHistory", "idProperty"}
            if request.route_key.endswith("/batch/read")
            else {"inputs"},
        )
        inputs = body.get("inputs") or []
        if len(inputs) > MAX_BATCH:
            raise validation_error(
                f"Too many inputs: {len(inputs)} > {MAX_BATCH}", "TOO_MANY_INPUTS"
            )
        return body, inputs

    def batch_read(self, request: Request) -> Response:
        """POST batch/read: found records, 207 with OBJECT_NOT_FOUND for the rest."""
        object_type = self.object_type(request)
        body, inputs = self._inputs(request)
        if body.get("idProperty") not in (None, "", "hs_object_id"):
            raise validation_error("Only hs_object_id is supported as idProperty here")
        archived = (request.arg("archived") or "false").lower() == "true"
        results, missing = [], []
        for item in inputs:
            record = self.store.get(object_type, str(item.get("id")), archived)
            if record is None:
                missing.append(str(item.get("id")))
                continue
            results.append(
                render(
                    self.schema,
                    object_type,
                    record,
                    body.get("properties"),
                    body.get("propertiesWithHistory"),
                )
            )
        errors = [not_found_error(object_type, missing)] if missing else None
        return json_response(207 if errors else 200, batch_envelope(results, errors))

    def batch_create(self, request: Request) -> Response:
        """POST batch/create -> 201; every input validated before anything is written."""
        object_type = self.object_type(request, writing=True)
        _, inputs = self._inputs(request)
        planned = [
            (
                self.store.normalize(object_type, item.get("properties") or {}),
                self._associations_in(object_type, item.get("associations")),
            )
            for item in inputs
        ]
        created = [self.store.create(object_type, props, links) for props, links in planned]
        return json_response(
            201,
            batch_envelope(
                [
                    render(self.schema, object_type, r, list(p))
                    for r, (p, _) in zip(created, planned, strict=True)
                ]
            ),
        )

    def batch_update(self, request: Request) -> Response:
        """POST batch/update: 400 on invalid properties, 207 for unknown ids."""
        object_type = self.object_type(request, writing=True)
        _, inputs = self._inputs(request)
        planned = [
            (str(item.get("id")), self.store.normalize(object_type, item.get("properties") or {}))
            for item in inputs
        ]
        results, missing = [], []
        for rid, props in planned:
            if self.store.get(object_type, rid) is None:
                missing.append(rid)
                continue
            record = self.store.update(object_type, rid, props)
            results.append(render(self.schema, object_type, record, list(props)))
        errors = [not_found_error(object_type, missing)] if missing else None
        return json_response(207 if errors else 200, batch_envelope(results, errors))

    def batch_archive(self, request: Request) -> Response:
        """POST batch/archive -> 204 (unknown ids are ignored)."""
        object_type = self.object_type(request, writing=True)
        _, inputs = self._inputs(request)
        for item in inputs:
            if self.store.get(object_type, str(item.get("id"))) is not None:
                self.store.archive(object_type, str(item.get("id")))
        return Response(204)

    def merge(self, request: Request) -> Response:
        """POST merge {primaryObjectId, objectIdToMerge}: the loser vanishes."""
        object_type = self.object_type(request, writing=True)
        body = request.json() or {}
        record = self.store.merge(
            object_type, str(body.get("primaryObjectId")), str(body.get("objectIdToMerge"))
        )
        return json_response(
            200, render(self.schema, object_type, record, ["hs_merged_object_ids"])
        )

    def search(self, request: Request) -> Response:
        """POST search: total, one page, paging.next.after as an offset."""
        object_type = self.object_type(request)
        body = request.json() or {}
        total, page = self.store.search(object_type, body)
        after = int(body.get("after") or 0) + len(page)
        out: dict[str, Any] = {
            "total": total,
            "results": [
                render(self.schema, object_type, r, body.get("properties") or None) for r in page
            ],
        }
        if after < total:
            out["paging"] = {"next": {"after": str(after)}}
        return json_response(200, out)

    # --- test hooks ----------------------------------------------------------------------------
    def hubspot_id(self, kind: str, neutral_id: int) -> str:
        """The HubSpot id of a neutral record; a converted lead resolves to its contact."""
        if kind in ("lead", "leads") and neutral_id in self.lead_contact:
            return base_id("contact", self.lead_contact[neutral_id])
        return base_id(kind, neutral_id)

    def dump(self) -> Truth:
        """A deep copy of the current truth, archived records included."""
        with self.store.lock:
            return copy.deepcopy(self.store.truth)

    def update_record(self, object_type: str, rid: str, props: dict[str, Any]) -> None:
        """Write properties as a user in the HubSpot UI would (read-only ones allowed)."""
        name = normalize_type(object_type) or object_type
        with self.store.lock:
            self.store.update(name, rid, self.store.normalize(name, props, allow_read_only=True))

    def create_record(
        self,
        object_type: str,
        props: dict[str, Any],
        associations: list[tuple[str, str]] | None = None,
    ) -> str:
        """Create a record (associations as (to_type, to_id)) and return its id."""
        name = normalize_type(object_type) or object_type
        with self.store.lock:
            links = [(normalize_type(t) or t, i, None) for t, i in associations or []]
            return str(
                self.store.create(name, self.store.normalize(name, props, True), links)["id"]
            )

    def archive(self, object_type: str, rid: str) -> None:
        """Soft-delete a record."""
        with self.store.lock:
            self.store.archive(normalize_type(object_type) or object_type, rid)

    def purge(self, object_type: str, rid: str) -> None:
        """Delete a record entirely (like a GDPR delete)."""
        with self.store.lock:
            self.store.purge(normalize_type(object_type) or object_type, rid)

    def touch_all(self, object_type: str, at: datetime) -> None:
        """Give every record of a type the same modified instant."""
        with self.store.lock:
            self.store.touch_all(normalize_type(object_type) or object_type, at)

    def revoke_refresh_token(self) -> None:
        """Make the OAuth refresh token invalid (400 BAD_REFRESH_TOKEN from now on)."""
        self.tokens.refresh_revoked = True

    def expire_access_tokens(self) -> None:
        """Expire every OAuth access token issued so far."""
        self.tokens.expire_all()

    def reset_rate_limits(self) -> None:
        """Forget the calls counted by the rate limiters."""
        self.ten_second.reset()
        self.per_second.reset()
        self.daily_used = 0
