"""Pipeline and outcome KPIs: win rate, close rate, losses, deal size, revenue, units, margin, growth."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql import Select

from metrics.declaration import Custom, Derived, Kpi, Median, Ratio, Total
from metrics.derivations import growth
from metrics.portable import flag, ratio
from metrics.run import Run

CLOSED = "deals.close_date (closed deals)"
CREATED = "deals.created_at (local date)"
ORG_TEAM_REP_REGION = ("org", "team", "rep", "region")


def won_amount(t: Any) -> Any:
    return case((t.c.is_won == 1, t.c.amount_c))


def losses_by_competitor(run: Run, kind: str, grain: str) -> Select[Any]:
    """Share of all losses in the period that went to each competitor (a window over the period)."""
    t = run.table("kpi_deal")
    period = t.c["c_" + kind]
    lost = (
        select(period.label("p"), func.coalesce(t.c.competitor, "").label("k"))
        .where(t.c.is_lost == 1, period.is_not(None))
        .subquery("lost")
    )
    per = (
        select(lost.c.p, lost.c.k, func.count().label("n"))
        .group_by(lost.c.p, lost.c.k)
        .subquery("per")
    )
    total = func.sum(per.c.n).over(partition_by=per.c.p)
    shares = select(
        per.c.p, per.c.k, ratio(per.c.n, total).label("v"), total.label("n"), literal(0).label("x")
    ).subquery("shares")
    return select(shares.c.p, shares.c.k, shares.c.v, shares.c.n, shares.c.x).where(
        shares.c.k != ""
    )


KPIS = [
    Kpi(
        "win_rate",
        "Win rate",
        "Deals won in the period over deals won or lost in it.",
        "ratio",
        ORG_TEAM_REP_REGION,
        CLOSED,
        "higher",
        "deal_closed",
        Ratio(lambda t: t.c.is_won, lambda t: t.c.is_closed),
        "no deal was won or lost in the period",
        notes="cross-industry average cited: 47%",
    ),
    Kpi(
        "close_rate",
        "Close rate",
        "Deals created in the period that are won by now over all deals created in it.",
        "ratio",
        ("org", "team", "rep"),
        CREATED,
        "higher",
        "deal_created",
        Ratio(lambda t: t.c.is_won, lambda t: literal(1)),
        "no deal was created in the period",
    ),
    Kpi(
        "loss_to_no_decision",
        "Loss to no decision",
        "Deals lost in the period with a no-decision loss reason over lost deals with a reason.",
        "ratio",
        ("org", "team", "rep"),
        CLOSED,
        "lower",
        "deal_closed",
        Ratio(
            lambda t: t.c.no_decision,
            lambda t: t.c.has_reason,
            lambda t: t.c.is_lost - t.c.has_reason,
        ),
        "no deal lost in the period has a loss reason",
        notes="lost deals without a loss reason are counted as left out",
    ),
    Kpi(
        "loss_to_competitor",
        "Loss to competitor",
        "Deals lost in the period with a competitor recorded over all deals lost in it.",
        "ratio",
        ("org", "rep"),
        CLOSED,
        "lower",
        "deal_closed",
        Ratio(lambda t: t.c.has_competitor, lambda t: t.c.is_lost),
        "no deal was lost in the period",
    ),
    Kpi(
        "losses_by_competitor",
        "Losses by competitor",
        "Deals lost in the period to each competitor over all deals lost in it.",
        "ratio",
        ("competitor",),
        CLOSED,
        "lower",
        "",
        Custom(losses_by_competitor),
        "no deal was lost in the period",
    ),
    Kpi(
        "average_deal_size",
        "Average deal size",
        "Revenue of deals won in the period over the number of those deals.",
        "money",
        ORG_TEAM_REP_REGION,
        CLOSED,
        "higher",
        "deal_closed",
        Ratio(
            won_amount,
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_not(None))),
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_(None))),
        ),
        "no won deal with a usable amount in the period",
        notes="won deals without an amount, or in a currency without a rate, are left out",
    ),
    Kpi(
        "median_deal_size",
        "Median deal size",
        "The median amount of deals won in the period.",
        "money",
        ORG_TEAM_REP_REGION,
        CLOSED,
        "higher",
        "deal_closed",
        Median(lambda t: t.c.amount_c, lambda t: t.c.is_won == 1),
        "no won deal with a usable amount in the period",
    ),
    Kpi(
        "sales_volume",
        "Sales volume (revenue)",
        "The summed amount of deals won in the period, in the corporate currency.",
        "money",
        (*ORG_TEAM_REP_REGION, "segment"),
        CLOSED,
        "higher",
        "deal_closed",
        Total(
            won_amount,
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_not(None))),
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_(None))),
        ),
        "every won deal in the period lacks a usable amount",
    ),
    Kpi(
        "units_sold",
        "Units sold",
        "The summed line-item quantity of deals won in the period.",
        "count",
        ("org", "product", "region"),
        CLOSED,
        "higher",
        "won_line",
        Total(
            lambda t: t.c.quantity,
            lambda t: flag(t.c.quantity.is_not(None)),
            lambda t: flag(t.c.quantity.is_(None)),
        ),
        "no line item with a quantity on deals won in the period",
        needs=("line_items",),
    ),
    Kpi(
        "margin",
        "Margin",
        "Summed margin of deals won in the period over their summed amount.",
        "ratio",
        ("org", "rep", "segment"),
        CLOSED,
        "higher",
        "deal_closed",
        Ratio(
            lambda t: case((_has_margin(t), t.c.margin_c)),
            lambda t: case((_has_margin(t), t.c.amount_c)),
            lambda t: flag(and_(t.c.is_won == 1, ~_has_margin(t))),
            fed=lambda t: flag(_has_margin(t)),
        ),
        "no won deal with both amount and margin in the period",
    ),
    Kpi(
        "revenue_growth",
        "Revenue growth",
        "Revenue in the period minus revenue in the previous period, over the previous period's.",
        "ratio",
        ("org", "team"),
        CLOSED,
        "higher",
        "",
        Derived(("sales_volume",), growth("sales_volume", years=False), lead_in=True),
        "the previous period's revenue is 0 or unknown",
    ),
    Kpi(
        "revenue_growth_yoy",
        "Revenue growth, year over year",
        "Revenue in the period minus revenue in the same period a year before, over the latter.",
        "ratio",
        ("org", "team"),
        CLOSED,
        "higher",
        "",
        Derived(("sales_volume",), growth("sales_volume", years=True), lead_in=True),
        "revenue a year before is 0 or unknown",
    ),
    Kpi(
        "new_opportunities",
        "New opportunities",
        "The number of deals created in the period.",
        "count",
        ("org", "team", "rep"),
        CREATED,
        "higher",
        "deal_created",
        Total(lambda t: literal(1), lambda t: literal(1)),
    ),
    Kpi(
        "new_leads",
        "New leads",
        "The number of leads created in the period (on HubSpot a lead is the contact record).",
        "count",
        ("org", "source"),
        "leads.created_at",
        "higher",
        "lead",
        Total(lambda t: literal(1), lambda t: literal(1)),
    ),
    Kpi(
        "qualified_leads",
        "Qualified leads",
        "Leads created in the period whose status is a qualified status (or that converted).",
        "count",
        ("org", "source"),
        "leads.created_at",
        "higher",
        "lead",
        Total(lambda t: t.c.is_qualified, lambda t: literal(1)),
    ),
    Kpi(
        "qualified_leads_growth",
        "Qualified leads growth",
        "Qualified leads in the period minus those in the previous period, over the latter.",
        "ratio",
        ("org", "source"),
        "leads.created_at",
        "higher",
        "",
        Derived(("qualified_leads",), growth("qualified_leads", years=False), lead_in=True),
        "the previous period had no qualified leads",
    ),
]


def _has_margin(t: Any) -> Any:
    return and_(t.c.is_won == 1, t.c.margin_c.is_not(None), t.c.amount_c.is_not(None))
