"""What a CRM may keep beside its records: conversion rates and rep quotas for a generated org.

Derived without randomness from an org `generate_org` made, so adding them changes nothing else.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from emulators.org.model import ExchangeRate, Org, RepQuota


def add_rates_and_quotas(org: Org, *, dated: bool = True, quarters: int = 4) -> Org:
    """Give `org` CRM-held conversion rates and quarterly rep quotas, derived without randomness.

    Nothing else in the org changes (same seed, same records). Dated rates: one per currency per
    quarter over the org's three years, drifting around the generator's rate; undated: one rate
    each. Quotas: each rep, the last `quarters` quarters up to the current one.
    """
    first = org.now.date().replace(year=org.now.year - 3, month=1, day=1)
    starts = [first]
    while starts[-1] <= org.now.date():
        starts.append(quarter_after(starts[-1]))
    rates = []
    for code, value in sorted(org.currencies.items()):
        if code == "USD":
            continue
        if not dated:
            rates.append(ExchangeRate(code, Decimal(f"{1 / float(value):.6f}")))
            continue
        for k, start in enumerate(starts[:-1]):
            drift = 1 + 0.01 * ((k % 5) - 2)
            rates.append(ExchangeRate(code, Decimal(f"{drift / float(value):.6f}"), start))
    org.exchange_rates = rates
    recent = [s for s in starts if s <= org.now.date()][-quarters:]
    org.quotas = [
        RepQuota(rep.id, start, Decimal(40_000 + 10_000 * (rep.id % 3)))
        for rep in org.reps
        for start in recent
    ]
    return org


def quarter_after(day: date) -> date:
    month = day.month + 3
    return date(day.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
