"""One conformance suite, run over every connector that has a kit (tests/harness.py):
check, full then incremental read, deletes, resume after SIGKILL, faults, the error table."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from emulators.org.generate import generate_org
from emulators.server import Knobs
from kpisync.errors import AuthError
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, Deal, SyncState
from kpisync.sync import SyncOptions, sync_source
from tests.harness import available_kits

KITS = available_kits()
ENTITY_NAMES = list(ENTITY_MODELS)


@pytest.fixture(scope="module")
def org():  # type: ignore[no-untyped-def]
    return generate_org(seed=5, deals=150)


@pytest.fixture(params=KITS, ids=lambda kit: kit.name)
def served(request: pytest.FixtureRequest, org) -> Iterator[object]:  # type: ignore[no-untyped-def]
    with request.param.serve(org) as served:
        yield served


def synced_at(engine: Engine) -> dict[str, object]:
    with engine.connect() as connection:
        return dict(connection.execute(select(Deal.external_id, Deal.synced_at)).all())


def no_duplicates(engine: Engine) -> None:
    with engine.connect() as connection:
        for model in ENTITY_MODELS.values():
            table = model.__table__  # type: ignore[attr-defined]
            rows = connection.execute(select(func.count()).select_from(table)).scalar()
            keys = connection.execute(select(func.count()).select_from(
                select(table.c.source, table.c.external_id).distinct().subquery())).scalar()
            assert rows == keys, f"{table.name}: duplicate rows"


def test_check_passes_and_a_bad_token_is_an_auth_error(served) -> None:  # type: ignore[no-untyped-def]
    assert served.connector().check() == []
    problems = served.bad_token_connector().check()
    assert problems and "credential" in problems[0].what.lower() + problems[0].fix.lower()
    with pytest.raises(AuthError):
        sync_source(open_store("sqlite:///:memory:"), served.source, served.bad_token_connector(),
                    SyncOptions())


def test_full_then_incremental_catches_exactly_the_changes(engine: Engine, served) -> None:  # type: ignore[no-untyped-def]
    assert sync_source(engine, served.source, served.connector(), SyncOptions()).status == "succeeded"
    served.assert_store_equals_truth(engine)
    before = synced_at(engine)
    changed = served.change_deals(4, seed=1)
    deleted = served.delete_deal()
    time.sleep(1.1)  # CRMs with one-second timestamps need the clock to move past the change
    assert sync_source(engine, served.source, served.connector(), SyncOptions()).status == "succeeded"
    served.assert_store_equals_truth(engine)
    after = synced_at(engine)
    touched = {k for k, v in after.items() if before.get(k) != v}
    assert changed <= touched and touched - changed <= {deleted}
    with engine.connect() as connection:
        assert connection.execute(select(Deal.deleted_at).where(Deal.external_id == deleted)).scalar()


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


def test_sigkill_at_random_points_then_rerun(served, tmp_path: Path, store_url: str) -> None:  # type: ignore[no-untyped-def]
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
            process = subprocess.Popen([*sync, str(settings), "--full"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    no_duplicates(engine)
    served.assert_store_equals_truth(engine)
    engine.dispose()


def test_faults_that_clear_still_end_equal_to_truth(sqlite_engine: Engine, served) -> None:  # type: ignore[no-untyped-def]
    served.emulator.knobs = Knobs(rate_429=0.05, rate_5xx=0.05, rate_timeout=0.01, rate_drop=0.03,
                                  hang_seconds=2.0, fault_seed=3)
    result = sync_source(sqlite_engine, served.source, served.connector(timeout_seconds=1),
                         SyncOptions())
    assert result.status == "succeeded"
    served.emulator.knobs = Knobs()
    served.assert_store_equals_truth(sqlite_engine)


def test_faults_that_never_clear_stop_cleanly_and_resume(sqlite_engine: Engine, served) -> None:  # type: ignore[no-untyped-def]
    served.emulator.knobs.fail_always_after_calls = 25
    with pytest.raises(Exception) as caught:
        sync_source(sqlite_engine, served.source, served.connector(batch_records=200), SyncOptions())
    assert getattr(caught.value, "retryable", False), f"not a transient error: {caught.value!r}"
    with sqlite_engine.connect() as connection:
        committed = [c for (c,) in connection.execute(select(SyncState.cursor).where(
            SyncState.source == served.source)) if c and c.get("value")]
    assert committed, "no page was committed before the faults started"
    served.emulator.knobs.fail_always_after_calls = None
    result = sync_source(sqlite_engine, served.source, served.connector(), SyncOptions())
    assert result.status == "succeeded"
    served.assert_store_equals_truth(sqlite_engine)


def _kpisync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kpisync.cli", *args], capture_output=True,
                          text=True, timeout=300)


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
        rows = tuple(tuple(connection.execute(select(model.__table__).order_by(  # type: ignore[attr-defined]
            model.__table__.c.id)).all()) for model in ENTITY_MODELS.values())  # type: ignore[attr-defined]
        cursors = tuple(connection.execute(select(SyncState.stream, SyncState.cursor)
                                           .order_by(SyncState.stream)).all())
    engine.dispose()
    return rows + (cursors,)


def test_cli_wrong_secret_and_unreachable_host_leave_the_store_untouched(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    good = served.settings_file(tmp_path, f"sqlite:///{store}")
    assert _kpisync("sync", "--settings", str(good)).returncode == 0
    before = _data_fingerprint(store)
    assert before[ENTITY_NAMES.index("deal")], "the first sync stored no deals"
    for folder, options, needle in (("wrong", served.bad_credentials(), "refused"),
                                    ("closed", served.unreachable(), "cannot reach")):
        (tmp_path / folder).mkdir()
        settings = served.settings_file(tmp_path / folder, f"sqlite:///{store}", **options)
        done = _kpisync("sync", "--settings", str(settings))
        _one_clear_error(done, needle)
        for secret in ("not-the-password", "not-the-access-key", "pat-na1-not-a-real-token"):
            assert secret not in done.stderr + done.stdout
        assert _data_fingerprint(store) == before



@pytest.mark.parametrize("kit", KITS, ids=lambda kit: kit.name)
def test_more_than_10k_deals_on_one_modified_time_sync_completely(  # type: ignore[no-untyped-def]
        sqlite_engine: Engine, kit) -> None:
    """A mass update gives 10,150 deals one modified time; the sync reads each once, and ends."""
    org = generate_org(seed=3, deals=10_150, activities_per_deal=0.0)
    with kit.serve(org) as served:
        served.tie_all_deals(datetime.now(UTC) - timedelta(minutes=5))
        result = sync_source(sqlite_engine, served.source, served.connector(),
                             SyncOptions(streams=(kit.deal_stream,)))
    assert result.status == "succeeded"
    with sqlite_engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(Deal)).scalar()
    assert stored == 10_150
