"""The API budget per org on Salesforce: the day's ledger counts the calls kpisync made, never the
org-wide usage that Sforce-Limit-Info reports beside them, and the org's daily limit is read from
that header when the budget does not set one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.org.generate import generate_org
from emulators.salesforce.emulator import SalesforceEmulator, SalesforceKnobs
from kpisync.budget import budget_of, day_usage
from kpisync.config import load_settings
from kpisync.pipeline import Pipeline
from kpisync.scheduler.history import now_utc
from kpisync.scheduler.options import scheduler_settings
from kpisync.store.database import open_store
from tests.harness import toml_value
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import assert_store_equals_truth


@pytest.fixture
def env() -> Iterator[SalesforceEnv]:
    org = generate_org(seed=6, deals=20)
    with SalesforceEmulator(org, knobs=SalesforceKnobs(daily_api_limit=5000)) as emulator:
        yield SalesforceEnv(org, emulator)


def run_once(env: SalesforceEnv, tmp_path: Path, budget: str) -> tuple[str | None, int, int | None]:
    """One pipeline run (sync only) under `budget`; its outcome and the day's ledger."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    source = env.options(min_api_remaining=0)  # the budget alone decides here
    options = "\n".join(f"{k} = {toml_value(v)}" for k, v in source.items())
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[kpisync]\nstore = "{store_url}"\n\n[sources.{SOURCE}]\n{options}\n\n'
        f'[budgets.org]\nsources = ["{SOURCE}"]\n{budget}\n\n'
        '[scheduler]\nstages = ["sync"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path)
    engine = open_store(store_url)
    pipeline = Pipeline(engine, settings, scheduler_settings(settings), stop=threading.Event())
    outcome = pipeline.run_slot(SOURCE, now_utc())
    budget_settings = budget_of(settings, SOURCE)
    assert budget_settings is not None
    calls, remaining = day_usage(engine, "org", now_utc().astimezone(budget_settings.zone).date())
    if outcome == "succeeded":
        assert_store_equals_truth(engine, env.emulator.dump())
    engine.dispose()
    return outcome, calls, remaining


def test_the_ledger_counts_kpisyncs_calls_and_the_limit_comes_from_the_header(
    env: SalesforceEnv, tmp_path: Path
) -> None:
    env.emulator.api_used = 1000  # other integrations' calls today, in the org's usage count
    outcome, calls, remaining = run_once(env, tmp_path, "daily_share = 0.9")  # no daily_allowance
    assert outcome == "succeeded"
    made = env.emulator.api_used - 1000  # every authenticated call the emulator counted
    assert 0 < made < 100
    # kpisync counts its logins too, which the org's usage count leaves out
    assert made <= calls <= made + 2, (calls, made)
    # the org's count as the last checkpoint read it from Sforce-Limit-Info
    assert remaining is not None and 5000 - env.emulator.api_used <= remaining < 4000
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "kpisync.cli",
            "status",
            "--settings",
            str(tmp_path / "settings.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert f"{calls} (CRM: {remaining:,} left)" in status.stdout, status.stdout


def test_a_share_already_used_by_others_stops_the_run_before_its_pages(
    env: SalesforceEnv, tmp_path: Path
) -> None:
    env.emulator.api_used = 4900  # 100 left of 5,000; the other half of the day is kept for others
    outcome, _, _ = run_once(env, tmp_path, "daily_share = 0.5")
    assert outcome == "budget"
    assert env.emulator.api_used - 4900 <= 1  # the limits resource, asked before any other call
