"""Time KPIs: sales cycle, stage duration, time to acquisition, lead response, persistence, ramp."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func, literal, select

from metrics.declaration import Derived, Kpi, KpiValue, Median, Ratio, Total, ValueIndex
from metrics.derivations import selling_share
from metrics.portable import days_between, flag, ratio
from metrics.quota import quotas_met
from metrics.run import Run

CYCLE_GRAINS = ("org", "team", "rep", "deal_type")


def ramp_to_quota(run: Run, values: ValueIndex, kind: str, grain: str) -> list[KpiValue]:
    """Mean days from each rep's start to the end of the first quota period at >= 100%.

    Per rep who started in the period: the earliest end (exclusive) of a quota period that ended
    after the start and in which the rep's attainment reached 1 (see `metrics.quota.quotas_met`);
    reps with none yet are counted as left out. The database aggregates; nothing loops over rows.
    """
    reps, met = run.table("kpi_rep"), quotas_met(run, values)
    period = reps.c["r_" + kind]
    first = (
        select(
            period.label("p"),
            reps.c.team,
            func.min(days_between(run.dialect, met.c.met_on, reps.c.started)).label("days"),
        )
        .select_from(
            reps.outerjoin(met, and_(met.c.rep == reps.c.rep, met.c.met_on > reps.c.started))
        )
        .where(period >= run.window.periods(kind)[0], period <= run.window.today)
        .group_by(reps.c.src, reps.c.rep, reps.c.team, period)
        .subquery("first")
    )
    key: Any = literal("org") if grain == "org" else first.c.team
    ramped = flag(first.c.days.is_not(None))
    query = (
        select(
            first.c.p,
            key,
            ratio(func.sum(first.c.days), func.sum(ramped)),
            func.sum(ramped),
            func.sum(flag(first.c.days.is_(None))),
        )
        .where(key.is_not(None))
        .group_by(first.c.p, key)
    )
    return [
        KpiValue(
            "rep_ramp_to_quota",
            kind,
            _day(start),
            grain,
            str(k),
            None if value is None else float(value),
            int(fed),
            int(left_out),
        )
        for start, k, value, fed, left_out in run.connection.execute(query)
    ]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


KPIS = [
    Kpi(
        name="sales_cycle_time",
        title="Sales cycle time",
        definition="Mean days from creation to close date of deals won in the period.",
        unit="days",
        grains=CYCLE_GRAINS,
        period_date="deals.close_date (won deals)",
        direction="lower",
        fact="deal_closed",
        measure=Ratio(
            lambda t: t.c.cycle_days,
            lambda t: flag(t.c.cycle_days.is_not(None)),
            lambda t: flag((t.c.is_won == 1) & t.c.cycle_days.is_(None)),
        ),
        empty_reason="no won deal with a creation date in the period",
        notes="goal examples: cut by 5-8%",
    ),
    Kpi(
        name="sales_cycle_median",
        title="Sales cycle time (median)",
        definition="Median days from creation to close date of deals won in the period.",
        unit="days",
        grains=CYCLE_GRAINS,
        period_date="deals.close_date (won deals)",
        direction="lower",
        fact="deal_closed",
        measure=Median(lambda t: t.c.cycle_days, lambda t: t.c.is_won == 1),
        empty_reason="no won deal with a creation date in the period",
    ),
    Kpi(
        name="stage_duration",
        title="Stage duration",
        definition="Mean days deals spent in a stage, over stays that ended in the period.",
        unit="days",
        grains=("org", "rep", "stage"),
        period_date="deal_stage_changes: when the deal left the stage",
        direction="lower",
        fact="stay",
        measure=Ratio(lambda t: t.c.days, lambda t: literal(1)),
        empty_reason="no stage stay ended in the period",
    ),
    Kpi(
        name="time_to_acquisition",
        title="Time to acquisition",
        definition="Mean days from the creation of the earliest converted lead (else contact) created by "
        "the first win to that win, for customers acquired in the period.",
        unit="days",
        grains=("org", "source"),
        period_date="first won deal's close date",
        direction="lower",
        fact="acquired",
        measure=Ratio(
            lambda t: t.c.acquisition_days,
            lambda t: flag(t.c.acquisition_days.is_not(None)),
            lambda t: flag(t.c.acquisition_days.is_(None)),
        ),
        empty_reason="no customer acquired in the period has a lead or contact creation date",
    ),
    Kpi(
        name="lead_response_time",
        title="Lead response time",
        definition="Median hours from a lead's creation to its first outbound activity by a rep after it, "
        "for leads created in the period (on HubSpot a lead is the contact record).",
        unit="hours",
        grains=("org", "rep", "source"),
        period_date="leads.created_at",
        direction="lower",
        fact="lead",
        measure=Median(lambda t: t.c.response_hours, lambda t: literal(True)),
        empty_reason="no lead created in the period has been contacted yet",
        notes="leads not contacted yet are counted as left out",
    ),
    Kpi(
        name="follow_up_persistence",
        title="Follow-up persistence",
        definition="Mean outbound activities after the first contact, until a reply or conversion, per "
        "contacted lead created in the period.",
        unit="count",
        grains=("org", "rep"),
        period_date="leads.created_at",
        direction="higher",
        fact="lead",
        measure=Ratio(lambda t: t.c.follow_ups, lambda t: flag(t.c.follow_ups.is_not(None))),
        empty_reason="no lead created in the period was contacted",
    ),
    Kpi(
        name="rep_ramp_time",
        title="Rep ramp time",
        definition="Mean days from start (hire date, else user creation) to the first won deal, for reps "
        "who started in the period.",
        unit="days",
        grains=("org", "team"),
        period_date="users.started_on, else created_at",
        direction="lower",
        fact="rep_start",
        measure=Ratio(
            lambda t: t.c.ramp_days,
            lambda t: flag(t.c.ramp_days.is_not(None)),
            lambda t: flag(t.c.ramp_days.is_(None)),
        ),
        empty_reason="no rep who started in the period has won a deal yet",
        notes="reps still without a win are counted as left out",
        needs=("start_dates",),
    ),
    Kpi(
        name="rep_ramp_to_quota",
        title="Rep ramp time to quota",
        definition="Mean days from start (hire date, else user creation) to the end of the first quota "
        "period in which the rep won at least the quota, for reps who started in the period.",
        unit="days",
        grains=("org", "team"),
        period_date="users.started_on, else created_at",
        direction="lower",
        fact="",
        measure=Derived(("sales_volume",), ramp_to_quota),
        empty_reason="no rep who started in the period has reached a quota yet",
        notes="quota periods of any kind the rep has quotas for, the first to end after the start "
        "(end exclusive: Q1 ends on April 1); a period still running does not count yet; "
        "reps without one are counted as left out",
        needs=("start_dates",),
    ),
    Kpi(
        name="selling_hours",
        title="Selling time",
        definition="Hours of selling activities (configured kinds, calls and meetings by default).",
        unit="hours",
        grains=("org", "team", "rep"),
        period_date="activities.occurred_at",
        direction="higher",
        fact="activity",
        measure=Total(
            lambda t: t.c.selling_seconds / 3600.0, lambda t: flag(t.c.selling_seconds > 0)
        ),
    ),
    Kpi(
        name="selling_time_share",
        title="Selling time share",
        definition="Hours of selling activities over the working hours of the people employed in the "
        "period, each from his start (to today in the current one).",
        unit="ratio",
        grains=("team", "rep"),
        period_date="activities.occurred_at",
        direction="higher",
        fact="",
        measure=Derived(("selling_hours",), selling_share),
        empty_reason="no working time in the period",
        notes="typical 36%, goal 50%; working hours from metrics.working_hours",
    ),
]
