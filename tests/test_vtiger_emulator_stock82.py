"""The Vtiger emulator behaves as the real stock 8.2.0 server measured in ../shared/vtiger/README.md
(tests/realvtiger checks the same facts against that server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.org.generate import generate_org
from emulators.vtiger.emulator import VtigerEmulator
from tests.test_vtiger_emulator import Client, code

CHECKBOX_ON: tuple[str | bool | int | None, ...] = ("1", "on", True, 1)
CHECKBOX_OFF: tuple[str | bool | int | None, ...] = (
    "0",
    "true",
    "false",
    "TRUE",
    "On",
    "yes",
    "no",
    "off",
    "",
    None,
    False,
    0,
)


@pytest.fixture(scope="module")
def stock() -> Iterator[VtigerEmulator]:
    with VtigerEmulator(generate_org(seed=3, deals=20)) as served:
        yield served


def revise(client: Client, values: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("revise", sessionName=client.session, element=json.dumps(values))
    assert answer["success"], answer
    return dict(answer["result"])


def a_deal(client: Client) -> str:
    return str(client.query("SELECT id FROM Potentials ORDER BY id LIMIT 1;")["result"][0]["id"])


def test_sync_logout_and_convertlead_answer_an_empty_500_by_default(stock: VtigerEmulator) -> None:
    client = Client(stock)
    for operation, method, params in (
        ("sync", "GET", {"elementType": "Potentials", "modifiedTime": "1"}),
        ("logout", "POST", {}),
        ("convertlead", "POST", {"element": "{}"}),
    ):
        form = {"operation": operation, "sessionName": client.session, **params}
        response = (
            httpx.get(client.url, params=form)
            if method == "GET"
            else httpx.post(client.url, data=form)
        )
        assert (response.status_code, response.content) == (500, b""), operation


def test_a_server_with_them_fixed_converts_a_lead() -> None:
    with VtigerEmulator(generate_org(seed=3, deals=20), sync_works=True) as fixed:
        client = Client(fixed)
        lead = client.query("SELECT * FROM Leads LIMIT 1;")["result"][0]
        answer = client.post(
            "convertlead",
            sessionName=client.session,
            element=json.dumps(
                {
                    "leadId": lead["id"],
                    "entities": {
                        "Contacts": {"create": True, "name": "Contacts"},
                        "Accounts": {
                            "create": True,
                            "name": "Accounts",
                            "accountname": "Converted Co",
                        },
                    },
                }
            ),
        )
        made = answer["result"]
        contact = client.get("retrieve", sessionName=client.session, id=made["Contacts"])["result"]
        assert contact["isconvertedfromlead"] == "1" and contact["lastname"] == lead["lastname"]
        assert contact["account_id"] == made["Accounts"]
        # VTQL hides a converted lead; retrieve still answers it (a deleted one it does not)
        assert not client.query(f"SELECT id FROM Leads WHERE id = '{lead['id']}';")["result"]
        assert client.get("retrieve", sessionName=client.session, id=lead["id"])["success"]


def test_checkboxes_store_1_only_for_1_on_and_true(stock: VtigerEmulator) -> None:
    name = stock.add_custom_field("Potentials", "Stalled", "bool")
    client = Client(stock)
    deal = a_deal(client)
    never = client.query(f"SELECT {name} FROM Potentials WHERE id = '{deal}';")["result"][0]
    assert never[name] == "0"  # never written: the column's default, not empty
    for value in CHECKBOX_ON:
        assert revise(client, {"id": deal, name: value})[name] == "1", value
    for value in CHECKBOX_OFF:
        revise(client, {"id": deal, name: "1"})
        assert revise(client, {"id": deal, name: value})[name] == "0", value


def test_decimals_clear_to_zero_and_round_to_the_writers_decimals(stock: VtigerEmulator) -> None:
    name = stock.add_custom_field("Potentials", "Score", "number")
    client = Client(stock)
    deal = a_deal(client)
    assert client.get("retrieve", sessionName=client.session, id=deal)["result"][name] == ""
    written = revise(client, {"id": deal, name: "7.125", "amount": "12500.5"})
    assert (written[name], written["amount"]) == ("7.00", "12501.00000000")  # the admin: 0 places
    for empty in ("", None):
        assert revise(client, {"id": deal, name: empty})[name] == "0.00"
    broken = httpx.post(
        client.url,
        data={
            "operation": "revise",
            "sessionName": client.session,
            "element": json.dumps({"id": deal, name: "abc"}),
        },
    )
    assert (broken.status_code, broken.content) == (500, b"")
    with VtigerEmulator(generate_org(seed=3, deals=20), admin_currency_decimals=2) as two:
        other = Client(two)
        deal = a_deal(other)
        field = two.add_custom_field("Potentials", "Score", "number")
        written = revise(other, {"id": deal, field: "7.125", "amount": "12500.5"})
        assert (written[field], written["amount"]) == ("7.13", "12500.50000000")


def test_stages_picklist_labels_and_listtypes_are_8_2s(stock: VtigerEmulator) -> None:
    client = Client(stock)
    describe = client.get("describe", sessionName=client.session, elementType="Potentials")
    stage = next(f for f in describe["result"]["fields"] if f["name"] == "sales_stage")
    values = {v["value"]: v["label"] for v in stage["type"]["picklistValues"]}
    assert "Proposal or Price Quote" in values and "Negotiation or Review" in values
    assert not {"Proposal/Price Quote", "Negotiation/Review"} & set(values)
    assert values["Id. Decision Makers"] == "Identify Decision Makers"
    info = client.get("listtypes", sessionName=client.session)["result"]["information"]
    assert (info["Accounts"]["label"], info["Potentials"]["label"]) == (
        "Organizations",
        "Opportunities",
    )


def test_revise_ignores_unknown_fields_and_users_cannot_be_created(stock: VtigerEmulator) -> None:
    client = Client(stock)
    answer = revise(client, {"id": a_deal(client), "cf_99999": "x", "nextstep": "call"})
    assert "cf_99999" not in answer and answer["nextstep"] == "call"
    for element, expected in (
        ({"user_name": "x", "last_name": "x", "roleid": "H5"}, "ACCESS_DENIED"),
        ({"user_name": "x", "last_name": "x"}, "MANDATORY_FIELDS_MISSING"),
    ):
        assert (
            code(
                client.post(
                    "create",
                    sessionName=client.session,
                    elementType="Users",
                    element=json.dumps(element),
                )
            )
            == expected
        )


def test_a_non_admin_sees_no_users_module(stock: VtigerEmulator) -> None:
    rep = next(
        e.fields["user_name"]
        for e in stock.store.truth["Users"].values()
        if e.fields["is_admin"] == "off" and e.fields["status"] == "Active"
    )
    client = Client(stock, rep)
    assert "Users" not in client.get("listtypes", sessionName=client.session)["result"]["types"]
    assert code(client.query("SELECT * FROM Users;")) == "ACCESS_DENIED"
    assert (
        code(client.get("describe", sessionName=client.session, elementType="Users"))
        == "ACCESS_DENIED"
    )
    assert int(client.query("SELECT count(*) FROM Potentials;")["result"][0]["count"]) > 0


def test_a_field_without_its_column_empties_select_star() -> None:
    with VtigerEmulator(generate_org(seed=3, deals=20)) as broken:
        client = Client(broken)
        deal = a_deal(client)
        broken.break_field("Potentials", "Broken")
        assert client.query("SELECT * FROM Potentials;") == {"success": True, "result": []}
        assert int(client.query("SELECT count(*) FROM Potentials;")["result"][0]["count"]) > 0
        assert client.query("SELECT id FROM Potentials LIMIT 1;")["result"]
        assert (
            code(client.get("retrieve", sessionName=client.session, id=deal))
            == "INTERNAL_SERVER_ERROR"
        )
        assert client.query("SELECT * FROM Accounts LIMIT 1;")["result"]
