"""HubSpot property definitions: discovery of every field, and provisioning of managed ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.hubspot.client import HubSpotClient
from kpisync.connector import FieldInfo, FieldSpec, ProvisionStep

GROUP = "kpisync"
FIELD_TYPES = {  # our type -> (HubSpot type, fieldType)
    "string": ("string", "text"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "enumeration": ("enumeration", "select"),
    "bool": ("enumeration", "booleancheckbox"),
}


def discover_fields(client: HubSpotClient, object_types: Sequence[str]) -> list[FieldInfo]:
    fields: list[FieldInfo] = []
    for object_type in object_types:
        for prop in read_properties(client, object_type):
            meta = prop.get("modificationMetadata") or {}
            fields.append(
                FieldInfo(
                    entity=object_type,
                    name=str(prop["name"]),
                    label=str(prop.get("label", "")),
                    type=str(prop.get("type", "string")),
                    is_custom=not prop.get("hubspotDefined", False),
                    is_writable=not meta.get("readOnlyValue", False)
                    and not prop.get("calculated", False),
                    options=tuple(str(o.get("value")) for o in prop.get("options") or []),
                )
            )
    return fields


def read_properties(client: HubSpotClient, object_type: str) -> list[dict[str, Any]]:
    response = client.call(
        f"GET /crm/v3/properties/{object_type}",
        client.properties.get_all_with_http_info,
        object_type,
    )
    return [p for p in response.get("results", []) if not p.get("archived")]


def ensure_properties(
    client: HubSpotClient,
    specs: Sequence[FieldSpec],
    object_types: Mapping[str, str],
    *,
    apply: bool,
) -> list[ProvisionStep]:
    steps: list[ProvisionStep] = []
    by_type: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        if spec.entity not in object_types:
            steps.append(
                ProvisionStep(spec, "manual", f"HubSpot has no {spec.entity} record to hold it")
            )
            continue
        by_type.setdefault(object_types[spec.entity], []).append(spec)
    for object_type, wanted in by_type.items():
        existing = {str(p["name"]) for p in read_properties(client, object_type)}
        missing = [s for s in wanted if s.name not in existing]
        steps.extend(ProvisionStep(s, "exists") for s in wanted if s.name in existing)
        if missing and apply:
            ensure_group(client, object_type)
        for spec in missing:
            if apply:
                create_property(client, object_type, spec)
            steps.append(ProvisionStep(spec, "create", f"property {spec.name} on {object_type}"))
    return steps


def ensure_group(client: HubSpotClient, object_type: str) -> None:
    groups = client.call(
        f"GET /crm/v3/properties/{object_type}/groups",
        client.property_groups.get_all_with_http_info,
        object_type,
    )
    if any(g.get("name") == GROUP for g in groups.get("results", [])):
        return
    client.call(
        f"POST /crm/v3/properties/{object_type}/groups",
        client.property_groups.create_with_http_info,
        object_type,
        {"name": GROUP, "label": "kpisync scores", "displayOrder": -1},
    )


def create_property(client: HubSpotClient, object_type: str, spec: FieldSpec) -> None:
    kind, field_type = FIELD_TYPES[spec.type]
    options = list(spec.options) or (["true", "false"] if spec.type == "bool" else [])
    body = {
        "name": spec.name,
        "label": spec.label,
        "type": kind,
        "fieldType": field_type,
        "groupName": GROUP,
        "description": "Managed by kpisync; do not edit by hand.",
        "options": [
            {"label": o, "value": o, "displayOrder": i, "hidden": False}
            for i, o in enumerate(options)
        ],
    }
    client.call(
        f"POST /crm/v3/properties/{object_type}",
        client.properties.create_with_http_info,
        object_type,
        body,
    )
