"""The Vtiger emulator speaks webservice.php as crm-api-facts 3 describes; writes through revise."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from emulators.org.generate import generate_org
from emulators.vtiger.emulator import ADMIN_KEY, VtigerEmulator
from kpisync.connector import FieldSpec, FieldUpdate
from tests.vtiger_env import VtigerEnv


@pytest.fixture(scope="module")
def emulator() -> Iterator[VtigerEmulator]:
    with VtigerEmulator(generate_org(seed=3, deals=60), sync_works=True) as served:
        yield served


class Client:
    def __init__(self, emulator: VtigerEmulator, user: str = "admin") -> None:
        self.url = f"{emulator.base_url}/webservice.php"
        token = self.get("getchallenge", username=user)["result"]["token"]
        key = hashlib.md5((token + emulator.access_key(user)).encode()).hexdigest()
        self.session = self.post("login", username=user, accessKey=key)["result"]["sessionName"]

    def get(self, operation: str, **params: str) -> Any:
        return httpx.get(self.url, params={"operation": operation, **params}).json()

    def post(self, operation: str, **params: str) -> Any:
        return httpx.post(self.url, data={"operation": operation, **params}).json()

    def query(self, text: str) -> Any:
        return self.get("query", sessionName=self.session, query=text)


def code(envelope: dict[str, Any]) -> str:
    assert envelope["success"] is False
    return str(envelope["error"]["code"])


def test_login_needs_the_md5_of_token_and_key(emulator: VtigerEmulator) -> None:
    client = Client(emulator)
    token = client.get("getchallenge", username="admin")["result"]["token"]
    assert (
        code(client.post("login", username="admin", accessKey=ADMIN_KEY))
        == "INVALID_USER_CREDENTIALS"
    )
    digest = hashlib.md5((token + ADMIN_KEY).encode()).hexdigest()
    assert client.post("login", username="admin", accessKey=digest)["success"]
    assert client.post("login", username="admin", accessKey=digest)["success"]  # twice
    assert code(client.post("login", username="admin", accessKey=digest)) in (
        "INVALID_AUTH_TOKEN",
        "INVALID_USER_CREDENTIALS",
    )  # that token is spent


def test_wrong_method_and_sessions(emulator: VtigerEmulator) -> None:
    client = Client(emulator)
    wrong = httpx.post(
        client.url,
        data={
            "operation": "query",
            "sessionName": client.session,
            "query": "SELECT count(*) FROM Leads;",
        },
    )
    assert wrong.status_code == 200 and code(wrong.json()) == "ACCESS_DENIED"
    assert (
        code(client.get("query", query="SELECT count(*) FROM Leads;")) == "AUTHENTICATION_REQUIRED"
    )
    assert (
        code(client.get("query", sessionName="nope", query="SELECT count(*) FROM Leads;"))
        == "INVALID_SESSIONID"
    )
    unknown = httpx.get(client.url, params={"operation": "nosuchop"})
    assert unknown.status_code == 500 and unknown.content == b""


def test_an_idle_session_ends() -> None:
    now = [1_000_000.0]
    with VtigerEmulator(
        generate_org(seed=3, deals=20), session_idle_seconds=300, clock=lambda: now[0]
    ) as served:
        client = Client(served)
        now[0] += 299
        assert client.query("SELECT count(*) FROM Leads;")["success"]
        now[0] += 299  # idle time counts from the last use
        assert client.query("SELECT count(*) FROM Leads;")["success"]
        now[0] += 301
        assert code(client.query("SELECT count(*) FROM Leads;")) == "INVALID_SESSIONID"


def test_vtql_subset_and_limits(emulator: VtigerEmulator) -> None:
    client = Client(emulator)
    assert len(client.query("SELECT * FROM Events LIMIT 0,250;")["result"]) == 100
    total = int(client.query("SELECT count(*) FROM Events;")["result"][0]["count"])
    rest = client.query("SELECT id FROM Events ORDER BY id LIMIT 100,100;")["result"]
    assert len(rest) == min(100, total - 100) and all(set(r) == {"id"} for r in rest)
    ids = [int(r["id"].split("x")[1]) for r in rest]
    assert ids == sorted(ids)
    assert code(client.query("SELECT * FROM Leads")) == "QUERY_SYNTAX_ERROR"
    assert code(client.query("SELECT * FROM Leads WHERE lastname <> 'x';")) == "QUERY_SYNTAX_ERROR"
    assert code(client.query("SELECT * FROM Leads WHERE email != '';")) == "INTERNAL_SERVER_ERROR"
    assert (
        code(client.query("SELECT related_to.accountname FROM Potentials;"))
        == "INTERNAL_SERVER_ERROR"
    )
    assert code(client.query("SELECT nosuch FROM Leads;")) == "ACCESS_DENIED"
    row = client.query("SELECT * FROM Potentials WHERE amount > '0' LIMIT 1;")["result"][0]
    assert row["amount"].count(".") == 1 and len(row["amount"].split(".")[1]) == 8
    assert "label" not in row


def test_sync_pages_end_on_a_whole_second() -> None:
    """As vtws_sync: the 100th row after modifiedTime fixes the page's last second, and every
    record of that second comes too, so a tie group makes a page longer than 100, never shorter."""
    early = datetime(2001, 9, 9, tzinfo=UTC).timestamp()  # before every generated record
    with VtigerEmulator(
        generate_org(seed=3, deals=60), clock=lambda: early, sync_works=True
    ) as emulator:
        client = Client(emulator)
        for ws_id in sorted(e.ws_id for e in emulator.store.truth["Events"].values() if e.live)[
            :30
        ]:
            emulator.update_record("Events", ws_id, {"subject": "one second, thirty edits"})

        def sync(since: int) -> dict[str, Any]:
            result: dict[str, Any] = client.get(
                "sync",
                sessionName=client.session,
                elementType="Events",
                modifiedTime=str(since),
                syncType="application",
            )["result"]
            return result

        times = sorted(e.modified for e in emulator.store.truth["Events"].values())
        page = sync(1)
        last = page["lastModifiedTime"]
        assert last == times[99] and page["more"]
        assert len(page["updated"]) + len(page["deleted"]) == sum(1 for t in times if t <= last)
        emulator.touch_all("Events", datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
        whole = sync(1)
        assert len(whole["updated"]) + len(whole["deleted"]) == len(times) > 100
        assert not whole["more"]
        for missing in ({"modifiedTime": "1"}, {"elementType": "Events", "modifiedTime": "0"}):
            response = httpx.get(
                client.url, params={"operation": "sync", "sessionName": client.session, **missing}
            )
            assert response.status_code == 500 and response.content == b""


def test_writes_as_in_the_real_api(emulator: VtigerEmulator) -> None:
    client = Client(emulator)
    deal = client.query("SELECT * FROM Potentials LIMIT 1;")["result"][0]
    revised = client.post(
        "revise",
        sessionName=client.session,
        element=json.dumps({"id": deal["id"], "cf_855": "Rival", "bogus": 1}),
    )
    assert revised["result"]["cf_855"] == "Rival" and "label" in revised["result"]
    assert revised["result"]["modifiedtime"] >= deal["modifiedtime"]
    partial = client.post(
        "update",
        sessionName=client.session,
        element=json.dumps({"id": deal["id"], "potentialname": "x"}),
    )
    assert code(partial) == "MANDATORY_FIELDS_MISSING"
    assert (
        code(
            client.post(
                "create", sessionName=client.session, elementType="Leads", element="{not json"
            )
        )
        == "MANDATORY_FIELDS_MISSING"
    )
    account = deal["related_to"]
    assert (
        code(client.get("retrieve", sessionName=client.session, id="13x" + account.split("x")[1]))
        == "INVALID_ID_ATTRIBUTE"
    )
    assert code(client.get("retrieve", sessionName=client.session, id="999")) == "ACCESS_DENIED"
    assert client.post("delete", sessionName=client.session, id=deal["id"])["success"]
    assert (
        code(client.get("retrieve", sessionName=client.session, id=deal["id"])) == "ACCESS_DENIED"
    )


def test_connector_writes_managed_fields_one_revise_per_record(emulator: VtigerEmulator) -> None:
    env = VtigerEnv(emulator.org, emulator)
    connector = env.connector()
    deals = sorted(e.ws_id for e in emulator.dump()["Potentials"].values() if e.live)[:3]
    emulator.reset_calls()
    results = connector.write(
        "deal",
        [
            FieldUpdate(deals[0], (("cf_855", "Наш конкурент"),)),
            FieldUpdate(deals[1], (("cf_855", "x"), ("cf_999", "y"))),
            FieldUpdate(deals[2], (("sales_stage", "Closed Won"),)),
            FieldUpdate("13x999999", (("cf_855", "z"),)),
        ],
    )
    assert [r.ok for r in results] == [True, False, False, False]
    assert "cf_999" in (results[1].error or "") and results[3].not_found
    assert emulator.op_calls["revise"] == 3  # the unmanaged write never left kpisync
    steps = connector.ensure_fields(
        [
            FieldSpec("deal", "cf_855", "Competitor", "string"),
            FieldSpec("deal", "kpisync_nps", "kpisync: NPS", "number"),
        ],
        apply=True,
    )
    assert [s.action for s in steps] == ["exists", "manual"]
    assert "Module Layouts & Fields > Potentials" in steps[1].detail
