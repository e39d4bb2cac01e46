"""JSON shapes of the HubSpot emulator: records, errors, rate-limit bodies and batch envelopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from emulators.hubspot.calculated import stage_calculated
from emulators.hubspot.records import Record, iso
from emulators.hubspot.schema import (
    ASSOCIATION_IDS,
    Schema,
    association_type,
    created_prop,
    modified_prop,
)
from emulators.hubspot.store import HubSpotError
from emulators.server import Response, json_response

DEFAULT_PROPS = {
    "companies": ("name", "domain"),
    "contacts": ("firstname", "lastname", "email"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "line_items": ("name", "quantity", "price"),
    "calls": ("hs_timestamp",),
    "emails": ("hs_timestamp",),
    "meetings": ("hs_timestamp",),
    "tasks": ("hs_timestamp",),
    "notes": ("hs_timestamp",),
    "feedback_submissions": (),
}


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts in every error."""
    return str(uuid.uuid4())


def error_body(error: HubSpotError) -> dict[str, Any]:
    """HubSpot's standard error body."""
    body: dict[str, Any] = {
        "status": "error",
        "message": error.message,
        "correlationId": correlation_id(),
        "category": error.category,
    }
    if error.sub_category:
        body["subCategory"] = error.sub_category
    if error.context:
        body["context"] = error.context
    return body


def error_response(error: HubSpotError) -> Response:
    """An error as an HTTP response."""
    return json_response(error.status, error_body(error))


def rate_limit_body(policy: str) -> dict[str, Any]:
    """The 429 body for a TEN_SECONDLY_ROLLING, SECONDLY or DAILY limit."""
    word = {
        "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
        "SECONDLY": "secondly",
        "DAILY": "daily",
    }[policy]
    return {
        "status": "error",
        "message": f"You have reached your {word} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": correlation_id(),
    }


def select_props(
    schema: Schema, object_type: str, record: Record, requested: list[str] | None
) -> dict[str, str | None]:
    """Requested properties (or the type's defaults) plus id, created and modified; a deal's
    v2 stage-calculated properties are served when asked for by name (see calculated)."""
    names = list(requested) if requested else list(DEFAULT_PROPS[object_type])
    names += ["hs_object_id", created_prop(object_type), modified_prop(object_type)]
    props = record["properties"]
    known = schema.properties[object_type]
    out = {n: props.get(n) for n in names if n in known}
    if object_type == "deals" and len(out) < len(set(names)):
        calculated = [n for n in names if n not in known]
        out.update(
            stage_calculated(
                history_of(record, "dealstage"), calculated, known["dealstage"].options
            )
        )
    return out


def history_of(record: Record, name: str) -> list[dict[str, Any]]:
    """Stored history, or one entry holding the current value."""
    stored = record["propertiesWithHistory"].get(name)
    if stored is not None:
        return [dict(entry) for entry in stored]
    value = record["properties"].get(name)
    if value is None:
        return []
    return [
        {
            "value": value,
            "timestamp": record["createdAt"],
            "sourceType": "CRM_UI",
            "sourceId": None,
            "updatedByUserId": None,
        }
    ]


def render(
    schema: Schema,
    object_type: str,
    record: Record,
    requested: list[str] | None = None,
    with_history: list[str] | None = None,
    associations: list[str] | None = None,
) -> dict[str, Any]:
    """A record in the objects API shape."""
    out: dict[str, Any] = {
        "id": record["id"],
        "properties": select_props(schema, object_type, record, requested),
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "archived": record["archived"],
    }
    if record["archived"]:
        out["archivedAt"] = record["archivedAt"]
    if with_history:
        known = schema.properties[object_type]
        out["propertiesWithHistory"] = {
            n: history_of(record, n) for n in with_history if n in known
        }
    if associations:
        out["associations"] = v3_associations(object_type, record, associations)
    return out


def v3_associations(object_type: str, record: Record, to_types: list[str]) -> dict[str, Any]:
    """The v3 `associations` block: {to_type: {"results": [{id, type}]}}."""
    out: dict[str, Any] = {}
    for to_type in to_types:
        targets = record["associations"].get(to_type)
        if targets:
            name = association_type(object_type, to_type).name
            out[to_type] = {"results": [{"id": i, "type": name} for i in sorted(targets)]}
    return out


def v4_targets(object_type: str, record: Record, to_type: str) -> list[dict[str, Any]]:
    """v4 association targets of one record: [{toObjectId, associationTypes}]."""
    targets = record["associations"].get(to_type, {})
    results = []
    for to_id in sorted(targets, key=int):
        kind = association_type(object_type, to_type, targets[to_id])
        results.append(
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": kind.category, "typeId": kind.type_id, "label": None}
                ],
            }
        )
    return results


def target_type_of(object_type: str, type_id: int) -> str | None:
    """Which object type an association type id from `object_type` points at."""
    for (source, target), known in ASSOCIATION_IDS.items():
        if source == object_type and known == type_id:
            return target
    return None


def batch_envelope(
    results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A batch response; with errors it is the 207 shape."""
    now = iso(datetime.now(UTC))
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "requestedAt": now,
        "startedAt": now,
        "completedAt": now,
        "links": {},
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return body


def not_found_error(object_type: str, ids: list[str]) -> dict[str, Any]:
    """One OBJECT_NOT_FOUND entry of a 207 batch response."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not get some {object_type.upper()} objects, they may be deleted "
        "or not exist. Check that ids are valid.",
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }
