"""An incremental computation stores exactly what a full one would.

Random sequences of edits (deals inserted, moved between periods, owners and accounts, deleted;
accounts and contacts merged; rates, teams, regions changed; stage changes, activities and answers
added; a setting changed) are applied to the hand-checked org; after each, the values the
incremental computation left in the store must equal, key for key and value for value, those of a
forced full computation at the same instant, with no value more or less.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from kpisync.connector import Deleted, Merged, Page
from kpisync.store.database import open_store
from kpisync.store.models import (
    Account,
    Activity,
    Deal,
    DealStageChange,
    ExchangeRate,
    SurveyResponse,
    User,
    model_table,
)
from kpisync.store.writer import write_page
from metrics.commands import register
from metrics.engine import compute_all
from metrics.incremental import BASE
from metrics.options import MetricConfig
from metrics.survey_import import import_surveys
from tests.test_compute_reuse import LATER, config, standing, write
from tests.test_metrics_commands import write_settings
from tests.test_metrics_fixture import load_org

DEALS = ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d10", "d11", "dP2", "dP3", "n1", "n2"]
USERS = ["u1", "u2", "u3", "u4"]
ACCOUNTS = ["a1", "a2", "a3", "a4", "a5"]
DAYS = st.integers(min_value=-500, max_value=40)  # around the fixture's now, 2025-04-10
TODAY = LATER.date()


def on(days: int) -> date:
    return TODAY + timedelta(days=days)


def at(days: int, hour: int = 10) -> datetime:
    return datetime(on(days).year, on(days).month, on(days).day, hour, tzinfo=UTC)


@dataclass(frozen=True)
class Edit:
    """One change to the store (`page` or `answer`), or to the settings (`setting`)."""

    page: Page | None = None
    answer: str | None = None  # a CSV line for the survey import
    setting: dict[str, Any] | None = None


@st.composite
def deal_upsert(draw: st.DrawFn) -> Edit:
    closed = draw(st.booleans())
    created = draw(DAYS)
    row = Deal.row(
        external_id=draw(st.sampled_from(DEALS)),
        account_id=draw(st.sampled_from(ACCOUNTS)),
        owner_id=draw(st.sampled_from(USERS)),
        is_closed=closed,
        is_won=closed and draw(st.booleans()),
        amount=Decimal(draw(st.integers(min_value=0, max_value=5000))),
        currency=draw(st.sampled_from(["USD", "EUR", "GBP"])),
        created_at=at(created),
        close_date=on(created + draw(st.integers(0, 90))),
        deal_type=draw(st.sampled_from(["new", "upgrade", "cross_sell"])),
        lead_source=draw(st.sampled_from(["Web", "Referral"])),
        loss_reason=draw(st.sampled_from([None, "Price", "No decision"])),
        competitor=draw(st.sampled_from([None, "Hooli"])),
        stage="won" if closed else "proposal",
    )
    return Edit(Page("deals", [row]))


def rows(stream: str, *records: Any) -> Edit:
    return Edit(Page(stream, list(records)))


EDITS = st.one_of(
    deal_upsert(),
    st.builds(
        lambda d: Edit(Page("deals", [], deleted=[Deleted("deal", d)])), st.sampled_from(DEALS)
    ),
    st.builds(
        lambda pair: Edit(Page("accounts", [], merged=[Merged("account", *pair)])),
        st.sampled_from([("a3", "a1"), ("a4", "a2"), ("a5", "a1")]),
    ),
    st.builds(
        lambda rate, start: rows(
            "exchange_rates",
            ExchangeRate.row(
                external_id="eur", currency="EUR", rate=Decimal(rate) / 100, valid_from=on(start)
            ),
        ),
        st.integers(50, 150),
        DAYS,
    ),
    st.builds(
        lambda user, team: rows(
            "users",
            User.row(
                external_id=user,
                name=user,
                email=f"{user}@example.com",
                team=team,
                region="North",
                started_on=date(2024, 6, 1),
                created_at=datetime(2024, 6, 1, tzinfo=UTC),
            ),
        ),
        st.sampled_from(USERS),
        st.sampled_from(["Alpha", "Beta", "Gamma"]),
    ),
    st.builds(
        lambda account, region: rows(
            "accounts",
            Account.row(
                external_id=account,
                name=account,
                owner_id="u1",
                region=region,
                type="customer",
                custom={"Segment": "SMB"},
            ),
        ),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["North", "East"]),
    ),
    st.builds(
        lambda n, deal, stage, days: rows(
            "deal_stage_changes",
            DealStageChange.row(
                external_id=f"hx{n}", deal_id=deal, stage=stage, entered_at=at(days)
            ),
        ),
        st.integers(1, 3),
        st.sampled_from(DEALS),
        st.sampled_from(["proposal", "won", "new"]),
        DAYS,
    ),
    st.builds(
        lambda n, kind, days, account: rows(
            "activities",
            Activity.row(
                external_id=f"ax{n}",
                kind=kind,
                direction="outbound",
                occurred_at=at(days, 9),
                owner_id="u2",
                account_id=account,
                duration_seconds=600,
            ),
        ),
        st.integers(1, 3),
        st.sampled_from(["call", "email", "meeting"]),
        DAYS,
        st.sampled_from(ACCOUNTS),
    ),
    st.builds(
        lambda n, kind, score, days: rows(
            "survey_responses",
            SurveyResponse.row(
                external_id=f"sx{n}",
                kind=kind,
                score=score,
                answered_at=at(min(days, 0), 8),
                account_id="a2",
                team="Alpha",
            ),
        ),
        st.integers(1, 3),
        st.sampled_from(["nps", "enps"]),
        st.integers(0, 10),
        DAYS,
    ),
    st.builds(
        lambda score, days: Edit(answer=f"nps,{score},{on(min(days, 0))},cara@acme.test"),
        st.integers(0, 10),
        DAYS,
    ),
    st.builds(lambda days: Edit(setting={"engagement_days": days}), st.integers(7, 60)),
)


def apply(engine: Engine, edit: Edit, tmp: Path) -> None:
    if edit.page is not None:
        write(engine, edit.page)
    elif edit.answer is not None:
        answers = tmp / "answers.csv"
        answers.write_text(f"kind,score,answered_at,respondent\n{edit.answer}\n", encoding="utf-8")
        import_surveys(engine, answers, source="crm", timezone="Europe/Warsaw")


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(EDITS, min_size=1, max_size=3))
def test_incremental_values_equal_a_full_computation(
    engine: Engine, tmp_path: Path, edits: list[Edit]
) -> None:
    with engine.connect() as connection:  # every example continues the store the last one left
        fresh = (
            connection.execute(select(func.count()).select_from(model_table(Deal))).scalar_one()
            == 0
        )
    current: MetricConfig = config()
    if fresh:
        load_org(engine)
    # The base: a full computation with the default settings (the last example may have left
    # values computed with other settings, which an incremental rightly refuses to build on).
    compute_all(engine, current, now=LATER, force=True)
    for edit in edits:
        apply(engine, edit, tmp_path)
        if edit.setting is not None:
            current = config(**edit.setting)
        result = compute_all(engine, current, now=LATER)
        if edit.setting is not None:
            assert result.reused_from is None and result.recomputed is None, (
                "a settings change must recompute everything"
            )
        else:
            assert result.reused_from is not None or result.recomputed is not None, (
                "a change of records must take the incremental path"
            )
        incremental = standing(engine)
        assert incremental and len(incremental) == result.standing
        full = compute_all(engine, current, now=LATER, force=True)
        assert full.changed == 0, f"{edit}: {full.changed} values differ from a full computation"
        assert standing(engine) == incremental, f"{edit}: values present in one only"


def test_a_failed_store_of_values_falls_back_to_a_full_computation(engine: Engine) -> None:
    """The kept staged facts count only once the values computed with them are stored."""
    load_org(engine)
    first = compute_all(engine, config(), now=LATER)
    assert first.recomputed is None
    with engine.begin() as connection:  # as if the last computation had never finished
        connection.exec_driver_sql("UPDATE kpi_base_state SET computation_id = NULL")
    write(engine, Page("deals", [], deleted=[Deleted("deal", "d3")]))
    again = compute_all(engine, config(), now=LATER)
    assert again.recomputed is None and again.reused_from is None
    write(engine, Page("deals", [], deleted=[Deleted("deal", "d4")]))
    third = compute_all(engine, config(), now=LATER)
    assert third.recomputed is not None and 0 < third.recomputed < third.standing
    with engine.connect() as connection:
        kept = connection.exec_driver_sql(f"SELECT count(*) FROM {BASE}kpi_deal").scalar_one()
        live = connection.exec_driver_sql("SELECT count(*) FROM deals WHERE deleted_at IS NULL")
        assert kept == live.scalar_one() == 11, "the kept copy is the last computation's deals"


def test_compute_says_how_many_values_it_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("metrics.commands.console", Console(width=200))
    app = typer.Typer()
    register(app)
    settings, runner = write_settings(tmp_path), CliRunner()
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    today = datetime.now(UTC)

    def won(deal: str, amount: int) -> None:
        with engine.begin() as connection:
            write_page(
                connection,
                "crm",
                Page(
                    "deals",
                    [
                        Deal.row(
                            external_id=deal,
                            is_closed=True,
                            is_won=True,
                            amount=Decimal(amount),
                            currency="USD",
                            created_at=today - timedelta(days=40),
                            close_date=(today - timedelta(days=2)).date(),
                        )
                    ],
                ),
                today,
            )

    won("d1", 100)
    first = runner.invoke(app, ["compute", "--settings", str(settings)])
    assert first.exit_code == 0 and "computed" in first.output, first.output
    won("d2", 250)
    second = runner.invoke(app, ["compute", "--json", "--settings", str(settings)])
    assert second.exit_code == 0, second.output
    record = json.loads(second.output)
    assert record["reused_from"] is None and 0 < record["recomputed"] < record["values"]
    assert record["changed"] > 0
    engine.dispose()
