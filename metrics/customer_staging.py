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
    deals, accounts = base(Deal, "deals"), base(Account, "accounts")
    winners, account_owners, leads, contacts = (
        base(User, "winners"),
        base(User, "account_owners"),
        base(Lead, "leads"),
        base(Contact, "contacts"),
    )
    owner = func.coalesce(deals.c.closed_owner_id, deals.c.owner_id)
    ranked = (
        select(
            deals.c.source,
            deals.c.account_id,
            deals.c.close_date,
            owner.label("owner"),
            deals.c.lead_source,
            func.row_number()
            .over(
                partition_by=(deals.c.source, deals.c.account_id),
                order_by=(deals.c.close_date, deals.c.external_id),
            )
            .label("rn"),
        )
        .where(
            live(deals),
            deals.c.is_won.is_(True),
            deals.c.close_date.is_not(None),
            deals.c.account_id.is_not(None),
        )
        .subquery("ranked")
    )
    # read three times: by the lead origins, the contact origins, here
    first_wins = run.tables["kpi_first_won"] = stage(
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
    lead_origins = origins(run, first_wins, leads, leads.c.converted_account_id, "lead_origins")
    contact_origins = origins(run, first_wins, contacts, contacts.c.account_id, "contact_origins")
    if roles.churn_rule == "type":
        changed = (
            as_date(run, accounts.c.custom[roles.churn_date_field].as_string())
            if roles.churn_date_field
            else None
        )
        when = run.bucketer.local_date(accounts.c.modified_at)
        lost_on = case(
            (
                lowered_in(accounts.c.type, roles.former_customer_types),
                func.coalesce(changed, when) if changed is not None else when,
            )
        )
    else:
        ends = add_days(run.dialect, first_wins.c.last_won, roles.contract_days)
        noticed = add_days(
            run.dialect, first_wins.c.last_won, roles.contract_days + roles.renewal_grace_days
        )
        lost_on = case((noticed <= literal(run.window.today), ends))
    # the lead, else the first contact
    began = func.coalesce(lead_origins.c.created, contact_origins.c.created)
    acquisition = case(
        (
            began.is_not(None),
            days_between(run.dialect, first_wins.c.first_won, run.bucketer.local_date(began)),
        )
    )
    query = select(
        first_wins.c.source,
        first_wins.c.account_id,
        accounts.c.owner_id,
        account_owners.c.team,
        first_wins.c.won_by,
        winners.c.team,
        func.coalesce(accounts.c.region, accounts.c.country),
        segment_of(run, accounts),
        func.coalesce(
            first_wins.c.first_source, lead_origins.c.lead_source, contact_origins.c.lead_source
        ),
        first_wins.c.first_won,
        lost_on,
        acquisition,
        *day_periods(run, first_wins.c.first_won, "a_"),
    ).select_from(
        first_wins.join(
            accounts, same_record(accounts, first_wins.c.source, first_wins.c.account_id)
        )
        .outerjoin(
            account_owners, same_record(account_owners, first_wins.c.source, accounts.c.owner_id)
        )
        .outerjoin(winners, same_record(winners, first_wins.c.source, first_wins.c.won_by))
        .outerjoin(
            lead_origins,
            and_(
                lead_origins.c.source == first_wins.c.source,
                lead_origins.c.account == first_wins.c.account_id,
            ),
        )
        .outerjoin(
            contact_origins,
            and_(
                contact_origins.c.source == first_wins.c.source,
                contact_origins.c.account == first_wins.c.account_id,
            ),
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


def origins(run: Run, first_wins: Any, people: Any, account: Any, name: str) -> Any:
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
                first_wins,
                and_(first_wins.c.source == people.c.source, first_wins.c.account_id == account),
            )
        )
        .where(live(people), people.c.created_at.is_not(None), created_on <= first_wins.c.first_won)
        .subquery(f"{name}_ranked")
    )
    return (
        select(ranked.c.source, ranked.c.account, ranked.c.created, ranked.c.lead_source)
        .where(ranked.c.rn == 1)
        .subquery(name)
    )
