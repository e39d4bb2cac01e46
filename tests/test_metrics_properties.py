"""Property-based tests: bounded scores and rates, "no data" for empty denominators, eNPS anonymity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from kpisync.store.database import open_store
from kpisync.store.models import Deal, SurveyResponse, User, model_table
from metrics.anonymity import protect
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue, Ratio
from metrics.engine import compute_values
from metrics.options import MetricConfig, MetricSettings

NOW = datetime(2025, 6, 15, 12, tzinfo=UTC)
START = datetime(2025, 1, 1, tzinfo=UTC)
RATES = ["win_rate", "close_rate", "loss_to_no_decision", "loss_to_competitor", "detractor_share"]
SCORES = ["nps", "enps"]
TEAMS = ["Alpha", "Beta", "Gamma", "Delta"]


@pytest.fixture(scope="module")
def store() -> Iterator[Engine]:
    engine = open_store("sqlite://")
    yield engine
    engine.dispose()


def instant(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


# owner, status, created (minutes after START), days to close, loss reason, competitor
DealRow = tuple[int, str, int, int, str | None, str | None]
AnswerRow = tuple[str, int, str | None, int]  # kind, score, team, answered (minutes after START)
deal_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # owner
        st.sampled_from(["open", "won", "lost"]),
        st.integers(0, 200_000),  # created, minutes after START
        st.integers(0, 150),  # days to close
        st.sampled_from([None, "No decision", "Price"]),
        st.sampled_from([None, "Initech"]),
    ),
    max_size=25,
)
answer_rows = st.lists(
    st.tuples(
        st.sampled_from(["nps", "enps"]),
        st.integers(0, 10),
        st.sampled_from([*TEAMS, None]),
        st.integers(0, 200_000),
    ),
    max_size=40,
)


def load(engine: Engine, deals: list[DealRow], answers: list[AnswerRow]) -> None:
    with engine.begin() as connection:
        for model in (Deal, SurveyResponse, User):
            connection.execute(delete(model_table(model)))
        connection.execute(
            model_table(User).insert(),
            [
                {
                    "source": "crm",
                    "external_id": f"u{i}",
                    "team": TEAMS[i % 2],
                    "region": "R",
                    "custom": {},
                    "raw": {},
                    "is_active": True,
                    "created_at": START,
                }
                for i in range(4)
            ],
        )
        if deals:
            connection.execute(
                model_table(Deal).insert(),
                [
                    {
                        "source": "crm",
                        "external_id": f"d{n}",
                        "owner_id": f"u{owner}",
                        "is_closed": state != "open",
                        "is_won": state == "won",
                        "amount": Decimal(100 + n),
                        "currency": "USD",
                        "created_at": instant(created),
                        "close_date": (instant(created) + timedelta(days=days)).date(),
                        "loss_reason": reason,
                        "competitor": competitor,
                        "custom": {},
                        "raw": {},
                    }
                    for n, (owner, state, created, days, reason, competitor) in enumerate(deals)
                ],
            )
        if answers:
            connection.execute(
                model_table(SurveyResponse).insert(),
                [
                    {
                        "source": "crm",
                        "external_id": f"s{n}",
                        "kind": kind,
                        "score": score,
                        "team": team if kind == "enps" else None,
                        "answered_at": instant(at),
                        "origin": "crm",
                        "custom": {},
                        "raw": {},
                    }
                    for n, (kind, score, team, at) in enumerate(answers)
                ],
            )


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(deals=deal_rows, answers=answer_rows)
def test_bounds_no_data_and_anonymity(
    store: Engine, deals: list[DealRow], answers: list[AnswerRow]
) -> None:
    load(store, deals, answers)
    config = MetricConfig(MetricSettings(history_years=1), timezone="Europe/Warsaw")
    with store.begin() as connection:
        values = compute_values(connection, config, now=NOW, only=RATES + SCORES)
    for v in values:
        if v.value is None:
            assert v.reason, v
            continue
        if v.kpi in RATES:
            assert 0.0 <= v.value <= 1.0, v
        if v.kpi in SCORES:
            assert -100.0 <= v.value <= 100.0, v
        if isinstance(REGISTRY[v.kpi].measure, Ratio):
            assert v.count, f"a ratio with an empty denominator must be no data: {v}"
        if v.kpi == "enps":
            assert (v.count or 0) >= 5, v
    assert_no_differencing([v for v in values if v.kpi == "enps"], 5)


def assert_no_differencing(values: list[KpiValue], minimum: int) -> None:
    periods = {(v.period, v.period_start) for v in values}
    for period in periods:
        group = [v for v in values if (v.period, v.period_start) == period]
        org = [v for v in group if v.grain == "org" and v.value is not None]
        shown = [v for v in group if v.grain == "team" and v.value is not None]
        assert all((v.count or 0) >= minimum for v in shown)
        if org:
            rest = (org[0].count or 0) - sum(v.count or 0 for v in shown)
            assert rest == 0 or rest >= minimum, (period, rest)


@given(
    teams=st.lists(st.integers(0, 12), max_size=6),
    untagged=st.integers(0, 8),
    minimum=st.integers(2, 7),
)
def test_protect_never_leaves_a_small_group_visible(
    teams: list[int], untagged: int, minimum: int
) -> None:
    start = date(2025, 1, 1)
    total = sum(teams) + untagged
    values = [KpiValue("enps", "month", start, "org", "org", 0.0 if total else None, total)]
    values += [
        KpiValue("enps", "month", start, "team", f"t{i}", 0.0, n) for i, n in enumerate(teams) if n
    ]
    protected = protect(values, minimum)
    assert len(protected) == len(values)
    assert all(v.reason for v in protected if v.value is None and v.count is None)
    assert_no_differencing(
        [v for v in protected if v.value is not None or v.grain == "team"]
        + [v for v in protected if v.grain == "org" and v.value is None],
        minimum,
    )
    org = next(v for v in protected if v.grain == "org")
    assert (org.value is None) == (total < minimum)
