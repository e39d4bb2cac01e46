"""Money in the corporate currency: each amount converted at the rate in force on its date.

Rates come from `[metrics.currency_rates]`: `EUR = 1.08` (one rate), or a list of
`{ from = "2025-01-01", rate = 1.07 }` entries (each in force from its date until the next; before
the first, the first applies). A rate says how many corporate units one unit of the currency is
worth. An amount with no currency is taken to be in the corporate currency; an amount in a currency
with no rate converts to NULL, so it is counted as left out, never summed raw.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, case, cast, literal
from sqlalchemy.sql.elements import ColumnElement

from metrics.options import DatedRate


def converted(amount: Any, currency: Any, on: Any, corporate: str,
              rates: dict[str, float | list[DatedRate]]) -> ColumnElement[Any]:
    """`amount` (in `currency`) in the corporate currency, at the rate in force on date `on`."""
    whens: list[tuple[Any, Any]] = [
        ((currency.is_(None)) | (currency == corporate), cast(amount, Float)),
    ]
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
    return case(*whens, else_=None)
