"""Bad input through the real CLI: one clear message, a non-zero exit, the store untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from tests.hubspot_env import SOURCE, TOKEN, TOKEN_ENV, HubSpotEnv


def kpisync(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "KPISYNC_SETTINGS"}
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=120,
        cwd=cwd,
    )


def data_fingerprint(store: Path) -> str:
    """A digest of every synced row and cursor (the run history may record a failed attempt)."""
    from sqlalchemy import text

    engine = open_store(f"sqlite:///{store}")
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table in (
            "accounts",
            "contacts",
            "leads",
            "deals",
            "activities",
            "users",
            "sync_state",
        ):
            for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")):
                digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return digest.hexdigest()


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[tuple[HubSpotEnv, Path]]:
    org = generate_org(seed=2, deals=40)
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=50) as emulator:
        env = HubSpotEnv(org, emulator)
        store = tmp_path / "store.db"
        sync_source(open_store(f"sqlite:///{store}"), SOURCE, env.connector(), SyncOptions())
        yield env, store


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode not in (0, 1), done  # 1 would be an unexpected crash
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: "), done.stderr
    assert len(lines) <= 3, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_malformed_settings(synced: tuple[HubSpotEnv, Path], tmp_path: Path) -> None:
    _, store = synced
    before = data_fingerprint(store)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[kpisync]\nstore = "sqlite:///{store}"\n[sources.hs\ntype = "hubspot"\n')
    assert_one_clear_error(kpisync("sync", "--settings", str(bad)), "not valid TOML", "line 3")
    assert data_fingerprint(store) == before


def test_settings_are_found_by_option_before_the_command_or_by_environment(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    good = env.settings_file(tmp_path, f"sqlite:///{store}")
    bad = tmp_path / "bad.toml"
    bad.write_text("[kpisync\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = kpisync("status", cwd=elsewhere)
    assert_one_clear_error(
        missing, "settings.toml not found", "--settings PATH", "KPISYNC_SETTINGS=PATH"
    )
    assert_one_clear_error(kpisync("-s", str(bad), "status", cwd=elsewhere), "not valid TOML")
    assert_one_clear_error(
        kpisync("status", cwd=elsewhere, env={"KPISYNC_SETTINGS": str(bad)}), "not valid TOML"
    )
    # The command's own --settings wins over the one named before it and over the environment.
    done = kpisync(
        "-s",
        str(bad),
        "status",
        "--settings",
        str(good),
        "--json",
        cwd=elsewhere,
        env={"KPISYNC_SETTINGS": str(bad)},
    )
    assert done.returncode == 0, done.stderr
    assert SOURCE in done.stdout
    done = kpisync("status", "--json", cwd=elsewhere, env={"KPISYNC_SETTINGS": str(good)})
    assert done.returncode == 0, done.stderr
    assert SOURCE in done.stdout


def test_a_misspelt_source_option_stops_a_command_that_builds_no_connector(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    before = data_fingerprint(store)
    settings = env.settings_file(tmp_path, f"sqlite:///{store}", search_lag_second=5)
    for command in (["kpis"], ["status"], ["run", "--once"]):
        done = kpisync(*command, "--settings", str(settings))
        assert_one_clear_error(done, f"sources.{SOURCE}.search_lag_second: unknown key")
        assert done.returncode == 2
    assert data_fingerprint(store) == before


def test_missing_environment_variable(synced: tuple[HubSpotEnv, Path], tmp_path: Path) -> None:
    env, store = synced
    before = data_fingerprint(store)
    settings = env.settings_file(tmp_path, f"sqlite:///{store}")
    done = kpisync("sync", "--settings", str(settings), env={TOKEN_ENV: ""})
    assert_one_clear_error(done, TOKEN_ENV, "export")
    assert done.returncode == 2
    assert data_fingerprint(store) == before


def test_wrong_token_is_refused_without_leaking_it(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    before = data_fingerprint(store)
    settings = env.settings_file(tmp_path, f"sqlite:///{store}")
    done = kpisync("sync", "--settings", str(settings), env={TOKEN_ENV: "pat-na1-wrong-secret-42"})
    assert_one_clear_error(done, "refused the credentials")
    assert done.returncode == 3
    assert "pat-na1-wrong-secret-42" not in done.stderr + done.stdout
    assert data_fingerprint(store) == before


def test_unreachable_host(synced: tuple[HubSpotEnv, Path], tmp_path: Path) -> None:
    env, store = synced
    before = data_fingerprint(store)
    settings = env.settings_file(tmp_path, f"sqlite:///{store}", host="http://127.0.0.1:9")
    done = kpisync("sync", "--settings", str(settings))
    assert_one_clear_error(done, "cannot reach HubSpot at http://127.0.0.1:9", "host setting")
    assert data_fingerprint(store) == before


def test_check_reports_a_wrong_token_in_one_line(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    settings = env.settings_file(tmp_path, f"sqlite:///{store}")
    done = kpisync(
        "check", SOURCE, "--settings", str(settings), env={TOKEN_ENV: "pat-na1-nope-0000"}
    )
    assert done.returncode == 3
    assert "refused the credentials" in done.stderr and "Traceback" not in done.stderr
    ok = kpisync("check", SOURCE, "--settings", str(settings), env={"COLUMNS": "200"})
    assert ok.returncode == 0, ok.stderr
    left = 500_000 - env.emulator.daily_used  # as the last answer's limit headers said
    assert (
        f"{SOURCE}: credentials, reachability and permissions are fine; the CRM allows "
        f"{left:,} more API calls today (of 500,000)"
    ) in ok.stdout, ok.stdout


def test_check_reports_an_unreachable_host_in_seconds(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    settings = env.settings_file(
        tmp_path,
        f"sqlite:///{store}",
        host="http://127.0.0.1:9",
        fast_retries=False,
        timeout_seconds=60,
    )
    # A sync rides out an unreachable CRM for about a minute; check asks in seconds. The
    # subprocess timeout is that promise: a check that waited like a sync would not end in time.
    done = subprocess.run(
        [sys.executable, "-m", "kpisync.cli", "check", SOURCE, "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3, done
    assert "cannot reach HubSpot at http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_writeback_mistake_stops_a_sync_before_it_starts(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    before = data_fingerprint(store)
    settings = env.settings_file(tmp_path, f"sqlite:///{store}")
    with settings.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[writeback.{SOURCE}.account]\nnps_scor = "kpisync_nps_score"\n')
    done = kpisync("sync", "--settings", str(settings))
    assert_one_clear_error(done, f"writeback.{SOURCE}.account.nps_scor: unknown score")
    assert data_fingerprint(store) == before


def test_writeback_with_the_source_as_a_word_says_to_use_source(
    synced: tuple[HubSpotEnv, Path], tmp_path: Path
) -> None:
    env, store = synced
    settings = env.settings_file(tmp_path, f"sqlite:///{store}")
    done = kpisync("writeback", SOURCE, "--settings", str(settings), env={"COLUMNS": "200"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"kpisync writeback --source {SOURCE}" in done.stderr, done.stderr
    done = kpisync("writeback", "run", SOURCE, "--settings", str(settings), env={"COLUMNS": "200"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        "no write-back command 'run' (its commands: approve, resume, revert, runs)" in done.stderr
    ), done.stderr
    assert f"kpisync writeback --source {SOURCE};" in done.stderr, done.stderr
