"""Vtiger's value quirks, one test each, and the connector's error table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from connectors.vtiger import values as v
from connectors.vtiger.client import SessionLost, SyncUnavailable, VtigerFailure, translate
from connectors.vtiger.mappers import MappingContext, map_potential
from emulators.vtiger.render import to_jalali
from kpisync.errors import (
    AuthError,
    ConnectorError,
    KpisyncError,
    RateLimited,
    RejectedError,
    TransientError,
)
from kpisync.mapping import map_each

UTC_ZONE = ZoneInfo("UTC")


def test_ws_ids_carry_the_module_prefix() -> None:
    assert v.module_prefix("13x42") == 13
    assert v.module_prefix("42") is None and v.module_prefix("ax1") is None


def test_timestamps_have_no_offset_and_are_read_in_the_server_zone() -> None:
    assert v.instant("2026-03-01 12:00:00", UTC_ZONE) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    tehran = v.instant("2026-03-01 12:00:00", ZoneInfo("Asia/Tehran"))
    assert tehran == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert (
        v.stamp(v.seconds("2026-03-01 12:00:00", ZoneInfo("Asia/Tehran")), ZoneInfo("Asia/Tehran"))
        == "2026-03-01 12:00:00"
    )


def test_amounts_are_strings_with_eight_decimals_and_empty_is_none() -> None:
    assert v.number("12500.50000000") == Decimal("12500.5")
    assert v.number("") is None and v.text("") is None and v.day("") is None
    assert v.day("0000-00-00") is None
    assert v.flag("1") and not v.flag("0")


def test_persian_and_arabic_indic_digits_in_numbers() -> None:
    assert v.number("۱۲۵۰۰٫۵۰") == Decimal("12500.50")
    assert v.number("١٢٬٥٠٠٫٥") == Decimal("12500.5")
    assert v.integer("۴۵") == 45


def test_jalali_dates_are_converted_never_misread() -> None:
    assert v.day("1403-01-01") == date(2024, 3, 20)
    assert v.day("۱۴۰۵-۰۸-۰۹") == date(2026, 10, 31)
    assert v.day("1399-12-30") == date(2021, 3, 20)  # a leap year's last day
    assert v.day("2024-03-20") == date(2024, 3, 20)  # Gregorian stays Gregorian
    assert v.instant("1403-01-01 10:00:00", UTC_ZONE) == datetime(2024, 3, 20, 10, tzinfo=UTC)


def test_jalali_agrees_with_the_emulators_independent_calendar() -> None:
    day = date(1990, 1, 1)
    while day < date(2060, 1, 1):
        assert v.jalali_to_gregorian(*to_jalali(day)) == day
        day += timedelta(days=1)


def test_a_potential_with_every_quirk_maps_cleanly() -> None:
    context = MappingContext(
        custom={"Potentials": {"cf_856": "double", "cf_900": "date"}},
        roles={"margin": "cf_856"},
        prefixes={11: "Accounts"},
    )
    record = {
        "id": "13x7",
        "potentialname": "پروژه ۱",
        "amount": "۱۲۵۰۰٫۵۰۰۰۰۰۰۰",
        "probability": "٩٠.000",
        "sales_stage": "Closed Won",
        "related_to": "11x3",
        "closingdate": "۱۴۰۵-۰۸-۰۹",
        "cf_856": "۰٫۴۲",
        "cf_900": "1403-01-01",
        "contact_id": "",
        "assigned_user_id": "19x5",
        "modifiedtime": "2026-11-01 10:00:00",
        "createdtime": "2026-10-01 10:00:00",
    }
    row, observed = map_potential(record, context)
    deal = row.values
    assert (deal["amount"], deal["probability"], deal["close_date"]) == (
        Decimal("12500.5"),
        Decimal("0.9"),
        date(2026, 10, 31),
    )
    assert deal["is_won"] and deal["is_closed"] and deal["account_id"] == "11x3"
    assert deal["contact_id"] is None and deal["margin"] == Decimal("0.42")
    assert deal["custom"] == {"cf_856": "0.42", "cf_900": "2024-03-20"}
    assert observed.external_id == f"13x7@{int(deal['modified_at'].timestamp())}"


def test_a_custom_date_that_is_no_date_is_kept_as_text() -> None:
    context = MappingContext(custom={"Potentials": {"cf_900": "date", "cf_901": "date"}})
    record = {
        "id": "13x8",
        "potentialname": "x",
        "sales_stage": "Prospecting",
        "cf_900": "2024-02-30",
        "cf_901": "۱۴۰۳/۱/۱",
        "modifiedtime": "2026-11-01 10:00:00",
        "createdtime": "2026-10-01 10:00:00",
    }
    row, _ = map_potential(record, context)
    assert row.values["custom"] == {"cf_900": "2024-02-30", "cf_901": "2024-03-20"}


def reply(status: int, body: bytes | str, **headers: str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.parametrize(
    ("operation", "response", "error"),
    [
        ("sync", reply(500, b"", **{"Content-Type": "text/html"}), SyncUnavailable),
        ("query", reply(500, b""), TransientError),
        ("query", reply(503, "<html>busy</html>"), TransientError),
        ("query", reply(429, "", **{"Retry-After": "2"}), RateLimited),
        ("query", reply(404, "<html>not found</html>"), RejectedError),
        ("query", reply(200, "<html><body>Login</body></html>"), RejectedError),
        (
            "login",
            reply(
                200,
                '{"success":false,"error":{"code":"INVALID_USER_CREDENTIALS",'
                '"message":"Invalid username or password"}}',
            ),
            AuthError,
        ),
        (
            "query",
            reply(
                200,
                '{"success":false,"error":{"code":"INVALID_SESSIONID",'
                '"message":"Session Identifier provided is Invalid"}}',
            ),
            SessionLost,
        ),
        (
            "query",
            reply(
                200,
                '{"success":false,"error":{"code":"QUERY_SYNTAX_ERROR","message":"Syntax Error"}}',
            ),
            VtigerFailure,
        ),
        (
            "query",
            reply(
                200,
                '{"success":false,"error":{"code":"DATABASE_QUERY_ERROR","message":"deadlock"}}',
            ),
            TransientError,
        ),
    ],
)
def test_the_error_table(
    operation: str, response: httpx.Response, error: type[KpisyncError]
) -> None:
    with pytest.raises(error) as caught:
        translate(operation, response, "http://crm.test")
    assert isinstance(caught.value, error)
    retryable = isinstance(caught.value, TransientError | RateLimited)
    assert caught.value.retryable == retryable


def test_php_notices_before_the_envelope_are_skipped() -> None:
    body = '<br />\n<b>Warning</b>: Undefined index in x.php<br />\n{"success":true,"result":[1]}'
    assert translate("query", reply(200, body), "h") == [1]


def test_a_record_no_mapper_can_read_is_named_in_the_error() -> None:
    context = MappingContext()
    good = {
        "id": "13x1",
        "potentialname": "a",
        "sales_stage": "Prospecting",
        "closingdate": "2026-01-05",
        "modifiedtime": "2026-11-01 10:00:00",
    }
    bad = {**good, "id": "13x2", "closingdate": "1403-13-01"}  # no 13th month
    with pytest.raises(ConnectorError) as caught:
        map_each([good, bad], lambda r: map_potential(r, context), "Potentials", lambda r: r["id"])
    assert caught.value.message.startswith("Potentials 13x2 cannot be read: ValueError")
    assert "correct the record in the CRM" in str(caught.value)
