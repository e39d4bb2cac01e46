"""HubSpot emulator schema: object types, property definitions, association types, pipeline.

Object types are accepted by plural name, singular name or object-type id ("0-3" for deals).
Property definitions mirror `GET /crm/v3/properties/{type}`; built-in ones are `hubspotDefined`,
custom ones (from the org's `CustomFieldDef`s, named by the snake_case label) are not.
Association type ids follow HubSpot's defaults (deal->company 5, deal->contact 3,
contact->company 1, ...); the feedback-submission ones are this emulator's choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from emulators.org.model import CustomFieldDef, Stage

OBJECT_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "line_items": "0-8",
    "tasks": "0-27",
    "notes": "0-46",
    "meetings": "0-47",
    "calls": "0-48",
    "emails": "0-49",
    "feedback_submissions": "0-19",
}
SINGULAR = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "line_items": "line_item",
    "tasks": "task",
    "notes": "note",
    "meetings": "meeting",
    "calls": "call",
    "emails": "email",
    "feedback_submissions": "feedback_submission",
}
ENGAGEMENTS = ("calls", "emails", "meetings", "tasks", "notes")
READ_ONLY_TYPES = frozenset({"feedback_submissions"})
CREATED_PROP = {"contacts": "createdate", "companies": "createdate", "deals": "createdate"}
MODIFIED_PROP = {"contacts": "lastmodifieddate"}
CUSTOM_ENTITY_TYPES = {
    "account": "companies",
    "contact": "contacts",
    "lead": "contacts",
    "deal": "deals",
}


def normalize_type(name: str) -> str | None:
    """'contact', 'CONTACTS' or '0-1' -> 'contacts'; None for an unknown type."""
    lowered = name.lower()
    if lowered in SINGULAR:
        return lowered
    for plural, single in SINGULAR.items():
        if lowered == single or lowered == OBJECT_TYPE_IDS[plural]:
            return plural
    return None


def created_prop(object_type: str) -> str:
    """The property holding the creation instant ('createdate' or 'hs_createdate')."""
    return CREATED_PROP.get(object_type, "hs_createdate")


def modified_prop(object_type: str) -> str:
    """The property holding the last-modified instant ('lastmodifieddate' on contacts)."""
    return MODIFIED_PROP.get(object_type, "hs_lastmodifieddate")


def snake_case(label: str) -> str:
    """'Deal category' -> 'deal_category'."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


FIELD_TYPES = {
    "string": "text",
    "number": "number",
    "date": "date",
    "datetime": "date",
    "enumeration": "select",
    "bool": "booleancheckbox",
}
GROUPS = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}


@dataclass
class PropDef:
    """One property definition as the properties API describes it."""

    name: str
    type: str  # string | number | date | datetime | enumeration | bool
    label: str = ""
    options: tuple[str, ...] = ()
    read_only: bool = False
    hubspot_defined: bool = True
    group: str = ""
    description: str = ""
    created_at: str = "2019-01-01T00:00:00.000Z"

    def to_json(self, display_order: int) -> dict[str, Any]:
        """The API shape of this definition."""
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "fieldType": FIELD_TYPES.get(self.type, "text"),
            "groupName": self.group,
            "description": self.description,
            "displayOrder": display_order,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(self.options)
            ],
            "hidden": False,
            "hasUniqueValue": self.name == "hs_object_id",
            "formField": False,
            "calculated": self.read_only and self.hubspot_defined,
            "hubspotDefined": self.hubspot_defined,
            "archived": False,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        }


S, N, DT, E, B = "string", "number", "datetime", "enumeration", "bool"
LIFECYCLE = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
LEAD_STATUS = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
OWNED: list[tuple[str, str, tuple[str, ...]]] = [("hubspot_owner_id", E, ())]
BUILTIN: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "companies": [
        ("name", S, ()),
        ("domain", S, ()),
        ("industry", S, ()),
        ("country", S, ()),
        ("state", S, ()),
        ("city", S, ()),
        (
            "type",
            E,
            ("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER", "CUSTOMER", "FORMER_CUSTOMER"),
        ),
    ],
    "contacts": [
        ("firstname", S, ()),
        ("lastname", S, ()),
        ("email", S, ()),
        ("phone", S, ()),
        ("jobtitle", S, ()),
        ("company", S, ()),
        ("associatedcompanyid", N, ()),
        ("lifecyclestage", E, LIFECYCLE),
        ("hs_lead_status", E, LEAD_STATUS),
        ("hs_analytics_source", S, ()),
        ("hs_lifecyclestage_lead_date", DT, ()),
        ("hs_lifecyclestage_salesqualifiedlead_date", DT, ()),
        ("hs_lifecyclestage_opportunity_date", DT, ()),
        ("hs_lifecyclestage_customer_date", DT, ()),
    ],
    "deals": [
        ("dealname", S, ()),
        ("amount", N, ()),
        ("deal_currency_code", E, ()),
        ("dealstage", E, ()),
        ("pipeline", E, ("default",)),
        ("closedate", DT, ()),
        ("dealtype", E, ("newbusiness", "existingbusiness")),
        ("closed_lost_reason", S, ()),
    ],
    "calls": [
        ("hs_timestamp", DT, ()),
        ("hs_call_direction", E, ("INBOUND", "OUTBOUND")),
        ("hs_call_duration", N, ()),
        ("hs_call_title", S, ()),
        ("hs_call_body", S, ()),
        ("hs_call_disposition", S, ()),
        (
            "hs_call_status",
            E,
            (
                "BUSY",
                "CALLING_CRM_USER",
                "CANCELED",
                "COMPLETED",
                "CONNECTING",
                "FAILED",
                "IN_PROGRESS",
                "NO_ANSWER",
                "QUEUED",
                "RINGING",
            ),
        ),
    ],
    "emails": [
        ("hs_timestamp", DT, ()),
        ("hs_email_direction", E, ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
        ("hs_email_subject", S, ()),
        ("hs_email_text", S, ()),
        ("hs_email_status", E, ("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")),
    ],
    "meetings": [
        ("hs_timestamp", DT, ()),
        ("hs_meeting_title", S, ()),
        ("hs_meeting_body", S, ()),
        ("hs_meeting_start_time", DT, ()),
        ("hs_meeting_end_time", DT, ()),
        ("hs_meeting_outcome", E, ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")),
    ],
    "tasks": [
        ("hs_timestamp", DT, ()),
        ("hs_task_subject", S, ()),
        ("hs_task_body", S, ()),
        ("hs_task_status", E, ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
        ("hs_task_type", E, ("CALL", "EMAIL", "TODO")),
        ("hs_task_priority", E, ("NONE", "LOW", "MEDIUM", "HIGH")),
    ],
    "notes": [("hs_timestamp", DT, ()), ("hs_note_body", S, ())],
    "line_items": [
        ("name", S, ()),
        ("quantity", N, ()),
        ("price", N, ()),
        ("amount", N, ()),
        ("hs_product_id", S, ()),
        ("hs_sku", S, ()),
    ],
    "feedback_submissions": [
        ("hs_survey_type", E, ("NPS", "CSAT", "CES", "CUSTOM")),
        ("hs_response_value", N, ()),
        ("hs_submission_timestamp", DT, ()),
        ("hs_contact_id", N, ()),
        ("hs_survey_channel", S, ()),
        ("hs_sentiment", S, ()),
    ],
}
# HubSpot sets this when an owner is assigned (not when one is removed); it cannot be written.
OWNER_ASSIGNED = "hubspot_owner_assigneddate"
OWNER_DATED = ("companies", "contacts", "deals")
DEAL_READ_ONLY: list[tuple[str, str, tuple[str, ...]]] = [
    ("hs_is_closed", B, ()),
    ("hs_is_closed_won", B, ()),
    ("hs_deal_stage_probability", N, ()),
]
# A line item's amount is HubSpot's calculation (price x quantity), not a value anyone writes.
LINE_ITEM_CALCULATED = ("amount",)


def build_properties(
    stages: list[Stage], currencies: list[str], custom_fields: list[CustomFieldDef]
) -> dict[str, dict[str, PropDef]]:
    """Every object type's property definitions, built-in then custom."""
    out: dict[str, dict[str, PropDef]] = {}
    for object_type, specs in BUILTIN.items():
        group = GROUPS.get(object_type, f"{SINGULAR[object_type]}information")
        defs = {n: PropDef(n, t, options=o, group=group) for n, t, o in specs}
        if object_type not in ("line_items", "feedback_submissions"):
            defs.update({n: PropDef(n, t, options=o, group=group) for n, t, o in OWNED})
        for name in ("hs_object_id",):
            defs[name] = PropDef(name, N, read_only=True, group=group)
        defs[created_prop(object_type)] = PropDef(
            created_prop(object_type), DT, group=group, read_only=object_type in ENGAGEMENTS
        )
        defs[modified_prop(object_type)] = PropDef(
            modified_prop(object_type), DT, read_only=True, group=group
        )
        defs["hs_merged_object_ids"] = PropDef(
            "hs_merged_object_ids", S, read_only=True, group=group
        )
        if object_type in OWNER_DATED:
            defs[OWNER_ASSIGNED] = PropDef(
                OWNER_ASSIGNED, DT, label="Owner assigned date", read_only=True, group=group
            )
        if object_type == "deals":
            defs.update(
                {n: PropDef(n, t, read_only=True, group=group) for n, t, _ in DEAL_READ_ONLY}
            )
            defs["dealstage"].options = tuple(stage_id(s.key) for s in stages)
            defs["deal_currency_code"].options = tuple(currencies)
        if object_type == "line_items":
            for name in LINE_ITEM_CALCULATED:
                defs[name].read_only = True
        if object_type == "feedback_submissions":
            for definition in defs.values():
                definition.read_only = True
        out[object_type] = defs
    for custom in custom_fields:
        object_type = CUSTOM_ENTITY_TYPES[custom.entity]
        name = snake_case(custom.label)
        out[object_type][name] = PropDef(
            name,
            custom.type,
            label=custom.label,
            options=custom.options,
            hubspot_defined=False,
            group=GROUPS[object_type],
        )
    return out


def stage_id(key: str) -> str:
    """Neutral stage key -> HubSpot default-pipeline stage id ('closed_won' -> 'closedwon')."""
    return key.replace("_", "")


def pipeline_json(stages: list[Stage], created_at: str) -> dict[str, Any]:
    """The default deal pipeline in the pipelines API shape (metadata values are strings)."""
    return {
        "id": "default",
        "label": "Sales Pipeline",
        "displayOrder": 0,
        "archived": False,
        "createdAt": created_at,
        "updatedAt": created_at,
        "stages": [
            {
                "id": stage_id(s.key),
                "label": s.label,
                "displayOrder": s.order,
                "archived": False,
                "createdAt": created_at,
                "updatedAt": created_at,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                "metadata": {
                    "isClosed": "true" if s.is_closed else "false",
                    "probability": str(s.probability),
                },
            }
            for s in stages
        ],
    }


@dataclass(frozen=True)
class AssociationType:
    """One directed association type."""

    type_id: int
    name: str
    category: str = "HUBSPOT_DEFINED"


ASSOCIATION_IDS: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
    ("calls", "contacts"): 194,
    ("contacts", "calls"): 193,
    ("calls", "companies"): 182,
    ("companies", "calls"): 181,
    ("calls", "deals"): 206,
    ("deals", "calls"): 205,
    ("emails", "contacts"): 198,
    ("contacts", "emails"): 197,
    ("emails", "companies"): 186,
    ("companies", "emails"): 185,
    ("emails", "deals"): 210,
    ("deals", "emails"): 209,
    ("meetings", "contacts"): 200,
    ("contacts", "meetings"): 199,
    ("meetings", "companies"): 188,
    ("companies", "meetings"): 187,
    ("meetings", "deals"): 212,
    ("deals", "meetings"): 211,
    ("tasks", "contacts"): 204,
    ("contacts", "tasks"): 203,
    ("tasks", "companies"): 192,
    ("companies", "tasks"): 191,
    ("tasks", "deals"): 216,
    ("deals", "tasks"): 215,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "companies"): 190,
    ("companies", "notes"): 189,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
    ("feedback_submissions", "contacts"): 1002,
    ("contacts", "feedback_submissions"): 1001,
}


def association_type(from_type: str, to_type: str, type_id: int | None = None) -> AssociationType:
    """The default association type between two object types (or the one asked for)."""
    default = ASSOCIATION_IDS.get((from_type, to_type), 0)
    chosen = type_id if type_id is not None else default
    category = "HUBSPOT_DEFINED" if chosen == default else "USER_DEFINED"
    return AssociationType(chosen, f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}", category)


@dataclass
class Schema:
    """Property definitions per object type plus custom property groups."""

    properties: dict[str, dict[str, PropDef]]
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def prop(self, object_type: str, name: str) -> PropDef | None:
        """A property definition, or None when the property does not exist."""
        return self.properties[object_type].get(name)
