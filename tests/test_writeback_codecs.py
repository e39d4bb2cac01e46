"""Each connector's value codec (kpisync.fieldcodec): what is sent for a score, and whether the
CRM's answer means it. The forms are the ones measured on the real CRMs (../shared/vtiger/README.md
for Vtiger 8.2, crm-api-facts for HubSpot and Salesforce)."""

from __future__ import annotations

from connectors.hubspot.writes import CODEC as HUBSPOT
from connectors.salesforce.writes import CODEC as SALESFORCE
from connectors.vtiger.values import CODEC as VTIGER
from kpisync.connector import WriteResult
from kpisync.fieldcodec import GENERIC
from writeback.outbox import Item, verdict


def item(kind_score: str, new: str | None, entity: str = "deal") -> Item:
    return Item(
        id=1,
        run_id=1,
        source="s",
        entity=entity,
        external_id="13x5",
        field="cf_853",
        score=kind_score,
        old_value=None,
        new_value=new,
        conflict=False,
        person_value=None,
    )


def test_vtiger_checkbox_is_sent_as_1_or_0_and_cannot_hold_unknown() -> None:
    assert VTIGER.wire("bool", "true") == "1" and VTIGER.wire("bool", "false") == "0"
    assert VTIGER.holds("bool", "1", "true") and VTIGER.holds("bool", "0", "false")
    assert not VTIGER.holds("bool", "0", "true") and not VTIGER.holds("bool", "1", "false")
    assert VTIGER.holds("bool", "0", None) and VTIGER.holds("bool", "1", None)  # left as it is
    assert not VTIGER.keeps_unknown("bool") and HUBSPOT.keeps_unknown("bool")


def test_vtiger_decimal_reads_empty_as_0_00_once_emptied_and_zero_only_as_a_number() -> None:
    assert VTIGER.holds("number", "", None) and VTIGER.holds("number", "0.00", None)
    assert VTIGER.holds("number", "0.00", "0") and not VTIGER.holds("number", "", "0")
    assert VTIGER.holds("number", "-33.00", "-33") and VTIGER.holds("number", "۴۰", "40")
    assert VTIGER.wire("number", None) == "" and VTIGER.wire("string", None) == ""
    rounded = VTIGER.mismatch("number", "cf_860", "67.00", "66.7")
    assert rounded and "'67.00'" in rounded and "currency decimals" in rounded


def test_vtiger_dates_read_its_empty_date_as_empty() -> None:
    assert VTIGER.holds("date", "0000-00-00", None) and VTIGER.holds(
        "date", "2026-01-05", "2026-01-05"
    )
    assert not VTIGER.holds("date", "2026-01-06", "2026-01-05")


def test_hubspot_and_salesforce_forms() -> None:
    assert HUBSPOT.wire("bool", None) == "" and HUBSPOT.holds("number", "42.0", "42")
    assert HUBSPOT.holds("date", "1767571200000", "2026-01-05")  # epoch ms at midnight UTC
    assert not HUBSPOT.holds("bool", "", "false")  # HubSpot holds unknown: empty is not false
    assert SALESFORCE.wire("bool", "true") is True and SALESFORCE.wire("bool", "false") is False
    assert SALESFORCE.wire("number", "42") == 42 and SALESFORCE.wire("number", "0.5") == 0.5
    assert SALESFORCE.wire("string", None) is None
    assert SALESFORCE.holds("bool", False, "false") and SALESFORCE.holds("bool", True, None)
    assert SALESFORCE.holds("number", 42.0, "42") and not SALESFORCE.holds("number", None, "0")


def test_a_write_is_written_only_when_the_answer_means_the_value_sent() -> None:
    ok = WriteResult("13x5", ok=True, held={"cf_853": "1"})
    assert verdict(item("stalled", "true"), ok, VTIGER) == ("written", None)
    stored_zero = WriteResult("13x5", ok=True, held={"cf_853": "0"})  # as "true" was on 8.2
    status, why = verdict(item("stalled", "true"), stored_zero, VTIGER)
    assert status == "failed" and why == "Vtiger holds '0' in cf_853 after the write, not 'true'"
    silent = WriteResult("13x5", ok=True, held={})
    assert verdict(item("stalled", "true"), silent, VTIGER)[0] == "failed"
    refused = WriteResult("13x5", ok=False, error="INTERNAL_SERVER_ERROR")
    assert verdict(item("stalled", "true"), refused, VTIGER) == ("failed", "INTERNAL_SERVER_ERROR")
    gone = WriteResult("13x5", ok=False, error="gone", not_found=True)
    assert verdict(item("stalled", "true"), gone, GENERIC)[0] == "not_found"
    unverified = WriteResult("13x5", ok=True)  # a connector that cannot read back
    assert verdict(item("stalled", "true"), unverified, GENERIC) == ("written", None)
