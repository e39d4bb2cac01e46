"""CRM records the report lists: the period's biggest won deals (rep names: metrics.rep_names).

These are listings, not KPIs: names and amounts as synced. Amounts are converted to the corporate
currency with the KPI engine's own rule (`metrics.money.converted`), so they agree with revenue.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, and_, func, select

from kpisync.report.content import DealRow
from kpisync.store.models import Account, Deal, User
from metrics import MetricConfig, converted, period_end

USERS = User.__table__  # type: ignore[attr-defined]


def biggest_wins(
    engine: Engine, config: MetricConfig, kind: str, start: date, limit: int
) -> tuple[DealRow, ...]:
    """The `limit` largest deals won in the period (by close date), largest first."""
    if limit == 0:
        return ()
    d = Deal.__table__.alias("d")  # type: ignore[attr-defined]
    a = Account.__table__.alias("a")  # type: ignore[attr-defined]
    u = USERS.alias("u")
    owner = func.coalesce(d.c.closed_owner_id, d.c.owner_id)
    amount = converted(
        d.c.amount, d.c.currency, d.c.close_date, config.currency, config.metrics.currency_rates
    ).label("amount_c")
    query = (
        select(
            d.c.name,
            a.c.name.label("account"),
            u.c.name.label("owner"),
            amount,
            d.c.amount,
            d.c.currency,
            d.c.close_date,
        )
        .select_from(
            d.outerjoin(
                a,
                and_(
                    a.c.source == d.c.source,
                    a.c.external_id == d.c.account_id,
                    a.c.deleted_at.is_(None),
                ),
            ).outerjoin(
                u,
                and_(u.c.source == d.c.source, u.c.external_id == owner, u.c.deleted_at.is_(None)),
            )
        )
        .where(
            d.c.deleted_at.is_(None),
            d.c.is_won.is_(True),
            d.c.close_date >= start,
            d.c.close_date < period_end(start, kind, config.calendar),
        )
        .order_by(amount.is_(None), amount.desc(), d.c.close_date.desc(), d.c.name)
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return tuple(
        DealRow(
            name=row.name or "(unnamed deal)",
            account=row.account,
            owner=row.owner,
            amount=row.amount_c,
            original=original(row.amount, row.currency, config.currency),
            close_date=row.close_date,
        )
        for row in rows
    )


def original(amount: object, currency: str | None, corporate: str) -> str | None:
    if amount is None or currency in (None, corporate):
        return None
    return f"{float(amount):,.0f} {currency}"  # type: ignore[arg-type]
