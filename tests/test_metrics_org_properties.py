"""Property-based tests over generated orgs: what must hold of every KPI value, whatever the data.

Orgs are drawn as canonical rows with the timings that broke KPIs before: activities before the
lead existed (on the contact it converts into), leads converted into an account after it was won,
contacts created before or after the win, instants on both sides of a daylight-saving switch and
before the history window, reps hired inside a period, eNPS answers spread over weeks, months and
quarters in teams of every size. Each example is computed as of one fixed "now":

- no duration KPI (days, hours) is ever negative;
- every eNPS value shown (computed), stored (the snapshot) or written back (`team_enps`) comes from
  at least the minimum number of answers, and no two shown groups where one contains the other
  (by grain: the org holds its teams; by period: a week inside a month, a month in a quarter …)
  differ by 1 to minimum − 1 answers; nor does the org minus its shown teams;
- a KPI whose input the store does not hold (line items, stage history from the CRM, users'
  start dates) is "no data" with the reason, never 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from kpisync.connector import OBSERVED_STAGE_BASIS
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, model_table
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.engine import compute_all
from metrics.holdings import INPUTS
from metrics.models import KpiSnapshot, KpiValueRecord
from metrics.options import MetricConfig, MetricSettings, Roles
from metrics.periods import period_end
from metrics.records import team_enps
from metrics.snapshots import latest_values

NOW = datetime(2025, 11, 20, 12, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # before the window (2025) on purpose
MINUTES = int((NOW - T0).total_seconds() // 60)
TEAMS = ("Alpha", "Beta", "Gamma")
MINIMUM = 3
NEEDS = {kpi.name: kpi.needs for kpi in REGISTRY if kpi.needs}


@pytest.fixture(scope="module")
def store() -> Iterator[Engine]:
    engine = open_store("sqlite://")
    yield engine
    engine.dispose()


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


instants = st.integers(0, MINUTES)
deals = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(["open", "won", "lost"]),
        instants,
        st.integers(0, 400),
        st.integers(0, 5),
    ),
    max_size=15,
)
leads = st.lists(
    st.tuples(
        instants,
        st.booleans(),
        st.integers(0, 5),
        st.integers(0, 5),
        st.sampled_from(["Web", "Event", None]),
    ),
    max_size=10,
)
contacts = st.lists(st.tuples(instants, st.integers(0, 5)), max_size=8)
activities = st.lists(
    st.tuples(
        st.integers(0, 7),
        instants,
        st.sampled_from(["call", "meeting", "email"]),
        st.sampled_from(["outbound", "inbound"]),
        st.integers(0, 9000),
    ),
    max_size=20,
)
# eNPS answers: a team (or none), a score, and days into 2025 (bunched, so groups are small)
answers = st.lists(
    st.tuples(st.sampled_from([*TEAMS, None]), st.integers(0, 10), st.integers(0, 320)), max_size=45
)
starts = st.lists(st.one_of(st.none(), st.integers(0, 700)), min_size=4, max_size=4)


def rows(
    deal_rows: list[Any],
    lead_rows: list[Any],
    contact_rows: list[Any],
    activity_rows: list[Any],
    answer_rows: list[Any],
    started: list[int | None],
    inputs: set[str],
) -> dict[str, list[dict[str, Any]]]:
    has_start = "start_dates" in inputs
    out: dict[str, list[dict[str, Any]]] = {
        "users": [
            {
                "external_id": f"u{i}",
                "team": TEAMS[i % 2],
                "is_active": True,
                "started_on": (T0 + timedelta(days=s)).date() if has_start and s else None,
                "created_at": T0 if has_start else None,
            }
            for i, s in enumerate(started)
        ],
        "accounts": [{"external_id": f"a{i}", "type": "customer"} for i in range(6)],
        "contacts": [
            {"external_id": f"c{n}", "account_id": f"a{account}", "created_at": at(when)}
            for n, (when, account) in enumerate(contact_rows)
        ],
        "leads": [
            {
                "external_id": f"l{n}",
                "owner_id": "u0",
                "created_at": at(when),
                "lead_source": source,
                "is_converted": converted,
                "converted_at": at(when + 600) if converted else None,
                "converted_account_id": f"a{account}" if converted else None,
                "converted_contact_id": f"c{contact}" if converted else None,
            }
            for n, (when, converted, account, contact, source) in enumerate(lead_rows)
        ],
        "deals": [],
        "deal_stage_changes": [],
        "line_items": [],
        "activities": [],
        "survey_responses": [],
    }
    for n, (owner, state, created, days, account) in enumerate(deal_rows):
        closed = at(created) + timedelta(days=days)
        out["deals"].append(
            {
                "external_id": f"d{n}",
                "owner_id": f"u{owner}",
                "account_id": f"a{account}",
                "is_closed": state != "open",
                "is_won": state == "won",
                "amount": Decimal(100 + n),
                "currency": "USD",
                "created_at": at(created),
                "close_date": closed.date(),
                "stage": "proposal",
            }
        )
        raw = {} if "stage_history" in inputs else {"basis": OBSERVED_STAGE_BASIS}
        out["deal_stage_changes"] += [
            {
                "external_id": f"h{n}-{i}",
                "deal_id": f"d{n}",
                "stage": stage,
                "raw": raw,
                "entered_at": at(created) + timedelta(hours=i * 5),
            }
            for i, stage in enumerate(("qualified", "proposal"))
        ]
        if "line_items" in inputs:
            out["line_items"].append(
                {
                    "external_id": f"li{n}",
                    "deal_id": f"d{n}",
                    "product": "Core",
                    "quantity": Decimal(2),
                }
            )
    for n, (target, when, kind, direction, seconds) in enumerate(activity_rows):
        link = (
            {"contact_id": f"c{target}"}
            if target < 4
            else {"deal_id": f"d{target - 4}"}
            if target < 6
            else {"lead_id": f"l{target - 6}"}
        )
        out["activities"].append(
            {
                "external_id": f"x{n}",
                "kind": kind,
                "direction": direction,
                "owner_id": "u1",
                "occurred_at": at(when),
                "duration_seconds": seconds,
                **link,
            }
        )
    out["survey_responses"] = [
        {
            "external_id": f"s{n}",
            "kind": "enps",
            "score": score,
            "team": team,
            "origin": "crm",
            "answered_at": datetime(2025, 1, 1, 9, tzinfo=UTC) + timedelta(days=day),
        }
        for n, (team, score, day) in enumerate(answer_rows)
    ]
    return out


def load(engine: Engine, tables: dict[str, list[dict[str, Any]]]) -> None:
    models = {m.__tablename__: m for m in ENTITY_MODELS.values()}
    with engine.begin() as connection:
        for model in models.values():
            connection.execute(delete(model_table(model)))
        for name, records in tables.items():
            if records:
                model = models[name]
                connection.execute(
                    model_table(model).insert(),
                    [model(source="crm", **r).model_dump(exclude={"id"}) for r in records],
                )
        for stored in (KpiValueRecord, KpiSnapshot):  # only this example's values are stored
            connection.execute(delete(model_table(stored)))


def config() -> MetricConfig:
    return MetricConfig(
        MetricSettings(
            history_years=1,
            anonymity_minimum=MINIMUM,
            recent_periods={},
            nps_window_days=92,
            roles=Roles(required_stages=("qualified", "proposal"), proposal_stages=("proposal",)),
        ),
        timezone="Europe/Warsaw",
    )


def nested_violations(shown: list[KpiValue], minimum: int) -> list[str]:
    """Pairs of shown groups, one inside the other, that differ by 1 to minimum - 1 answers; and
    periods whose org value minus its shown teams' does."""

    def holds(g: KpiValue, h: KpiValue) -> bool:
        grain = g.grain == "org" or (h.grain == "team" and h.key == g.key)
        inside = g.period_start <= h.period_start and (
            period_end(h.period_start, h.period) <= period_end(g.period_start, g.period)
        )
        return grain and inside and g is not h

    out = []
    for g in shown:
        for h in shown:
            if holds(g, h) and 0 < (g.count or 0) - (h.count or 0) < minimum:
                out.append(
                    f"{g.grain} {g.key} {g.period} {g.period_start} ({g.count}) - "
                    f"{h.grain} {h.key} {h.period} {h.period_start} ({h.count})"
                )
        if g.grain == "org":
            teams = [
                h
                for h in shown
                if h.grain == "team" and (h.period, h.period_start) == (g.period, g.period_start)
            ]
            rest = (g.count or 0) - sum(h.count or 0 for h in teams)
            if teams and 0 < rest < minimum:
                out.append(f"org {g.period} {g.period_start} minus its teams: {rest}")
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    deal_rows=deals,
    lead_rows=leads,
    contact_rows=contacts,
    activity_rows=activities,
    answer_rows=answers,
    started=starts,
    inputs=st.sets(st.sampled_from(sorted(INPUTS))),
)
def test_every_generated_org_keeps_the_kpi_invariants(
    store: Engine,
    deal_rows: list[Any],
    lead_rows: list[Any],
    contact_rows: list[Any],
    activity_rows: list[Any],
    answer_rows: list[Any],
    started: list[int | None],
    inputs: set[str],
) -> None:
    load(
        store, rows(deal_rows, lead_rows, contact_rows, activity_rows, answer_rows, started, inputs)
    )
    result = compute_all(store, config(), now=NOW, force=True)
    values = result.values

    negative = [
        v
        for v in values
        if v.value is not None and v.value < 0 and REGISTRY[v.kpi].unit in ("days", "hours")
    ]
    assert not negative, negative[:3]

    for where, enps in (
        ("shown", [v for v in values if v.kpi == "enps"]),
        ("stored", latest_values(store, "enps")),
    ):
        shown = [v for v in enps if v.value is not None]
        assert all((v.count or 0) >= MINIMUM for v in shown), (where, shown)
        assert nested_violations(shown, MINIMUM) == [], where
        assert all(v.reason for v in enps if v.value is None)
    written = {
        team: value
        for team, value in team_enps(store, config(), "crm", now=NOW).items()
        if value is not None
    }
    quarter = [
        v
        for v in values
        if (v.kpi, v.period, v.grain) == ("enps", "quarter", "team")
        and v.period_start == date(2025, 10, 1)
        and v.value is not None
    ]
    assert written == {v.key: v.value for v in quarter}  # exactly the shown current quarter

    for v in values:
        lacking = [n for n in NEEDS.get(v.kpi, ()) if n not in inputs]
        if lacking:
            assert v.value is None and v.reason == "no data: " + INPUTS[lacking[0]].reason, v
