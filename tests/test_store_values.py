"""Values from the CRM as the store keeps them: amounts with the precision the README promises
(about 15 significant digits on SQLite, an 8-byte float; every digit on PostgreSQL), a currency as
the CRM writes it, and what PostgreSQL cannot hold (an amount beyond its column, an overlong
reference, a NUL character) written empty or without the NUL and said in the log, never stopping
the page. Amounts are checked on SQLite too, so both stores sum the same ones."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from kpisync.connector import Page
from kpisync.store.models import Deal, Row
from kpisync.store.writer import write_page

CENT = Decimal("0.01")
KEPT_EVERYWHERE = [
    Decimal("8999999999999999"),
    Decimal("9999999999999.99"),
    Decimal("0.01"),
    Decimal("1234567.89"),
    Decimal("-250000.10"),
]
KEPT_ON_POSTGRES = [Decimal("1234567890123456.78"), Decimal("-9999999999999999.99")]
TOO_LARGE = [Decimal("10000000000000000"), Decimal("1E+20"), Decimal("NaN")]


def write(engine: Engine, rows: list[Row]) -> None:
    with engine.begin() as connection:
        write_page(
            connection, "s", Page(stream="deals", records=rows, cursor=None), datetime.now(UTC)
        )


def stored_amounts(engine: Engine, amounts: list[Decimal]) -> list[Decimal | None]:
    write(
        engine,
        [
            Deal.row(external_id=f"d{i}", amount=amount, raw={"amount": str(amount)})
            for i, amount in enumerate(amounts)
        ],
    )
    with engine.connect() as connection:
        found = {
            rid: (amount, raw)
            for rid, amount, raw in connection.execute(
                select(col(Deal.external_id), col(Deal.amount), col(Deal.raw))
            )
        }
    assert [found[f"d{i}"][1] for i in range(len(amounts))] == [
        {"amount": str(amount)} for amount in amounts
    ]  # the raw payload keeps every value
    return [
        None if found[f"d{i}"][0] is None else found[f"d{i}"][0].quantize(CENT)
        for i in range(len(amounts))
    ]


def test_amounts_keep_their_cents_up_to_the_stores_precision(engine: Engine) -> None:
    amounts = KEPT_EVERYWHERE + (KEPT_ON_POSTGRES if engine.dialect.name == "postgresql" else [])
    assert stored_amounts(engine, amounts) == amounts


def test_an_amount_no_column_holds_is_written_empty_and_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kpisync.store.upsert"):
        assert stored_amounts(engine, [*TOO_LARGE, Decimal("12.50")]) == [
            None,
            None,
            None,
            Decimal("12.50"),
        ]
    said = [r.getMessage() for r in caplog.records if "deals.amount" in r.getMessage()]
    assert len(said) == 3 and "under 10000000000000000" in said[0]


def test_a_currency_is_kept_as_the_crm_says_it_and_an_overlong_reference_is_dropped(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    too_long = "0" * 65
    rows = [
        Deal.row(external_id="d1", currency="Euro", account_id="001A"),
        Deal.row(external_id="d2", currency="ریال", account_id=too_long),
    ]
    with caplog.at_level(logging.WARNING, logger="kpisync.store.upsert"):
        write(engine, rows)
    with engine.connect() as connection:
        found = {
            rid: (currency, account)
            for rid, currency, account in connection.execute(
                select(col(Deal.external_id), col(Deal.currency), col(Deal.account_id))
            )
        }
    if engine.dialect.name == "postgresql":
        assert found == {"d1": ("Euro", "001A"), "d2": ("ریال", None)}
        assert ["deals.account_id" in r.getMessage() for r in caplog.records] == [True]
    else:  # SQLite holds text of any length
        assert found == {"d1": ("Euro", "001A"), "d2": ("ریال", too_long)}


def test_nul_characters_are_dropped_from_json_and_from_text_on_postgresql(engine: Engine) -> None:
    record = Deal.row(
        external_id="d1",
        name="Acme\x00 deal",
        custom={"note\x00": ["a\x00b", 1]},
        raw={"Name": "Acme\x00 deal", "path": "C:\\u0000"},
    )
    write(engine, [record])
    with engine.connect() as connection:
        name, custom, raw = connection.execute(
            select(col(Deal.name), col(Deal.custom), col(Deal.raw))
        ).one()
    assert (custom, raw) == ({"note": ["ab", 1]}, {"Name": "Acme deal", "path": "C:\\u0000"})
    assert name == ("Acme deal" if engine.dialect.name == "postgresql" else "Acme\x00 deal")
