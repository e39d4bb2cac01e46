"""The page writer's upsert on both stores: text and JSON kept to the character (PostgreSQL copies
pages through COPY, whose text format escapes tabs, newlines and backslashes), custom fields
merged, a second write of a table in one transaction, and a rolled-back page leaving nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select
from sqlmodel import col

from kpisync.connector import Page
from kpisync.store.models import Deal, Row
from kpisync.store.writer import write_page

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
AWKWARD = "tab\there, line\nbreak\r\n, back\\slash \\N, 'quote\" — قرارداد ۱۲ Сделка Zażółć \u200c"


def deal(external_id: str, **values: Any) -> Row:
    return Deal.row(external_id=external_id, **values)


def write(connection: Connection, rows: list[Row]) -> None:
    write_page(connection, "s", Page(stream="deals", records=rows, cursor=None), NOW)


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        return {
            row.external_id: row._asdict()
            for row in connection.execute(
                select(
                    col(Deal.external_id),
                    col(Deal.name),
                    col(Deal.amount),
                    col(Deal.close_date),
                    col(Deal.created_at),
                    col(Deal.custom),
                    col(Deal.raw),
                    col(Deal.is_won),
                )
            )
        }


def test_text_json_dates_and_amounts_come_back_exactly(engine: Engine) -> None:
    raw = {"Name": AWKWARD, "nested": {"list": [1, 2.5, None, True, "x\ty"]}, "empty": ""}
    with engine.begin() as connection:
        write(
            connection,
            [
                deal(
                    "d1",
                    name=AWKWARD,
                    amount=Decimal("1234.56"),
                    close_date=date(2026, 3, 29),
                    is_won=True,
                    created_at=datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC),
                    custom={"Note__c": AWKWARD, "Score__c": 9},
                    raw=raw,
                ),
                deal("d2", name=None, amount=None, custom={}, raw={}),
            ],
        )
    rows = stored(engine)
    assert rows["d1"] == {
        "external_id": "d1",
        "name": AWKWARD,
        "amount": Decimal("1234.56"),
        "close_date": date(2026, 3, 29),
        "created_at": datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC),
        "custom": {"Note__c": AWKWARD, "Score__c": 9},
        "raw": raw,
        "is_won": True,
    }
    assert rows["d2"]["name"] is None and rows["d2"]["amount"] is None


def test_custom_fields_merge_and_a_table_written_twice_in_one_transaction(engine: Engine) -> None:
    with engine.begin() as connection:
        write(connection, [deal("d1", name="first", custom={"a": 1, "b": 2})])
    with engine.begin() as connection:
        write(connection, [deal("d1", name="second", custom={"b": 3}), deal("d2", name="new")])
        write(connection, [deal("d2", name="newer", custom={"c": 4}), deal("d3", name="third")])
    rows = stored(engine)
    assert {k: (v["name"], v["custom"]) for k, v in rows.items()} == {
        "d1": ("second", {"a": 1, "b": 3}),  # a field gone from the CRM keeps its last value
        "d2": ("newer", {"c": 4}),
        "d3": ("third", {}),
    }


def test_a_page_rolled_back_leaves_nothing_and_the_next_one_writes(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        write(connection, [deal("d1", name="lost")])
        raise RuntimeError("the process failed before the commit")
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Deal)).scalar_one() == 0
    with engine.begin() as connection:
        write(connection, [deal("d1", name="kept"), deal("d1", name="kept, later")])
    assert {k: v["name"] for k, v in stored(engine).items()} == {"d1": "kept, later"}
