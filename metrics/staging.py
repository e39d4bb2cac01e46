"""Staged facts: one pass over each canonical table into a narrow temporary table.

Each staged table holds only live rows (deleted_at IS NULL) inside the history window, already
joined to owners and accounts, with money converted, role values turned into 0/1 flags and every
date bucketed once per period kind (`<prefix>week` … `<prefix>year`, local period starts). Every
KPI then aggregates these narrow tables, so the wide canonical tables (with their JSON payloads) are
read once per computation, not once per KPI. Columns named like a grain (team, rep, region, account,
source, segment, deal_type, product, stage, competitor) are the grain keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Date,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from kpisync.store.models import (
    Account,
    Activity,
    Contact,
    Deal,
    DealStageChange,
    FieldCatalog,
    LineItem,
    PipelineStage,
    SurveyResponse,
    User,
)
from metrics.money import converted, crm_rate
from metrics.periods import KINDS
from metrics.portable import days_between, flag, hours_between, lowered_in, stage
from metrics.run import Run


def base(model: Any, name: str) -> Any:
    return model.__table__.alias(name)


def live(table: FromClause) -> ColumnElement[bool]:
    return table.c.deleted_at.is_(None)


def same_record(table: Any, source: Any, external_id: Any) -> ColumnElement[bool]:
    """The join condition to the live row `external_id` of the same source."""
    return and_(table.c.source == source, table.c.external_id == external_id, live(table))


def period_columns(prefix: str) -> list[Column[Any]]:
    """The period starts of a date (see `day_periods`)."""
    return [Column(prefix + kind, Date) for kind in KINDS]


def instant_period_columns(run: Run, prefix: str) -> list[Column[Any]]:
    """The period starts of an instant (see `instant_periods`)."""
    return run.bucketer.staged_period_columns(prefix)


def instant_periods(run: Run, instant: Any, prefix: str) -> list[ColumnElement[Any]]:
    return run.bucketer.staged_instant(instant, prefix)


def day_periods(run: Run, day: Any, prefix: str) -> list[ColumnElement[Any]]:
    return [run.bucketer.day(day, kind).label(prefix + kind) for kind in KINDS]


def text(*names: str) -> list[Column[Any]]:
    return [Column(name, String) for name in names]


def ints(*names: str) -> list[Column[Any]]:
    return [Column(name, Integer) for name in names]


def floats(*names: str) -> list[Column[Any]]:
    return [Column(name, Float) for name in names]


def as_date(run: Run, value: Any) -> ColumnElement[Any]:
    return cast(value, Date) if run.dialect == "postgresql" else func.date(value)


def region_of(run: Run, account: FromClause, user: FromClause) -> ColumnElement[Any]:
    if run.config.metrics.roles.region == "rep":
        return user.c.region
    return func.coalesce(account.c.region, account.c.country)


def segment_keys(connection: Any, name: str) -> dict[str, str]:
    """Source -> the account custom key `name` stands for there: a field of that name, else one
    whose label it is (Vtiger's custom fields are named cf_NNN; admins know them by label).

    The field catalog names objects in each CRM's words, so a candidate counts for a source when
    that source's accounts hold it.
    """
    fields, accounts = FieldCatalog.__table__, Account.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(fields.c.source, fields.c.name)
        .where(
            fields.c.removed_at.is_(None),
            func.lower(fields.c.label) == name.lower(),
            fields.c.name != name,
        )
        .distinct()
        .order_by(fields.c.source, fields.c.name)
    ).all()
    keys: dict[str, str] = {}
    for source, key in rows:
        if source in keys:
            continue
        held = (
            select(accounts.c.id)
            .where(
                accounts.c.source == source,
                accounts.c.deleted_at.is_(None),
                accounts.c.custom[key].as_string().is_not(None),
            )
            .limit(1)
        )
        named = (
            select(accounts.c.id)
            .where(
                accounts.c.source == source,
                accounts.c.deleted_at.is_(None),
                accounts.c.custom[name].as_string().is_not(None),
            )
            .limit(1)
        )
        if connection.execute(held).first() and not connection.execute(named).first():
            keys[source] = key
    return keys


def segment_of(run: Run, account: FromClause) -> ColumnElement[Any]:
    """The account's segment, from the custom field metrics.roles.segment_field names (by its
    name or its label in each source)."""
    name = run.config.metrics.roles.segment_field
    if not name:
        return literal(None, String)
    keys = segment_keys(run.connection, name)
    by_name: ColumnElement[Any] = account.c.custom[name].as_string()
    if not keys:
        return by_name
    return case(
        *[
            (account.c.source == source, account.c.custom[key].as_string())
            for source, key in sorted(keys.items())
        ],
        else_=by_name,
    )


def stage_labels() -> Any:
    """Each stage's label, for CRMs that name stages by id (HubSpot: 'appointmentscheduled')."""
    stages = base(PipelineStage, "pipeline_stages")
    return (
        select(stages.c.source, stages.c.stage, func.min(stages.c.label).label("label"))
        .where(live(stages))
        .group_by(stages.c.source, stages.c.stage)
        .subquery("labels")
    )


def is_stage(stage: Any, label: Any, names: tuple[str, ...]) -> ColumnElement[bool]:
    """A stage named in settings by its id or by its label, in any case."""
    return or_(lowered_in(stage, names), lowered_in(label, names))


def adherence(run: Run) -> tuple[Any, ColumnElement[Any]]:
    """A per-deal subquery of first entry into each required stage, and the 0/1/NULL verdict."""
    required = run.config.metrics.roles.required_stages
    stage_changes, labels = base(DealStageChange, "stage_changes"), stage_labels()
    firsts = [
        func.min(
            case(
                (
                    is_stage(stage_changes.c.stage, labels.c.label, (name,)),
                    stage_changes.c.entered_at,
                )
            )
        ).label(f"f{i}")
        for i, name in enumerate(required)
    ]
    required_entries = (
        select(stage_changes.c.source, stage_changes.c.deal_id, *firsts)
        .select_from(
            stage_changes.outerjoin(
                labels,
                and_(
                    labels.c.source == stage_changes.c.source,
                    labels.c.stage == stage_changes.c.stage,
                ),
            )
        )
        .where(live(stage_changes))
        .group_by(stage_changes.c.source, stage_changes.c.deal_id)
        .subquery("required_entries")
    )
    if not required:
        return required_entries, literal(None, Integer)
    present = [required_entries.c[f"f{i}"].is_not(None) for i in range(len(required))]
    ordered = [
        required_entries.c[f"f{i}"] < required_entries.c[f"f{i + 1}"]
        for i in range(len(required) - 1)
    ]
    verdict = case(
        (required_entries.c.deal_id.is_(None), None), (and_(*present, *ordered), 1), else_=0
    )
    return required_entries, verdict


def stage_deals(run: Run) -> None:
    roles, config = run.config.metrics.roles, run.config
    deals, owners, accounts = base(Deal, "deals"), base(User, "owners"), base(Account, "accounts")
    owner = func.coalesce(deals.c.closed_owner_id, deals.c.owner_id)
    held = crm_rate(deals.c.source, deals.c.currency, deals.c.close_date)
    amount = converted(
        deals.c.amount,
        deals.c.currency,
        deals.c.close_date,
        config.currency,
        config.metrics.currency_rates,
        held,
    )
    if roles.margin == "amount":
        margin = converted(
            deals.c.margin,
            deals.c.currency,
            deals.c.close_date,
            config.currency,
            config.metrics.currency_rates,
            held,
        )
    else:
        margin = amount * cast(deals.c.margin, Float)
    won = deals.c.is_won.is_(True)
    lost = and_(deals.c.is_closed.is_(True), deals.c.is_won.is_(False))
    has_reason = func.coalesce(func.trim(deals.c.loss_reason), "") != ""
    has_competitor = func.coalesce(func.trim(deals.c.competitor), "") != ""
    created_on = run.bucketer.local_date(deals.c.created_at)
    cycle = case(
        (
            and_(won, deals.c.close_date.is_not(None), deals.c.created_at.is_not(None)),
            days_between(run.dialect, deals.c.close_date, created_on),
        )
    )
    required_entries, adhered = adherence(run)
    start_utc, _ = run.bucketer.window_instants()
    query = (
        select(
            deals.c.source,
            deals.c.external_id,
            deals.c.account_id,
            owner,
            owners.c.team,
            region_of(run, accounts, owners),
            segment_of(run, accounts),
            deals.c.lead_source,
            deals.c.deal_type,
            case((has_competitor, deals.c.competitor)),
            flag(won),
            flag(lost),
            flag(deals.c.is_closed.is_(True)),
            flag(lost & has_reason),
            flag(lost & lowered_in(deals.c.loss_reason, roles.no_decision_reasons)),
            flag(lost & has_competitor),
            flag(won & lowered_in(deals.c.deal_type, roles.upgrade_types)),
            flag(won & lowered_in(deals.c.deal_type, roles.cross_sell_types)),
            adhered,
            amount,
            margin,
            cycle,
            deals.c.close_date,
            *day_periods(run, deals.c.close_date, "c_"),
            *instant_periods(run, deals.c.created_at, "k_"),
        )
        .select_from(
            deals.outerjoin(owners, same_record(owners, deals.c.source, owner))
            .outerjoin(accounts, same_record(accounts, deals.c.source, deals.c.account_id))
            .outerjoin(
                required_entries,
                and_(
                    required_entries.c.source == deals.c.source,
                    required_entries.c.deal_id == deals.c.external_id,
                ),
            )
        )
        .where(
            live(deals),
            or_(deals.c.close_date >= run.window.lead_in, deals.c.created_at >= start_utc),
        )
    )
    columns = [
        *text(
            "src",
            "deal",
            "account",
            "rep",
            "team",
            "region",
            "segment",
            "source",
            "deal_type",
            "competitor",
        ),
        *ints(
            "is_won",
            "is_lost",
            "is_closed",
            "has_reason",
            "no_decision",
            "has_competitor",
            "is_upgrade",
            "is_cross_sell",
            "adhered",
        ),
        *floats("amount_c", "margin_c", "cycle_days"),
        Column("close_date", Date),
        *period_columns("c_"),
        *instant_period_columns(run, "k_"),
    ]
    run.tables["kpi_deal"] = stage(run.connection, "kpi_deal", columns, query)


def activity_account(act: Any, deal: Any) -> ColumnElement[Any]:
    """The account an activity touches: its own, else its deal's (Vtiger links an activity to one
    record only, often the deal). `deal` is outer-joined on `act.deal_id`."""
    return func.coalesce(act.c.account_id, deal.c.account_id)


def stage_activities(run: Run) -> None:
    roles = run.config.metrics.roles
    activities, owners, deals = (
        base(Activity, "activities"),
        base(User, "owners"),
        base(Deal, "deals"),
    )
    start_utc, _ = run.bucketer.window_instants()
    selling = lowered_in(activities.c.kind, roles.selling_activity_kinds)
    query = (
        select(
            activities.c.source,
            activities.c.owner_id,
            owners.c.team,
            activities.c.kind,
            activity_account(activities, deals),
            case((selling, func.coalesce(activities.c.duration_seconds, 0)), else_=0),
            flag(activities.c.kind == "call"),
            flag(activities.c.kind == "email"),
            flag(activities.c.kind == "meeting"),
            *instant_periods(run, activities.c.occurred_at, "o_"),
        )
        .select_from(
            activities.outerjoin(
                owners, same_record(owners, activities.c.source, activities.c.owner_id)
            ).outerjoin(deals, same_record(deals, activities.c.source, activities.c.deal_id))
        )
        .where(
            live(activities),
            activities.c.occurred_at >= start_utc,
            activities.c.occurred_at <= run.window.now,
        )
    )
    columns = [
        *text("src", "rep", "team", "kind", "account"),
        *floats("selling_seconds"),
        *ints("is_call", "is_email", "is_meeting"),
        *instant_period_columns(run, "o_"),
    ]
    run.tables["kpi_activity"] = stage(run.connection, "kpi_activity", columns, query)


def stage_answers(run: Run) -> None:
    answers, contacts, accounts = (
        base(SurveyResponse, "answers"),
        base(Contact, "contacts"),
        base(Account, "accounts"),
    )
    start_utc, _ = run.bucketer.window_instants()
    account = func.coalesce(answers.c.account_id, contacts.c.account_id)
    query = (
        select(
            answers.c.source,
            answers.c.kind,
            answers.c.score,
            flag(answers.c.score >= 9),
            flag(answers.c.score <= 6),
            account,
            segment_of(run, accounts),
            answers.c.team,
            *instant_periods(run, answers.c.answered_at, "s_"),
        )
        .select_from(
            answers.outerjoin(
                contacts, same_record(contacts, answers.c.source, answers.c.contact_id)
            ).outerjoin(accounts, same_record(accounts, answers.c.source, account))
        )
        .where(
            live(answers),
            answers.c.answered_at >= start_utc,
            answers.c.answered_at <= run.window.now,
            answers.c.score >= 0,
            answers.c.score <= 10,
        )
    )
    columns = [
        *text("src", "kind"),
        *ints("score", "promoter", "detractor"),
        *text("account", "segment", "team"),
        *instant_period_columns(run, "s_"),
    ]
    run.tables["kpi_answer"] = stage(run.connection, "kpi_answer", columns, query)


def stays_query(run: Run) -> Any:
    """Each stay in a stage, with the moment the deal left it (NULL while it is still there).

    Consecutive records of one stage are one stay: a CRM without stage history (Vtiger) gives one
    observation per version kpisync read, and a write that only moved the modified time must not
    restart the stay. `stage` is the stage's label where the CRM names it by id, `stage_id` as
    the CRM wrote it.
    """
    stage_changes, deals, labels = (
        base(DealStageChange, "stage_changes"),
        base(Deal, "deals"),
        stage_labels(),
    )
    per_deal = (stage_changes.c.source, stage_changes.c.deal_id)
    previous = func.lag(stage_changes.c.stage).over(
        partition_by=per_deal, order_by=(stage_changes.c.entered_at, stage_changes.c.external_id)
    )
    changes = (
        select(
            stage_changes.c.source,
            stage_changes.c.deal_id,
            stage_changes.c.stage,
            stage_changes.c.entered_at,
            stage_changes.c.external_id,
            previous.label("previous"),
        )
        .where(live(stage_changes))
        .subquery("changes")
    )
    entries = (
        select(changes)
        .where(or_(changes.c.previous.is_(None), changes.c.previous != changes.c.stage))
        .subquery("entries")
    )
    left_at = func.lead(entries.c.entered_at).over(
        partition_by=(entries.c.source, entries.c.deal_id),
        order_by=(entries.c.entered_at, entries.c.external_id),
    )
    return (
        select(
            entries.c.source,
            entries.c.deal_id,
            func.coalesce(labels.c.label, entries.c.stage).label("stage"),
            entries.c.stage.label("stage_id"),
            entries.c.entered_at,
            left_at.label("left_at"),
            func.coalesce(deals.c.closed_owner_id, deals.c.owner_id).label("rep"),
        )
        .select_from(
            entries.join(deals, same_record(deals, entries.c.source, entries.c.deal_id)).outerjoin(
                labels, and_(labels.c.source == entries.c.source, labels.c.stage == entries.c.stage)
            )
        )
        .subquery("stays")
    )


def stage_stays(run: Run) -> None:
    stays, owners = stays_query(run), base(User, "owners")
    start_utc, _ = run.bucketer.window_instants()
    days = hours_between(run.dialect, stays.c.left_at, stays.c.entered_at) / 24.0
    query = (
        select(
            stays.c.source,
            stays.c.deal_id,
            stays.c.stage,
            stays.c.rep,
            owners.c.team,
            flag(
                is_stage(stays.c.stage_id, stays.c.stage, run.config.metrics.roles.proposal_stages)
            ),
            case((stays.c.left_at.is_not(None), days)),
            *instant_periods(run, stays.c.left_at, "e_"),
            *instant_periods(run, stays.c.entered_at, "n_"),
        )
        .select_from(stays.outerjoin(owners, same_record(owners, stays.c.source, stays.c.rep)))
        .where(or_(stays.c.entered_at >= start_utc, stays.c.left_at >= start_utc))
    )
    columns = [
        *text("src", "deal", "stage", "rep", "team"),
        *ints("is_proposal"),
        *floats("days"),
        *instant_period_columns(run, "e_"),
        *instant_period_columns(run, "n_"),
    ]
    run.tables["kpi_stay"] = stage(run.connection, "kpi_stay", columns, query)


def stage_lines(run: Run) -> None:
    line_items, deals = base(LineItem, "line_items"), run.tables["kpi_deal"]
    query = (
        select(
            line_items.c.product,
            deals.c.region,
            cast(line_items.c.quantity, Float),
            *[deals.c["c_" + kind] for kind in KINDS],
        )
        .select_from(
            line_items.join(
                deals,
                and_(deals.c.src == line_items.c.source, deals.c.deal == line_items.c.deal_id),
            )
        )
        .where(live(line_items), deals.c.is_won == 1)
    )
    columns = [*text("product", "region"), *floats("quantity"), *period_columns("c_")]
    run.tables["kpi_line"] = stage(run.connection, "kpi_line", columns, query)


def stage_reps(run: Run) -> None:
    """Each rep with the start date (hire date, else user created) and the first won deal's date."""
    reps, deals = base(User, "reps"), base(Deal, "deals")
    owner = func.coalesce(deals.c.closed_owner_id, deals.c.owner_id)
    wins = (
        select(deals.c.source, owner.label("rep"), func.min(deals.c.close_date).label("first_won"))
        .where(live(deals), deals.c.is_won.is_(True), deals.c.close_date.is_not(None))
        .group_by(deals.c.source, owner)
        .subquery("wins")
    )
    started = func.coalesce(reps.c.started_on, run.bucketer.local_date(reps.c.created_at))
    ramp = case((wins.c.first_won >= started, days_between(run.dialect, wins.c.first_won, started)))
    query = (
        select(
            reps.c.source,
            reps.c.external_id,
            reps.c.team,
            flag(reps.c.is_active.is_(True)),
            started,
            ramp,
            *day_periods(run, started, "r_"),
        )
        .select_from(
            reps.outerjoin(
                wins, and_(wins.c.source == reps.c.source, wins.c.rep == reps.c.external_id)
            )
        )
        .where(live(reps), started >= run.window.first_day)
    )
    columns = [
        *text("src", "rep", "team"),
        *ints("is_active"),
        Column("started", Date),
        *floats("ramp_days"),
        *period_columns("r_"),
    ]
    run.tables["kpi_rep"] = stage(run.connection, "kpi_rep", columns, query)
