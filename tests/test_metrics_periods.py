"""Period buckets in the org's zone, in SQL, against zoneinfo: around daylight-saving switches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, literal, select

from kpisync.store.types import UTCDateTime
from metrics.periods import KINDS, Bucketer, history_window, offset_changes, period_start, shift

ZONES = ["Europe/Warsaw", "America/New_York", "Asia/Tehran", "Australia/Sydney"]


def instants(zone: ZoneInfo) -> list[datetime]:
    """A few minutes either side of every offset change in 2024-2025, and of local midnights."""
    out = []
    for at, _ in offset_changes(
        zone, datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    ):
        out += [at + timedelta(minutes=m) for m in (-61, -1, 0, 1, 59, 61)]
    for day in (date(2024, 12, 31), date(2025, 3, 31), date(2025, 6, 30), date(2025, 9, 30)):
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        out += [midnight.astimezone(UTC) + timedelta(minutes=m) for m in (-1, 0, 1)]
    return out


@pytest.mark.parametrize("zone_name", ZONES)
def test_sql_buckets_equal_zoneinfo(engine: Engine, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    window = history_window(datetime(2025, 12, 1, tzinfo=UTC), zone, years=2)
    with engine.connect() as connection:
        bucketer = Bucketer(connection.dialect.name, zone, window)
        points = instants(zone)
        columns = [
            bucketer.instant(literal(at, UTCDateTime()), kind) for at in points for kind in KINDS
        ]
        row = connection.execute(select(*columns)).one()
    got = iter(row)
    for at in points:
        local = at.astimezone(zone).date()
        for kind in KINDS:
            assert str(next(got))[:10] == period_start(local, kind).isoformat(), (at, kind)


def test_dates_bucket_as_they_are(engine: Engine) -> None:
    zone = ZoneInfo("Europe/Warsaw")
    window = history_window(datetime(2025, 6, 1, tzinfo=UTC), zone, years=1)
    days = [
        date(2025, 1, 1),
        date(2025, 3, 30),
        date(2025, 3, 31),
        date(2025, 12, 28),
        date(2025, 11, 30),
        date(2024, 12, 30),
    ]
    with engine.connect() as connection:
        bucketer = Bucketer(connection.dialect.name, zone, window)
        row = connection.execute(
            select(*[bucketer.day(literal(d), k) for d in days for k in KINDS])
        ).one()
    expected = [period_start(d, k).isoformat() for d in days for k in KINDS]
    assert [str(v)[:10] for v in row] == expected


def test_period_arithmetic() -> None:
    assert period_start(date(2025, 1, 1), "week") == date(2024, 12, 30)
    assert period_start(date(2025, 8, 15), "quarter") == date(2025, 7, 1)
    assert shift(date(2025, 1, 1), "month", -1) == date(2024, 12, 1)
    assert shift(date(2025, 10, 1), "quarter", 1) == date(2026, 1, 1)
    assert history_window(datetime(2025, 4, 10, tzinfo=UTC), ZoneInfo("UTC"), 2).start == date(
        2024, 1, 1
    )
