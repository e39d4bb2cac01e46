"""Non-object endpoints of the HubSpot emulator: OAuth token, owners, custom object schemas (none),
properties (tickets' defaults too) and groups, pipelines and v4 associations. A query parameter
an endpoint does not implement is a 400 naming it, never ignored. `register_meta_routes(host)`
adds them to an emulator; `MetaHost` is what they need from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from emulators.hubspot.auth import OAuthError, TokenBook
from emulators.hubspot.records import iso
from emulators.hubspot.render import batch_envelope, v4_targets
from emulators.hubspot.schema import (
    FIELD_TYPES,
    GROUPS,
    SINGULAR,
    PropDef,
    Schema,
    normalize_type,
)
from emulators.hubspot.store import HubSpotError, HubSpotStore, validation_error
from emulators.server import Handler, Request, Response, json_response

MAX_OWNERS_PAGE = 500
MAX_ASSOCIATION_INPUTS = 1000
TICKET_GROUP = "ticketinformation"
TICKET_PROPERTIES = tuple(
    PropDef(name, kind, label, options, read_only, group=TICKET_GROUP)
    for name, kind, label, options, read_only in (
        ("subject", "string", "Ticket name", (), False),
        ("content", "string", "Ticket description", (), False),
        ("hs_pipeline", "enumeration", "Pipeline", ("0",), False),
        ("hs_pipeline_stage", "enumeration", "Ticket status", ("1", "2", "3", "4"), False),
        (
            "hs_ticket_priority",
            "enumeration",
            "Priority",
            ("LOW", "MEDIUM", "HIGH", "URGENT"),
            False,
        ),
        (
            "hs_ticket_category",
            "enumeration",
            "Category",
            ("PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY"),
            False,
        ),
        ("source_type", "enumeration", "Source", ("CHAT", "EMAIL", "FORM", "PHONE"), False),
        ("hubspot_owner_id", "enumeration", "Ticket owner", (), False),
        ("closed_date", "datetime", "Close date", (), False),
        ("createdate", "datetime", "Create date", (), True),
        ("hs_lastmodifieddate", "datetime", "Last modified date", (), True),
        ("hs_object_id", "number", "Record ID", (), True),
    )
)
TYPE = r"(?P<type>[A-Za-z0-9_-]+)"


class MetaHost(Protocol):
    """What the non-object endpoints need from the emulator serving them."""

    @property
    def tokens(self) -> TokenBook: ...
    @property
    def owners(self) -> list[dict[str, Any]]: ...
    @property
    def pipeline(self) -> dict[str, Any]: ...
    @property
    def schema(self) -> Schema: ...
    @property
    def store(self) -> HubSpotStore: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    def add_route(
        self, method: str, regex: str, handler: Handler, key: str | None = None
    ) -> None: ...


def register_meta_routes(emu: MetaHost) -> None:
    """Register every non-object route on the emulator."""
    meta = MetaEndpoints(emu)
    emu.add_route("POST", "/oauth/v1/token", meta.token)
    emu.add_route("GET", "/crm/v3/owners/?", meta.owners)
    emu.add_route("GET", "/crm/v3/schemas/?", meta.schemas)
    emu.add_route("GET", "/crm-object-schemas/v3/schemas/?", meta.schemas)  # the SDK's path
    emu.add_route("GET", r"/crm/v3/owners/(?P<id>\d+)", meta.owner)
    emu.add_route("GET", f"/crm/v3/pipelines/{TYPE}", meta.pipelines)
    emu.add_route("GET", f"/crm/v3/pipelines/{TYPE}/(?P<pipeline>[^/]+)", meta.pipeline)
    emu.add_route("GET", f"/crm/v3/properties/{TYPE}/groups", meta.groups)
    emu.add_route("POST", f"/crm/v3/properties/{TYPE}/groups", meta.create_group)
    emu.add_route("GET", f"/crm/v3/properties/{TYPE}", meta.properties)
    emu.add_route("POST", f"/crm/v3/properties/{TYPE}", meta.create_property)
    emu.add_route("GET", f"/crm/v3/properties/{TYPE}/(?P<name>[^/]+)", meta.get_property)
    emu.add_route(
        "POST",
        r"/crm/v4/associations/(?P<from>[A-Za-z0-9_-]+)/(?P<to>[A-Za-z0-9_-]+)"
        "/batch/read",
        meta.associations_batch,
    )
    emu.add_route(
        "GET",
        r"/crm/v4/objects/(?P<from>[A-Za-z0-9_-]+)/(?P<id>\d+)/associations/"
        r"(?P<to>[A-Za-z0-9_-]+)",
        meta.associations_of,
    )


def refuse_unknown(request: Request, known: set[str]) -> None:
    """A 400 naming a query parameter the emulator does not implement: never ignored."""
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise validation_error(f"Unsupported query parameter: {unknown[0]}")


def refuse_unknown_fields(body: Any, known: set[str]) -> None:
    """A 400 naming a request body field the emulator does not implement: never ignored."""
    unknown = sorted(set(body) - known) if isinstance(body, dict) else []
    if unknown:
        raise validation_error(f"Unsupported request body field: {unknown[0]}")


def known_type(name: str) -> str:
    """Canonical object type or a 400."""
    found = normalize_type(name)
    if found is None:
        raise validation_error(f"Unable to infer object type from: {name}")
    return found


class MetaEndpoints:
    """Handlers bound to one emulator."""

    def __init__(self, emu: MetaHost) -> None:
        self.emu = emu

    def token(self, request: Request) -> Response:
        """POST /oauth/v1/token (form-encoded refresh grant)."""
        try:
            return json_response(200, self.emu.tokens.refresh(request.form()))
        except OAuthError as exc:
            return json_response(400, exc.body())

    def owners(self, request: Request) -> Response:
        """GET /crm/v3/owners/ with limit (<=500), after (offset), email, archived."""
        refuse_unknown(request, {"limit", "after", "email", "archived"})
        limit = int(request.arg("limit") or 100)
        if limit < 1 or limit > MAX_OWNERS_PAGE:
            raise validation_error(f"limit must be between 1 and {MAX_OWNERS_PAGE}")
        archived = (request.arg("archived") or "false").lower() == "true"
        email = (request.arg("email") or "").lower()
        rows = [
            o
            for o in self.emu.owners
            if o["archived"] == archived and (not email or o["email"].lower() == email)
        ]
        start = int(request.arg("after") or 0)
        body: dict[str, Any] = {"results": rows[start : start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return json_response(200, body)

    def owner(self, request: Request) -> Response:
        """GET /crm/v3/owners/{id}."""
        for row in self.emu.owners:
            if row["id"] == request.params["id"]:
                return json_response(200, row)
        raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")

    def pipelines(self, request: Request) -> Response:
        """GET /crm/v3/pipelines/{type}: the default deal pipeline."""
        results = [self.emu.pipeline] if known_type(request.params["type"]) == "deals" else []
        return json_response(200, {"results": results})

    def pipeline(self, request: Request) -> Response:
        """GET /crm/v3/pipelines/deals/{pipelineId}."""
        if known_type(request.params["type"]) != "deals" or request.params["pipeline"] != "default":
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")
        return json_response(200, self.emu.pipeline)

    def schemas(self, request: Request) -> Response:
        """GET /crm/v3/schemas: the portal's custom objects; it has none."""
        refuse_unknown(request, {"archived"})
        return json_response(200, {"results": []})  # archived or not, it has none

    def properties(self, request: Request) -> Response:
        """GET /crm/v3/properties/{type}: every definition, no paging. Tickets, which this
        portal holds none of, have HubSpot's default ticket properties."""
        refuse_unknown(request, {"archived"})
        if request.params["type"].lower() in ("tickets", "ticket", "0-5"):
            defs = {d.name: d for d in TICKET_PROPERTIES}
        else:
            defs = self.emu.schema.properties[known_type(request.params["type"])]
        if (request.arg("archived") or "false").lower() == "true":
            return json_response(200, {"results": []})  # no property here was ever archived
        return json_response(200, {"results": [d.to_json(i) for i, d in enumerate(defs.values())]})

    def get_property(self, request: Request) -> Response:
        """GET /crm/v3/properties/{type}/{name}."""
        found = self.emu.schema.prop(known_type(request.params["type"]), request.params["name"])
        if found is None:
            raise HubSpotError(
                404, "OBJECT_NOT_FOUND", f"Unable to find property {request.params['name']}"
            )
        return json_response(200, found.to_json(0))

    def create_property(self, request: Request) -> Response:
        """POST /crm/v3/properties/{type}: 201, 409 on a duplicate name."""
        object_type = known_type(request.params["type"])
        body = request.json() or {}
        name, kind = str(body.get("name") or ""), str(body.get("type") or "")
        if not name or kind not in FIELD_TYPES or not body.get("label"):
            raise validation_error("name, label and a valid type are required")
        defs = self.emu.schema.properties[object_type]
        if name in defs:
            raise HubSpotError(
                409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists."
            )
        options = tuple(str(o.get("value")) for o in body.get("options") or [])
        now = iso(self.emu.clock())
        defs[name] = PropDef(
            name,
            kind,
            label=str(body["label"]),
            options=options,
            hubspot_defined=False,
            description=str(body.get("description") or ""),
            group=str(body.get("groupName") or GROUPS.get(object_type, "")),
            created_at=now,
        )
        return json_response(201, defs[name].to_json(len(defs) - 1))

    def groups(self, request: Request) -> Response:
        """GET /crm/v3/properties/{type}/groups."""
        object_type = known_type(request.params["type"])
        return json_response(200, {"results": self._groups(object_type)})

    def _groups(self, object_type: str) -> list[dict[str, Any]]:
        default = GROUPS.get(object_type, f"{SINGULAR[object_type]}information")
        base = [
            {
                "name": default,
                "label": default.replace("information", " information").title(),
                "displayOrder": 0,
                "archived": False,
            }
        ]
        return base + self.emu.schema.groups.get(object_type, [])

    def create_group(self, request: Request) -> Response:
        """POST /crm/v3/properties/{type}/groups: 201, 409 on a duplicate."""
        object_type = known_type(request.params["type"])
        body = request.json() or {}
        name = str(body.get("name") or "")
        if not name or not body.get("label"):
            raise validation_error("name and label are required")
        if any(g["name"] == name for g in self._groups(object_type)):
            raise HubSpotError(
                409, "OBJECT_ALREADY_EXISTS", f"A group named '{name}' already exists."
            )
        group = {
            "name": name,
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder") or -1),
            "archived": False,
        }
        self.emu.schema.groups.setdefault(object_type, []).append(group)
        return json_response(201, group)

    def associations_batch(self, request: Request) -> Response:
        """POST /crm/v4/associations/{from}/{to}/batch/read (<=1000 inputs)."""
        from_type, to_type = known_type(request.params["from"]), known_type(request.params["to"])
        inputs = (request.json() or {}).get("inputs") or []
        if len(inputs) > MAX_ASSOCIATION_INPUTS:
            raise validation_error(f"Too many inputs: {len(inputs)} > {MAX_ASSOCIATION_INPUTS}")
        results, missing = [], []
        for item in inputs:
            rid = str(item.get("id"))
            record = self.emu.store.get(from_type, rid)
            targets = v4_targets(from_type, record, to_type) if record else []
            if targets:
                results.append({"from": {"id": rid}, "to": targets})
            else:
                missing.append(rid)
        errors = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No {to_type} is associated with {SINGULAR[from_type]} {rid}.",
                "context": {"fromObjectId": [rid]},
                "errors": [],
                "links": {},
            }
            for rid in missing
        ]
        return json_response(207 if errors else 200, batch_envelope(results, errors))

    def associations_of(self, request: Request) -> Response:
        """GET /crm/v4/objects/{from}/{id}/associations/{to} (limit <=500, offset after)."""
        from_type, to_type = known_type(request.params["from"]), known_type(request.params["to"])
        record = self.emu.store.get(from_type, request.params["id"])
        if record is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")
        targets = v4_targets(from_type, record, to_type)
        limit = min(500, int(request.arg("limit") or 500))
        start = int(request.arg("after") or 0)
        body: dict[str, Any] = {"results": targets[start : start + limit]}
        if start + limit < len(targets):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return json_response(200, body)
