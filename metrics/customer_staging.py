"""Staged customer facts: when each account became a customer, by whom, from which lead or contact,
and when it was lost.

Part of the staging pass (see `metrics.staging`): narrow temporary tables, one pass over the
canonical tables, periods bucketed once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Date, and_, case, func, literal, select

from kpisync.store.models import Account, Contact, Deal, Lead, User
from metrics.portable import add_days, days_between, lowered_in, stage
from metrics.run import Run
from metrics.staging import (
    as_date,
    base,
    day_periods,
    floats,
    live,
    period_columns,
    same_record,
    segment_of,
    text,
)


def stage_customers(run: Run) -> None:
    """Every account that ever had a won deal: when it became a customer, by whom, when it was lost."""
    roles = run.config.metrics.roles
    d, a = base(Deal, "d"), base(Account, "a")
    ru, ou, ld, c = base(User, "ru"), base(User, "ou"), base(Lead, "l"), base(Contact, "c")
    owner = func.coalesce(d.c.closed_owner_id, d.c.owner_id)
    ranked = (
        select(
            d.c.source,
            d.c.account_id,
            d.c.close_date,
            owner.label("owner"),
            d.c.lead_source,
            func.row_number()
            .over(
                partition_by=(d.c.source, d.c.account_id),
                order_by=(d.c.close_date, d.c.external_id),
            )
            .label("rn"),
        )
        .where(
            live(d), d.c.is_won.is_(True), d.c.close_date.is_not(None), d.c.account_id.is_not(None)
        )
        .subquery("ranked")
    )
    first = run.tables["kpi_first_won"] = stage(  # read three times: by leads, contacts, here
        run.connection,
        "kpi_first_won",
        [
            *text("source", "account_id"),
            Column("first_won", Date),
            Column("last_won", Date),
            *text("won_by", "first_source"),
        ],
        select(
            ranked.c.source,
            ranked.c.account_id,
            func.min(ranked.c.close_date),
            func.max(ranked.c.close_date),
            func.max(case((ranked.c.rn == 1, ranked.c.owner))),
            func.max(case((ranked.c.rn == 1, ranked.c.lead_source))),
        ).group_by(ranked.c.source, ranked.c.account_id),
        index=("source", "account_id"),
    )
    leads = origins(run, first, ld, ld.c.converted_account_id, "leads")
    contacts = origins(run, first, c, c.c.account_id, "contacts")
    if roles.churn_rule == "type":
        changed = (
            as_date(run, a.c.custom[roles.churn_date_field].as_string())
            if roles.churn_date_field
            else None
        )
        when = run.bucketer.local_date(a.c.modified_at)
        lost_on = case(
            (
                lowered_in(a.c.type, roles.former_customer_types),
                func.coalesce(changed, when) if changed is not None else when,
            )
        )
    else:
        ends = add_days(run.dialect, first.c.last_won, roles.contract_days)
        noticed = add_days(
            run.dialect, first.c.last_won, roles.contract_days + roles.renewal_grace_days
        )
        lost_on = case((noticed <= literal(run.window.today), ends))
    began = func.coalesce(leads.c.created, contacts.c.created)  # the lead, else the first contact
    acquisition = case(
        (
            began.is_not(None),
            days_between(run.dialect, first.c.first_won, run.bucketer.local_date(began)),
        )
    )
    query = select(
        first.c.source,
        first.c.account_id,
        a.c.owner_id,
        ou.c.team,
        first.c.won_by,
        ru.c.team,
        func.coalesce(a.c.region, a.c.country),
        segment_of(run, a),
        func.coalesce(first.c.first_source, leads.c.lead_source, contacts.c.lead_source),
        first.c.first_won,
        lost_on,
        acquisition,
        *day_periods(run, first.c.first_won, "a_"),
    ).select_from(
        first.join(a, same_record(a, first.c.source, first.c.account_id))
        .outerjoin(ou, same_record(ou, first.c.source, a.c.owner_id))
        .outerjoin(ru, same_record(ru, first.c.source, first.c.won_by))
        .outerjoin(
            leads, and_(leads.c.source == first.c.source, leads.c.account == first.c.account_id)
        )
        .outerjoin(
            contacts,
            and_(contacts.c.source == first.c.source, contacts.c.account == first.c.account_id),
        )
    )
    columns = [
        *text(
            "src", "account", "rep", "team", "won_by", "won_by_team", "region", "segment", "source"
        ),
        Column("first_won", Date),
        Column("lost_on", Date),
        *floats("acquisition_days"),
        *period_columns("a_"),
    ]
    run.tables["kpi_customer"] = stage(run.connection, "kpi_customer", columns, query)


def origins(run: Run, first: Any, people: Any, account: Any, name: str) -> Any:
    """Per customer, the earliest of `people` (its converted leads, or its contacts) created on
    or before its first win, with that record's creation instant and source.

    Records created after the win are no origin of it: a lead converted into an account that is
    already a customer came from the customer, not the other way round.
    """
    created_on = run.bucketer.local_date(people.c.created_at)
    rank = func.row_number().over(
        partition_by=(people.c.source, account),
        order_by=(people.c.created_at, people.c.external_id),
    )
    ranked = (
        select(
            people.c.source,
            account.label("account"),
            people.c.created_at.label("created"),
            people.c.lead_source,
            rank.label("rn"),
        )
        .select_from(
            people.join(
                first, and_(first.c.source == people.c.source, first.c.account_id == account)
            )
        )
        .where(live(people), people.c.created_at.is_not(None), created_on <= first.c.first_won)
        .subquery(f"{name}_ranked")
    )
    return (
        select(ranked.c.source, ranked.c.account, ranked.c.created, ranked.c.lead_source)
        .where(ranked.c.rn == 1)
        .subquery(name)
    )
