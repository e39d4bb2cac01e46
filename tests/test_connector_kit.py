"""The connector kit: page tokens that cannot loop, streams declared consistently, capabilities
declared where the members are."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.hubspot.connector import HubSpotConnector
from connectors.kit.paging import PageTokens, follow
from connectors.salesforce.connector import SalesforceConnector
from connectors.vtiger.connector import VtigerConnector
from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.server import Request, Response
from emulators.vtiger.emulator import VtigerEmulator
from kpisync.connector import (
    Capability,
    ReadMode,
    StreamSpec,
    capabilities_of,
    check_capabilities,
    check_stream_specs,
)
from kpisync.errors import ConnectorError
from tests.hubspot_env import TOKEN, TOKEN_ENV, HubSpotEnv
from tests.vtiger_env import VtigerEnv

STUCK = "1"  # the `after` every owners page names: an offset HubSpot's list would accept


class StuckOwnersPaging(HubSpotEmulator):
    """A HubSpot whose owners list names the same next page whatever page was asked."""

    def handle(self, request: Request, handler: Callable[[Request], Response]) -> Response:
        response = super().handle(request, handler)
        if (
            request.method == "GET"
            and request.path.rstrip("/") == "/crm/v3/owners"
            and response.status == 200
        ):
            body = json.loads(response.body)
            body["paging"] = {"next": {"after": STUCK, "link": "?after=" + STUCK}}
            response.body = json.dumps(body).encode()
        return response


def test_a_page_token_given_twice_stops_the_walk_naming_stream_and_token() -> None:
    asked: list[str | None] = []

    def fetch(token: str | None) -> str:
        asked.append(token)
        return "page"

    walk = follow(fetch, lambda _page: "abc", crm="Acme", stream="deals")
    with pytest.raises(ConnectorError, match="Acme returned the page token 'abc' of deals twice"):
        list(walk)
    assert asked == [None, "abc"]  # asked once more, never a third time
    tokens: PageTokens[str] = PageTokens("Acme", "deals")
    assert [tokens.next(t) for t in ("1", "2", None, "")] == ["1", "2", None, None]


def test_hubspot_sync_fails_in_one_line_when_owners_paging_repeats(tmp_path: Path) -> None:
    org = generate_org(seed=3, deals=10)
    with StuckOwnersPaging(org, access_token=TOKEN, search_rate_per_second=50) as emulator:
        store = tmp_path / "store.db"
        settings = HubSpotEnv(org, emulator).settings_file(tmp_path, f"sqlite:///{store}")
        environment = {k: v for k, v in os.environ.items() if k != "KPISYNC_SETTINGS"}
        done = subprocess.run(
            [sys.executable, "-m", "kpisync.cli", "sync", "--settings", str(settings)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**environment, TOKEN_ENV: TOKEN},
            cwd=tmp_path,
        )
        owner_pages = sum(
            n for path, n in emulator.calls_by_path.items() if path.startswith("GET /crm/v3/owners")
        )
    assert done.returncode == 3, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0] == (
        f"error: HubSpot returned the page token {STUCK!r} of owners twice: "
        "stopping rather than reading the same pages for ever"
    ), done.stderr
    assert len(lines) == 2 and lines[1].startswith("  fix: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert owner_pages == 2  # the first page and the repeated one, never a third
    with sqlite3.connect(store) as connection:
        status, error = connection.execute(
            "SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert status == "failed" and f"page token {STUCK!r} of owners twice" in error


def connectors_streams(tmp_path: Path) -> dict[str, list[StreamSpec]]:
    os.environ["KIT_TOKEN"] = "pat-na1-kit"
    os.environ["KIT_PASSWORD"] = "secret"
    hubspot = HubSpotConnector("hs", {"token_env": "KIT_TOKEN"})
    salesforce = SalesforceConnector("sf", {"username": "u@x.test", "password_env": "KIT_PASSWORD"})
    found = {"hubspot": hubspot.streams(), "salesforce": salesforce.streams()}
    org = generate_org(seed=5, deals=10)
    with VtigerEmulator(org) as emulator:
        vtiger = VtigerEnv(org, emulator).connector()
        found["vtiger"] = vtiger.streams()
        vtiger.close()
    return found


def test_every_connector_declares_consistent_streams(tmp_path: Path) -> None:
    for crm, specs in connectors_streams(tmp_path).items():
        assert check_stream_specs(specs) == [], crm
        incremental = [s for s in specs if s.mode is ReadMode.INCREMENTAL]
        assert incremental and all(s.cursor_field for s in incremental), crm
    assert check_stream_specs(
        [
            StreamSpec("deals", ("deal",)),
            StreamSpec("owners", ("user",), ReadMode.METADATA, cursor_field="updatedAt"),
            StreamSpec("deals", ()),
        ]
    ) == [
        "stream 'deals' is declared twice",
        "incremental stream 'deals' has no cursor field",
        "stream 'owners' is read whole but names a cursor field (updatedAt)",
        "stream 'deals' carries no entity",
        "incremental stream 'deals' has no cursor field",
    ]


class BareConnector:
    """The members of the bare contract only, as a third-party connector may have them (the
    example plugin, tests/plugins, declares no capabilities either)."""

    type_name = "bare"

    def check(self) -> list[object]:
        return []


def test_capabilities_are_declared_where_their_members_are() -> None:
    for factory in (HubSpotConnector, SalesforceConnector, VtigerConnector, BareConnector):
        assert check_capabilities(factory) == [], factory
    assert capabilities_of(BareConnector()) == frozenset()
    assert Capability.EXPLAINS_MISSING in capabilities_of(VtigerConnector)
    assert Capability.EXPLAINS_MISSING not in capabilities_of(HubSpotConnector)

    class Undeclared(BareConnector):
        def record_url(self, entity: str, external_id: str) -> str:
            return ""

    class Overclaimed(BareConnector):
        capabilities = frozenset({Capability.LINKS_RECORDS})

    assert check_capabilities(Undeclared) == ["has record_url but does not declare links_records"]
    assert check_capabilities(Overclaimed) == ["declares links_records but has no record_url"]
