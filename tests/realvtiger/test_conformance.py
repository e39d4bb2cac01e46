"""The shipped conformance suite (kpisync.conformance) on the real, stock Vtiger 8.2, the CLI test
of tests/test_conformance.py with the real server behind `served`, plus what only a real server
can show (creations through its webservice, SIGKILL placed by the calls a run has made, its
database as the yardstick)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from kpisync.conformance import ConnectorConformance, WriteCase
from kpisync.conformance.stores import assert_no_duplicates
from kpisync.connector import FieldSpec
from kpisync.store.database import open_store
from kpisync.store.models import Account, Deal
from kpisync.sync import SyncOptions, sync_source
from tests.realvtiger.kit import ServedRealVtiger
from tests.realvtiger.proxy import CountingProxy
from tests.realvtiger.seed import PERSIAN_NOTE
from tests.realvtiger.server import RealVtiger, Seeded
from tests.test_conformance import (  # noqa: F401  (the test is collected here, on `served`)
    KitSubject,
    test_cli_wrong_secret_and_unreachable_host_leave_the_store_untouched,
)

WRITE_LABEL = "kpisync conformance"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the store backends are compared on the emulators; this tier is about the CRM."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def served(seeded_org: tuple[RealVtiger, Seeded]) -> ServedRealVtiger:
    return ServedRealVtiger(*seeded_org)


class RealVtigerSubject(KitSubject):
    """The seeded stock server as the suite's subject. Its `sync` fails under PHP 8, so the
    connector reads by query, whose pages carry no deletes; it notices a module's live count fall
    and asks for the id comparison itself, so the suite's comparison on every sync is not needed
    (and would hide a connector that stopped asking)."""

    deletes_by_id_comparison = False

    def write_case(self) -> WriteCase:
        """A text field an admin adds in the layout editor (the webservice cannot create one),
        written on the lowest live deal and read back through the server's own webservice."""
        server = self.served.server
        name = server.add_field("Potentials", WRITE_LABEL, "Text")
        rid = min(self.served.live_deals(), key=lambda ws: int(ws.partition("x")[2]))
        return WriteCase(
            FieldSpec("deal", name, WRITE_LABEL, "string"),
            rid,
            "kpisync conformance ۴۲ — «real»",
            lambda: server.web().retrieve(rid).get(name),
            missing_id=rid.partition("x")[0] + "x999999",
        )


@pytest.fixture
def conformance_subject(served: ServedRealVtiger) -> RealVtigerSubject:
    return RealVtigerSubject(served)


class TestRealVtiger(ConnectorConformance):
    """The whole shipped contract, with the stock Vtiger 8.2 server as the source."""


def test_an_incremental_after_edits_deletes_and_creations_is_exact(
    sqlite_engine: Engine, served: ServedRealVtiger
) -> None:
    assert (
        sync_source(sqlite_engine, served.source, served.connector(), SyncOptions()).status
        == "succeeded"
    )
    served.assert_store_equals_truth(sqlite_engine)
    web = served.server.web()
    note = served.seeded.fields[("Accounts", PERSIAN_NOTE)]
    account = web.query("SELECT id FROM Accounts ORDER BY id LIMIT 1;")[0]["id"]
    web.revise({"id": account, note: "ویرایش شد: ۱۴۰۵/۰۹/۱۶ — «تست»"})
    changed = served.change_deals(3, seed=7)
    gone = sorted(served.live_deals())[-1]
    web.delete(gone)
    contact = web.query("SELECT id FROM Contacts ORDER BY id LIMIT 1;")[0]["id"]
    web.delete(contact)
    made = web.create(
        "Potentials",
        {
            "potentialname": "قرارداد جدید",
            "related_to": account,
            "closingdate": "2026-12-31",
            "sales_stage": "Proposal or Price Quote",
            "amount": "4200",
            "assigned_user_id": web.user_id,
        },
    )["id"]
    time.sleep(1.1)  # a run reads up to the second before it started
    result = sync_source(sqlite_engine, served.source, served.connector(), SyncOptions())
    assert result.status == "succeeded"
    served.assert_store_equals_truth(sqlite_engine)
    with sqlite_engine.connect() as connection:
        deals = dict(connection.execute(select(col(Deal.external_id), col(Deal.deleted_at))).all())
        stored_note = connection.execute(
            select(col(Account.custom)).where(col(Account.external_id) == account)
        ).scalar_one()[note]
    assert deals[gone] is not None and deals[made] is None and changed <= deals.keys()
    assert stored_note.encode() == "ویرایش شد: ۱۴۰۵/۰۹/۱۶ — «تست»".encode()


def test_sigkill_at_random_calls_then_rerun_loses_and_duplicates_nothing(
    served: ServedRealVtiger, tmp_path: Path
) -> None:
    """Each round changes deals (one created, one deleted now and then), starts a sync and kills
    it when its k-th webservice call arrives, k drawn over a whole run's calls."""
    with CountingProxy(served.server.url) as proxy:
        served.url = proxy.url
        settings = served.settings_file(
            tmp_path, f"sqlite:///{tmp_path / 'store.db'}", batch_records=20
        )
        sync = [sys.executable, "-m", "kpisync.cli", "sync", "--settings", str(settings)]
        subprocess.run([*sync, "--full"], check=True, capture_output=True)
        full_calls = proxy.calls
        time.sleep(1.1)
        proxy.kill_on_call(10**9)
        subprocess.run(sync, check=True, capture_output=True)
        incremental_calls = proxy.calls
        rng = random.Random(20261207)
        web = served.server.web()
        kills = 0
        for round_ in range(12):
            served.change_deals(2, seed=round_)
            if round_ % 3 == 0:
                web.create(
                    "Potentials",
                    {
                        "potentialname": f"Kill round {round_}",
                        "related_to": served.seeded.of("account")[0],
                        "closingdate": "2027-01-31",
                        "sales_stage": "Prospecting",
                        "assigned_user_id": web.user_id,
                    },
                )
            if round_ % 4 == 1:
                web.delete(served.live_deals()[round_])
            full = round_ % 2 == 1
            proxy.kill_on_call(rng.randint(3, (full_calls if full else incremental_calls) - 1))
            process = subprocess.Popen(
                [*sync, *(["--full"] if full else [])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            proxy.aim(process.pid)
            kills += process.wait() == -9
        assert kills >= 10, (
            f"only {kills} of 12 runs were killed (a full run made "
            f"{full_calls} calls, an incremental {incremental_calls})"
        )
        time.sleep(1.1)  # the last edits lie before the final run's bound
        proxy.kill_on_call(10**9)
        final = subprocess.run(sync, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    assert_no_duplicates(engine)
    served.assert_store_equals_truth(engine)
    engine.dispose()
