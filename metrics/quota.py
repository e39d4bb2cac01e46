"""Quota, activity and process KPIs.

Quotas come from the CRM where it keeps them (the `quotas` table, e.g. Salesforce's
ForecastingQuota) and from settings or CSV otherwise: a CRM quota of a rep for a period replaces a
settings quota of the same rep and period; teams and the org sum their reps' quotas.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, MetaData, String, Table, func, select

from kpisync.store.models import Quota as HeldQuota
from metrics.declaration import Derived, Kpi, KpiValue, Ratio, Total, ValueIndex
from metrics.derivations import attainment, rep_keys
from metrics.money import converted, crm_rate
from metrics.options import Quota
from metrics.periods import KINDS, period_end
from metrics.portable import flag
from metrics.run import Run

REP_TEAM = ("org", "team", "rep")
OCCURRED = "activities.occurred_at"


def activity_count(name: str, title: str, column: str, what: str) -> Kpi:
    return Kpi(
        name,
        title,
        f"The number of {what} in the period.",
        "count",
        REP_TEAM,
        OCCURRED,
        "higher",
        "activity",
        Total(lambda t: t.c[column], lambda t: t.c[column]),
    )


def crm_quotas(run: Run, kind: str) -> list[Quota]:
    """Per rep and period start, the sum of the CRM-held quotas of that period kind.

    Each is converted to the corporate currency at the rate in force on its period's start (the
    CRM's rate first, then the settings'); a rep's period with a quota that cannot be converted
    counts as having no CRM quota (a settings quota may then apply), never as part of one.
    """
    q = HeldQuota.__table__  # type: ignore[attr-defined]
    amount = converted(
        q.c.amount,
        q.c.currency,
        q.c.period_start,
        run.config.currency,
        run.config.metrics.currency_rates,
        crm_rate(q.c.source, q.c.currency, q.c.period_start),
    )
    rows = run.connection.execute(
        select(q.c.owner_id, q.c.period_start, func.sum(amount))
        .where(
            q.c.deleted_at.is_(None),
            q.c.period_kind == kind,
            q.c.owner_id.is_not(None),
            q.c.amount.is_not(None),
        )
        .group_by(q.c.owner_id, q.c.period_start)
        .having(func.count() == func.count(amount))
    ).all()
    return [
        Quota(period=kind, start=start, amount=amount, rep=owner)  # type: ignore[arg-type]
        for owner, start, amount in rows
    ]


def quotas_of(run: Run, kind: str) -> list[Quota]:
    """CRM quotas, then the settings/CSV quotas of reps and periods the CRM has none for."""
    held = crm_quotas(run, kind)
    if not held:
        return list(run.config.quotas)
    reps = rep_keys(run)
    covered = {(quota.rep, quota.start) for quota in held}

    def resolved(rep: str) -> str:
        return reps.get(rep, reps.get(rep.lower(), (rep, None)))[0]

    return held + [
        quota
        for quota in run.config.quotas
        if not (quota.rep and (resolved(quota.rep), quota.start) in covered)
    ]


def crm_or_settings_attainment(
    run: Run, values: ValueIndex, kind: str, grain: str
) -> list[KpiValue]:
    return attainment(run, values, kind, grain, quotas_of(run, kind))


def quotas_met(run: Run, values: ValueIndex) -> Table:
    """Each rep's quota periods (of every kind quotas are set for) that are over and in which won
    revenue reached the quota, as (rep, met_on = the period's end, exclusive), staged once a run.

    Attainment is the one `quota_attainment` reports (CRM quotas, else settings/CSV, over the
    rep's `sales_volume`); a period still running does not count yet.
    """
    name = "kpi_quota_met"
    if name not in run.tables:
        table = Table(
            name, MetaData(), Column("rep", String), Column("met_on", Date), prefixes=["TEMPORARY"]
        )
        table.drop(run.connection, checkfirst=True)
        table.create(run.connection)
        ends = [
            (value.key, period_end(value.period_start, kind, run.window.calendar))
            for kind in KINDS
            for value in crm_or_settings_attainment(run, values, kind, "rep")
            if value.value is not None and value.value >= 1.0
        ]
        rows = [{"rep": rep, "met_on": end} for rep, end in ends if end <= run.window.today]
        if rows:
            run.connection.execute(table.insert(), rows)
        run.tables[name] = table
    return run.tables[name]


KPIS = [
    Kpi(
        "quota_attainment",
        "Quota attainment",
        "Revenue won in the period over its quota.",
        "ratio",
        ("rep", "team", "org"),
        "deals.close_date (won deals)",
        "higher",
        "",
        Derived(("sales_volume",), crm_or_settings_attainment),
        "the quota is 0",
        notes="quotas from the CRM where it keeps them (Salesforce ForecastingQuota), else "
        "metrics.quotas or metrics.inputs.quotas_csv; periods without one have no value",
    ),
    activity_count("calls", "Calls", "is_call", "calls logged"),
    activity_count("emails", "Emails", "is_email", "emails logged"),
    activity_count("meetings", "Meetings booked", "is_meeting", "meetings held or booked"),
    Kpi(
        "proposals_sent",
        "Proposals sent",
        "The number of deals that entered a proposal stage in the period.",
        "count",
        REP_TEAM,
        "deal_stage_changes.entered_at",
        "higher",
        "stage_entry",
        Total(lambda t: t.c.is_proposal, lambda t: t.c.is_proposal),
        notes="proposal stages from metrics.roles.proposal_stages",
        needs=("stage_history",),
    ),
    Kpi(
        "process_adherence",
        "Sales process adherence",
        "Deals closed in the period whose first entries into the required stages came in the "
        "required order, over closed deals with a stage history from the CRM.",
        "ratio",
        ("org", "rep"),
        "deals.close_date (closed deals)",
        "higher",
        "deal_closed",
        Ratio(
            lambda t: flag(t.c.adhered == 1),
            lambda t: flag(t.c.adhered.is_not(None)),
            lambda t: flag(t.c.adhered.is_(None)),
        ),
        "no closed deal with stage history in the period, or no metrics.roles.required_stages",
        needs=("stage_history",),
    ),
]
