"""Customer KPIs: acquisition, CAC, churn, CLV, ARPU, upsell, cross-sell, engagement, data quality.

A customer is an account with a won deal; it became one on its first won deal's close date and
was lost on the date the churn rule gives (`metrics.roles.churn_rule`, see `metrics.staging`).
"Existing at the start of P" = became a customer before P and not lost before P.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Date, String, and_, case, func, literal, or_, select, true, union_all
from sqlalchemy.sql import Select

from kpisync.store.models import Activity, Deal, LineItem
from kpisync.store.types import UTCDateTime
from metrics.declaration import Custom, Derived, Kpi, Ratio, Total
from metrics.derivations import arpu, cac, clv, ltv_cac
from metrics.periods import period_end, period_start
from metrics.portable import days_between, flag, ratio
from metrics.run import Run
from metrics.staging import activity_account, base, live, same_record

ACQUIRED = "first won deal's close date"


def periods_cte(run: Run, kind: str) -> Any:
    """The window's periods of `kind` up to now, as a small derived table (start, end)."""
    rows = [
        select(
            literal(start, Date).label("start"),
            literal(period_end(start, kind, run.window.calendar), Date).label("end"),
        )
        for start in run.window.periods(kind)
        if start <= run.window.today
    ]
    return union_all(*rows).subquery("periods")


def customer_key(run: Run, grain: str) -> Any:
    return literal("org") if grain == "org" else run.table("kpi_customer").c[grain]


def existing_at(c: Any, start: Any) -> Any:
    return and_(c.c.first_won < start, or_(c.c.lost_on.is_(None), c.c.lost_on >= start))


def combine(numerators: Select[Any], denominators: Select[Any]) -> Select[Any]:
    """Rows (p, k, n, 0) and (p, k, 0, d) summed per (p, k) into ratio n / d."""
    both = union_all(numerators, denominators).subquery("both")
    return select(
        both.c.p,
        both.c.k,
        ratio(func.sum(both.c.n), func.sum(both.c.d)),
        func.sum(both.c.d),
        literal(0),
    ).group_by(both.c.p, both.c.k)


def existing_counts(run: Run, kind: str, grain: str) -> Select[Any]:
    p, c = periods_cte(run, kind), run.table("kpi_customer")
    key = customer_key(run, grain)
    return (
        select(p.c.start.label("p"), key.label("k"), literal(0).label("n"), func.count().label("d"))
        .select_from(p.join(c, true()))
        .where(existing_at(c, p.c.start), key.is_not(None))
        .group_by(p.c.start, key)
    )


def churn(run: Run, kind: str, grain: str) -> Select[Any]:
    p, c = periods_cte(run, kind), run.table("kpi_customer")
    key = customer_key(run, grain)
    existing = existing_at(c, p.c.start)
    lost = and_(existing, c.c.lost_on < p.c.end)
    return (
        select(p.c.start, key, ratio(func.sum(flag(lost)), func.count()), func.count(), literal(0))
        .select_from(p.join(c, true()))
        .where(existing, key.is_not(None))
        .group_by(p.c.start, key)
    )


def active(run: Run, kind: str, grain: str) -> Select[Any]:
    p, c = periods_cte(run, kind), run.table("kpi_customer")
    key = customer_key(run, grain)
    alive = and_(c.c.first_won < p.c.end, or_(c.c.lost_on.is_(None), c.c.lost_on >= p.c.start))
    return (
        select(p.c.start, key, func.count(), func.count(), literal(0))
        .select_from(p.join(c, true()))
        .where(alive, key.is_not(None))
        .group_by(p.c.start, key)
    )


def bought(run: Run, kind: str, grain: str, events: Any) -> Select[Any]:
    """Existing customers with an event (src, account, p) in P over existing customers."""
    c = run.table("kpi_customer")
    key = customer_key(run, grain)
    account = c.c.src + ":" + c.c.account
    numerators = (
        select(
            events.c.p,
            key.label("k"),
            func.count(func.distinct(account)).label("n"),
            literal(0).label("d"),
        )
        .select_from(events.join(c, and_(c.c.src == events.c.src, c.c.account == events.c.account)))
        .where(existing_at(c, events.c.p), key.is_not(None))
        .group_by(events.c.p, key)
    )
    return combine(numerators, existing_counts(run, kind, grain))


def upsell(run: Run, kind: str, grain: str) -> Select[Any]:
    d = run.table("kpi_deal")
    events = (
        select(d.c.src, d.c.account, d.c["c_" + kind].label("p"))
        .where(d.c.is_upgrade == 1)
        .subquery("events")
    )
    return bought(run, kind, grain, events)


def first_purchases(run: Run) -> Any:
    """When each account first won each product (line items of won deals), staged once a run."""
    deals, li = Deal.__table__, LineItem.__table__  # type: ignore[attr-defined]

    def build() -> Select[Any]:
        return (
            select(deals.c.source, deals.c.account_id, li.c.product, func.min(deals.c.close_date))
            .select_from(
                li.join(
                    deals, and_(deals.c.source == li.c.source, deals.c.external_id == li.c.deal_id)
                )
            )
            .where(
                li.c.deleted_at.is_(None),
                deals.c.deleted_at.is_(None),
                deals.c.is_won.is_(True),
                li.c.product.is_not(None),
                deals.c.account_id.is_not(None),
            )
            .group_by(deals.c.source, deals.c.account_id, li.c.product)
        )

    return run.once(
        "kpi_first_purchase",
        [
            Column("src", String),
            Column("account", String),
            Column("product", String),
            Column("first_on", Date),
        ],
        build,
    )


def cross_sell(run: Run, kind: str, grain: str) -> Select[Any]:
    """A won cross-sell deal, or the first won line item of a product new to the account."""
    d, firsts = run.table("kpi_deal"), first_purchases(run)
    events = union_all(
        select(d.c.src, d.c.account, d.c["c_" + kind].label("p")).where(d.c.is_cross_sell == 1),
        select(firsts.c.src, firsts.c.account, run.bucketer.day(firsts.c.first_on, kind)).where(
            firsts.c.first_on >= run.window.first_day
        ),
    ).subquery("events")
    return bought(run, kind, grain, events)


def acquisition_rate(run: Run, kind: str, grain: str) -> Select[Any]:
    c, leads = run.table("kpi_customer"), run.table("kpi_lead")
    won_key = {"org": literal("org"), "rep": c.c.won_by, "source": c.c.source}[grain]
    lead_key = {"org": literal("org"), "rep": leads.c.rep, "source": leads.c.source}[grain]
    numerators = (
        select(
            c.c["a_" + kind].label("p"),
            won_key.label("k"),
            func.count().label("n"),
            literal(0).label("d"),
        )
        .where(c.c["a_" + kind] >= run.window.periods(kind)[0], won_key.is_not(None))
        .group_by(c.c["a_" + kind], won_key)
    )
    denominators = (
        select(
            leads.c["l_" + kind].label("p"),
            lead_key.label("k"),
            literal(0).label("n"),
            func.count().label("d"),
        )
        .where(lead_key.is_not(None))
        .group_by(leads.c["l_" + kind], lead_key)
    )
    return combine(numerators, denominators)


def last_touch(run: Run) -> Any:
    """Each account's latest activity up to now (its own or its deals'), staged once a run."""
    act, d = base(Activity, "act"), base(Deal, "d")
    account = activity_account(act, d)

    def build() -> Select[Any]:
        return (
            select(act.c.source, account, func.max(act.c.occurred_at))
            .select_from(act.outerjoin(d, same_record(d, act.c.source, act.c.deal_id)))
            .where(live(act), account.is_not(None), act.c.occurred_at <= run.window.now)
            .group_by(act.c.source, account)
        )

    return run.once(
        "kpi_last_touch",
        [Column("source", String), Column("account_id", String), Column("at", UTCDateTime())],
        build,
    )


def current_customers(run: Run) -> tuple[Any, Any, Any]:
    """Customers today joined to their last touch; (customers, touches, where-clause)."""
    c, touch, today = run.table("kpi_customer"), last_touch(run), run.window.today
    joined = c.outerjoin(touch, and_(touch.c.source == c.c.src, touch.c.account_id == c.c.account))
    alive = and_(c.c.first_won <= today, or_(c.c.lost_on.is_(None), c.c.lost_on > today))
    return joined, touch, alive


def engagement(run: Run, kind: str, grain: str) -> Select[Any]:
    """As of now: active customers touched in the last N days over active customers."""
    joined, touch, alive = current_customers(run)
    since = run.window.now - timedelta(days=run.config.metrics.engagement_days)
    key = customer_key(run, grain)
    start = literal(period_start(run.window.today, kind, run.window.calendar), Date)
    return (
        select(
            start,
            key,
            ratio(func.sum(flag(touch.c.at >= since)), func.count()),
            func.count(),
            literal(0),
        )
        .select_from(joined)
        .where(alive, key.is_not(None))
        .group_by(key)
    )


def days_since_touch(run: Run, kind: str, grain: str) -> Select[Any]:
    joined, touch, alive = current_customers(run)
    c = run.table("kpi_customer")
    start = literal(period_start(run.window.today, kind, run.window.calendar), Date)
    days = case(
        (
            touch.c.at.is_not(None),
            days_between(
                run.dialect, literal(run.window.today, Date), run.bucketer.local_date(touch.c.at)
            ),
        )
    )
    return (
        select(start, c.c.account, days, literal(1), flag(touch.c.at.is_(None)))
        .select_from(joined)
        .where(alive)
    )


KPIS = [
    Kpi(
        "new_customers",
        "New customers",
        "Accounts whose first won deal closed in the period; source: the first won deal's, else "
        "that of the lead (else contact) the customer came from.",
        "count",
        ("org", "team", "rep", "region", "source"),
        ACQUIRED,
        "higher",
        "acquired",
        Total(lambda t: literal(1), lambda t: literal(1)),
        notes="team and rep are those of the rep who won the first deal",
    ),
    Kpi(
        "customer_acquisition_rate",
        "Customer acquisition rate",
        "New customers in the period over leads created in it (on HubSpot a lead is the contact "
        "record).",
        "ratio",
        ("org", "source", "rep"),
        ACQUIRED,
        "higher",
        "",
        Custom(acquisition_rate),
        "no lead was created in the period",
    ),
    Kpi(
        "cac",
        "Customer acquisition cost",
        "Sales and marketing spend in the period over new customers in it.",
        "money",
        ("org", "team", "region"),
        ACQUIRED,
        "lower",
        "",
        Derived(("new_customers",), cac),
        "no new customers in the period",
        notes="spend from metrics.spend or spend_csv",
    ),
    Kpi(
        "churn_rate",
        "Churn rate",
        "Customers lost in the period over customers at its start.",
        "ratio",
        ("org", "region", "segment"),
        "the churn rule's loss date",
        "lower",
        "",
        Custom(churn),
        "no customers at the start of the period",
        notes="goal example: under 1% a month",
    ),
    Kpi(
        "active_customers",
        "Active customers",
        "Accounts that were customers at some time in the period.",
        "count",
        ("org", "segment"),
        "first won deal and loss dates",
        "higher",
        "",
        Custom(active),
    ),
    Kpi(
        "arpu",
        "Average revenue per user",
        "Revenue won in the period over customers active in it.",
        "money",
        ("org", "segment"),
        "deals.close_date (won deals)",
        "higher",
        "",
        Derived(("sales_volume", "active_customers"), arpu),
        "no active customers in the period",
    ),
    Kpi(
        "clv",
        "Customer lifetime value",
        "ARPU of the period times the expected lifetime (1 / churn rate), times margin where known.",
        "money",
        ("org", "segment"),
        "deals.close_date (won deals)",
        "higher",
        "",
        Derived(("arpu", "churn_rate", "margin"), clv),
        "no churn in the period (lifetime unbounded) or no revenue data",
        notes="segment: the account's (metrics.roles.segment_field); its ARPU, churn and margin "
        "are the segment's own",
    ),
    Kpi(
        "ltv_cac",
        "LTV:CAC",
        "Customer lifetime value over customer acquisition cost.",
        "multiple",
        ("org",),
        "deals.close_date (won deals)",
        "higher",
        "",
        Derived(("clv", "cac"), ltv_cac),
        "CLV or CAC is unknown for the period",
        notes="rule of thumb: at least 3",
    ),
    Kpi(
        "upsell_rate",
        "Upsell rate",
        "Existing customers (a won deal before the period, not lost before it) with a won "
        "upgrade deal in the period over existing customers.",
        "ratio",
        ("org", "rep"),
        "deals.close_date (won upgrade deals)",
        "higher",
        "",
        Custom(upsell),
        "no existing customers at the start of the period",
        notes="rep: the account owner",
    ),
    Kpi(
        "cross_sell_rate",
        "Cross-sell rate",
        "Existing customers (a won deal before the period, not lost before it) that bought a "
        "product new to them (a first won line item of it) or won a deal of a cross-sell type "
        "in the period, over existing customers.",
        "ratio",
        ("org", "rep"),
        "deals.close_date (won deals)",
        "higher",
        "",
        Custom(cross_sell),
        "no existing customers at the start of the period",
    ),
    Kpi(
        "customer_engagement",
        "Customer engagement",
        "Share of current customers with an activity (on the account or its deals) in the last N "
        "days (as of the computation).",
        "ratio",
        ("org", "rep"),
        "now (the current period only)",
        "higher",
        "",
        Custom(engagement),
        "no current customers",
        notes="N = metrics.engagement_days",
        tags=("now",),
    ),
    Kpi(
        "days_since_last_touch",
        "Days since last touch",
        "Local calendar days (org time zone) from the last activity on each current customer, "
        "its own or its deals', to today (as of the computation).",
        "days",
        ("account",),
        "now (the current period only)",
        "lower",
        "",
        Custom(days_since_touch),
        "no activity recorded on the account",
        tags=("now",),
        periods=("month",),
    ),
    Kpi(
        "lead_data_quality",
        "Lead and contact data quality",
        "Share of leads and contacts created in the period with a name, a well-formed email and "
        "a phone of at least 7 digits.",
        "ratio",
        ("org", "source"),
        "leads.created_at, contacts.created_at",
        "higher",
        "person",
        Ratio(lambda t: t.c.quality, lambda t: literal(1)),
        "no lead or contact was created in the period",
    ),
]
