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
    f, a = FieldCatalog.__table__, Account.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(f.c.source, f.c.name)
        .where(f.c.removed_at.is_(None), func.lower(f.c.label) == name.lower(), f.c.name != name)
        .distinct()
        .order_by(f.c.source, f.c.name)
    ).all()
    keys: dict[str, str] = {}
    for source, key in rows:
        if source in keys:
            continue
        held = (
            select(a.c.id)
            .where(
                a.c.source == source,
                a.c.deleted_at.is_(None),
                a.c.custom[key].as_string().is_not(None),
            )
            .limit(1)
        )
        named = (
            select(a.c.id)
            .where(
                a.c.source == source,
                a.c.deleted_at.is_(None),
                a.c.custom[name].as_string().is_not(None),
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
    p = base(PipelineStage, "ps")
    return (
        select(p.c.source, p.c.stage, func.min(p.c.label).label("label"))
        .where(live(p))
        .group_by(p.c.source, p.c.stage)
        .subquery("labels")
    )


def is_stage(stage: Any, label: Any, names: tuple[str, ...]) -> ColumnElement[bool]:
    """A stage named in settings by its id or by its label, in any case."""
    return or_(lowered_in(stage, names), lowered_in(label, names))


def adherence(run: Run) -> tuple[Any, ColumnElement[Any]]:
    """A per-deal subquery of first entry into each required stage, and the 0/1/NULL verdict."""
    required = run.config.metrics.roles.required_stages
    h, labels = base(DealStageChange, "h"), stage_labels()
    firsts = [
        func.min(case((is_stage(h.c.stage, labels.c.label, (name,)), h.c.entered_at))).label(
            f"f{i}"
        )
        for i, name in enumerate(required)
    ]
    sub = (
        select(h.c.source, h.c.deal_id, *firsts)
        .select_from(
            h.outerjoin(labels, and_(labels.c.source == h.c.source, labels.c.stage == h.c.stage))
        )
        .where(live(h))
        .group_by(h.c.source, h.c.deal_id)
        .subquery("adh")
    )
    if not required:
        return sub, literal(None, Integer)
    present = [sub.c[f"f{i}"].is_not(None) for i in range(len(required))]
    ordered = [sub.c[f"f{i}"] < sub.c[f"f{i + 1}"] for i in range(len(required) - 1)]
    verdict = case((sub.c.deal_id.is_(None), None), (and_(*present, *ordered), 1), else_=0)
    return sub, verdict


def stage_deals(run: Run) -> None:
    roles, config = run.config.metrics.roles, run.config
    d, u, a = base(Deal, "d"), base(User, "u"), base(Account, "a")
    owner = func.coalesce(d.c.closed_owner_id, d.c.owner_id)
    held = crm_rate(d.c.source, d.c.currency, d.c.close_date)
    amount = converted(
        d.c.amount,
        d.c.currency,
        d.c.close_date,
        config.currency,
        config.metrics.currency_rates,
        held,
    )
    if roles.margin == "amount":
        margin = converted(
            d.c.margin,
            d.c.currency,
            d.c.close_date,
            config.currency,
            config.metrics.currency_rates,
            held,
        )
    else:
        margin = amount * cast(d.c.margin, Float)
    won = d.c.is_won.is_(True)
    lost = and_(d.c.is_closed.is_(True), d.c.is_won.is_(False))
    has_reason = func.coalesce(func.trim(d.c.loss_reason), "") != ""
    has_competitor = func.coalesce(func.trim(d.c.competitor), "") != ""
    created_on = run.bucketer.local_date(d.c.created_at)
    cycle = case(
        (
            and_(won, d.c.close_date.is_not(None), d.c.created_at.is_not(None)),
            days_between(run.dialect, d.c.close_date, created_on),
        )
    )
    adh, adhered = adherence(run)
    start_utc, _ = run.bucketer.window_instants()
    query = (
        select(
            d.c.source,
            d.c.external_id,
            d.c.account_id,
            owner,
            u.c.team,
            region_of(run, a, u),
            segment_of(run, a),
            d.c.lead_source,
            d.c.deal_type,
            case((has_competitor, d.c.competitor)),
            flag(won),
            flag(lost),
            flag(d.c.is_closed.is_(True)),
            flag(lost & has_reason),
            flag(lost & lowered_in(d.c.loss_reason, roles.no_decision_reasons)),
            flag(lost & has_competitor),
            flag(won & lowered_in(d.c.deal_type, roles.upgrade_types)),
            flag(won & lowered_in(d.c.deal_type, roles.cross_sell_types)),
            adhered,
            amount,
            margin,
            cycle,
            d.c.close_date,
            *day_periods(run, d.c.close_date, "c_"),
            *instant_periods(run, d.c.created_at, "k_"),
        )
        .select_from(
            d.outerjoin(u, same_record(u, d.c.source, owner))
            .outerjoin(a, same_record(a, d.c.source, d.c.account_id))
            .outerjoin(adh, and_(adh.c.source == d.c.source, adh.c.deal_id == d.c.external_id))
        )
        .where(live(d), or_(d.c.close_date >= run.window.lead_in, d.c.created_at >= start_utc))
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
    act, u, d = base(Activity, "act"), base(User, "u"), base(Deal, "d")
    start_utc, _ = run.bucketer.window_instants()
    selling = lowered_in(act.c.kind, roles.selling_activity_kinds)
    query = (
        select(
            act.c.source,
            act.c.owner_id,
            u.c.team,
            act.c.kind,
            activity_account(act, d),
            case((selling, func.coalesce(act.c.duration_seconds, 0)), else_=0),
            flag(act.c.kind == "call"),
            flag(act.c.kind == "email"),
            flag(act.c.kind == "meeting"),
            *instant_periods(run, act.c.occurred_at, "o_"),
        )
        .select_from(
            act.outerjoin(u, same_record(u, act.c.source, act.c.owner_id)).outerjoin(
                d, same_record(d, act.c.source, act.c.deal_id)
            )
        )
        .where(live(act), act.c.occurred_at >= start_utc, act.c.occurred_at <= run.window.now)
    )
    columns = [
        *text("src", "rep", "team", "kind", "account"),
        *floats("selling_seconds"),
        *ints("is_call", "is_email", "is_meeting"),
        *instant_period_columns(run, "o_"),
    ]
    run.tables["kpi_activity"] = stage(run.connection, "kpi_activity", columns, query)


def stage_answers(run: Run) -> None:
    s, c, a = base(SurveyResponse, "s"), base(Contact, "c"), base(Account, "a")
    start_utc, _ = run.bucketer.window_instants()
    account = func.coalesce(s.c.account_id, c.c.account_id)
    query = (
        select(
            s.c.source,
            s.c.kind,
            s.c.score,
            flag(s.c.score >= 9),
            flag(s.c.score <= 6),
            account,
            segment_of(run, a),
            s.c.team,
            *instant_periods(run, s.c.answered_at, "s_"),
        )
        .select_from(
            s.outerjoin(c, same_record(c, s.c.source, s.c.contact_id)).outerjoin(
                a, same_record(a, s.c.source, account)
            )
        )
        .where(
            live(s),
            s.c.answered_at >= start_utc,
            s.c.answered_at <= run.window.now,
            s.c.score >= 0,
            s.c.score <= 10,
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
    h, d, labels = base(DealStageChange, "h"), base(Deal, "d"), stage_labels()
    per_deal = (h.c.source, h.c.deal_id)
    previous = func.lag(h.c.stage).over(
        partition_by=per_deal, order_by=(h.c.entered_at, h.c.external_id)
    )
    changes = (
        select(
            h.c.source,
            h.c.deal_id,
            h.c.stage,
            h.c.entered_at,
            h.c.external_id,
            previous.label("previous"),
        )
        .where(live(h))
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
            func.coalesce(d.c.closed_owner_id, d.c.owner_id).label("rep"),
        )
        .select_from(
            entries.join(d, same_record(d, entries.c.source, entries.c.deal_id)).outerjoin(
                labels, and_(labels.c.source == entries.c.source, labels.c.stage == entries.c.stage)
            )
        )
        .subquery("stays")
    )


def stage_stays(run: Run) -> None:
    stays, u = stays_query(run), base(User, "u")
    start_utc, _ = run.bucketer.window_instants()
    days = hours_between(run.dialect, stays.c.left_at, stays.c.entered_at) / 24.0
    query = (
        select(
            stays.c.source,
            stays.c.deal_id,
            stays.c.stage,
            stays.c.rep,
            u.c.team,
            flag(
                is_stage(stays.c.stage_id, stays.c.stage, run.config.metrics.roles.proposal_stages)
            ),
            case((stays.c.left_at.is_not(None), days)),
            *instant_periods(run, stays.c.left_at, "e_"),
            *instant_periods(run, stays.c.entered_at, "n_"),
        )
        .select_from(stays.outerjoin(u, same_record(u, stays.c.source, stays.c.rep)))
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
    li, deals = base(LineItem, "li"), run.tables["kpi_deal"]
    query = (
        select(
            li.c.product,
            deals.c.region,
            cast(li.c.quantity, Float),
            *[deals.c["c_" + kind] for kind in KINDS],
        )
        .select_from(li.join(deals, and_(deals.c.src == li.c.source, deals.c.deal == li.c.deal_id)))
        .where(live(li), deals.c.is_won == 1)
    )
    columns = [*text("product", "region"), *floats("quantity"), *period_columns("c_")]
    run.tables["kpi_line"] = stage(run.connection, "kpi_line", columns, query)


def stage_reps(run: Run) -> None:
    """Each rep with the start date (hire date, else user created) and the first won deal's date."""
    u, d = base(User, "u"), base(Deal, "d")
    owner = func.coalesce(d.c.closed_owner_id, d.c.owner_id)
    wins = (
        select(d.c.source, owner.label("rep"), func.min(d.c.close_date).label("first_won"))
        .where(live(d), d.c.is_won.is_(True), d.c.close_date.is_not(None))
        .group_by(d.c.source, owner)
        .subquery("wins")
    )
    started = func.coalesce(u.c.started_on, run.bucketer.local_date(u.c.created_at))
    ramp = case((wins.c.first_won >= started, days_between(run.dialect, wins.c.first_won, started)))
    query = (
        select(
            u.c.source,
            u.c.external_id,
            u.c.team,
            flag(u.c.is_active.is_(True)),
            started,
            ramp,
            *day_periods(run, started, "r_"),
        )
        .select_from(
            u.outerjoin(wins, and_(wins.c.source == u.c.source, wins.c.rep == u.c.external_id))
        )
        .where(live(u), started >= run.window.first_day)
    )
    columns = [
        *text("src", "rep", "team"),
        *ints("is_active"),
        Column("started", Date),
        *floats("ramp_days"),
        *period_columns("r_"),
    ]
    run.tables["kpi_rep"] = stage(run.connection, "kpi_rep", columns, query)
