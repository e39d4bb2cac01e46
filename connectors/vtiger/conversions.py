"""Telling a converted Vtiger lead from a deleted one, as far as the webservice lets a client.

Converting a lead (web UI; the webservice's convertlead fails on stock 8.2) sets
vtiger_leaddetails.converted = 1 and the lead's modifiedtime to the moment of conversion, and
creates a contact, an account and optionally a deal, each with isconvertedfromlead = 1. VTQL then
hides the lead like a deleted one, but `retrieve` still answers it, while a deleted record's
retrieve is ACCESS_DENIED. So a lead missing from the id listing that still retrieves was
converted, at its modifiedtime. Nothing links the new records to the lead: they are matched by
the conversion's second (created at most a minute before the lead's modifiedtime), the lead's
email or last name, and the contact's account. What cannot be known: see
docs/decisions/vtiger-lead-conversion.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.vtiger.client import VtigerFailure
from connectors.vtiger.values import instant, stamp

Call = Callable[..., Any]
Query = Callable[[str], list[dict[str, Any]]]
WINDOW_SECONDS = 60  # the records a conversion made are created before it stamps the lead
GONE = frozenset({"ACCESS_DENIED", "INVALID_ID_ATTRIBUTE", "RECORD_NOT_FOUND"})


def converted_leads(
    call: Call, query: Query, ids: list[str], zone: ZoneInfo
) -> dict[str, dict[str, Any]]:
    """Store values (is_converted, converted_at, converted_*_id) of the leads among `ids` that
    were converted; the others are gone (deleted, purged) and are left out."""
    found: dict[str, dict[str, Any]] = {}
    for ws_id in ids:
        try:
            lead = call("retrieve", id=ws_id)
        except VtigerFailure as error:
            if error.code in GONE:
                continue
            raise
        at = instant(lead.get("modifiedtime"), zone)
        if at is None:
            continue
        found[ws_id] = {
            "is_converted": True,
            "converted_at": at,
            **made_by_conversion(query, lead, at, zone),
        }
    return found


def made_by_conversion(
    query: Query, lead: dict[str, Any], at: datetime, zone: ZoneInfo
) -> dict[str, str | None]:
    """The contact, account and deal the conversion of `lead` (at `at`) most likely made."""
    end = int(at.timestamp())
    window = (
        f"isconvertedfromlead = '1' AND createdtime >= "
        f"'{stamp(end - WINDOW_SECONDS, zone)}' AND createdtime <= '{stamp(end, zone)}'"
    )
    email = str(lead.get("email") or "").lower()
    last = str(lead.get("lastname") or "").lower()
    contacts = query(f"SELECT id, email, lastname, account_id FROM Contacts WHERE {window};")
    contact = next(
        (c for c in contacts if email and str(c.get("email") or "").lower() == email), None
    ) or next((c for c in contacts if last and str(c.get("lastname") or "").lower() == last), None)
    account = str(contact.get("account_id") or "") if contact else ""
    if not account and lead.get("company"):
        company = str(lead["company"]).lower()
        account = next(
            (
                str(a["id"])
                for a in query(f"SELECT id, accountname FROM Accounts WHERE {window};")
                if str(a.get("accountname") or "").lower() == company
            ),
            "",
        )
    contact_id = str(contact["id"]) if contact else ""
    deals = (
        query(f"SELECT id, contact_id, related_to FROM Potentials WHERE {window};")
        if contact_id or account
        else []
    )
    deal = next(
        (
            str(d["id"])
            for d in deals
            if (contact_id and d.get("contact_id") == contact_id)
            or (account and d.get("related_to") == account)
        ),
        "",
    )
    return {
        "converted_contact_id": contact_id or None,
        "converted_account_id": account or None,
        "converted_deal_id": deal or None,
    }
