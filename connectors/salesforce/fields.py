"""Salesforce field definitions: discovery through describe, and the managed fields' setup steps.

kpisync does not create fields in Salesforce (that takes the Metadata or Tooling API and a
deployment an admin should own): `ensure_fields` checks describe and, for each missing field,
says exactly where and how to create it in Setup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.salesforce.client import SalesforceClient
from kpisync.connector import FieldInfo, FieldSpec, ProvisionStep

FIELD_TYPES = {  # our type -> (Setup data type, details)
    "string": ("Text", "Length 255"),
    "number": ("Number", "Length 16, Decimal Places 2"),
    "date": ("Date", ""),
    "enumeration": ("Picklist", "values: {options}"),
    "bool": ("Checkbox", "Default Unchecked"),
}


def describe(client: SalesforceClient, sobject: str) -> dict[str, Any]:
    result: dict[str, Any] = client.restful(
        f"GET sobjects/{sobject}/describe", f"sobjects/{sobject}/describe"
    )
    return result


def field_infos(sobject: str, described: Mapping[str, Any]) -> list[FieldInfo]:
    out = []
    for spec in described.get("fields", []):
        out.append(
            FieldInfo(
                entity=sobject,
                name=str(spec["name"]),
                label=str(spec.get("label", "")),
                type=str(spec.get("type", "string")),
                is_custom=bool(spec.get("custom")),
                is_writable=bool(spec.get("updateable")),
                options=tuple(
                    str(p.get("value"))
                    for p in spec.get("picklistValues") or []
                    if p.get("active", True)
                ),
            )
        )
    return out


def setup_steps(
    specs: Sequence[FieldSpec], objects: Mapping[str, str], existing: Mapping[str, set[str]]
) -> list[ProvisionStep]:
    steps: list[ProvisionStep] = []
    for spec in specs:
        sobject = objects.get(spec.entity)
        if sobject is None:
            steps.append(
                ProvisionStep(
                    spec, "manual", f"Salesforce has no {spec.entity} object kpisync writes to"
                )
            )
            continue
        name = spec.name if spec.name.endswith("__c") else f"{spec.name}__c"
        if name.lower() in existing.get(sobject, set()):
            steps.append(ProvisionStep(spec, "exists"))
            continue
        kind, details = FIELD_TYPES[spec.type]
        details = details.format(options=", ".join(spec.options)) if details else ""
        steps.append(
            ProvisionStep(
                spec,
                "manual",
                (
                    f"Setup > Object Manager > {sobject} > Fields & Relationships > New: Data Type "
                    f"{kind}; Field Label '{spec.label}'; Field Name '{name.removesuffix('__c')}' "
                    f"(API name {name})"
                    + (f"; {details}" if details else "")
                    + "; make it visible and editable for the kpisync integration user's profile or "
                    "permission set; then check with 'kpisync fields plan'"
                ),
            )
        )
    return steps
