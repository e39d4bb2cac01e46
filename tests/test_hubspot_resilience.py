"""A HubSpot sync survives SIGKILL at random points, injected faults, and a 10k-record timestamp tie."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from kpisync.cursor import Cursor
from kpisync.errors import TransientError
from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.orggen import generate_org
from kpisync.sandbox.server import Knobs
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, Deal
from kpisync.store.writer import load_cursor
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth


@pytest.fixture(scope="module")
def org():  # type: ignore[no-untyped-def]
    return generate_org(seed=5, deals=150)


@pytest.fixture
def env(org) -> Iterator[HubSpotEnv]:  # type: ignore[no-untyped-def]
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        yield HubSpotEnv(org, emulator)


def no_duplicates(engine: Engine) -> None:
    with engine.connect() as connection:
        for model in ENTITY_MODELS.values():
            table = model.__table__  # type: ignore[attr-defined]
            rows = connection.execute(select(func.count()).select_from(table)).scalar()
            keys = connection.execute(select(func.count()).select_from(
                select(table.c.source, table.c.external_id).distinct().subquery())).scalar()
            assert rows == keys, f"{table.name}: duplicate rows"


def test_sigkill_at_random_points_then_rerun(env: HubSpotEnv, tmp_path: Path, store_url: str) -> None:
    """Each round changes a few records, starts a full re-read and kills it part-way."""
    env.emulator.knobs.latency_seconds = 0.001
    env.emulator.search_rate_per_second = 40  # a generous portal, so that rounds are short
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    options = {"batch_records": 200, "search_rate_per_second": 40}
    timing = env.settings_file(scratch, f"sqlite:///{scratch / 'timing.db'}", **options)
    settings = env.settings_file(tmp_path, store_url, **options)
    sync = [sys.executable, "-m", "kpisync.cli", "sync", "--settings"]
    started = time.monotonic()
    subprocess.run([*sync, str(timing)], check=True, capture_output=True)
    duration = time.monotonic() - started
    rng = random.Random(20261124)
    deal_ids = sorted(env.emulator.dump()["deals"])
    kills = 0
    for round_number in range(12):
        for rid in rng.sample(deal_ids, 3):
            env.emulator.update_record("deals", rid, {"amount": f"{rng.randint(100, 99999)}.{round_number:02d}"})
        process = subprocess.Popen([*sync, str(settings), "--full"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.25, 0.95) * duration)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 10, f"only {kills} of 12 runs were still going when killed"
    final = subprocess.run([*sync, str(settings)], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    engine = open_store(store_url)
    no_duplicates(engine)
    assert_store_equals_truth(engine, SOURCE, env.emulator.dump(), env.org)
    engine.dispose()


def test_faults_that_clear_still_end_equal_to_truth(sqlite_engine: Engine, env: HubSpotEnv) -> None:
    env.emulator.knobs = Knobs(rate_429=0.05, rate_5xx=0.05, rate_timeout=0.01, rate_drop=0.03,
                               hang_seconds=2.0, fault_seed=3)
    result = sync_source(sqlite_engine, SOURCE, env.connector(timeout_seconds=1),
                         SyncOptions())
    assert result.status == "succeeded"
    assert sum(result.api_calls.values()) > 0
    env.emulator.knobs = Knobs()
    assert_store_equals_truth(sqlite_engine, SOURCE, env.emulator.dump(), env.org)


def test_oauth_token_expiring_during_the_sync(sqlite_engine: Engine, org) -> None:  # type: ignore[no-untyped-def]
    from kpisync.sandbox.hubspot_auth import OAuthApp

    app = OAuthApp(client_id="kpisync-test", client_secret="s3cret-client",
                   refresh_token="refresh-abc-123", access_token_lifetime_seconds=1)
    with HubSpotEmulator(org, access_token=TOKEN, oauth=app) as emulator:
        env = HubSpotEnv(org, emulator)
        import os
        os.environ["KPISYNC_TEST_HS_SECRET"] = "s3cret-client"
        os.environ["KPISYNC_TEST_HS_REFRESH"] = "refresh-abc-123"
        emulator.knobs.latency_seconds = 0.002
        connector = env.connector(token_env=None, client_id="kpisync-test",
                                  client_secret_env="KPISYNC_TEST_HS_SECRET",
                                  refresh_token_env="KPISYNC_TEST_HS_REFRESH")
        result = sync_source(sqlite_engine, SOURCE, connector, SyncOptions())
        assert result.status == "succeeded"
        assert result.api_calls["POST /oauth/v1/token"] >= 2
        assert_store_equals_truth(sqlite_engine, SOURCE, emulator.dump(), org)


def test_faults_that_never_clear_stop_with_the_cursor_at_the_last_good_page(
        sqlite_engine: Engine, env: HubSpotEnv) -> None:
    env.emulator.knobs.fail_always_after_calls = 40
    with pytest.raises(TransientError) as caught:
        sync_source(sqlite_engine, SOURCE, env.connector(batch_records=200), SyncOptions())
    assert "HubSpot error 5" in caught.value.message
    with sqlite_engine.connect() as connection:
        cursors = {stream: load_cursor(connection, SOURCE, stream)
                   for stream in ("companies", "contacts", "deals", "calls")}
    assert any(c != Cursor() for c in cursors.values()), "no page was committed before the faults"
    env.emulator.knobs.fail_always_after_calls = None
    env.emulator.reset_calls()
    result = sync_source(sqlite_engine, SOURCE, env.connector(), SyncOptions())
    assert result.status == "succeeded"
    assert_store_equals_truth(sqlite_engine, SOURCE, env.emulator.dump(), env.org)


def test_more_than_10k_deals_on_one_timestamp(sqlite_engine: Engine) -> None:
    org = generate_org(seed=3, deals=10_150, activities_per_deal=0.0)
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        env = HubSpotEnv(org, emulator)
        emulator.touch_all("deals", datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
        result = sync_source(sqlite_engine, SOURCE, env.connector(),
                             SyncOptions(streams=("deals",)))
        assert result.status == "succeeded"
        with sqlite_engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(Deal)).scalar()
        assert stored == len(emulator.dump()["deals"]) == 10_150
        searches = result.api_calls["POST /crm/v3/objects/deals/search"]
        assert searches <= 10_150 // 200 + 6  # one tie-size query and one page read twice
