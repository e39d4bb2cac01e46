"""The four Salesforce login flows against the emulator's SOAP and OAuth endpoints."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators.org.generate import generate_org
from emulators.salesforce.emulator import OrgLogin, SalesforceEmulator
from emulators.server import Knobs
from kpisync.errors import AuthError, ConfigError
from tests.salesforce_env import SalesforceEnv


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def env(key_pair: tuple[bytes, bytes]) -> Iterator[SalesforceEnv]:
    org = generate_org(seed=2, deals=20)
    with SalesforceEmulator(org, login=OrgLogin(jwt_public_key=key_pair[1].decode())) as emulator:
        yield SalesforceEnv(org, emulator)


def oauth(env: SalesforceEnv, **extra: object) -> dict[str, object]:
    login = env.emulator.login
    os.environ["KPISYNC_TEST_SF_SECRET"] = login.consumer_secret
    os.environ["KPISYNC_TEST_SF_REFRESH"] = login.refresh_token
    return {"client_id": login.consumer_key, **extra}


def test_connected_app_password_flow(env: SalesforceEnv) -> None:
    connector = env.connector(**oauth(env, client_secret_env="KPISYNC_TEST_SF_SECRET"))
    assert connector.check() == []
    assert connector.api_usage()["login (password)"] == 1


def test_a_rate_limited_login_is_retried_not_taken_for_refused_credentials(
    env: SalesforceEnv,
) -> None:
    """The emulator answers its injected limit as Salesforce does (403 REQUEST_LIMIT_EXCEEDED);
    the seed makes the very first call, the login, draw it, and the next hundred not."""

    def limits_only_the_first(seed: int) -> bool:
        rolls = random.Random(seed)
        return rolls.random() < 0.05 and all(rolls.random() >= 0.05 for _ in range(100))

    seeds = iter(s for s in range(100_000) if limits_only_the_first(s))
    for options in ({}, oauth(env, client_secret_env="KPISYNC_TEST_SF_SECRET")):  # SOAP, OAuth
        seed = next(seeds)  # a new seed restarts the emulator's draws
        env.emulator.knobs = Knobs(rate_429=0.05, fault_seed=seed)
        connector = env.connector(**options)
        assert connector.check() == []
        logins = {k: v for k, v in connector.api_usage().items() if k.startswith("login")}
        assert list(logins.values()) == [2], logins  # the limited one, then the good one


def test_refresh_token_flow_and_a_revoked_grant(env: SalesforceEnv) -> None:
    options = oauth(
        env,
        username=None,
        password_env=None,
        security_token_env=None,
        refresh_token_env="KPISYNC_TEST_SF_REFRESH",
        client_secret_env="KPISYNC_TEST_SF_SECRET",
    )
    assert env.connector(**options).check() == []
    env.emulator.revoke_refresh_token()
    with pytest.raises(AuthError) as caught:
        env.connector(**options).discover()
    assert "re-authorising" in str(caught.value)


def test_jwt_bearer_flow(env: SalesforceEnv, key_pair: tuple[bytes, bytes], tmp_path: Path) -> None:
    key_file = tmp_path / "server.key"
    key_file.write_bytes(key_pair[0])
    options = oauth(env, password_env=None, security_token_env=None, private_key_file=str(key_file))
    connector = env.connector(**options)
    assert connector.check() == []
    assert connector.api_usage()["login (jwt)"] == 1
    with pytest.raises(ConfigError):
        env.connector(
            **oauth(
                env,
                password_env=None,
                security_token_env=None,
                username=None,
                private_key_file=str(key_file),
            )
        )
