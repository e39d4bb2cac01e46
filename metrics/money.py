"""Money in the corporate currency: each amount converted at the rate in force on its date.

Rates come from `[metrics.currency_rates]`: `EUR = 1.08` (one rate), or a list of
`{ from = "2025-01-01", rate = 1.07 }` entries (each in force from its date until the next; before
the first, the first applies). A rate says how many corporate units one unit of the currency is
worth. An amount with no currency is taken to be in the corporate currency; an amount in a currency
with no rate converts to NULL, so it is counted as left out, never summed raw.

A CRM that keeps rates (the `exchange_rates` table, e.g. Salesforce's DatedConversionRate) wins
for its own deals: `crm_rate` picks, per deal, the rate of the deal's source and currency whose
range [valid_from, valid_until) holds the date (dated ranges before undated ones). CRM rates say
how many units of the currency ONE corporate unit buys, so the amount is divided by them. Deals
for which the CRM has no rate fall back on the settings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

from kpisync.store.models import ExchangeRate
from metrics.options import DatedRate


def crm_rate(source: Any, currency: Any, on: Any) -> ColumnElement[Any]:
    """The CRM-held rate of `currency` in force on `on` for `source`, or NULL (a scalar subquery)."""
    r = ExchangeRate.__table__.alias("xr")  # type: ignore[attr-defined]
    return (
        select(cast(r.c.rate, Float))
        .where(
            r.c.source == source,
            r.c.currency == currency,
            r.c.deleted_at.is_(None),
            r.c.rate > 0,
            or_(r.c.valid_from.is_(None), r.c.valid_from <= on),
            or_(r.c.valid_until.is_(None), and_(on.is_not(None), on < r.c.valid_until)),
        )
        .order_by(r.c.valid_from.desc().nulls_last())
        .limit(1)
        .scalar_subquery()
    )


def converted(
    amount: Any,
    currency: Any,
    on: Any,
    corporate: str,
    rates: dict[str, float | list[DatedRate]],
    held: ColumnElement[Any] | None = None,
) -> ColumnElement[Any]:
    """`amount` (in `currency`) in the corporate currency, at the rate in force on date `on`.

    `held` is the CRM's rate for the row (see `crm_rate`), used before the settings' rates.
    """
    whens: list[tuple[Any, Any]] = []
    for code, rate in sorted(rates.items()):
        if code == corporate:
            continue
        if isinstance(rate, float | int):
            whens.append((currency == code, cast(amount, Float) * float(rate)))
            continue
        dated = sorted(rate, key=lambda entry: entry.from_, reverse=True)
        for index, entry in enumerate(dated):
            condition = currency == code
            if index < len(dated) - 1:  # the oldest entry also covers dates before it
                condition = condition & (on >= literal(entry.from_))
            whens.append((condition, cast(amount, Float) * entry.rate))
    from_settings = case(*whens, else_=None) if whens else literal(None, Float)
    value = (
        from_settings if held is None else func.coalesce(cast(amount, Float) / held, from_settings)
    )
    return case(((currency.is_(None)) | (currency == corporate), cast(amount, Float)), else_=value)
