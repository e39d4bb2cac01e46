"""Salesforce emulator schema: sObjects, their fields (describe shapes), key prefixes and ids.

Ids are real-looking 18-character ids: the 3-character key prefix of the object (001 Account,
003 Contact, 005 User, 006 Opportunity, 00Q Lead, 00T Task, 00U Event, ...), the pod "5g", a
reserved "0", nine base-62 digits, and the 3-character case-checksum suffix Salesforce computes.
Base-62 digits run 0-9A-Za-z, so ids sort as strings in creation order within an object.
Custom fields are named from the org's labels as Salesforce does ('Deal category' ->
Deal_category__c); the NPS answers live in the custom object NPS_Response__c.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from emulators.org.model import CustomFieldDef, Stage

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "OpportunityHistory": "008",
    "UserRole": "00E",
    "OpportunityLineItem": "00k",
    "Lead": "00Q",
    "Task": "00T",
    "Event": "00U",
    "Product2": "01t",
    "OpportunityStage": "01J",
    "NPS_Response__c": "a0N",
    "Organization": "00D",
    "OpportunityFieldHistory": "017",
    "CurrencyType": "01L",
    "DatedConversionRate": "04w",
    "ForecastingQuota": "0J9",
}
FIELD_HISTORY = "OpportunityFieldHistory"  # exists only while field-history tracking is on
SURVEY_OBJECT = "NPS_Response__c"
# Exist only when the org has them: CurrencyType with multi-currency, DatedConversionRate with
# advanced currency management, ForecastingQuota with Collaborative Forecasts (emulator choice: an
# org without CRM rates or quotas serves none of them).
CURRENCY_TYPE, DATED_RATE, FORECAST_QUOTA = (
    "CurrencyType",
    "DatedConversionRate",
    "ForecastingQuota",
)
OPTIONAL = (CURRENCY_TYPE, DATED_RATE, FORECAST_QUOTA)
SYSTEM = [
    ("Id", "id", "Record ID"),
    ("IsDeleted", "boolean", "Deleted"),
    ("CreatedDate", "datetime", "Created Date"),
    ("CreatedById", "reference", "Created By ID"),
    ("LastModifiedDate", "datetime", "Last Modified Date"),
    ("LastModifiedById", "reference", "Last Modified By ID"),
    ("SystemModstamp", "datetime", "System Modstamp"),
]
S, P, R, D, DT, B, C, N, PC, INT = (
    "string",
    "picklist",
    "reference",
    "date",
    "datetime",
    "boolean",
    "currency",
    "double",
    "percent",
    "int",
)
# name, type, label, updateable, referenceTo
STANDARD: dict[str, list[tuple[str, str, str, bool, str]]] = {
    "User": [
        ("Username", S, "Username", True, ""),
        ("FirstName", S, "First Name", True, ""),
        ("LastName", S, "Last Name", True, ""),
        ("Name", S, "Full Name", False, ""),
        ("Email", "email", "Email", True, ""),
        ("IsActive", B, "Active", True, ""),
        ("UserRoleId", R, "Role ID", True, "UserRole"),
        ("ManagerId", R, "Manager ID", True, "User"),
        ("Start_Date__c", D, "Start Date", True, ""),
        ("TimeZoneSidKey", P, "Time Zone", True, ""),
    ],
    "UserRole": [
        ("Name", S, "Name", True, ""),
        ("ParentRoleId", R, "Parent Role ID", True, "UserRole"),
    ],
    "Account": [
        ("Name", S, "Account Name", True, ""),
        ("Type", P, "Account Type", True, ""),
        ("Industry", P, "Industry", True, ""),
        ("BillingCountry", S, "Billing Country", True, ""),
        ("BillingState", S, "Billing State/Province", True, ""),
        ("BillingCity", S, "Billing City", True, ""),
        ("OwnerId", R, "Owner ID", True, "User"),
        ("ParentId", R, "Parent Account ID", True, "Account"),
        ("MasterRecordId", R, "Master Record ID", False, "Account"),
    ],
    "Contact": [
        ("FirstName", S, "First Name", True, ""),
        ("LastName", S, "Last Name", True, ""),
        ("Name", S, "Full Name", False, ""),
        ("Email", "email", "Email", True, ""),
        ("Phone", "phone", "Business Phone", True, ""),
        ("Title", S, "Title", True, ""),
        ("AccountId", R, "Account ID", True, "Account"),
        ("OwnerId", R, "Owner ID", True, "User"),
        ("LeadSource", P, "Lead Source", True, ""),
        ("MasterRecordId", R, "Master Record ID", False, "Contact"),
    ],
    "Lead": [
        ("FirstName", S, "First Name", True, ""),
        ("LastName", S, "Last Name", True, ""),
        ("Name", S, "Full Name", False, ""),
        ("Email", "email", "Email", True, ""),
        ("Phone", "phone", "Phone", True, ""),
        ("Company", S, "Company", True, ""),
        ("Status", P, "Status", True, ""),
        ("LeadSource", P, "Lead Source", True, ""),
        ("OwnerId", R, "Owner ID", True, "User"),
        ("IsConverted", B, "Converted", False, ""),
        ("ConvertedDate", D, "Converted Date", False, ""),
        ("ConvertedAccountId", R, "Converted Account ID", False, "Account"),
        ("ConvertedContactId", R, "Converted Contact ID", False, "Contact"),
        ("ConvertedOpportunityId", R, "Converted Opportunity ID", False, "Opportunity"),
        ("MasterRecordId", R, "Master Record ID", False, "Lead"),
    ],
    "Opportunity": [
        ("Name", S, "Name", True, ""),
        ("AccountId", R, "Account ID", True, "Account"),
        ("ContactId", R, "Contact ID", True, "Contact"),
        ("OwnerId", R, "Owner ID", True, "User"),
        ("StageName", P, "Stage", True, ""),
        ("Amount", C, "Amount", True, ""),
        ("CurrencyIsoCode", P, "Opportunity Currency", True, ""),
        ("Probability", PC, "Probability (%)", True, ""),
        ("CloseDate", D, "Close Date", True, ""),
        ("Type", P, "Opportunity Type", True, ""),
        ("LeadSource", P, "Lead Source", True, ""),
        ("IsClosed", B, "Closed", False, ""),
        ("IsWon", B, "Won", False, ""),
        ("ForecastCategoryName", P, "Forecast Category", True, ""),
    ],
    "OpportunityHistory": [
        ("OpportunityId", R, "Opportunity ID", False, "Opportunity"),
        ("StageName", P, "Stage Name", False, ""),
        ("Amount", C, "Amount", False, ""),
        ("CloseDate", D, "Close Date", False, ""),
        ("Probability", PC, "Probability (%)", False, ""),
    ],
    FIELD_HISTORY: [
        ("OpportunityId", R, "Opportunity ID", False, "Opportunity"),
        ("Field", P, "Changed Field", False, ""),
        ("DataType", P, "Data Type", False, ""),
        ("OldValue", "anyType", "Old Value", False, ""),
        ("NewValue", "anyType", "New Value", False, ""),
    ],
    "OpportunityLineItem": [
        ("OpportunityId", R, "Opportunity ID", False, "Opportunity"),
        ("Product2Id", R, "Product ID", False, "Product2"),
        ("ProductCode", S, "Product Code", False, ""),
        ("Name", S, "Opportunity Product Name", False, ""),
        ("Quantity", N, "Quantity", True, ""),
        ("UnitPrice", C, "Sales Price", True, ""),
        ("TotalPrice", C, "Total Price", True, ""),
    ],
    "OpportunityStage": [
        ("MasterLabel", S, "Master Label", False, ""),
        ("ApiName", S, "Api Name", False, ""),
        ("IsActive", B, "Is Active", False, ""),
        ("IsClosed", B, "Closed", False, ""),
        ("IsWon", B, "Won", False, ""),
        ("DefaultProbability", PC, "Probability (%)", False, ""),
        ("ForecastCategoryName", P, "Forecast Category", False, ""),
        ("SortOrder", INT, "Sort Order", False, ""),
    ],
    "Task": [
        ("Subject", "combobox", "Subject", True, ""),
        ("Status", P, "Status", True, ""),
        ("Priority", P, "Priority", True, ""),
        ("ActivityDate", D, "Due Date Only", True, ""),
        ("TaskSubtype", P, "Task Subtype", False, ""),
        ("Type", P, "Type", True, ""),
        ("CallDurationInSeconds", INT, "Call Duration", True, ""),
        ("CallType", P, "Call Type", True, ""),
        ("WhoId", R, "Name ID", True, "Contact,Lead"),
        ("WhatId", R, "Related To ID", True, "Account,Opportunity"),
        ("AccountId", R, "Account ID", False, "Account"),
        ("OwnerId", R, "Assigned To ID", True, "User"),
        ("IsClosed", B, "Closed", False, ""),
        ("CompletedDateTime", DT, "Completed Date/Time", False, ""),
    ],
    "Event": [
        ("Subject", "combobox", "Subject", True, ""),
        ("StartDateTime", DT, "Start Date Time", True, ""),
        ("EndDateTime", DT, "End Date Time", True, ""),
        ("ActivityDateTime", DT, "Due Date Time", True, ""),
        ("DurationInMinutes", INT, "Duration", True, ""),
        ("EventSubtype", P, "Event Subtype", False, ""),
        ("Type", P, "Type", True, ""),
        ("WhoId", R, "Name ID", True, "Contact,Lead"),
        ("WhatId", R, "Related To ID", True, "Account,Opportunity"),
        ("AccountId", R, "Account ID", False, "Account"),
        ("OwnerId", R, "Assigned To ID", True, "User"),
    ],
    SURVEY_OBJECT: [
        ("Name", S, "Response Number", False, ""),
        ("Score__c", N, "Score", True, ""),
        ("Contact__c", R, "Contact", True, "Contact"),
        ("Account__c", R, "Account", True, "Account"),
        ("Answered_At__c", DT, "Answered At", True, ""),
        ("Survey_Type__c", P, "Survey Type", True, ""),
    ],
    CURRENCY_TYPE: [
        ("IsoCode", P, "Currency ISO Code", True, ""),
        ("ConversionRate", N, "Conversion Rate", True, ""),
        ("DecimalPlaces", INT, "Decimal Places", True, ""),
        ("IsActive", B, "Active", True, ""),
        ("IsCorporate", B, "Corporate", False, ""),
    ],
    DATED_RATE: [
        ("IsoCode", P, "Currency ISO Code", True, ""),
        ("ConversionRate", N, "Conversion Rate", True, ""),
        ("StartDate", D, "Start Date", True, ""),
        ("NextStartDate", D, "Next Start Date", False, ""),
    ],
    FORECAST_QUOTA: [
        ("QuotaOwnerId", R, "Quota Owner ID", True, "User"),
        ("StartDate", D, "Start Date", True, ""),
        ("QuotaAmount", C, "Quota Amount", True, ""),
        ("QuotaQuantity", N, "Quota Quantity", True, ""),
        ("IsAmount", B, "Is Amount", False, ""),
        ("IsQuantity", B, "Is Quantity", False, ""),
        ("ForecastingTypeId", R, "Forecasting Type ID", True, "ForecastingType"),
        ("PeriodId", R, "Period ID", False, "Period"),
        ("CurrencyIsoCode", P, "Currency ISO Code", True, ""),
    ],
}
EXTRA_CUSTOM = {"Opportunity": [("Loss_Reason__c", P, "Loss Reason", True, "")]}
CUSTOM_ENTITY = {"account": "Account", "contact": "Contact", "lead": "Lead", "deal": "Opportunity"}
TYPE_OF = {"string": S, "number": N, "date": D, "enumeration": P, "bool": B}
# compound field types -> their components (custom ones are named <base>__<Part>__s)
COMPOUND_PARTS = {
    "location": {"Latitude": N, "Longitude": N},
    "address": {"Street": "textarea", "City": S, "PostalCode": S, "State": S, "Country": S},
}
# standard compound addresses: object -> the prefixes of its addresses ("" for Lead and User,
# whose `Address` has components Street, City, ...); each is an `address` of these components
STANDARD_ADDRESSES = {
    "Account": ("Billing", "Shipping"),
    "Contact": ("Mailing", "Other"),
    "Lead": ("",),
    "User": ("",),
}
ADDRESS_PARTS = {
    "Street": "textarea",
    "City": S,
    "State": S,
    "PostalCode": S,
    "Country": S,
    "Latitude": N,
    "Longitude": N,
    "GeocodeAccuracy": P,
}
NO_LAST_MODIFIED = {"OpportunityHistory", FIELD_HISTORY}  # history rows are never modified
NO_SYSTEM_MODSTAMP = {FIELD_HISTORY}  # field history has CreatedDate as its only timestamp
NO_IS_DELETED = set(OPTIONAL)  # setup-like objects: never in the recycle bin


def api_name(label: str) -> str:
    """'Deal category' -> 'Deal_category__c', as Salesforce derives a custom field's name."""
    return re.sub(r"[^0-9A-Za-z]+", "_", label).strip("_") + "__c"


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(DIGITS[rest])
    return "".join(reversed(digits))


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique."""
    out = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        out += SUFFIX[bits]
    return out


def make_id(sobject: str, number: int) -> str:
    """The 18-character id of the `number`-th record of `sobject`."""
    id15 = f"{PREFIXES[sobject]}5g0{base62(number, 9)}"
    return id15 + checksum(id15)


def object_of(record_id: str) -> str | None:
    prefix = record_id[:3]
    return next((name for name, known in PREFIXES.items() if known == prefix), None)


@dataclass
class FieldDef:
    name: str
    type: str
    label: str
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    picklist: tuple[str, ...] = ()
    compound_of: str | None = None  # a component's compound field (address, geolocation)

    def describe(self) -> dict[str, Any]:
        system = self.name in (
            "Id",
            "IsDeleted",
            "CreatedDate",
            "CreatedById",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        )
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "custom": self.custom,
            "createable": self.updateable and not system,
            "updateable": self.updateable and not system,
            "nillable": self.name not in ("Id", "Name", "LastName", "StageName", "CloseDate"),
            "length": 255 if self.type in (S, P, "email", "phone", "combobox") else 0,
            "precision": 18 if self.type in (C, N, PC) else 0,
            "scale": 2 if self.type in (C, N, PC) else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": (
                self.name[:-2] if self.name.endswith("Id") else self.name.replace("__c", "__r")
            )
            if self.reference_to
            else None,
            "calculated": not self.updateable and not system and self.type not in COMPOUND_PARTS,
            "defaultValue": None,
            "compoundFieldName": self.compound_of,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
        }


@dataclass
class ObjectDef:
    name: str
    label: str
    fields: dict[str, FieldDef]
    custom: bool = False
    lower: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lower = {name.lower(): name for name in self.fields}

    def add(self, definition: FieldDef) -> None:
        self.fields[definition.name] = definition
        self.lower[definition.name.lower()] = definition.name

    def describe(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "custom": self.custom,
            "keyPrefix": PREFIXES[self.name],
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "retrieveable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [],
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }


class Schema:
    """Every sObject of the emulated org; also the SOQL parser's catalog."""

    def __init__(
        self,
        stages: list[Stage],
        currencies: list[str],
        custom_fields: list[CustomFieldDef],
        field_history: bool = True,
        optional: tuple[str, ...] = (),
    ) -> None:
        self.objects: dict[str, ObjectDef] = {}
        for name, specs in STANDARD.items():
            if name == FIELD_HISTORY and not field_history:
                continue
            if name in OPTIONAL and name not in optional:
                continue
            defs = {n: FieldDef(n, t, label) for n, t, label in SYSTEM}
            if name in NO_LAST_MODIFIED:
                defs.pop("LastModifiedDate")
                defs.pop("LastModifiedById")
            if name in NO_SYSTEM_MODSTAMP:
                defs.pop("SystemModstamp")
            if name in NO_IS_DELETED:
                defs.pop("IsDeleted")
            for n, t, label, updateable, refs in specs + EXTRA_CUSTOM.get(name, []):
                defs[n] = FieldDef(
                    n,
                    t,
                    label,
                    updateable,
                    tuple(r for r in refs.split(",") if r),
                    custom=n.endswith("__c"),
                )
            label = (
                "NPS Response" if name == SURVEY_OBJECT else re.sub(r"(?<!^)([A-Z])", r" \1", name)
            )
            self.objects[name] = ObjectDef(name, label, defs, custom=name.endswith("__c"))
        self.lower = {name.lower(): name for name in self.objects}
        add_standard_addresses(self.objects)
        for custom in custom_fields:
            obj = self.objects[CUSTOM_ENTITY[custom.entity]]
            obj.add(
                FieldDef(
                    api_name(custom.label),
                    TYPE_OF[custom.type],
                    custom.label,
                    custom=True,
                    picklist=custom.options,
                )
            )
        self.objects["Opportunity"].fields["StageName"].picklist = tuple(s.label for s in stages)
        self.objects["Opportunity"].fields["CurrencyIsoCode"].picklist = tuple(currencies)

    # --- the SOQL catalog --------------------------------------------------------------------------
    def sobject_name(self, name: str) -> str | None:
        return self.lower.get(name.lower())

    def field_of(self, sobject: str, name: str) -> tuple[str, str] | None:
        obj = self.objects[sobject]
        real = obj.lower.get(name.lower())
        return (real, obj.fields[real].type) if real else None

    def compound_parts(self, sobject: str) -> dict[str, dict[str, str]]:
        """Compound field -> {its REST key (latitude, postalCode, ...): its component field}."""
        parts: dict[str, dict[str, str]] = {}
        for name, definition in self.objects[sobject].fields.items():
            compound = definition.compound_of
            if compound is not None:
                prefix = (
                    compound.removesuffix("__c") + "__"
                    if compound.endswith("__c")
                    else compound.removesuffix("Address")
                )  # BillingAddress: BillingCity
                key = name.removeprefix(prefix).removesuffix("__s")
                parts.setdefault(compound, {})[key[0].lower() + key[1:]] = name
        return parts

    def kinds(self, sobject: str) -> dict[str, str]:
        return {n: f.type for n, f in self.objects[sobject].fields.items()}


def add_standard_addresses(objects: dict[str, ObjectDef]) -> None:
    """Account's Billing and Shipping, Contact's Mailing and Other, Lead's and User's Address:
    read-only compound fields of their (writable) components."""
    for sobject, prefixes in STANDARD_ADDRESSES.items():
        obj = objects.get(sobject)
        if obj is None:
            continue
        for prefix in prefixes:
            compound = f"{prefix}Address"
            words = f"{prefix} " if prefix else ""
            obj.add(FieldDef(compound, "address", f"{words}Address", updateable=False))
            for part, kind in ADDRESS_PARTS.items():
                label = re.sub(r"(?<!^)([A-Z])", r" \1", part)
                existing = obj.fields.get(prefix + part)
                obj.add(
                    FieldDef(
                        prefix + part,
                        kind,
                        existing.label if existing else f"{words}{label}",
                        compound_of=compound,
                    )
                )
