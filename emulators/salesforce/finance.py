"""The org's conversion rates and quotas as Salesforce keeps them (emulator truth).

Multi-currency orgs have CurrencyType: one row per active currency, `ConversionRate` units of it
per one unit of the corporate currency (whose row says IsCorporate, rate 1). With advanced currency
management, DatedConversionRate holds each currency's rates as ranges [StartDate, NextStartDate):
the first starts on 0001-01-01 and the last runs to 9999-12-31, as Salesforce records them.
Collaborative Forecasts keeps revenue quotas in ForecastingQuota (QuotaOwnerId, StartDate of the
forecast period, QuotaAmount, IsAmount). An org without rates or quotas has none of these objects.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from emulators.org.model import ExchangeRate, Org
from emulators.salesforce.records import Truth, stamped, user_id
from emulators.salesforce.schema import (
    CURRENCY_TYPE,
    DATED_RATE,
    FORECAST_QUOTA,
    Schema,
    make_id,
)

CORPORATE = "USD"
FIRST_DAY, LAST_DAY = date(1, 1, 1), date(9999, 12, 31)


def optional_objects(org: Org) -> tuple[str, ...]:
    """The rate and quota objects this org has."""
    found: list[str] = []
    if org.exchange_rates:
        found.append(CURRENCY_TYPE)
        if any(rate.start is not None for rate in org.exchange_rates):
            found.append(DATED_RATE)
    if org.quotas:
        found.append(FORECAST_QUOTA)
    return tuple(found)


def add_rates_and_quotas(truth: Truth, schema: Schema, org: Org) -> None:
    at = org.now.replace(year=org.now.year - 4)
    if CURRENCY_TYPE in truth:
        current = {
            rate.currency: rate
            for rate in sorted(org.exchange_rates, key=lambda r: r.start or FIRST_DAY)
            if (rate.start is None or rate.start <= org.now.date())
        }
        current[CORPORATE] = ExchangeRate(CORPORATE, Decimal(1))
        for number, code in enumerate(sorted(current), start=1):
            rid = make_id(CURRENCY_TYPE, number)
            truth[CURRENCY_TYPE][rid] = stamped(
                schema,
                CURRENCY_TYPE,
                rid,
                at,
                at,
                None,
                {
                    "IsoCode": code,
                    "ConversionRate": current[code].per_corporate,
                    "DecimalPlaces": 2,
                    "IsActive": True,
                    "IsCorporate": code == CORPORATE,
                },
            )
    if DATED_RATE in truth:
        add_dated_rates(truth, schema, org)
    for number, quota in enumerate(org.quotas, start=1):
        rid = make_id(FORECAST_QUOTA, number)
        truth[FORECAST_QUOTA][rid] = stamped(
            schema,
            FORECAST_QUOTA,
            rid,
            at,
            at,
            None,
            {
                "QuotaOwnerId": user_id(quota.rep_id),
                "StartDate": quota.start,
                "QuotaAmount": quota.amount,
                "QuotaQuantity": None,
                "IsAmount": True,
                "IsQuantity": False,
                "CurrencyIsoCode": quota.currency,
            },
        )


def add_dated_rates(truth: Truth, schema: Schema, org: Org) -> None:
    by_code: dict[str, list[ExchangeRate]] = {
        CORPORATE: [ExchangeRate(CORPORATE, Decimal(1), FIRST_DAY)]
    }
    for rate in org.exchange_rates:
        by_code.setdefault(rate.currency, []).append(rate)
    number = 0
    for code, rates in sorted(by_code.items()):
        ordered = sorted(rates, key=lambda r: r.start or FIRST_DAY)
        for index, rate in enumerate(ordered):
            number += 1
            start = FIRST_DAY if index == 0 else rate.start or FIRST_DAY
            following = ordered[index + 1].start if index + 1 < len(ordered) else None
            created = (
                org.now - timedelta(days=1)
                if start == FIRST_DAY
                else org.now.replace(year=start.year, month=start.month, day=start.day)
            )
            created = min(created, org.now - timedelta(days=1))
            rid = make_id(DATED_RATE, number)
            truth[DATED_RATE][rid] = stamped(
                schema,
                DATED_RATE,
                rid,
                created,
                created,
                None,
                {
                    "IsoCode": code,
                    "ConversionRate": rate.per_corporate,
                    "StartDate": start,
                    "NextStartDate": following or LAST_DAY,
                },
            )
