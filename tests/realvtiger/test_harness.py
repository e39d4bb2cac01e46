"""The real-Vtiger harness itself: reset empties the CRM, fields and users are real, the seeded
org is what the database holds, Persian text byte for byte."""

from __future__ import annotations

from tests.realvtiger.seed import PERSIAN_NOTE
from tests.realvtiger.server import RealVtiger, Seeded, unescape

TABLES = {
    "Accounts": "vtiger_account",
    "Contacts": "vtiger_contactdetails",
    "Leads": "vtiger_leaddetails",
    "Potentials": "vtiger_potential",
}


def test_unescape_reads_mariadb_batch_escapes() -> None:
    assert unescape(r"a\tb\\c\nd") == "a\tb\\c\nd"


def test_fields_and_users_are_made_by_vtiger_and_reset_removes_them(
    real_vtiger: RealVtiger,
) -> None:
    name = real_vtiger.add_field("Potentials", "kpisync: Stalled", "Checkbox")
    assert any(
        f["name"] == name and f["type"]["name"] == "boolean"
        for f in real_vtiger.web().describe("Potentials")["fields"]
    )
    user = real_vtiger.add_user("sara.manager", "H4", "MENA")
    assert real_vtiger.sql(
        f"SELECT user_name, department FROM vtiger_users WHERE id={user.partition('x')[2]}"
    ) == [("sara.manager", "MENA")]
    assert real_vtiger.web("sara.manager").query("SELECT count(*) FROM Potentials;") == [
        {"count": "0"}
    ]
    real_vtiger.reset()
    assert real_vtiger.sql("SELECT count(*) FROM vtiger_users") == [("1",)]
    assert real_vtiger.sql(f"SELECT count(*) FROM vtiger_field WHERE fieldname='{name}'") == [
        ("0",)
    ]


def test_the_seeded_org_is_in_the_database(seeded_org: tuple[RealVtiger, Seeded]) -> None:
    server, seeded = seeded_org
    web = server.web()
    for module, table in TABLES.items():
        (count,) = server.sql(
            f"SELECT count(*) FROM {table} JOIN vtiger_crmentity "
            f"ON crmid = {table}.{table.split('_')[1].removesuffix('details')}id"
            f" WHERE deleted = 0"
        )[0]
        assert web.query(f"SELECT count(*) FROM {module};") == [{"count": count}]
        assert int(str(count)) > 5
    note = seeded.fields[("Accounts", PERSIAN_NOTE)]
    stored = {
        row[0]: row[1]
        for row in server.sql(f"SELECT accountid, {note} FROM vtiger_accountscf WHERE {note} <> ''")
    }
    read = {r["id"].partition("x")[2]: r[note] for r in web.query_all("Accounts") if r[note]}
    assert stored == read and any("۰" <= ch <= "۹" for text in read.values() for ch in text)
