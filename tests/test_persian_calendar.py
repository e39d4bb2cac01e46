"""Solar Hijri periods: known Nowruz dates and month lengths, and SQL buckets equal to Python's
on SQLite and PostgreSQL, exact at the edge of the year in Tehran time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, literal, select

from kpisync.calendars import (
    GREGORIAN,
    PERSIAN,
    calendar_for,
    from_persian,
    nowruz,
    parse_solar_hijri,
    persian_ymd,
    read_date,
)
from kpisync.config import parse_settings
from kpisync.errors import ConfigError
from kpisync.formats import period_label
from kpisync.store.types import UTCDateTime
from metrics.periods import KINDS, Bucketer, history_window

TEHRAN = ZoneInfo("Asia/Tehran")


def test_nowruz_falls_on_the_known_days() -> None:
    assert nowruz(1403) == date(2024, 3, 20)
    assert nowruz(1404) == date(2025, 3, 21)
    assert nowruz(1405) == date(2026, 3, 21)
    assert persian_ymd(date(2026, 3, 20)) == (1404, 12, 29)


def test_esfand_has_30_days_in_a_leap_year_only() -> None:
    assert from_persian(1403, 12, 30) == date(2025, 3, 20)  # 1403 is a leap year
    with pytest.raises(ValueError):
        from_persian(1404, 12, 30)
    assert PERSIAN.period_end(from_persian(1403, 12, 1), "month") - from_persian(
        1403, 12, 1
    ) == timedelta(days=30)
    assert PERSIAN.period_end(from_persian(1404, 12, 1), "month") - from_persian(
        1404, 12, 1
    ) == timedelta(days=29)


def test_persian_periods_in_python() -> None:
    day = date(2025, 6, 1)  # 11 Khordad 1404, a Sunday
    assert PERSIAN.period_start(day, "week") == date(2025, 5, 31)  # Saturday
    assert PERSIAN.period_start(day, "month") == from_persian(1404, 3, 1) == date(2025, 5, 22)
    assert PERSIAN.period_start(day, "quarter") == nowruz(1404)
    assert PERSIAN.period_start(day, "year") == nowruz(1404)
    assert PERSIAN.period_start(date(2025, 10, 1), "quarter") == from_persian(1404, 7, 1)
    assert PERSIAN.shift(nowruz(1404), "quarter", -1) == from_persian(1403, 10, 1)
    assert PERSIAN.shift(from_persian(1404, 12, 1), "month", 1) == nowruz(1405)
    assert PERSIAN.shift(nowruz(1405), "year", -1) == nowruz(1404)
    assert GREGORIAN.period_start(day, "week") == date(2025, 5, 26)  # Monday
    assert calendar_for("gregorian", "sunday").period_start(day, "week") == day


def test_the_history_window_runs_from_nowruz() -> None:
    window = history_window(datetime(2025, 6, 1, tzinfo=UTC), TEHRAN, 2, calendar=PERSIAN)
    assert (window.start, window.end) == (nowruz(1403), nowruz(1405))
    assert window.periods("quarter")[-1] == nowruz(1404)
    assert window.periods("year") == [nowruz(1403), nowruz(1404)]


def edge_instants() -> list[datetime]:
    """Minutes around local midnight at every Persian month start of 1402-1405, in Tehran."""
    out = []
    for year in range(1402, 1406):
        for month in range(1, 13):
            midnight = datetime.combine(
                from_persian(year, month, 1), datetime.min.time(), tzinfo=TEHRAN
            ).astimezone(UTC)
            out += [midnight + timedelta(minutes=m) for m in (-1, 0)]
    return out


def test_sql_buckets_equal_python_at_every_persian_month_edge(engine: Engine) -> None:
    window = history_window(datetime(2026, 4, 1, tzinfo=UTC), TEHRAN, 3, calendar=PERSIAN)
    points = edge_instants()
    with engine.connect() as connection:
        bucketer = Bucketer(connection.dialect.name, TEHRAN, window)
        got = [
            connection.execute(
                select(*[bucketer.instant(literal(at, UTCDateTime()), kind) for kind in KINDS])
            ).one()
            for at in points
        ]
    for at, row in zip(points, got, strict=True):
        local = at.astimezone(TEHRAN).date()
        expected = [PERSIAN.period_start(local, kind).isoformat() for kind in KINDS]
        assert [str(v)[:10] for v in row] == expected, at


def test_sql_buckets_of_dates_equal_python(engine: Engine) -> None:
    window = history_window(datetime(2026, 4, 1, tzinfo=UTC), TEHRAN, 2, calendar=PERSIAN)
    days = [date(2024, 3, 19) + timedelta(days=n) for n in range(0, 800, 17)]
    days += [nowruz(y) + timedelta(days=d) for y in (1403, 1404, 1405) for d in (-1, 0)]
    with engine.connect() as connection:
        bucketer = Bucketer(connection.dialect.name, TEHRAN, window)
        got = [
            connection.execute(select(*[bucketer.day(literal(d), k) for k in KINDS])).one()
            for d in days
        ]
    for day, row in zip(days, got, strict=True):
        assert [str(v)[:10] for v in row] == [
            PERSIAN.period_start(day, k).isoformat() for k in KINDS
        ], day


def test_a_deal_at_2359_on_the_last_day_of_esfand_is_in_the_old_year(engine: Engine) -> None:
    last_day = date(2025, 3, 20)  # 30 Esfand 1403
    late = datetime(2025, 3, 20, 23, 59, tzinfo=TEHRAN).astimezone(UTC)
    new = datetime(2025, 3, 21, 0, 0, tzinfo=TEHRAN).astimezone(UTC)
    assert late == datetime(2025, 3, 20, 20, 29, tzinfo=UTC)  # UTC+3:30, no summer time
    window = history_window(datetime(2025, 6, 1, tzinfo=UTC), TEHRAN, 2, calendar=PERSIAN)
    with engine.connect() as connection:
        bucketer = Bucketer(connection.dialect.name, TEHRAN, window)
        row = connection.execute(
            select(
                *[
                    bucketer.instant(literal(at, UTCDateTime()), kind)
                    for at in (late, new)
                    for kind in ("month", "quarter", "year")
                ],
                bucketer.day(literal(last_day), "year"),
            )
        ).one()
    assert [str(v)[:10] for v in row] == [
        "2025-02-19",
        "2024-12-21",
        "2024-03-20",  # Esfand, Q4 and the year 1403
        "2025-03-21",
        "2025-03-21",
        "2025-03-21",  # Farvardin, Q1 and the year 1404
        "2024-03-20",
    ]


def test_settings_of_the_calendar() -> None:
    core = parse_settings({"kpisync": {"calendar": "persian"}}).core
    assert (core.timezone, core.period_calendar) == ("Asia/Tehran", PERSIAN)
    core = parse_settings(
        {"kpisync": {"calendar": "persian", "timezone": "UTC", "week_start": "Monday"}}
    ).core
    assert (core.timezone, core.period_calendar.week_start) == ("UTC", 0)
    for bad, message in (
        ({"calendar": "julian"}, "kpisync.calendar: Input should be"),
        ({"week_start": "caturday"}, "kpisync.week_start: 'caturday' is not"),
        ({"locale": "de"}, "kpisync.locale: Input should be 'en' or 'fa'"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            parse_settings({"kpisync": bad})
        assert "\n" not in str(caught.value)


def test_solar_hijri_dates_in_any_digits() -> None:
    for text in ("۱۴۰۵/۰۸/۱۵", "1405-08-15", "١٤٠٥/٠٨/١٥", "1405/8/15"):
        assert parse_solar_hijri(text) == date(2026, 11, 6), text
    with pytest.raises(ValueError, match="not a day"):
        parse_solar_hijri("1404/12/30")
    plausible = (date(1990, 1, 1), date(2026, 12, 31))
    assert read_date("۱۴۰۵/۰۸/۱۵", "gregorian", *plausible) == (date(2026, 11, 6), False)
    assert read_date("2026-11-06", "persian", *plausible) == (date(2026, 11, 6), False)
    wide = (date(1000, 1, 1), date(2100, 1, 1))  # both readings plausible: the setting decides
    assert read_date("1405/08/15", "persian", *wide) == (date(2026, 11, 6), True)
    assert read_date("1405/08/15", "gregorian", *wide) == (date(1405, 8, 15), True)


def test_persian_period_labels() -> None:
    assert period_label(nowruz(1405), "month", PERSIAN) == "Farvardin 1405"
    assert period_label(nowruz(1405), "month", PERSIAN, "fa") == "فروردین ۱۴۰۵"
    assert period_label(nowruz(1405), "quarter", PERSIAN, "fa") == "فصل اول ۱۴۰۵"
    assert period_label(from_persian(1404, 10, 1), "quarter", PERSIAN) == "Q4 1404"
    assert period_label(from_persian(1403, 12, 1), "month", PERSIAN, "fa") == "اسفند ۱۴۰۳"
    assert period_label(nowruz(1405), "year", PERSIAN, "fa") == "۱۴۰۵"
    assert period_label(date(2026, 3, 21), "week", PERSIAN) == "W01 1405"  # Nowruz, a Saturday
    assert period_label(date(2026, 10, 1), "quarter") == "Q4 2026"  # Gregorian unchanged


def test_settings_dates_may_be_solar_hijri() -> None:
    from metrics.options import metric_config

    settings = parse_settings(
        {
            "kpisync": {"calendar": "persian"},
            "metrics": {
                "quotas": [
                    {"rep": "u1", "period": "quarter", "start": date(1404, 1, 1), "amount": 1},
                    {"rep": "u2", "period": "quarter", "start": "۱۴۰۴/۰۴/۰۱", "amount": 1},
                    {"rep": "u3", "period": "quarter", "start": date(2025, 3, 21), "amount": 1},
                ],
                "goals": [{"name": "g", "kpi": "win_rate", "target": 0.3, "start": "1404-07-01"}],
            },
        }
    )
    config = metric_config(settings)
    assert [q.start for q in config.quotas] == [
        date(2025, 3, 21),
        date(2025, 6, 22),
        date(2025, 3, 21),
    ]
    assert config.metrics.goals[0].start == date(2025, 9, 23)
    with pytest.raises(ConfigError, match=r"metrics.quotas.0.start: .*1404-12-30"):
        metric_config(
            parse_settings(
                {
                    "metrics": {
                        "quotas": [
                            {
                                "rep": "u1",
                                "period": "quarter",
                                "start": date(1404, 12, 30),
                                "amount": 1,
                            }
                        ]
                    }
                }
            )
        )
