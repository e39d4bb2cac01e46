"""Time KPIs: sales cycle, stage duration, time to acquisition, lead response, persistence, ramp."""

from __future__ import annotations

from sqlalchemy import literal

from metrics.declaration import Derived, Kpi, Median, Ratio, Total
from metrics.derivations import selling_share
from metrics.portable import flag

CYCLE_GRAINS = ("org", "team", "rep", "deal_type")

KPIS = [
    Kpi("sales_cycle_time", "Sales cycle time",
        "Mean days from creation to close date of deals won in the period.",
        "days", CYCLE_GRAINS, "deals.close_date (won deals)", "lower", "deal_closed",
        Ratio(lambda t: t.c.cycle_days, lambda t: flag(t.c.cycle_days.is_not(None)),
              lambda t: flag((t.c.is_won == 1) & t.c.cycle_days.is_(None))),
        "no won deal with a creation date in the period",
        notes="goal examples: cut by 5-8%"),
    Kpi("sales_cycle_median", "Sales cycle time (median)",
        "Median days from creation to close date of deals won in the period.",
        "days", CYCLE_GRAINS, "deals.close_date (won deals)", "lower", "deal_closed",
        Median(lambda t: t.c.cycle_days, lambda t: t.c.is_won == 1),
        "no won deal with a creation date in the period"),
    Kpi("stage_duration", "Stage duration",
        "Mean days deals spent in a stage, over stays that ended in the period.",
        "days", ("org", "rep", "stage"), "deal_stage_changes: when the deal left the stage",
        "lower", "stay", Ratio(lambda t: t.c.days, lambda t: literal(1)),
        "no stage stay ended in the period"),
    Kpi("time_to_acquisition", "Time to acquisition",
        "Mean days from the first lead (else first contact) to the first won deal, for customers "
        "acquired in the period.",
        "days", ("org", "source"), "first won deal's close date", "lower", "acquired",
        Ratio(lambda t: t.c.acquisition_days, lambda t: flag(t.c.acquisition_days.is_not(None)),
              lambda t: flag(t.c.acquisition_days.is_(None))),
        "no customer acquired in the period has a lead or contact creation date"),
    Kpi("lead_response_time", "Lead response time",
        "Median hours from a lead's creation to its first outbound activity by a rep, for leads "
        "created in the period.",
        "hours", ("org", "rep", "source"), "leads.created_at", "lower", "lead",
        Median(lambda t: t.c.response_hours, lambda t: literal(True)),
        "no lead created in the period has been contacted yet",
        notes="leads not contacted yet are counted as left out"),
    Kpi("follow_up_persistence", "Follow-up persistence",
        "Mean outbound activities after the first contact, until a reply or conversion, per "
        "contacted lead created in the period.",
        "count", ("org", "rep"), "leads.created_at", "higher", "lead",
        Ratio(lambda t: t.c.follow_ups, lambda t: flag(t.c.follow_ups.is_not(None))),
        "no lead created in the period was contacted"),
    Kpi("rep_ramp_time", "Rep ramp time",
        "Mean days from start (hire date, else user creation) to the first won deal, for reps "
        "who started in the period.",
        "days", ("org", "team"), "users.started_on, else created_at", "lower", "rep_start",
        Ratio(lambda t: t.c.ramp_days, lambda t: flag(t.c.ramp_days.is_not(None)),
              lambda t: flag(t.c.ramp_days.is_(None))),
        "no rep who started in the period has won a deal yet",
        notes="reps still without a win are counted as left out"),
    Kpi("selling_hours", "Selling time",
        "Hours of selling activities (configured kinds, calls and meetings by default).",
        "hours", ("org", "team", "rep"), "activities.occurred_at", "higher", "activity",
        Total(lambda t: t.c.selling_seconds / 3600.0, lambda t: flag(t.c.selling_seconds > 0))),
    Kpi("selling_time_share", "Selling time share",
        "Hours of selling activities over working hours in the period (to today in the current "
        "one).",
        "ratio", ("team", "rep"), "activities.occurred_at", "higher", "",
        Derived(("selling_hours",), selling_share), "no working time in the period",
        notes="typical 36%, goal 50%; working hours from metrics.working_hours"),
]
