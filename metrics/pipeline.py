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
        name="win_rate",
        title="Win rate",
        definition="Deals won in the period over deals won or lost in it.",
        unit="ratio",
        grains=ORG_TEAM_REP_REGION,
        period_date=CLOSED,
        direction="higher",
        fact="deal_closed",
        measure=Ratio(lambda t: t.c.is_won, lambda t: t.c.is_closed),
        empty_reason="no deal was won or lost in the period",
        notes="cross-industry average cited: 47%",
    ),
    Kpi(
        name="close_rate",
        title="Close rate",
        definition="Deals created in the period that are won by now over all deals created in it.",
        unit="ratio",
        grains=("org", "team", "rep"),
        period_date=CREATED,
        direction="higher",
        fact="deal_created",
        measure=Ratio(lambda t: t.c.is_won, lambda t: literal(1)),
        empty_reason="no deal was created in the period",
    ),
    Kpi(
        name="loss_to_no_decision",
        title="Loss to no decision",
        definition="Deals lost in the period with a no-decision loss reason over lost deals with a reason.",
        unit="ratio",
        grains=("org", "team", "rep"),
        period_date=CLOSED,
        direction="lower",
        fact="deal_closed",
        measure=Ratio(
            lambda t: t.c.no_decision,
            lambda t: t.c.has_reason,
            lambda t: t.c.is_lost - t.c.has_reason,
        ),
        empty_reason="no deal lost in the period has a loss reason",
        notes="lost deals without a loss reason are counted as left out",
    ),
    Kpi(
        name="loss_to_competitor",
        title="Loss to competitor",
        definition="Deals lost in the period with a competitor recorded over all deals lost in it.",
        unit="ratio",
        grains=("org", "rep"),
        period_date=CLOSED,
        direction="lower",
        fact="deal_closed",
        measure=Ratio(lambda t: t.c.has_competitor, lambda t: t.c.is_lost),
        empty_reason="no deal was lost in the period",
    ),
    Kpi(
        name="losses_by_competitor",
        title="Losses by competitor",
        definition="Deals lost in the period to each competitor over all deals lost in it.",
        unit="ratio",
        grains=("competitor",),
        period_date=CLOSED,
        direction="lower",
        fact="",
        measure=Custom(losses_by_competitor),
        empty_reason="no deal was lost in the period",
    ),
    Kpi(
        name="average_deal_size",
        title="Average deal size",
        definition="Revenue of deals won in the period over the number of those deals.",
        unit="money",
        grains=ORG_TEAM_REP_REGION,
        period_date=CLOSED,
        direction="higher",
        fact="deal_closed",
        measure=Ratio(
            won_amount,
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_not(None))),
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_(None))),
        ),
        empty_reason="no won deal with a usable amount in the period",
        notes="won deals without an amount, or in a currency without a rate, are left out",
    ),
    Kpi(
        name="median_deal_size",
        title="Median deal size",
        definition="The median amount of deals won in the period.",
        unit="money",
        grains=ORG_TEAM_REP_REGION,
        period_date=CLOSED,
        direction="higher",
        fact="deal_closed",
        measure=Median(lambda t: t.c.amount_c, lambda t: t.c.is_won == 1),
        empty_reason="no won deal with a usable amount in the period",
    ),
    Kpi(
        name="sales_volume",
        title="Sales volume (revenue)",
        definition="The summed amount of deals won in the period, in the corporate currency.",
        unit="money",
        grains=(*ORG_TEAM_REP_REGION, "segment"),
        period_date=CLOSED,
        direction="higher",
        fact="deal_closed",
        measure=Total(
            won_amount,
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_not(None))),
            lambda t: flag(and_(t.c.is_won == 1, t.c.amount_c.is_(None))),
        ),
        empty_reason="every won deal in the period lacks a usable amount",
    ),
    Kpi(
        name="units_sold",
        title="Units sold",
        definition="The summed line-item quantity of deals won in the period.",
        unit="count",
        grains=("org", "product", "region"),
        period_date=CLOSED,
        direction="higher",
        fact="won_line",
        measure=Total(
            lambda t: t.c.quantity,
            lambda t: flag(t.c.quantity.is_not(None)),
            lambda t: flag(t.c.quantity.is_(None)),
        ),
        empty_reason="no line item with a quantity on deals won in the period",
        needs=("line_items",),
    ),
    Kpi(
        name="margin",
        title="Margin",
        definition="Summed margin of deals won in the period over their summed amount.",
        unit="ratio",
        grains=("org", "rep", "segment"),
        period_date=CLOSED,
        direction="higher",
        fact="deal_closed",
        measure=Ratio(
            lambda t: case((_has_margin(t), t.c.margin_c)),
            lambda t: case((_has_margin(t), t.c.amount_c)),
            lambda t: flag(and_(t.c.is_won == 1, ~_has_margin(t))),
            fed=lambda t: flag(_has_margin(t)),
        ),
        empty_reason="no won deal with both amount and margin in the period",
    ),
    Kpi(
        name="revenue_growth",
        title="Revenue growth",
        definition="Revenue in the period minus revenue in the previous period, over the previous period's.",
        unit="ratio",
        grains=("org", "team"),
        period_date=CLOSED,
        direction="higher",
        fact="",
        measure=Derived(("sales_volume",), growth("sales_volume", years=False), lead_in=True),
        empty_reason="the previous period's revenue is 0 or unknown",
    ),
    Kpi(
        name="revenue_growth_yoy",
        title="Revenue growth, year over year",
        definition="Revenue in the period minus revenue in the same period a year before, over the latter.",
        unit="ratio",
        grains=("org", "team"),
        period_date=CLOSED,
        direction="higher",
        fact="",
        measure=Derived(("sales_volume",), growth("sales_volume", years=True), lead_in=True),
        empty_reason="revenue a year before is 0 or unknown",
    ),
    Kpi(
        name="new_opportunities",
        title="New opportunities",
        definition="The number of deals created in the period.",
        unit="count",
        grains=("org", "team", "rep"),
        period_date=CREATED,
        direction="higher",
        fact="deal_created",
        measure=Total(lambda t: literal(1), lambda t: literal(1)),
    ),
    Kpi(
        name="new_leads",
        title="New leads",
        definition="The number of leads created in the period (on HubSpot a lead is the contact record).",
        unit="count",
        grains=("org", "source"),
        period_date="leads.created_at",
        direction="higher",
        fact="lead",
        measure=Total(lambda t: literal(1), lambda t: literal(1)),
    ),
    Kpi(
        name="qualified_leads",
        title="Qualified leads",
        definition="Leads created in the period whose status is a qualified status (or that converted).",
        unit="count",
        grains=("org", "source"),
        period_date="leads.created_at",
        direction="higher",
        fact="lead",
        measure=Total(lambda t: t.c.is_qualified, lambda t: literal(1)),
    ),
    Kpi(
        name="qualified_leads_growth",
        title="Qualified leads growth",
        definition="Qualified leads in the period minus those in the previous period, over the latter.",
        unit="ratio",
        grains=("org", "source"),
        period_date="leads.created_at",
        direction="higher",
        fact="",
        measure=Derived(("qualified_leads",), growth("qualified_leads", years=False), lead_in=True),
        empty_reason="the previous period had no qualified leads",
    ),
]


def _has_margin(t: Any) -> Any:
    return and_(t.c.is_won == 1, t.c.margin_c.is_not(None), t.c.amount_c.is_not(None))
