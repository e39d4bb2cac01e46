"""The API budget per CRM org against the HubSpot emulator's daily allowance and headers: a run stops
at a checkpoint when the share is used, the next run that day makes no call, write-back is refused
by the same budget, and the next day's run resumes and ends equal to the truth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from emulators.hubspot.emulator import HubSpotEmulator, HubSpotKnobs
from emulators.org.generate import generate_org
from emulators.org.model import Org
from kpisync.budget import BudgetedConnector, BudgetGate, BudgetSpent, budget_of, day_usage
from kpisync.config import Settings, load_settings
from kpisync.connector import FieldUpdate
from kpisync.pipeline import Pipeline
from kpisync.scheduler.history import now_utc
from kpisync.scheduler.options import scheduler_settings
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import pipeline_runs, settings_text, sync_runs, write_settings

WRITE = "POST /crm/v3/objects/{type}/batch/update"


class Clock:
    def __init__(self) -> None:
        self.now = now_utc()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=6, deals=20)


@pytest.fixture
def env(org: Org) -> Iterator[HubSpotEnv]:
    knobs = HubSpotKnobs(daily_budget=60)
    with HubSpotEmulator(
        org, access_token=TOKEN, knobs=knobs, search_rate_per_second=1000
    ) as emulator:
        yield HubSpotEnv(org, emulator)


def stored_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return sum(
            connection.execute(select(func.count()).select_from(model)).scalar() or 0
            for model in ENTITY_MODELS.values()
        )


def setup(env: HubSpotEnv, tmp_path: Path, budget: str) -> tuple[Settings, Engine]:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    path = write_settings(
        tmp_path,
        settings_text(
            env,
            store_url,
            tables=(
                f'[budgets.portal]\nsources = ["{SOURCE}"]\n{budget}\n\n[scheduler]\nstages = ["sync"]\n'
            ),
        ),
    )
    return load_settings(path), open_store(store_url)


def clocked(settings: Settings, engine: Engine) -> tuple[Clock, Pipeline]:
    """A sync-only pipeline on a clock the test moves."""
    clock = Clock()
    return clock, Pipeline(
        engine, settings, scheduler_settings(settings), stop=threading.Event(), clock=clock
    )


def test_the_share_stops_a_run_at_a_checkpoint_and_the_next_day_resumes(
    env: HubSpotEnv, tmp_path: Path
) -> None:
    assert isinstance(env.emulator.knobs, HubSpotKnobs)
    env.emulator.knobs.daily_budget = 70
    settings, engine = setup(env, tmp_path, "daily_allowance = 70\ndaily_share = 0.5")
    clock, pipeline = clocked(settings, engine)
    slot = clock.now.replace(microsecond=0)
    budget = budget_of(settings, SOURCE)
    assert budget is not None

    assert pipeline.run_slot(SOURCE, slot) == "budget"
    calls, remaining = day_usage(engine, "portal", clock.now.astimezone(budget.zone).date())
    assert 35 <= calls <= 40, calls  # the share (35), overshot by at most one page's calls
    assert remaining is not None and remaining > 35  # read from X-HubSpot-RateLimit-Daily-*
    assert sync_runs(engine, SOURCE)[-1].status == "interrupted"
    assert "API budget of portal used" in (pipeline_runs(engine, SOURCE)[-1].error or "")

    before = env.emulator.total_calls
    assert pipeline.run_slot(SOURCE, slot + timedelta(minutes=15)) == "budget"
    assert env.emulator.total_calls == before, "a run with the share spent still called the CRM"

    connector = env.connector()
    gated = BudgetedConnector(connector, BudgetGate(engine, budget, connector, clock=clock))
    with pytest.raises(BudgetSpent):
        gated.write("deal", [FieldUpdate("1", (("kpisync_stalled", "true"),))])
    assert env.emulator.calls[WRITE] == 0  # write-back spends from the same budget

    clock.now += timedelta(days=1)
    env.emulator.daily_used = 0  # the CRM's day turned too
    outcome = pipeline.run_slot(SOURCE, slot + timedelta(days=1))
    assert outcome == "succeeded", [
        (r.status, r.error, r.api_calls) for r in pipeline_runs(engine, SOURCE)
    ]
    assert_store_equals_truth(engine, SOURCE, env.emulator.dump(), env.org)
    first, last = pipeline_runs(engine, SOURCE)[0], pipeline_runs(engine, SOURCE)[-1]
    assert first.upserted > 0 and last.upserted < stored_rows(engine)  # resumed, not started over
    engine.dispose()


def test_the_crm_reported_remainder_keeps_the_others_part(env: HubSpotEnv, tmp_path: Path) -> None:
    """Others used most of today's allowance: kpisync stops where the CRM's count says so."""
    settings, engine = setup(env, tmp_path, "daily_allowance = 60\ndaily_share = 0.8")
    env.emulator.daily_used = 40  # other integrations: 20 calls left, 12 of them kept for others
    pipeline = Pipeline(engine, settings, scheduler_settings(settings), stop=threading.Event())
    assert pipeline.run_slot(SOURCE, now_utc()) == "budget"
    assert "the CRM reports" in (pipeline_runs(engine, SOURCE)[-1].error or "")
    assert env.emulator.daily_used <= 60 - 12 + 3  # at most one page past the reserve
    engine.dispose()


def test_the_daily_limit_comes_from_hubspots_headers_when_not_set(
    env: HubSpotEnv, tmp_path: Path
) -> None:
    """No daily_allowance: the share is of the limit X-HubSpot-RateLimit-Daily reports."""
    assert isinstance(env.emulator.knobs, HubSpotKnobs)
    env.emulator.knobs.daily_budget = 70
    settings, engine = setup(env, tmp_path, "daily_share = 0.5")
    clock, pipeline = clocked(settings, engine)
    budget = budget_of(settings, SOURCE)
    assert budget is not None
    assert pipeline.run_slot(SOURCE, clock.now) == "budget"
    calls, _ = day_usage(engine, "portal", clock.now.astimezone(budget.zone).date())
    assert 35 <= calls <= 40, calls  # half of the 70 the headers report, overshot by one page
    assert "kpisync made" in (pipeline_runs(engine, SOURCE)[-1].error or "")
    engine.dispose()
