"""Conversion rates and revenue quotas a Salesforce org keeps, read whole once a run.

Rates: DatedConversionRate (advanced currency management: IsoCode, ConversionRate, the range
[StartDate, NextStartDate); the first range starts 0001-01-01 and the last ends 9999-12-31, both
stored as open ends) when the org has it, else CurrencyType (IsoCode, ConversionRate, IsCorporate,
IsActive: one undated rate per currency). ConversionRate is units of that currency per ONE unit
of the corporate currency, so an amount converts as amount / rate; the store keeps it unchanged.
Quotas: ForecastingQuota rows with IsAmount (revenue, not quantity, quotas): QuotaOwnerId, the
forecast period's StartDate, QuotaAmount; the period's length is the org's forecast period
(`forecast_period` setting: Collaborative Forecasts runs monthly or quarterly).
An object the org lacks (its describe answers 404: no multi-currency, no forecasting) is skipped.
None of these objects has IsDeleted; rows removed in Salesforce go at the periodic id comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

from connectors.salesforce.mappers import Record, day, decimal, modified, raw_of, text
from connectors.salesforce.paging import QueryPager
from kpisync.store.models import ExchangeRate, Quota, Row

DATED, CURRENCY_TYPE, QUOTA = "DatedConversionRate", "CurrencyType", "ForecastingQuota"
RATES_STREAM = "ConversionRate"  # one stream whichever object the rates come from
FIRST_DAY, LAST_DAY = date(1, 1, 1), date(9999, 12, 31)
DATED_SOQL = (
    "SELECT Id, IsoCode, ConversionRate, StartDate, NextStartDate, SystemModstamp "
    "FROM DatedConversionRate ORDER BY IsoCode, StartDate"
)
TYPE_SOQL = (
    "SELECT Id, IsoCode, ConversionRate, IsCorporate, IsActive, SystemModstamp "
    "FROM CurrencyType ORDER BY IsoCode"
)
QUOTA_FIELDS = ("Id", "QuotaOwnerId", "StartDate", "QuotaAmount", "IsAmount", "SystemModstamp")

Exists = Callable[[str], bool]  # whether the org has an sObject


def rate_object(exists: Exists) -> str | None:
    """The object the org's rates come from, or None in a single-currency org."""
    return DATED if exists(DATED) else CURRENCY_TYPE if exists(CURRENCY_TYPE) else None


def read_rates(pager: QueryPager, exists: Exists) -> list[Row]:
    sobject = rate_object(exists)
    if sobject is None:
        return []
    soql = DATED_SOQL if sobject == DATED else TYPE_SOQL
    return [map_rate(r) for rows in pager.pages(soql, include_deleted=False) for r in rows]


def read_quotas(pager: QueryPager, exists: Exists, period: str, currency: bool) -> list[Row]:
    if not exists(QUOTA):
        return []
    fields = (*QUOTA_FIELDS, *(("CurrencyIsoCode",) if currency else ()))
    soql = (
        f"SELECT {', '.join(fields)} FROM ForecastingQuota WHERE IsAmount = true "
        "ORDER BY StartDate, Id"
    )
    return [map_quota(r, period) for rows in pager.pages(soql, include_deleted=False) for r in rows]


def map_rate(record: Record) -> Row:
    """A DatedConversionRate or CurrencyType row; the year-1 and year-9999 ends are open ends."""
    start, until = day(record.get("StartDate")), day(record.get("NextStartDate"))
    return ExchangeRate.row(
        external_id=str(record["Id"]),
        currency=text(record, "IsoCode"),
        rate=decimal(record.get("ConversionRate")),
        valid_from=None if start == FIRST_DAY else start,
        valid_until=None if until == LAST_DAY else until,
        modified_at=modified(record),
        raw=raw_of(record),
    )


def map_quota(record: Record, period: str) -> Row:
    return Quota.row(
        external_id=str(record["Id"]),
        owner_id=text(record, "QuotaOwnerId"),
        period_kind=period,
        period_start=day(record.get("StartDate")),
        amount=decimal(record.get("QuotaAmount")),
        currency=text(record, "CurrencyIsoCode"),
        modified_at=modified(record),
        raw=raw_of(record),
    )


def ids_of(pager: QueryPager, exists: Exists) -> Iterator[tuple[str, list[str]]]:
    """The live ids behind each entity, for the purge comparison (only objects the org has)."""
    sobject = rate_object(exists)
    if sobject is not None:
        for rows in pager.pages(f"SELECT Id FROM {sobject} ORDER BY Id", include_deleted=False):
            yield "exchange_rate", [str(r["Id"]) for r in rows]
    if exists(QUOTA):
        for rows in pager.pages(
            "SELECT Id FROM ForecastingQuota WHERE IsAmount = true ORDER BY Id",
            include_deleted=False,
        ):
            yield "quota", [str(r["Id"]) for r in rows]
