"""A synthetic org on the real Vtiger: users by Vtiger's own code, custom fields by the layout
editor's, records through the webservice.

The field values are the emulator's translation of the neutral org (emulators.vtiger.
records), with its cf names, record ids and user ids replaced by the ones the real server
gave. The server stamps created and modified times itself. Leads are all created live (a test
converts some); the survey module does not exist on a stock server, so no NPS answers. A Persian
text field on Accounts carries Persian text (Persian digits included) for the byte-for-byte checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emulators.org.model import Org
from emulators.vtiger.records import build_truth
from emulators.vtiger.schema import Schema, build_schema
from tests.realvtiger.server import RealVtiger, Seeded

MODULES = ("Accounts", "Contacts", "Leads", "Potentials", "Calendar", "Events")
KIND = {
    "Accounts": "account",
    "Contacts": "contact",
    "Leads": "lead",
    "Potentials": "deal",
    "Calendar": "activity",
    "Events": "activity",
}
LAYOUT_TYPES = {
    "string": "Text",
    "double": "Decimal",
    "date": "Date",
    "picklist": "Picklist",
    "boolean": "Checkbox",
}
PERSIAN_NOTE = "یادداشت"  # an Accounts text field labelled in Persian


def seed_org(server: RealVtiger, org: Org) -> Seeded:
    schema = build_schema(org.custom_fields)
    truth, book = build_truth(org, schema, int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()))
    seeded = Seeded()
    web = server.web()
    neutral = {crmid: key for key, crmid in book.ids.items()}

    emulated_users = seed_users(server, web.user_id, org, seeded)
    cf = seed_custom_fields(server, schema, seeded)
    note = server.add_field("Accounts", PERSIAN_NOTE, "Text")
    seeded.fields[("Accounts", PERSIAN_NOTE)] = note

    known = {m: {f["name"] for f in web.describe(m)["fields"]} for m in MODULES}
    real_ids: dict[str, str] = {}
    for module in MODULES:
        for crmid in sorted(truth[module]):
            entity = truth[module][crmid]
            values: dict[str, Any] = {}
            for name, value in entity.fields.items():
                field = schema.fields[module].get(name)
                if field is None or not field.editable or value == "":
                    continue
                name = cf.get((module, name), name)
                if name not in known[module]:
                    continue
                if field.type in ("reference", "owner"):
                    reference = emulated_users.get(value) or real_ids.get(value)
                    if reference is None:
                        continue
                    value = reference
                values[name] = value
            if module == "Accounts" and crmid % 3 == 0:
                values[note] = (
                    f"مشتری شماره {persian_digits(str(crmid))} — «{entity.fields['accountname']}»"
                )
            created = web.create(module, values)
            real_ids[entity.ws_id] = created["id"]
            kind = KIND[module]
            key = neutral.get(crmid)
            if key is not None:
                seeded.ids[(kind, key[1])] = created["id"]
    return seeded


def seed_users(
    server: RealVtiger, admin_id: str | None, org: Org, seeded: Seeded
) -> dict[str, str]:
    """The org's reps as server users, managers first so reps can name them; the emulator's
    user ids -> the real ones."""
    emulated_users: dict[str, str] = {"19x1": admin_id or "19x1"}
    names = {rep.id: rep.email.split("@")[0] for rep in org.reps}
    for rep in sorted(org.reps, key=lambda r: r.manager_id is not None):
        manager = names[rep.manager_id] if rep.manager_id is not None else ""
        ws = server.add_user(
            names[rep.id], "H4" if rep.manager_id is None else "H5", rep.team, manager
        )
        seeded.users[rep.id] = ws
        emulated_users[f"19x{rep.id + 1}"] = ws
        if not rep.active:
            server.sql(f"UPDATE vtiger_users SET status='Inactive' WHERE id={ws.partition('x')[2]}")
    return emulated_users


def seed_custom_fields(
    server: RealVtiger, schema: Schema, seeded: Seeded
) -> dict[tuple[str, str], str]:
    """Custom fields by label; the emulator's cf name -> the real one."""
    cf: dict[tuple[str, str], str] = {}
    for module in MODULES:
        for name, definition in schema.fields[module].items():
            if name.startswith("cf_"):
                real = server.add_field(
                    module,
                    definition.label,
                    LAYOUT_TYPES[definition.type],
                    list(definition.options) or None,
                )
                cf[(module, name)] = real
                seeded.fields[(module, definition.label)] = real
    return cf


def persian_digits(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
