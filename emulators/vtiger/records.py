"""Translate the neutral synthetic org into the Vtiger emulator's truth.

Every CRM record is an `Entity`: its module, crmid (one sequence across entity modules, as
vtiger_crmentity has), field values exactly as the database would hold them (strings; '' for
empty; references in webservice form '11x42'; amounts with 8 decimals; dates 'YYYY-MM-DD'),
created and modified instants in whole unix seconds, and the deleted and (Leads) converted flags.
Users are `Entity`s of module Users with ids 1 (the admin) and rep id + 1.
Activities: tasks go to Calendar, calls, meetings and emails to Events ('Email' being an
activity type this org's admin added). A converted lead stays as a hidden row (converted=1), its
activities moved to its contact as Vtiger's conversion does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from emulators.org.model import Activity, Org
from emulators.vtiger.schema import PREFIX, SURVEY_MODULE, Schema, stage_label

ACCOUNT_TYPE = {
    "prospect": "Prospect",
    "customer": "Customer",
    "former_customer": "Former Customer",
}
LEAD_STATUS = {
    "new": "Not Contacted",
    "working": "Attempted to Contact",
    "qualified": "Qualified",
    "unqualified": "Junk Lead",
    "converted": "Qualified",
}
ADMIN_ID = 1
UTC_ZONE = ZoneInfo("UTC")


@dataclass
class Entity:
    module: str
    crmid: int
    fields: dict[str, str]
    created: int
    modified: int
    deleted: bool = False
    converted: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # emulator bookkeeping, never served

    @property
    def ws_id(self) -> str:
        return f"{PREFIX[self.module]}x{self.crmid}"

    @property
    def live(self) -> bool:
        return not self.deleted and not self.converted

    @property
    def owner(self) -> str:
        return self.fields.get("assigned_user_id", "")


Truth = dict[str, dict[int, Entity]]  # module -> crmid -> entity


def unix(value: datetime) -> int:
    return int(value.timestamp())


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.8f}"


def user_ws(rep_id: int) -> str:
    return f"{PREFIX['Users']}x{rep_id + 1}"


class IdBook:
    """Neutral id -> crmid per kind, allocated in one sequence."""

    def __init__(self) -> None:
        self.next = 100
        self.ids: dict[tuple[str, int], int] = {}

    def give(self, kind: str, neutral: int) -> int:
        crmid = self.next
        self.next += 1
        self.ids[(kind, neutral)] = crmid
        return crmid

    def ws(self, kind: str, neutral: int | None) -> str:
        if neutral is None:
            return ""
        module = {
            "account": "Accounts",
            "contact": "Contacts",
            "lead": "Leads",
            "deal": "Potentials",
        }[kind]
        return f"{PREFIX[module]}x{self.ids[(kind, neutral)]}"


def build_truth(
    org: Org, schema: Schema, admin_since: int, zone: ZoneInfo = UTC_ZONE
) -> tuple[Truth, IdBook]:
    truth: Truth = {m: {} for m in schema.fields}
    book = IdBook()
    add_users(truth, org, admin_since)
    for acc in org.accounts:
        crmid = book.give("account", acc.id)
        values = {
            "accountname": acc.name,
            "account_no": f"ACC{crmid}",
            "account_id": "",
            "industry": acc.industry,
            "accounttype": ACCOUNT_TYPE[acc.type],
            "bill_country": acc.country,
            "bill_state": acc.state,
            "bill_city": acc.city,
            "assigned_user_id": user_ws(acc.owner_id),
        }
        put(truth, schema, "Accounts", crmid, values, acc.custom, acc.created_at, acc.modified_at)
    converted_contacts = {
        lead.converted_contact_id for lead in org.leads if lead.converted_contact_id is not None
    }
    for c in org.contacts:
        crmid = book.give("contact", c.id)
        values = {
            "firstname": c.first_name,
            "lastname": c.last_name,
            "contact_no": f"CON{crmid}",
            "account_id": book.ws("account", c.account_id),
            "email": c.email,
            "phone": c.phone,
            "title": c.title,
            "leadsource": c.lead_source,
            "mailingcountry": "",
            "isconvertedfromlead": "1" if c.id in converted_contacts else "0",
            "assigned_user_id": user_ws(c.owner_id),
        }
        put(truth, schema, "Contacts", crmid, values, c.custom, c.created_at, c.modified_at)
    for lead in org.leads:
        crmid = book.give("lead", lead.id)
        values = {
            "firstname": lead.first_name,
            "lastname": lead.last_name,
            "lead_no": f"LEA{crmid}",
            "company": lead.company,
            "email": lead.email,
            "phone": lead.phone,
            "leadsource": lead.source,
            "leadstatus": LEAD_STATUS[lead.status],
            "assigned_user_id": user_ws(lead.owner_id),
        }
        entity = put(
            truth, schema, "Leads", crmid, values, lead.custom, lead.created_at, lead.modified_at
        )
        entity.converted = lead.converted_at is not None
    add_potentials(truth, schema, org, book)
    lead_contact = {
        lead.id: lead.converted_contact_id
        for lead in org.leads
        if lead.converted_contact_id is not None
    }
    for activity in org.activities:
        add_activity(truth, schema, book, lead_contact, activity, zone)
    add_answers(truth, schema, org, book, zone)
    return truth, book


def put(
    truth: Truth,
    schema: Schema,
    module: str,
    crmid: int,
    values: dict[str, str],
    custom: dict[str, str],
    created: datetime,
    modified: datetime,
) -> Entity:
    for label, value in custom.items():
        values[schema.cf(module, label)] = value
    for name, definition in schema.fields[module].items():
        if definition.type == "boolean" and name not in values:
            values[name] = "0"  # a checkbox column defaults to 0: Vtiger has no empty checkbox
        elif definition.editable and name not in values:
            values[name] = ""
    values["modifiedby"] = f"{PREFIX['Users']}x{ADMIN_ID}"
    values["source"] = "CRM"
    entity = Entity(module, crmid, values, unix(created), max(unix(created), unix(modified)))
    truth[module][crmid] = entity
    return entity


def add_users(truth: Truth, org: Org, admin_since: int) -> None:
    admin = {
        "user_name": "admin",
        "first_name": "",
        "last_name": "Administrator",
        "email1": "admin@kpisync-demo.example",
        "status": "Active",
        "is_admin": "on",
        "department": "",
        "title": "",
        "reports_to_id": "",
        "time_zone": "UTC",
        "date_entered": "",
    }
    truth["Users"][ADMIN_ID] = Entity("Users", ADMIN_ID, admin, admin_since, admin_since)
    for rep in org.reps:
        values = {
            "user_name": rep.email.split("@")[0],
            "first_name": rep.first_name,
            "last_name": rep.last_name,
            "email1": rep.email,
            "status": "Active" if rep.active else "Inactive",
            "is_admin": "off",
            "department": rep.team,
            "title": "Sales Manager" if rep.manager_id is None else "Sales Rep",
            "reports_to_id": user_ws(rep.manager_id) if rep.manager_id else "",
            "time_zone": "UTC",
            "date_entered": "",
        }
        truth["Users"][rep.id + 1] = Entity(
            "Users", rep.id + 1, values, unix(rep.created_at), unix(rep.created_at)
        )


def add_potentials(truth: Truth, schema: Schema, org: Org, book: IdBook) -> None:
    probability = {s.key: s.probability for s in org.stages}
    for d in org.deals:
        crmid = book.give("deal", d.id)
        custom = dict(d.custom)
        custom["Currency"] = d.currency
        if d.loss_reason:
            custom["Loss reason"] = d.loss_reason
        values = {
            "potentialname": d.name,
            "potential_no": f"POT{crmid}",
            "amount": money(d.amount),
            "related_to": book.ws("account", d.account_id),
            "contact_id": book.ws("contact", d.contact_id),
            "closingdate": d.close_date.isoformat(),
            "opportunity_type": "New Business" if d.deal_type == "new" else "Existing Business",
            "sales_stage": stage_label(org.stages, d.stage),
            "probability": f"{probability[d.stage] * 100:.3f}",
            "isconvertedfromlead": "0",
            "assigned_user_id": user_ws(d.owner_id),
        }
        entity = put(
            truth, schema, "Potentials", crmid, values, custom, d.created_at, d.modified_at
        )
        if d.margin is not None:  # numbers come back with the column's decimals
            entity.fields[schema.cf("Potentials", "Margin")] = f"{d.margin:.2f}"


def add_activity(
    truth: Truth,
    schema: Schema,
    book: IdBook,
    lead_contact: dict[int, int],
    a: Activity,
    zone: ZoneInfo,
) -> None:
    """One activity; its start and end in the server's time zone, as Vtiger stores them."""
    crmid = book.give("activity", a.id)
    contact = a.contact_id
    parent = ""
    if a.deal_id is not None:
        parent = book.ws("deal", a.deal_id)
    elif a.lead_id is not None and a.lead_id in lead_contact:
        contact = contact or lead_contact[a.lead_id]
    elif a.lead_id is not None:
        parent = book.ws("lead", a.lead_id)
    elif a.account_id is not None:
        parent = book.ws("account", a.account_id)
    start = a.occurred_at.astimezone(zone)
    end = start + timedelta(seconds=a.duration_seconds)
    done = a.status == "completed"
    values = {
        "subject": a.subject,
        "date_start": start.date().isoformat(),
        "time_start": start.strftime("%H:%M:%S"),
        "due_date": end.date().isoformat(),
        "parent_id": parent,
        "contact_id": book.ws("contact", contact),
        "assigned_user_id": user_ws(a.owner_id),
    }
    if a.kind == "task":
        module = "Calendar"
        values.update(
            activitytype="Task",
            taskstatus="Completed" if done else "Not Started",
            taskpriority="Medium",
        )
    else:
        module = "Events"
        values.update(
            activitytype=a.kind.capitalize(),
            time_end=end.strftime("%H:%M:%S"),
            duration_hours=str(a.duration_seconds // 3600),
            duration_minutes=str(a.duration_seconds % 3600 // 60),
            eventstatus="Held" if done else "Planned",
            location="",
        )
    custom = {} if module == "Calendar" else {"Direction": a.direction.capitalize()}
    put(truth, schema, module, crmid, values, custom, a.created_at, a.modified_at)


def add_answers(truth: Truth, schema: Schema, org: Org, book: IdBook, zone: ZoneInfo) -> None:
    """NPS answers in the survey module (eNPS answers stay in the survey tool); last in the id
    sequence, so every other record keeps its crmid."""
    accounts = {c.id: c.account_id for c in org.contacts}
    owners = {c.id: c.owner_id for c in org.contacts}  # the survey tool assigns the contact's rep
    for answer in org.survey_answers:
        if answer.kind != "nps" or answer.respondent_contact_id is None:
            continue
        crmid = book.give("survey", answer.id)
        account = answer.account_id or accounts.get(answer.respondent_contact_id)
        values = {
            "npsresponse_no": f"NPS{crmid}",
            "score": str(answer.score),
            "survey_type": "NPS",
            "contact_id": book.ws("contact", answer.respondent_contact_id),
            "account_id": book.ws("account", account),
            "answered_on": answer.answered_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            "assigned_user_id": user_ws(owners[answer.respondent_contact_id]),
        }
        put(truth, schema, SURVEY_MODULE, crmid, values, {}, answer.answered_at, answer.modified_at)
