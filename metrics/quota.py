"""Quota, activity and process KPIs."""

from __future__ import annotations

from metrics.declaration import Derived, Kpi, Ratio, Total
from metrics.derivations import attainment
from metrics.portable import flag

REP_TEAM = ("org", "team", "rep")
OCCURRED = "activities.occurred_at"


def activity_count(name: str, title: str, column: str, what: str) -> Kpi:
    return Kpi(name, title, f"The number of {what} in the period.", "count", REP_TEAM, OCCURRED,
               "higher", "activity",
               Total(lambda t: t.c[column], lambda t: t.c[column]))


KPIS = [
    Kpi("quota_attainment", "Quota attainment", "Revenue won in the period over its quota.",
        "ratio", ("rep", "team", "org"), "deals.close_date (won deals)", "higher", "",
        Derived(("sales_volume",), attainment), "the quota is 0",
        notes="quotas from metrics.quotas or metrics.inputs.quotas_csv; periods without one "
              "have no value"),
    activity_count("calls", "Calls", "is_call", "calls logged"),
    activity_count("emails", "Emails", "is_email", "emails logged"),
    activity_count("meetings", "Meetings booked", "is_meeting", "meetings held or booked"),
    Kpi("proposals_sent", "Proposals sent",
        "The number of deals that entered a proposal stage in the period.",
        "count", REP_TEAM, "deal_stage_changes.entered_at", "higher", "stage_entry",
        Total(lambda t: t.c.is_proposal, lambda t: t.c.is_proposal),
        notes="proposal stages from metrics.roles.proposal_stages"),
    Kpi("process_adherence", "Sales process adherence",
        "Deals closed in the period whose stage history passed every required stage in order "
        "over closed deals with a stage history.",
        "ratio", ("org", "rep"), "deals.close_date (closed deals)", "higher", "deal_closed",
        Ratio(lambda t: flag(t.c.adhered == 1), lambda t: flag(t.c.adhered.is_not(None)),
              lambda t: flag(t.c.adhered.is_(None))),
        "no closed deal with stage history in the period, or no metrics.roles.required_stages"),
]
