"""Role checks: a margin read as money that is always a share (or the reverse) is named, with
its fix, in one warning; a margin that fits its role says nothing."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from kpisync.connector import Page
from kpisync.store.models import Deal
from kpisync.store.writer import write_page
from metrics.options import MetricConfig, MetricSettings, Roles
from metrics.sanity import check_roles


def won_deals(engine: Engine, margins: list[str]) -> None:
    rows = [
        Deal.row(
            external_id=f"d{i}",
            is_closed=True,
            is_won=True,
            amount=Decimal(1000),
            currency="USD",
            margin=Decimal(margin),
            close_date=date(2026, 1, 5),
        )
        for i, margin in enumerate(margins)
    ]
    with engine.begin() as connection:
        write_page(connection, "crm", Page("deals", rows), datetime(2026, 1, 6, tzinfo=UTC))


def warnings_for(engine: Engine, kind: str) -> list[str]:
    config = MetricConfig(MetricSettings(roles=Roles(margin=kind)))  # type: ignore[arg-type]
    with engine.connect() as connection:
        return check_roles(connection, config)


@pytest.mark.parametrize(
    ("margins", "kind", "says"),
    [
        (["0.2", "0.35", "0.5", "0.41", "0.3"], "amount", 'set margin = "fraction"'),
        (["200", "350", "500", "410", "300"], "fraction", 'set margin = "amount"'),
        (["200", "350", "500", "410", "300"], "amount", None),
        (["0.2", "0.35", "0.5", "0.41", "0.3"], "fraction", None),
        (["0.2", "0.35", "0.5", "0.41"], "amount", None),  # too few deals to tell
    ],
)
def test_a_margin_role_that_does_not_fit_the_data_is_named_with_its_fix(
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    margins: list[str],
    kind: str,
    says: str | None,
) -> None:
    won_deals(engine, margins)
    with caplog.at_level(logging.WARNING, logger="kpisync.metrics.sanity"):
        warnings = warnings_for(engine, kind)
    if says is None:
        assert warnings == [] and caplog.records == []
    else:
        assert len(warnings) == 1 and says in warnings[0] and "metrics.roles.margin" in warnings[0]
        assert [r.getMessage() for r in caplog.records] == warnings
