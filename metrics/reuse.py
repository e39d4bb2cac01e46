"""Reusing the last computation when none of its inputs moved.

A computation's values depend on the store's records, on the metric settings (with the quota and
spend files they name), on the engine's code, on which KPIs were asked for, and on `now`. `now`
enters in two ways: through the local date (the periods, "up to today") and through instants
compared with it (activities and answers count once they have happened; engagement looks back N
days from now).

So a computation may keep the previous one's values when the fingerprint of its inputs is equal
(store revisions, settings, code, KPIs asked for, local date) and no activity or answer lies in a
stretch of time that passed from future to past, or out of the engagement window, between the
two. Anything else recomputes: the check is cheap and errs towards recomputing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Table, exists, or_, select

from kpisync.store.models import Activity, SurveyResponse
from kpisync.store.revision import store_revisions
from metrics.models import KpiComputation
from metrics.options import MetricConfig

COMPUTATIONS: Table = KpiComputation.__table__  # type: ignore[attr-defined]
ACTIVITIES: Table = Activity.__table__  # type: ignore[attr-defined]
ANSWERS: Table = SurveyResponse.__table__  # type: ignore[attr-defined]


def fingerprint(
    connection: Connection, config: MetricConfig, only: Iterable[str] | None, now: datetime
) -> str:
    """A digest of everything a computation reads except the instant `now` itself."""
    inputs = {
        "store": sorted(store_revisions(connection).items()),
        "settings": settings_digest(config),
        "code": code_digest(),
        "kpis": None if only is None else sorted(set(only)),
        "today": now.astimezone(config.zone).date().isoformat(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def reusable(
    connection: Connection, config: MetricConfig, inputs: str, now: datetime
) -> int | None:
    """The computation whose stored values still hold for `inputs` at `now`, if there is one."""
    last = connection.execute(
        select(
            COMPUTATIONS.c.id,
            COMPUTATIONS.c.as_of,
            COMPUTATIONS.c.inputs,
            COMPUTATIONS.c.reused_from,
        )
        .where(COMPUTATIONS.c.finished_at.is_not(None))
        .order_by(COMPUTATIONS.c.id.desc())
        .limit(1)
    ).first()
    if last is None or last.inputs != inputs or last.as_of > now:
        return None
    if happened_between(connection, config, last.as_of, now):
        return None
    return int(last.reused_from or last.id)


def happened_between(
    connection: Connection, config: MetricConfig, before: datetime, now: datetime
) -> bool:
    """Whether an activity or answer passed `now`, or left the engagement window, since `before`.

    Deleted rows are looked at too: counting them only makes a recompute more likely.
    """
    look_back = timedelta(days=config.metrics.engagement_days)

    def within(column: Column[Any], start: datetime, end: datetime) -> Any:
        return exists().where(column >= start, column <= end)  # both ends: err towards recomputing

    crossed = or_(
        within(ACTIVITIES.c.occurred_at, before, now),
        within(ACTIVITIES.c.occurred_at, before - look_back, now - look_back),
        within(ANSWERS.c.answered_at, before, now),
    )
    return bool(connection.execute(select(crossed)).scalar())


def settings_digest(config: MetricConfig) -> str:
    settings = {
        "metrics": config.metrics.model_dump(mode="json"),
        "timezone": config.timezone,
        "currency": config.currency,
        "quotas": [quota.model_dump(mode="json") for quota in config.quotas],
        "spend": [spend.model_dump(mode="json") for spend in config.spend],
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


@cache
def code_digest() -> str:
    """The installed version and the engine's own source: a changed formula recomputes."""
    digest = hashlib.sha256()
    with contextlib.suppress(metadata.PackageNotFoundError):
        digest.update(metadata.version("kpisync").encode())
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()
