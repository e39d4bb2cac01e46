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
    act, ld, own = base(Activity, "act"), base(Lead, "l"), base(Lead, "own")
    conv = run.tables["kpi_converted"] = stage(
        run.connection,
        "kpi_converted",
        text("src", "contact", "lead"),
        select(ld.c.source, ld.c.converted_contact_id, ld.c.external_id).where(
            live(ld), ld.c.converted_contact_id.is_not(None)
        ),
        index=("src", "contact"),
    )
    lead = func.coalesce(act.c.lead_id, conv.c.lead)
    query = (
        select(act.c.source, lead, act.c.direction, act.c.owner_id, act.c.occurred_at)
        .select_from(
            act.outerjoin(
                conv,
                and_(
                    act.c.lead_id.is_(None),
                    conv.c.src == act.c.source,
                    conv.c.contact == act.c.contact_id,
                ),
            ).join(own, same_record(own, act.c.source, lead))
        )
        .where(
            live(act),
            act.c.occurred_at.is_not(None),
            or_(own.c.created_at.is_(None), act.c.occurred_at >= own.c.created_at),
        )
    )
    columns = [*text("src", "lead", "direction", "owner"), Column("occurred_at", UTCDateTime())]
    run.tables["kpi_lead_act"] = stage(
        run.connection, "kpi_lead_act", columns, query, index=("src", "lead")
    )
    return run.tables["kpi_lead_act"]


def stage_leads(run: Run) -> None:
    roles = run.config.metrics.roles
    ld, u = base(Lead, "l"), base(User, "u")
    act = stage_lead_activities(run)
    act2 = act.alias("act2")
    outbound = and_(act.c.direction == "outbound", act.c.owner.is_not(None))
    first_out = (
        select(act.c.src, act.c.lead, func.min(act.c.occurred_at).label("first_out"))
        .where(outbound)
        .group_by(act.c.src, act.c.lead)
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
                            act2.c.direction == "inbound",
                            act2.c.occurred_at > first_out.c.first_out,
                        ),
                        act2.c.occurred_at,
                    )
                )
            ).label("reply_at"),
        )
        .select_from(
            first_out.join(
                act2, and_(act2.c.src == first_out.c.src, act2.c.lead == first_out.c.lead)
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
    follow = (
        select(
            touch.c.src,
            touch.c.lead,
            touch.c.first_out,
            func.sum(
                flag(
                    and_(
                        outbound,
                        act.c.occurred_at > touch.c.first_out,
                        or_(touch.c.reply_at.is_(None), act.c.occurred_at < touch.c.reply_at),
                        or_(ld.c.converted_at.is_(None), act.c.occurred_at < ld.c.converted_at),
                    )
                )
            ).label("n"),
        )
        .select_from(
            touch.join(ld, same_record(ld, touch.c.src, touch.c.lead)).join(
                act, and_(act.c.src == touch.c.src, act.c.lead == touch.c.lead)
            )
        )
        .group_by(touch.c.src, touch.c.lead, touch.c.first_out)
        .subquery("follow")
    )
    qualified = or_(
        lowered_in(ld.c.status, roles.qualified_lead_statuses), ld.c.is_converted.is_(True)
    )
    query = (
        select(
            ld.c.source,
            ld.c.external_id,
            ld.c.owner_id,
            u.c.team,
            ld.c.lead_source,
            flag(qualified),
            flag(ld.c.is_converted.is_(True)),
            case(
                (
                    follow.c.first_out.is_not(None),
                    hours_between(run.dialect, follow.c.first_out, ld.c.created_at),
                )
            ),
            follow.c.n,
            *instant_periods(run, ld.c.created_at, "l_"),
        )
        .select_from(
            ld.outerjoin(u, same_record(u, ld.c.source, ld.c.owner_id)).outerjoin(
                follow, and_(follow.c.src == ld.c.source, follow.c.lead == ld.c.external_id)
            )
        )
        .where(live(ld), ld.c.created_at >= run.bucketer.lead_in_instant())  # growth's lead-in
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
    ld, c = base(Lead, "l"), base(Contact, "c")
    start_utc, _ = run.bucketer.window_instants()
    parts = [
        select(
            literal(kind),
            t.c.lead_source,
            flag(well_formed(t)),
            *instant_periods(run, t.c.created_at, "p_"),
        ).where(live(t), t.c.created_at >= start_utc)
        for kind, t in (("lead", ld), ("contact", c))
    ]
    columns = [*text("kind", "source"), *ints("quality"), *instant_period_columns(run, "p_")]
    run.tables["kpi_person"] = stage(run.connection, "kpi_person", columns, union_all(*parts))
