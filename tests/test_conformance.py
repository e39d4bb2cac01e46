"""The built-in connectors on the shipped conformance suite (kpisync.conformance), as any
third-party connector runs it, plus what only their emulators can show: SIGKILL at random calls,
faults injected in the HTTP answers, the CLI's messages, 10k deals on one modified time."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator
from emulators.server import Knobs
from kpisync.conformance import ConformanceSubject, ConnectorConformance, ErrorCase, WriteCase
from kpisync.conformance.stores import assert_no_duplicates
from kpisync.connector import Connector, FieldSpec
from kpisync.errors import AuthError, TransientError
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, Deal, SyncState, model_table
from kpisync.sync import SyncOptions, sync_source
from tests.conftest import STORE_KINDS
from tests.harness import Kit, available_kits

KITS = available_kits()
ENTITY_NAMES = list(ENTITY_MODELS)
SECRETS = ("not-the-password", "not-the-access-key", "pat-na1-not-a-real-token")
# CRMs with one-second modified times: an edit is seen by a sync that starts after its second
CLOCK_STEP_SECONDS = 1.1


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=5, deals=150)


@pytest.fixture(params=KITS, ids=lambda kit: kit.name)
def served(request: pytest.FixtureRequest, org: Org) -> Iterator[Any]:
    with request.param.serve(org) as served:
        yield served


class KitSubject(ConformanceSubject):
    """A CRM kit's served emulator (tests/harness.py) as the suite's subject."""

    def __init__(self, served: Any) -> None:
        self.served = served
        self.source = served.source

    def connector(self) -> Connector:
        return self.served.connector()  # type: ignore[no-any-return]

    def edit(self, seed: int) -> set[tuple[str, str]]:
        changed = self.served.change_deals(4, seed=seed)
        time.sleep(CLOCK_STEP_SECONDS)
        return {("deal", rid) for rid in changed}

    def delete(self) -> tuple[str, str]:
        rid = self.served.delete_deal()
        time.sleep(CLOCK_STEP_SECONDS)
        return "deal", rid

    def assert_store_equals_truth(self, engine: Engine) -> None:
        self.served.assert_store_equals_truth(engine)

    def error_cases(self) -> Sequence[ErrorCase]:
        return [
            ErrorCase(
                "credentials the CRM refuses",
                AuthError,
                self.served.bad_token_connector,
                secrets=SECRETS,
            ),
            ErrorCase(
                "a host nobody answers on",
                TransientError,
                lambda: self.served.connector(**self.served.unreachable()),
            ),
        ]

    def write_case(self) -> WriteCase:
        """A text field on a live deal: HubSpot creates it through the API; on Salesforce and
        Vtiger an admin adds it (their APIs cannot), so it is added here first."""
        emulator, value = self.served.emulator, "kpisync conformance 42"
        if isinstance(emulator, HubSpotEmulator):
            rid = min(r for r, d in emulator.dump()["deals"].items() if not d["archived"])
            return WriteCase(
                FieldSpec("deal", "kpisync_conformance", "kpisync conformance", "string"),
                rid,
                value,
                lambda: emulator.dump()["deals"][rid]["properties"].get("kpisync_conformance"),
                missing_id="99999999999",
            )
        if isinstance(emulator, SalesforceEmulator):
            name = emulator.add_custom_field(
                "Opportunity", "kpisync_conformance", "string", "kpisync conformance"
            )
            rid = min(r for r, d in emulator.dump()["Opportunity"].items() if not d["IsDeleted"])
            return WriteCase(
                FieldSpec("deal", name, "kpisync conformance", "string"),
                rid,
                value,
                lambda: emulator.dump()["Opportunity"][rid].get(name),
                missing_id="0065g00000ZZZZZAAA",
            )
        name = emulator.add_custom_field("Potentials", "kpisync conformance", "string")
        live = {e.ws_id: e for e in emulator.dump()["Potentials"].values() if e.live}
        rid = min(live, key=lambda ws: int(ws.partition("x")[2]))
        return WriteCase(
            FieldSpec("deal", name, "kpisync conformance", "string"),
            rid,
            value,
            lambda: next(
                e.fields.get(name) for e in emulator.dump()["Potentials"].values() if e.ws_id == rid
            ),
            missing_id=rid.partition("x")[0] + "x999999",
        )


@pytest.fixture
def conformance_subject(served: Any) -> KitSubject:
    return KitSubject(served)


class TestBuiltInConnectors(ConnectorConformance):
    """The shipped contract, on every built-in connector's emulator (store: SQLite)."""


if "postgres" in STORE_KINDS:

    @pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
    class TestBuiltInConnectorsOnPostgres(ConnectorConformance):
        """Incremental syncs and deletes again on PostgreSQL; the other tests do not depend on
        the store's engine."""

        @pytest.fixture
        def conformance_store_url(self, store_url: str) -> str:
            return store_url

        # pytest leaves out an inherited test set to None (the class's declared type says a method)
        test_check_passes_and_discover_lists_fields = None  # type: ignore[assignment]
        test_streams_pages_and_cursors = None  # type: ignore[assignment]
        test_full_sync_equals_truth_and_a_resync_changes_nothing = None  # type: ignore[assignment]
        test_interrupted_reads_resume_to_truth = None  # type: ignore[assignment]
        test_failures_are_kpisync_connector_errors = None  # type: ignore[assignment]
        test_write_back_as_declared = None  # type: ignore[assignment]


class CallGate:
    """Holds the emulator's answers from its `at`-th call on, so that a kill lands at a point
    placed by progress (calls made), whatever the machine's load; `release` lets them go."""

    def __init__(self, emulator: Any) -> None:
        self.emulator, self.count = emulator, emulator._count
        self.at = 0
        self.reached, self.released = threading.Event(), threading.Event()
        emulator._count = self._count

    def _count(self, key: str, path: str) -> int:
        number = int(self.count(key, path))
        if self.at and number >= self.at:
            self.reached.set()
            self.released.wait()
        return number

    def arm(self, calls_from_now: int) -> None:
        self.reached.clear()
        self.released.clear()
        self.at = self.emulator.total_calls + calls_from_now

    def release(self) -> None:
        self.at = 0
        self.released.set()

    def close(self) -> None:
        self.release()
        self.emulator._count = self.count


def test_sigkill_at_random_points_then_rerun(served: Any, tmp_path: Path, store_url: str) -> None:
    """Each round changes a few deals, starts a full re-read and kills it after a random number
    of the calls a full read makes (held there, so a loaded machine cannot let it run past)."""
    options = {"batch_records": 200, **served.generous_limits()}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    counting = served.settings_file(scratch, f"sqlite:///{scratch / 'counting.db'}", **options)
    settings = served.settings_file(tmp_path, store_url, **options)
    sync = [sys.executable, "-m", "kpisync.cli", "sync", "--settings"]
    before = served.emulator.total_calls
    subprocess.run([*sync, str(counting)], check=True, capture_output=True)
    calls = served.emulator.total_calls - before
    assert calls >= 6, f"a full read made only {calls} calls: too few to place kills in"
    rng = random.Random(20261124)
    gate = CallGate(served.emulator)
    kill_points = []
    try:
        for round_ in range(12):
            served.change_deals(3, seed=round_)
            kill_at = rng.randint(2, calls - 2)
            gate.arm(kill_at)
            process = subprocess.Popen(
                [*sync, str(settings), "--full"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while not gate.reached.wait(0.05):  # polls the process; no time limit is asserted
                assert process.poll() is None, f"the sync ended before its call {kill_at}"
            process.send_signal(signal.SIGKILL)
            assert process.wait() == -signal.SIGKILL
            gate.release()
            kill_points.append(kill_at)
    finally:
        gate.close()
    print(f"a full read makes {calls} calls; killed at calls {kill_points}")
    assert len(set(kill_points)) > 3, kill_points
    final = subprocess.run([*sync, str(settings)], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    engine = open_store(store_url)
    assert_no_duplicates(engine)
    served.assert_store_equals_truth(engine)
    engine.dispose()


def test_faults_that_clear_still_end_equal_to_truth(sqlite_engine: Engine, served: Any) -> None:
    served.emulator.knobs = Knobs(
        rate_429=0.05,
        rate_5xx=0.05,
        rate_timeout=0.01,
        rate_drop=0.03,
        hang_seconds=2.0,
        fault_seed=3,
    )
    result = sync_source(
        sqlite_engine, served.source, served.connector(timeout_seconds=1), SyncOptions()
    )
    assert result.status == "succeeded"
    served.emulator.knobs = Knobs()
    served.assert_store_equals_truth(sqlite_engine)


def test_faults_that_never_clear_stop_cleanly_and_resume(
    sqlite_engine: Engine, served: Any
) -> None:
    served.emulator.knobs.fail_always_after_calls = 25
    with pytest.raises(Exception) as caught:
        sync_source(
            sqlite_engine, served.source, served.connector(batch_records=200), SyncOptions()
        )
    assert getattr(caught.value, "retryable", False), f"not a transient error: {caught.value!r}"
    with sqlite_engine.connect() as connection:
        committed = [
            c
            for (c,) in connection.execute(
                select(col(SyncState.cursor)).where(col(SyncState.source) == served.source)
            )
            if c and c.get("value")
        ]
    assert committed, "no page was committed before the faults started"
    served.emulator.knobs.fail_always_after_calls = None
    result = sync_source(sqlite_engine, served.source, served.connector(), SyncOptions())
    assert result.status == "succeeded"
    served.assert_store_equals_truth(sqlite_engine)


def _kpisync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args], capture_output=True, text=True, timeout=300
    )


def _one_clear_error(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 3, done
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and len(lines) <= 3, done.stderr
    assert needle in done.stderr.lower(), done.stderr


def _data_fingerprint(store: Path) -> tuple[object, ...]:
    """Every synced row and cursor (the run history may record the failed attempt)."""
    engine = open_store(f"sqlite:///{store}")
    with engine.connect() as connection:
        rows = tuple(
            tuple(
                connection.execute(
                    select(model_table(model)).order_by(model_table(model).c.id)
                ).all()
            )
            for model in ENTITY_MODELS.values()
        )
        cursors = tuple(
            connection.execute(
                select(col(SyncState.stream), col(SyncState.cursor)).order_by(col(SyncState.stream))
            ).all()
        )
    engine.dispose()
    return rows + (cursors,)


def test_cli_wrong_secret_and_unreachable_host_leave_the_store_untouched(
    served: Any, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    good = served.settings_file(tmp_path, f"sqlite:///{store}")
    assert _kpisync("sync", "--settings", str(good)).returncode == 0
    before = _data_fingerprint(store)
    assert before[ENTITY_NAMES.index("deal")], "the first sync stored no deals"
    for folder, options, needle in (
        ("wrong", served.bad_credentials(), "refused"),
        ("closed", served.unreachable(), "cannot reach"),
    ):
        (tmp_path / folder).mkdir()
        settings = served.settings_file(tmp_path / folder, f"sqlite:///{store}", **options)
        done = _kpisync("sync", "--settings", str(settings))
        _one_clear_error(done, needle)
        for secret in ("not-the-password", "not-the-access-key", "pat-na1-not-a-real-token"):
            assert secret not in done.stderr + done.stdout
        assert _data_fingerprint(store) == before


@pytest.mark.parametrize("kit", KITS, ids=lambda kit: kit.name)
def test_more_than_10k_deals_on_one_modified_time_sync_completely(
    sqlite_engine: Engine, kit: Kit
) -> None:
    """A mass update gives 10,150 deals one modified time; the sync reads each once, and ends."""
    org = generate_org(seed=3, deals=10_150, activities_per_deal=0.0)
    with kit.serve(org) as served:
        served.tie_all_deals(datetime.now(UTC) - timedelta(minutes=5))
        result = sync_source(
            sqlite_engine,
            served.source,
            served.connector(),
            SyncOptions(streams=(kit.deal_stream,)),
        )
    assert result.status == "succeeded"
    with sqlite_engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Deal)).scalar()
    assert stored == 10_150
