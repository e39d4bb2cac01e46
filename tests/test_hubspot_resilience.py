"""HubSpot's own hazards: an OAuth token expiring mid-sync, and more than 10k records on one timestamp.

The generic ones (kills, faults, deletes) are in tests/test_conformance.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from connectors.hubspot import HubSpotConnector
from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.store.models import Deal
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=5, deals=150)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    with HubSpotEmulator(org, access_token=TOKEN) as emulator:
        yield HubSpotEnv(org, emulator)


def test_oauth_token_expiring_during_the_sync(sqlite_engine: Engine, org: Org) -> None:
    from emulators.hubspot.auth import OAuthApp

    app = OAuthApp(
        client_id="kpisync-test",
        client_secret="s3cret-client",
        refresh_token="refresh-abc-123",
        access_token_lifetime_seconds=1,
    )
    with HubSpotEmulator(org, access_token=TOKEN, oauth=app) as emulator:
        env = HubSpotEnv(org, emulator)
        import os

        os.environ["KPISYNC_TEST_HS_SECRET"] = "s3cret-client"
        os.environ["KPISYNC_TEST_HS_REFRESH"] = "refresh-abc-123"
        emulator.knobs.latency_seconds = 0.002
        connector = env.connector(
            token_env=None,
            client_id="kpisync-test",
            client_secret_env="KPISYNC_TEST_HS_SECRET",
            refresh_token_env="KPISYNC_TEST_HS_REFRESH",
        )
        result = sync_source(sqlite_engine, SOURCE, connector, SyncOptions())
        assert result.status == "succeeded"
        assert result.api_calls["POST /oauth/v1/token"] >= 2
        assert_store_equals_truth(sqlite_engine, SOURCE, emulator.dump(), org)


def test_more_than_10k_deals_on_one_timestamp(sqlite_engine: Engine) -> None:
    org = generate_org(seed=3, deals=10_150, activities_per_deal=0.0)
    # A generous search limit: this test counts pages, and 429 retries on a busy machine would
    # count as calls too (the rate limit has tests of its own).
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=50) as emulator:
        env = HubSpotEnv(org, emulator)
        emulator.touch_all("deals", datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
        result = sync_source(
            sqlite_engine, SOURCE, env.connector(), SyncOptions(streams=("deals",))
        )
        assert result.status == "succeeded"
        with sqlite_engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(Deal)).scalar()
        assert stored == len(emulator.dump()["deals"]) == 10_150
        searches = result.api_calls["POST /crm/v3/objects/deals/search"]
        assert searches <= 10_150 // 200 + 6  # one tie-size query and one page read twice


def _oauth_connector(env: HubSpotEnv) -> HubSpotConnector:
    import os

    os.environ["KPISYNC_TEST_HS_SECRET"] = "s3cret-client"
    os.environ["KPISYNC_TEST_HS_REFRESH"] = "refresh-abc-123"
    return env.connector(
        token_env=None,
        client_id="kpisync-test",
        client_secret_env="KPISYNC_TEST_HS_SECRET",
        refresh_token_env="KPISYNC_TEST_HS_REFRESH",
    )


def test_401_refreshes_once_and_a_revoked_grant_says_reauthorise(
    sqlite_engine: Engine, org: Org
) -> None:
    from emulators.hubspot.auth import OAuthApp
    from kpisync.errors import AuthError

    app = OAuthApp(
        client_id="kpisync-test",
        client_secret="s3cret-client",
        refresh_token="refresh-abc-123",
        access_token_lifetime_seconds=3600,
    )
    with HubSpotEmulator(org, access_token=TOKEN, oauth=app) as emulator:
        env = HubSpotEnv(org, emulator)
        connector = _oauth_connector(env)
        assert sync_source(sqlite_engine, SOURCE, connector, SyncOptions()).status == "succeeded"
        emulator.expire_access_tokens()  # the cached token now earns 401s
        emulator.update_record("deals", sorted(emulator.dump()["deals"])[0], {"amount": "77.00"})
        second = sync_source(sqlite_engine, SOURCE, connector, SyncOptions())
        assert second.status == "succeeded"
        assert second.api_calls["POST /oauth/v1/token"] == 2  # the first token, then one refresh
        assert_store_equals_truth(sqlite_engine, SOURCE, emulator.dump(), org)
        emulator.revoke_refresh_token()
        emulator.expire_access_tokens()
        with pytest.raises(AuthError) as caught:
            sync_source(sqlite_engine, SOURCE, connector, SyncOptions())
        assert "re-authoris" in (caught.value.hint or "")
