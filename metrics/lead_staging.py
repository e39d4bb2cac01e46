"""Staged lead facts: each lead's first response and follow-ups, and lead and contact quality.

Part of the staging pass (see `metrics.staging`): narrow temporary tables, one pass over the
canonical tables, periods bucketed once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, and_, case, func, literal, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from kpisync.store.models import Activity, Contact, Lead, User
from kpisync.store.types import UTCDateTime
from metrics.portable import flag, hours_between, lowered_in, stage
from metrics.run import Run
from metrics.staging import (
    base,
    floats,
    instant_period_columns,
    instant_periods,
    ints,
    live,
    same_record,
    text,
)


def stage_lead_activities(run: Run) -> Any:
    """Every live activity of a lead from its creation on: logged on the lead, or on the contact
    it was converted into.

    Salesforce moves a converted lead's activities onto its new contact, so that is where the
    lead's history lives afterwards; elsewhere the lead keeps them (HubSpot's lead is the contact).
    Converted leads are staged first, indexed by contact, so the lookup never depends on the
    planner's view of the mostly-NULL `converted_contact_id`. The result is indexed by lead: it
    is read per lead twice more (replies, follow-ups). Activities dated before the lead existed
    (the contact's older history) are no part of the lead's.
    """
    activities, leads, activity_leads = (
        base(Activity, "activities"),
        base(Lead, "leads"),
        base(Lead, "activity_leads"),
    )
    converted = run.tables["kpi_converted"] = stage(
        run.connection,
        "kpi_converted",
        text("src", "contact", "lead"),
        select(leads.c.source, leads.c.converted_contact_id, leads.c.external_id).where(
            live(leads), leads.c.converted_contact_id.is_not(None)
        ),
        index=("src", "contact"),
    )
    lead = func.coalesce(activities.c.lead_id, converted.c.lead)
    query = (
        select(
            activities.c.source,
            lead,
            activities.c.direction,
            activities.c.owner_id,
            activities.c.occurred_at,
        )
        .select_from(
            activities.outerjoin(
                converted,
                and_(
                    activities.c.lead_id.is_(None),
                    converted.c.src == activities.c.source,
                    converted.c.contact == activities.c.contact_id,
                ),
            ).join(activity_leads, same_record(activity_leads, activities.c.source, lead))
        )
        .where(
            live(activities),
            activities.c.occurred_at.is_not(None),
            or_(
                activity_leads.c.created_at.is_(None),
                activities.c.occurred_at >= activity_leads.c.created_at,
            ),
        )
    )
    columns = [*text("src", "lead", "direction", "owner"), Column("occurred_at", UTCDateTime())]
    run.tables["kpi_lead_act"] = stage(
        run.connection, "kpi_lead_act", columns, query, index=("src", "lead")
    )
    return run.tables["kpi_lead_act"]


def stage_leads(run: Run) -> None:
    roles = run.config.metrics.roles
    leads, owners = base(Lead, "leads"), base(User, "owners")
    lead_activities = stage_lead_activities(run)
    reply_candidates = lead_activities.alias("reply_candidates")
    outbound = and_(lead_activities.c.direction == "outbound", lead_activities.c.owner.is_not(None))
    first_out = (
        select(
            lead_activities.c.src,
            lead_activities.c.lead,
            func.min(lead_activities.c.occurred_at).label("first_out"),
        )
        .where(outbound)
        .group_by(lead_activities.c.src, lead_activities.c.lead)
        .subquery("first_out")
    )
    replies = (
        select(
            first_out.c.src,
            first_out.c.lead,
            first_out.c.first_out,
            func.min(
                case(
                    (
                        and_(
                            reply_candidates.c.direction == "inbound",
                            reply_candidates.c.occurred_at > first_out.c.first_out,
                        ),
                        reply_candidates.c.occurred_at,
                    )
                )
            ).label("reply_at"),
        )
        .select_from(
            first_out.join(
                reply_candidates,
                and_(
                    reply_candidates.c.src == first_out.c.src,
                    reply_candidates.c.lead == first_out.c.lead,
                ),
            )
        )
        .group_by(first_out.c.src, first_out.c.lead, first_out.c.first_out)
    )
    touch = run.tables["kpi_touch"] = stage(
        run.connection,
        "kpi_touch",
        [
            *text("src", "lead"),
            Column("first_out", UTCDateTime()),
            Column("reply_at", UTCDateTime()),
        ],
        replies,
    )
    follow_ups = (
        select(
            touch.c.src,
            touch.c.lead,
            touch.c.first_out,
            func.sum(
                flag(
                    and_(
                        outbound,
                        lead_activities.c.occurred_at > touch.c.first_out,
                        or_(
                            touch.c.reply_at.is_(None),
                            lead_activities.c.occurred_at < touch.c.reply_at,
                        ),
                        or_(
                            leads.c.converted_at.is_(None),
                            lead_activities.c.occurred_at < leads.c.converted_at,
                        ),
                    )
                )
            ).label("n"),
        )
        .select_from(
            touch.join(leads, same_record(leads, touch.c.src, touch.c.lead)).join(
                lead_activities,
                and_(lead_activities.c.src == touch.c.src, lead_activities.c.lead == touch.c.lead),
            )
        )
        .group_by(touch.c.src, touch.c.lead, touch.c.first_out)
        .subquery("follow_ups")
    )
    qualified = or_(
        lowered_in(leads.c.status, roles.qualified_lead_statuses), leads.c.is_converted.is_(True)
    )
    query = (
        select(
            leads.c.source,
            leads.c.external_id,
            leads.c.owner_id,
            owners.c.team,
            leads.c.lead_source,
            flag(qualified),
            flag(leads.c.is_converted.is_(True)),
            case(
                (
                    follow_ups.c.first_out.is_not(None),
                    hours_between(run.dialect, follow_ups.c.first_out, leads.c.created_at),
                )
            ),
            follow_ups.c.n,
            *instant_periods(run, leads.c.created_at, "l_"),
        )
        .select_from(
            leads.outerjoin(
                owners, same_record(owners, leads.c.source, leads.c.owner_id)
            ).outerjoin(
                follow_ups,
                and_(follow_ups.c.src == leads.c.source, follow_ups.c.lead == leads.c.external_id),
            )
        )
        # growth's lead-in
        .where(live(leads), leads.c.created_at >= run.bucketer.lead_in_instant())
    )
    columns = [
        *text("src", "lead", "rep", "team", "source"),
        *ints("is_qualified", "is_converted"),
        *floats("response_hours"),
        *ints("follow_ups"),
        *instant_period_columns(run, "l_"),
    ]
    run.tables["kpi_lead"] = stage(run.connection, "kpi_lead", columns, query)


def well_formed(table: Any) -> ColumnElement[bool]:
    """A name, an email like a@b.c without spaces, and a phone of at least 7 digits-ish."""
    name = func.coalesce(func.trim(table.c.first_name), "") + func.coalesce(
        func.trim(table.c.last_name), ""
    )
    phone: Any = func.coalesce(table.c.phone, "")
    for char in (" ", "-", "(", ")", ".", "+"):
        phone = func.replace(phone, char, "")
    return and_(
        name != "",
        table.c.email.like("%_@_%._%"),
        ~table.c.email.like("% %"),
        func.length(phone) >= 7,
    )


def stage_people(run: Run) -> None:
    leads, contacts = base(Lead, "leads"), base(Contact, "contacts")
    start_utc, _ = run.bucketer.window_instants()
    parts = [
        select(
            literal(kind),
            people.c.lead_source,
            flag(well_formed(people)),
            *instant_periods(run, people.c.created_at, "p_"),
        ).where(live(people), people.c.created_at >= start_utc)
        for kind, people in (("lead", leads), ("contact", contacts))
    ]
    columns = [*text("kind", "source"), *ints("quality"), *instant_period_columns(run, "p_")]
    run.tables["kpi_person"] = stage(run.connection, "kpi_person", columns, union_all(*parts))
