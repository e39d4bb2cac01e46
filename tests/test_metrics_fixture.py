"""The hand-checked org (fixtures/kpi): every KPI at every grain, exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Engine, Numeric, Table

from kpisync.config import load_settings
from kpisync.store.models import ENTITY_MODELS, model_table
from kpisync.store.types import UTCDateTime
from metrics.catalogue import REGISTRY
from metrics.declaration import KpiValue
from metrics.engine import compute_all, compute_values
from metrics.options import metric_config
from metrics.snapshots import latest_values

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "kpi"
NOW = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)
MODELS = {model.__tablename__: model for model in ENTITY_MODELS.values()}
ARITHMETIC = re.compile(r"^[0-9.+\-*/() ]+$")


def coerce(table: Table, name: str, value: object) -> Any:
    column_type = table.c[name].type
    if value is None or not isinstance(value, str):
        return value
    if isinstance(column_type, UTCDateTime):
        return datetime.fromisoformat(value)
    if isinstance(column_type, Date):
        return date.fromisoformat(value)
    if isinstance(column_type, Numeric):
        return Decimal(value)
    return value


def load_org(engine: Engine, path: Path = FIXTURE / "org.json", source: str = "crm") -> None:
    """Insert the fixture's rows as a sync would have stored them."""
    data = json.loads(path.read_text(encoding="utf-8"))
    with engine.begin() as connection:
        for table_name, rows in data.items():
            model = MODELS[table_name]
            table = model_table(model)
            records = [
                model(source=source, **{k: coerce(table, k, v) for k, v in row.items()}).model_dump(
                    exclude={"id"}
                )
                for row in rows
            ]
            connection.execute(table.insert(), records)


@dataclass(frozen=True)
class Expected:
    kpi: str
    grain: str
    key: str
    value: float | None
    count: int | None
    excluded: int | None


def number(text: str) -> float | None:
    if text == "-":
        return None
    assert ARITHMETIC.match(text), text
    return float(eval(text))


def sections(name: str = "expected.txt") -> list[tuple[str, date, bool, list[Expected]]]:
    out: list[tuple[str, date, bool, list[Expected]]] = []
    for line in (FIXTURE / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("=="):
            _, kind, start, mode = line.split()
            out.append((kind, date.fromisoformat(start), mode == "full", []))
            continue
        kpi, grain, key, value, count, excluded = line.split()
        out[-1][3].append(
            Expected(
                kpi,
                grain,
                key,
                number(value),
                None if count == "-" else int(count),
                None if excluded == "-" else int(excluded),
            )
        )
    return out


def row_mismatch(value: KpiValue | None, row: Expected, where: str) -> str | None:
    """What differs between a computed value and its expected row, or None."""
    if value is None:
        return f"{where}: missing"
    same = (value.value is None and row.value is None) or (
        value.value is not None
        and row.value is not None
        and math.isclose(value.value, row.value, rel_tol=1e-9, abs_tol=1e-9)
    )
    if not same or (value.count, value.excluded) != (row.count, row.excluded):
        return (
            f"{where}: got {value.value} {value.count} {value.excluded}, "
            f"expected {row.value} {row.count} {row.excluded}"
        )
    return None


def mismatches(values: list[KpiValue], name: str = "expected.txt") -> list[str]:
    got = {(v.kpi, v.period, v.period_start, v.grain, v.key): v for v in values}
    problems = []
    for kind, start, full, rows in sections(name):
        for row in rows:
            value = got.get((row.kpi, kind, start, row.grain, row.key))
            where = f"{row.kpi} {kind} {start} {row.grain} {row.key}"
            problem = row_mismatch(value, row, where)
            if problem:
                problems.append(problem)
            if value is not None and value.value is None and not value.reason:
                problems.append(f"{where}: no data without a reason")
        if full:
            listed = {(r.kpi, r.grain, r.key) for r in rows}
            extra = sorted(
                f"{k[0]} {k[3]} {k[4]}"
                for k in got
                if k[1] == kind
                and k[2] == start
                and (k[0], k[3], k[4]) not in listed
                and not REGISTRY[k[0]].tags
            )
            problems += [f"unexpected {kind} {start}: {e}" for e in extra]
    return problems


def test_every_kpi_at_every_grain_matches_the_hand_computed_values(engine: Engine) -> None:
    """Computed, then stored, values equal expected.txt; recomputing changes nothing."""
    load_org(engine)
    config = metric_config(load_settings(FIXTURE / "settings.toml"))
    computed = compute_all(engine, config, now=NOW)
    assert mismatches(computed.values) == []
    assert all(v.reason for v in computed.values if v.value is None)
    stored = latest_values(engine)
    assert mismatches(stored) == []
    assert len(stored) == len(
        {(v.kpi, v.period, v.period_start, v.grain, v.key) for v in computed.values}
    )
    again = compute_all(engine, config, now=NOW)
    assert again.changed == 0
    assert len(latest_values(engine)) == len(stored)


def test_every_declared_kpi_is_checked_in_the_fixture() -> None:
    listed = {row.kpi for _, _, _, rows in sections() for row in rows}
    assert set(REGISTRY.names()) - listed == set()


def test_ramp_to_quota_counts_a_quota_period_only_once_it_is_over(engine: Engine) -> None:
    """Ana reaches her January quota on 01-20; January only counts from February 1 (26 days)."""
    load_org(engine)
    config = metric_config(load_settings(FIXTURE / "settings.toml"))

    def january(now: datetime) -> tuple[float | None, int | None, int | None]:
        with engine.begin() as connection:
            values = compute_values(connection, config, now=now, only=["rep_ramp_to_quota"])
        [found] = [
            v
            for v in values
            if (v.kpi, v.period, v.period_start, v.grain)
            == ("rep_ramp_to_quota", "month", date(2025, 1, 1), "org")
        ]
        return found.value, found.count, found.excluded

    assert january(datetime(2025, 1, 31, 22, 59, tzinfo=UTC)) == (None, 0, 1)  # 23:59 local
    assert january(datetime(2025, 1, 31, 23, 0, tzinfo=UTC)) == (26.0, 1, 0)  # Feb 1 local


def test_a_converted_leads_activities_on_its_contact_count_for_the_lead(
    engine: Engine, tmp_path: Path
) -> None:
    """Salesforce moves a converted lead's activities onto its contact; they still count for it.

    l1 (converted into c1 on 01-08) was first called 6 h after it came in and followed up once
    before converting; the call after converting is no follow-up. l2 was answered in 2 h, no
    follow-up. Median response 4 h; mean follow-ups 0.5.
    """
    at = "2025-01-0{}T{:02d}:00:00Z".format
    org = {
        "users": [{"external_id": "u1", "name": "Ana", "team": "Alpha"}],
        "contacts": [{"external_id": "c1", "first_name": "Cara", "created_at": at(8, 9)}],
        "leads": [
            {
                "external_id": "l1",
                "owner_id": "u1",
                "created_at": at(5, 9),
                "is_converted": True,
                "converted_at": at(8, 9),
                "converted_contact_id": "c1",
            },
            {"external_id": "l2", "owner_id": "u1", "created_at": at(6, 9)},
        ],
        "activities": [
            {
                "external_id": "a1",
                "kind": "call",
                "direction": "outbound",
                "owner_id": "u1",
                "occurred_at": at(5, 15),
                "contact_id": "c1",
            },
            {
                "external_id": "a2",
                "kind": "email",
                "direction": "outbound",
                "owner_id": "u1",
                "occurred_at": at(6, 9),
                "contact_id": "c1",
            },
            {
                "external_id": "a3",
                "kind": "call",
                "direction": "outbound",
                "owner_id": "u1",
                "occurred_at": at(9, 9),
                "contact_id": "c1",
            },
            {
                "external_id": "a4",
                "kind": "call",
                "direction": "outbound",
                "owner_id": "u1",
                "occurred_at": at(6, 11),
                "lead_id": "l2",
            },
        ],
    }
    path = tmp_path / "org.json"
    path.write_text(json.dumps(org), encoding="utf-8")
    load_org(engine, path)
    config = metric_config(load_settings(FIXTURE / "settings.toml"))
    with engine.begin() as connection:
        values = compute_values(
            connection, config, now=NOW, only=["lead_response_time", "follow_up_persistence"]
        )
    january = {
        v.kpi: (v.value, v.count)
        for v in values
        if (v.period, v.period_start, v.grain) == ("month", date(2025, 1, 1), "org")
    }
    assert january == {"lead_response_time": (4.0, 2), "follow_up_persistence": (0.5, 2)}


def test_the_cases_of_the_independent_recount_match_their_hand_computed_values(
    engine: Engine,
) -> None:
    """fixtures/kpi/cases.json (see the README): activities before a lead existed, leads converted
    after the win, two converted leads of different sources, a summer instant before the
    window, an activity on a deal only, reps hired mid-period, growth at the window's edge."""
    load_org(engine, FIXTURE / "cases.json")
    config = metric_config(load_settings(FIXTURE / "settings.toml"))
    with engine.begin() as connection:
        values = compute_values(connection, config, now=NOW)
    assert mismatches(values, "cases_expected.txt") == []
    durations = [
        v for v in values if v.value is not None and REGISTRY[v.kpi].unit in ("days", "hours")
    ]
    assert durations and all(v.value is not None and v.value >= 0 for v in durations)
    reasons = {(v.kpi, v.period, v.period_start): v.reason for v in values if v.grain == "org"}
    assert (
        reasons[("revenue_growth", "month", date(2025, 2, 1))] == "the earlier period's value is 0"
    )
    # r3 starts on March 3: no share before it
    assert not [
        v
        for v in values
        if v.kpi == "selling_time_share"
        and v.key == "r3"
        and v.period_start < date(2025, 3, 1)
        and v.period in ("week", "month")
    ]
