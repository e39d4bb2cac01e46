"""Translate the neutral synthetic org into the HubSpot emulator's truth (HubSpot shapes).

Ids are numeric strings derived from the neutral ids, one range per kind so nothing collides:
owners 70,000,000+rep, companies 10e9+account, contacts 20e9+contact, unconverted leads 30e9+lead
(a converted lead *is* its contact), deals 40e9+deal, engagements 50e9+activity,
line items 60e9+deal*10+index, feedback submissions 70e9+answer; records created through the
API get ids from 90e9 up. A record is a dict: id, properties (all strings or None), createdAt,
updatedAt, archived, archivedAt, associations {to_type: {to_id: typeId}} and
propertiesWithHistory {property: [entries, newest first]}.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from emulators.hubspot.schema import ASSOCIATION_IDS, snake_case, stage_id
from emulators.org.model import Activity, Contact, Deal, Lead, Org, Rep

Record = dict[str, Any]
Truth = dict[str, dict[str, Record]]
BASES = {
    "owner": 70_000_000,
    "company": 10**10,
    "contact": 2 * 10**10,
    "lead": 3 * 10**10,
    "deal": 4 * 10**10,
    "activity": 5 * 10**10,
    "line_item": 6 * 10**10,
    "feedback_submission": 7 * 10**10,
}
ALIASES = {
    "rep": "owner",
    "account": "company",
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "call": "activity",
    "email": "activity",
    "meeting": "activity",
    "task": "activity",
    "calls": "activity",
    "emails": "activity",
    "meetings": "activity",
    "tasks": "activity",
    "line_items": "line_item",
    "survey_answer": "feedback_submission",
    "feedback_submissions": "feedback_submission",
    "owners": "owner",
    "leads": "lead",
}
FIRST_API_ID = 9 * 10**10
USER_ID_BASE = 9_100_000
LEAD_STATUS = {
    "new": "NEW",
    "working": "IN_PROGRESS",
    "qualified": "CONNECTED",
    "unqualified": "UNQUALIFIED",
    "converted": "OPEN_DEAL",
}
COMPANY_TYPE = {
    "prospect": "PROSPECT",
    "customer": "CUSTOMER",
    "former_customer": "FORMER_CUSTOMER",
}
ENGAGEMENT_TYPE = {"call": "calls", "email": "emails", "meeting": "meetings", "task": "tasks"}


def base_id(kind: str, neutral_id: int) -> str:
    """The HubSpot id of a neutral record of `kind` (no lead-to-contact resolution)."""
    return str(BASES[ALIASES.get(kind, kind)] + neutral_id)


def iso(value: datetime) -> str:
    """UTC datetime -> '2026-10-31T12:00:00.000Z'."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_date(value: date) -> str:
    """A date as HubSpot returns date properties: midnight UTC."""
    return f"{value.isoformat()}T00:00:00.000Z"


def new_record(rid: str, props: dict[str, str | None], created: str, updated: str) -> Record:
    """A live record with no associations or history."""
    return {
        "id": rid,
        "properties": props,
        "createdAt": created,
        "updatedAt": updated,
        "archived": False,
        "archivedAt": None,
        "associations": {},
        "propertiesWithHistory": {},
    }


def link(truth: Truth, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
    """Associate two records both ways with the default type ids."""
    truth[a_type][a_id]["associations"].setdefault(b_type, {})[b_id] = ASSOCIATION_IDS[
        (a_type, b_type)
    ]
    truth[b_type][b_id]["associations"].setdefault(a_type, {})[a_id] = ASSOCIATION_IDS[
        (b_type, a_type)
    ]


def custom_props(custom: dict[str, str]) -> dict[str, str | None]:
    """Custom values keyed by label -> properties keyed by snake_case name."""
    return {snake_case(label): value for label, value in custom.items()}


def owner_json(rep: Rep, team_ids: dict[str, str]) -> dict[str, Any]:
    """A rep as an owner of the owners API (region is not an owner field)."""
    created = iso(rep.created_at)
    return {
        "id": base_id("owner", rep.id),
        "email": rep.email,
        "firstName": rep.first_name,
        "lastName": rep.last_name,
        "userId": USER_ID_BASE + rep.id,
        "userIdIncludingInactive": USER_ID_BASE + rep.id,
        "type": "PERSON",
        "teams": [{"id": team_ids[rep.team], "name": rep.team, "primary": True}],
        "createdAt": created,
        "updatedAt": created,
        "archived": not rep.active,
    }


def build_owners(org: Org) -> list[dict[str, Any]]:
    """All owners in id order."""
    team_ids = {name: str(1000 + i) for i, name in enumerate(sorted({r.team for r in org.reps}))}
    return [owner_json(rep, team_ids) for rep in org.reps]


def build_truth(org: Org, lead_contact: dict[int, int]) -> Truth:
    """Every HubSpot object of the org; `lead_contact` maps converted leads to their contacts."""
    truth: Truth = {
        t: {}
        for t in (
            "companies",
            "contacts",
            "deals",
            "calls",
            "emails",
            "meetings",
            "tasks",
            "notes",
            "line_items",
            "feedback_submissions",
        )
    }
    for acc in org.accounts:
        rid = base_id("company", acc.id)
        props: dict[str, str | None] = {
            "name": acc.name,
            "industry": acc.industry,
            "type": COMPANY_TYPE[acc.type],
            "country": acc.country,
            "state": acc.state,
            "city": acc.city,
            "hubspot_owner_id": base_id("owner", acc.owner_id),
            "createdate": iso(acc.created_at),
            "hubspot_owner_assigneddate": iso(acc.created_at),
            "hs_lastmodifieddate": iso(acc.modified_at),
            "hs_object_id": rid,
            **custom_props(acc.custom),
        }
        truth["companies"][rid] = new_record(
            rid, props, props["createdate"] or "", props["hs_lastmodifieddate"] or ""
        )
    add_contacts(truth, org, lead_contact)
    add_deals(truth, org)
    add_engagements(truth, org, lead_contact)
    add_feedback(truth, org)
    return truth


def contact_stages(org: Org) -> dict[int, str]:
    """Lifecycle stage per contact: customer accounts first, then open or past deals."""
    stage: dict[int, str] = {}
    for deal in org.deals:
        if deal.contact_id is not None:
            stage[deal.contact_id] = "opportunity"
    account_type = {a.id: a.type for a in org.accounts}
    for contact in org.contacts:
        if contact.account_id is not None and account_type[contact.account_id] == "customer":
            stage[contact.id] = "customer"
    return stage


def add_contacts(truth: Truth, org: Org, lead_contact: dict[int, int]) -> None:
    """Contacts, converted-lead contacts (with lead data) and unconverted leads as contacts."""
    stages = contact_stages(org)
    lead_of = {contact_id: lead_id for lead_id, contact_id in lead_contact.items()}
    leads = {lead.id: lead for lead in org.leads}
    for c in org.contacts:
        lead = leads.get(lead_of.get(c.id, 0))
        props = contact_props(c, stages.get(c.id, "salesqualifiedlead"), lead)
        rid = props["hs_object_id"] or ""
        truth["contacts"][rid] = new_record(rid, props, iso(c.created_at), iso(c.modified_at))
        if c.account_id is not None:
            link(truth, "contacts", rid, "companies", base_id("company", c.account_id))
    for lead in org.leads:
        if lead.id in lead_contact:
            continue
        props = lead_props(lead)
        rid = props["hs_object_id"] or ""
        truth["contacts"][rid] = new_record(rid, props, iso(lead.created_at), iso(lead.modified_at))


def contact_props(c: Contact, lifecycle: str, lead: Lead | None) -> dict[str, str | None]:
    """Properties of a contact; a converted lead's contact also carries the lead's data."""
    rid = base_id("contact", c.id)
    props: dict[str, str | None] = {
        "firstname": c.first_name,
        "lastname": c.last_name,
        "email": c.email,
        "phone": c.phone,
        "jobtitle": c.title,
        "hubspot_owner_id": base_id("owner", c.owner_id),
        "hubspot_owner_assigneddate": iso(c.created_at),
        "associatedcompanyid": base_id("company", c.account_id) if c.account_id else None,
        "lifecyclestage": lifecycle,
        "hs_analytics_source": c.lead_source,
        "createdate": iso(c.created_at),
        "lastmodifieddate": iso(c.modified_at),
        "hs_object_id": rid,
        **custom_props(c.custom),
    }
    if lead is not None:
        props["hs_lifecyclestage_lead_date"] = iso(lead.created_at)
        if lead.converted_at is not None:  # converting hands the lead to sales, a dated stage
            props["hs_lifecyclestage_salesqualifiedlead_date"] = iso(lead.converted_at)
        props["hs_analytics_source"] = lead.source
        props["hs_lead_status"] = LEAD_STATUS[lead.status]
    return props


def lead_props(lead: Lead) -> dict[str, str | None]:
    """Properties of an unconverted lead, which HubSpot keeps as a contact in stage 'lead'."""
    return {
        "firstname": lead.first_name,
        "lastname": lead.last_name,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "lifecyclestage": "lead",
        "hs_lead_status": LEAD_STATUS[lead.status],
        "hs_analytics_source": lead.source,
        "hs_lifecyclestage_lead_date": iso(lead.created_at),
        "hubspot_owner_id": base_id("owner", lead.owner_id),
        "hubspot_owner_assigneddate": iso(lead.created_at),
        "createdate": iso(lead.created_at),
        "lastmodifieddate": iso(lead.modified_at),
        "hs_object_id": base_id("lead", lead.id),
        **custom_props(lead.custom),
    }


def deal_props(d: Deal, probability: dict[str, str]) -> dict[str, str | None]:
    """Properties of a deal."""
    sid = stage_id(d.stage)
    return {
        "dealname": d.name,
        "amount": None if d.amount is None else str(d.amount),
        "deal_currency_code": d.currency,
        "dealstage": sid,
        "pipeline": "default",
        "closedate": iso_date(d.close_date),
        "createdate": iso(d.created_at),
        "hs_lastmodifieddate": iso(d.modified_at),
        "hubspot_owner_id": base_id("owner", d.owner_id),
        "hubspot_owner_assigneddate": iso(d.owner_history[-1].at),
        "dealtype": "newbusiness" if d.deal_type == "new" else "existingbusiness",
        "closed_lost_reason": d.loss_reason,
        "hs_is_closed": "true" if sid in ("closedwon", "closedlost") else "false",
        "hs_is_closed_won": "true" if sid == "closedwon" else "false",
        "hs_deal_stage_probability": probability[sid],
        "hs_object_id": base_id("deal", d.id),
        **custom_props(d.custom),
    }


def deal_history(d: Deal) -> dict[str, list[dict[str, Any]]]:
    """dealstage and hubspot_owner_id history, newest first as HubSpot returns it."""
    user = str(USER_ID_BASE + d.owner_history[0].owner_id)
    stages = [
        {
            "value": stage_id(c.stage),
            "timestamp": iso(c.at),
            "sourceType": "CRM_UI",
            "sourceId": f"userId:{user}",
            "updatedByUserId": int(user),
        }
        for c in reversed(d.stage_history)
    ]
    owners = [
        {
            "value": base_id("owner", c.owner_id),
            "timestamp": iso(c.at),
            "sourceType": "CRM_UI",
            "sourceId": f"userId:{user}",
            "updatedByUserId": int(user),
        }
        for c in reversed(d.owner_history)
    ]
    return {"dealstage": stages, "hubspot_owner_id": owners}


def add_deals(truth: Truth, org: Org) -> None:
    """Deals with stage/owner history, their line items and associations."""
    probability = {stage_id(s.key): str(s.probability) for s in org.stages}
    for d in org.deals:
        props = deal_props(d, probability)
        rid = props["hs_object_id"] or ""
        record = new_record(rid, props, iso(d.created_at), iso(d.modified_at))
        record["propertiesWithHistory"] = deal_history(d)
        truth["deals"][rid] = record
        link(truth, "deals", rid, "companies", base_id("company", d.account_id))
        if d.contact_id is not None:
            link(truth, "deals", rid, "contacts", base_id("contact", d.contact_id))
        for index, item in enumerate(d.line_items):
            lid = base_id("line_item", d.id * 10 + index)
            price = str(item.unit_price)
            truth["line_items"][lid] = new_record(
                lid,
                {
                    "name": item.product,
                    "quantity": str(item.quantity),
                    "price": price,
                    "amount": str(item.unit_price * item.quantity),
                    "hs_product_id": str(1000 + sum(map(ord, item.product))),
                    "hs_createdate": iso(d.created_at),
                    "hs_lastmodifieddate": iso(d.created_at),
                    "hs_object_id": lid,
                },
                iso(d.created_at),
                iso(d.created_at),
            )
            link(truth, "line_items", lid, "deals", rid)


def engagement_props(a: Activity) -> dict[str, str | None]:
    """Type-specific properties of a call, email, meeting or task."""
    done = a.status == "completed"
    if a.kind == "call":
        return {
            "hs_call_direction": "INBOUND" if a.direction == "inbound" else "OUTBOUND",
            "hs_call_duration": str(a.duration_seconds * 1000),
            "hs_call_title": a.subject,
            "hs_call_status": "COMPLETED" if done else "QUEUED",
        }
    if a.kind == "email":
        return {
            "hs_email_direction": "INCOMING_EMAIL" if a.direction == "inbound" else "EMAIL",
            "hs_email_subject": a.subject,
            "hs_email_status": "SENT",
        }
    if a.kind == "meeting":
        end = a.occurred_at + timedelta(seconds=a.duration_seconds)
        return {
            "hs_meeting_title": a.subject,
            "hs_meeting_start_time": iso(a.occurred_at),
            "hs_meeting_end_time": iso(end),
            "hs_meeting_outcome": "COMPLETED" if done else "SCHEDULED",
        }
    return {
        "hs_task_subject": a.subject,
        "hs_task_status": "COMPLETED" if done else "NOT_STARTED",
        "hs_task_type": ("CALL", "EMAIL", "TODO")[a.id % 3],
        "hs_task_priority": "MEDIUM",
    }


def add_engagements(truth: Truth, org: Org, lead_contact: dict[int, int]) -> None:
    """Activities as calls/emails/meetings/tasks associated to contacts, deals and companies."""
    for a in org.activities:
        object_type = ENGAGEMENT_TYPE[a.kind]
        rid = base_id("activity", a.id)
        at = iso(a.occurred_at)
        created = at if a.created_at == a.occurred_at else iso(a.created_at)
        modified = iso(a.modified_at)
        props: dict[str, str | None] = {
            "hs_timestamp": at,
            "hubspot_owner_id": base_id("owner", a.owner_id),
            "hs_createdate": created,
            "hs_lastmodifieddate": modified,
            "hs_object_id": rid,
            **engagement_props(a),
        }
        truth[object_type][rid] = new_record(rid, props, created, modified)
        contact = None
        if a.contact_id is not None:
            contact = base_id("contact", a.contact_id)
        elif a.lead_id is not None:
            converted = lead_contact.get(a.lead_id)
            contact = base_id("contact", converted) if converted else base_id("lead", a.lead_id)
        if contact is not None:
            link(truth, object_type, rid, "contacts", contact)
        if a.deal_id is not None:
            link(truth, object_type, rid, "deals", base_id("deal", a.deal_id))
        if a.account_id is not None:
            link(truth, object_type, rid, "companies", base_id("company", a.account_id))


def add_feedback(truth: Truth, org: Org) -> None:
    """NPS answers as feedback submissions (eNPS answers are not in HubSpot)."""
    for answer in org.survey_answers:
        if answer.kind != "nps" or answer.respondent_contact_id is None:
            continue
        rid = base_id("feedback_submission", answer.id)
        contact = base_id("contact", answer.respondent_contact_id)
        at = iso(answer.answered_at)
        sentiment = (
            "Promoter" if answer.score >= 9 else "Passive" if answer.score >= 7 else "Detractor"
        )
        truth["feedback_submissions"][rid] = new_record(
            rid,
            {
                "hs_survey_type": "NPS",
                "hs_response_value": str(answer.score),
                "hs_submission_timestamp": at,
                "hs_contact_id": contact,
                "hs_sentiment": sentiment,
                "hs_survey_channel": "EMAIL",
                "hs_createdate": at,
                "hs_lastmodifieddate": iso(answer.modified_at),
                "hs_object_id": rid,
            },
            at,
            iso(answer.modified_at),
        )
        link(truth, "feedback_submissions", rid, "contacts", contact)
