"""The real server's truth, read from the server itself, in the shape tests/vtiger_truth.py checks.

Records come from the webservice (every live record of every module, paged by id, independent of
the connector's cursor walk); the database confirms them (`confirm_with_database`): the same ids
per module, the same modified times, and text fields byte for byte (Persian included).
"""

from __future__ import annotations

from datetime import UTC, datetime

from emulators.vtiger.records import Entity, Truth
from emulators.vtiger.schema import SURVEY_MODULE
from tests.realvtiger.server import RealVtiger

MODULES = ("Accounts", "Contacts", "Leads", "Potentials", "Calendar", "Events")
# module -> (table, key column, text columns whose webservice name is the same)
TABLES = {
    "Accounts": ("vtiger_account", "accountid", ("accountname",)),
    "Contacts": ("vtiger_contactdetails", "contactid", ("lastname", "firstname", "email")),
    "Leads": ("vtiger_leaddetails", "leadid", ("lastname", "firstname", "email")),
    "Potentials": ("vtiger_potential", "potentialid", ("potentialname", "sales_stage")),
    "Calendar": ("vtiger_activity", "activityid", ("subject",)),
    "Events": ("vtiger_activity", "activityid", ("subject",)),
}
SETYPE = {"Events": "Calendar"}  # vtiger_crmentity.setype of events is Calendar


def unix(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def server_truth(server: RealVtiger, user_name: str = "admin") -> Truth:
    """What `user_name` sees; for a non-admin (no Users module) the users are the owners of the
    records, by id alone, as kpisync stores them."""
    web = server.web(user_name)
    truth: Truth = {SURVEY_MODULE: {}}
    for module in MODULES:
        truth[module] = {}
        for record in web.query_all(module):
            crmid = int(record["id"].partition("x")[2])
            fields = {k: ("" if v is None else str(v)) for k, v in record.items()}
            truth[module][crmid] = Entity(
                module, crmid, fields, unix(record["createdtime"]), unix(record["modifiedtime"])
            )
    # A deleted record's references read empty, and the referring record's modifiedtime does not
    # move, so an incremental sync rightly keeps the reference it read (to a record now marked
    # deleted): the truth names that record, from the database.
    prefixes = {m: web.describe(m)["idPrefix"] for m in ("Accounts", "Leads", "Potentials")}
    for activity, parent, setype in server.sql(
        "SELECT r.activityid, r.crmid, e.setype FROM vtiger_seactivityrel r "
        "JOIN vtiger_crmentity e ON e.crmid = r.crmid WHERE e.deleted = 1"
    ):
        for module in ("Calendar", "Events"):
            entity = truth[module].get(int(str(activity)))
            if entity is not None and not entity.fields.get("parent_id") and setype in prefixes:
                entity.fields["parent_id"] = f"{prefixes[str(setype)]}x{parent}"
    if user_name == "admin":
        users = web.query_all("Users")
    else:
        owners = {e.owner for m in MODULES for e in truth[m].values()}
        users = [
            {
                "id": o,
                "first_name": "",
                "last_name": "",
                "email1": "",
                "department": "",
                "status": "Active",
            }
            for o in owners
        ]
    truth["Users"] = {
        int(r["id"].partition("x")[2]): Entity(
            "Users", int(r["id"].partition("x")[2]), {k: str(v or "") for k, v in r.items()}, 0, 0
        )
        for r in users
    }
    return truth


def confirm_with_database(server: RealVtiger, truth: Truth) -> None:
    """The webservice's records are the database's: ids, modified times, text byte for byte."""
    for module, (table, key, columns) in TABLES.items():
        kind = "= 'Task'" if module == "Calendar" else "<> 'Task'" if module == "Events" else ""
        where = f" AND t.activitytype {kind}" if kind else ""
        converted = " AND t.converted = 0" if module == "Leads" else ""
        rows = server.sql(
            f"SELECT e.crmid, e.modifiedtime, {', '.join('t.' + c for c in columns)} "
            f"FROM {table} t JOIN vtiger_crmentity e ON e.crmid = t.{key} "
            f"WHERE e.deleted = 0{where}{converted}"
        )
        stored = {int(str(r[0])): r[1:] for r in rows}
        served = truth[module]
        assert stored.keys() == served.keys(), (
            f"{module}: database ids differ from the webservice's: "
            f"{sorted(stored.keys() ^ served.keys())[:5]}"
        )
        for crmid, values in stored.items():
            entity = served[crmid]
            assert unix(str(values[0])) == entity.modified, (module, crmid)
            for column, value in zip(columns, values[1:], strict=True):
                assert (value or "").encode() == entity.fields[column].encode(), (
                    module,
                    crmid,
                    column,
                    value,
                    entity.fields[column],
                )
