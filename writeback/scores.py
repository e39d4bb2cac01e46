"""The scores written back, and the SQL over the store that yields each record's desired values.

    account  nps_score (NPS over the window, -100..100), nps_category (the mean answer's category),
             nps_last_answer (date), upsell_flag, upsell_reason (see writeback.upsell)
    contact  nps_score (latest answer, 0..10), nps_category, nps_last_answer
    deal     days_in_stage, stalled (open deals only: days in stage > factor x the stage's mean stay)
    user     enps (the team's, only where the team's answers reach the anonymity minimum),
             quota_attainment and win_rate (current period, in percent)

Per entity one SELECT joins every live record of the source to the aggregates its scores need
(one pass per table, grouped in SQL); `values_of` then turns one result row into field texts.
Deleted records are never selected, so they are never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Float, and_, case, cast, func, literal, select
from sqlalchemy.sql import Select

from kpisync.store.models import Account, Activity, Contact, Deal, DealStageChange, SurveyResponse, User
from metrics.money import converted
from metrics.periods import period_end, period_start
from metrics.portable import flag, hours_between, lowered_in
from writeback.upsell import upsell_of
from writeback.values import encode

if TYPE_CHECKING:
    from writeback.options import ScoreParams

CATEGORIES = ("promoter", "passive", "detractor")


@dataclass(frozen=True)
class Score:
    name: str
    entity: str
    title: str
    kind: str  # number | enumeration | date | bool | string
    options: tuple[str, ...] = ()


SCORES: tuple[Score, ...] = (
    Score("nps_score", "account", "NPS (window)", "number"),
    Score("nps_category", "account", "NPS category", "enumeration", CATEGORIES),
    Score("nps_last_answer", "account", "Date of last NPS answer", "date"),
    Score("upsell_flag", "account", "Upsell candidate", "bool"),
    Score("upsell_reason", "account", "Upsell reason", "string"),
    Score("nps_score", "contact", "NPS (latest answer)", "number"),
    Score("nps_category", "contact", "NPS category", "enumeration", CATEGORIES),
    Score("nps_last_answer", "contact", "Date of last NPS answer", "date"),
    Score("days_in_stage", "deal", "Days in current stage", "number"),
    Score("stalled", "deal", "Stalled", "bool"),
    Score("enps", "user", "Team eNPS", "number"),
    Score("quota_attainment", "user", "Quota attainment (%)", "number"),
    Score("win_rate", "user", "Win rate (%)", "number"),
)


def table(model: Any) -> Any:
    return model.__table__


def live(t: Any, source: str) -> Any:
    return and_(t.c.source == source, t.c.deleted_at.is_(None))


def record_columns(t: Any) -> list[Any]:
    """What change detection needs of every record besides its scores."""
    return [t.c.external_id, t.c.custom, t.c.synced_at]


def inputs_query(connection: Connection, entity: str, source: str, params: ScoreParams) -> Select[Any]:
    """One row per live `entity` record of `source`: its id, custom, synced_at and score inputs."""
    builders = {"account": account_inputs, "contact": contact_inputs, "deal": deal_inputs,
                "user": user_inputs}
    return builders[entity](connection, source, params)


def category(mean: float | None) -> str | None:
    if mean is None:
        return None
    return "promoter" if mean >= 9 else "passive" if mean >= 7 else "detractor"


def nps_of(count: int | None, promoters: int | None, detractors: int | None) -> int | None:
    if not count:
        return None
    value = Decimal(100 * ((promoters or 0) - (detractors or 0))) / Decimal(count)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# -- accounts ------------------------------------------------------------------------------------
def account_inputs(connection: Connection, source: str, params: ScoreParams) -> Select[Any]:
    a, s, act, d = table(Account), table(SurveyResponse), table(Activity), table(Deal)
    since = params.as_of - timedelta(days=params.metrics.metrics.nps_window_days)
    inside = and_(s.c.answered_at >= since)
    answers = (select(s.c.account_id.label("account_id"),
                      func.sum(flag(inside)).label("n"),
                      func.sum(flag(and_(inside, s.c.score >= 9))).label("promoters"),
                      func.sum(flag(and_(inside, s.c.score <= 6))).label("detractors"),
                      func.avg(case((inside, cast(s.c.score, Float)))).label("mean"),
                      func.max(s.c.answered_at).label("last_answer"))
               .where(live(s, source), s.c.kind == "nps", s.c.account_id.is_not(None),
                      s.c.answered_at <= params.as_of)
               .group_by(s.c.account_id).subquery("answers"))
    touched = (select(act.c.account_id.label("account_id"),
                      func.max(act.c.occurred_at).label("last_activity"))
               .where(live(act, source), act.c.account_id.is_not(None),
                      act.c.occurred_at <= params.as_of)
               .group_by(act.c.account_id).subquery("touched"))
    upgrade_types = params.metrics.metrics.roles.upgrade_types
    deals = (select(d.c.account_id.label("account_id"),
                    func.sum(flag(and_(d.c.is_won, d.c.close_date <= params.today))).label("won"),
                    func.sum(flag(and_(d.c.is_closed.is_(False),
                                       lowered_in(d.c.deal_type, upgrade_types)))).label("open_upgrades"))
             .where(live(d, source), d.c.account_id.is_not(None))
             .group_by(d.c.account_id).subquery("account_deals"))
    return (select(*record_columns(a), answers.c.n, answers.c.promoters, answers.c.detractors,
                   answers.c.mean, answers.c.last_answer, touched.c.last_activity, deals.c.won,
                   deals.c.open_upgrades)
            .outerjoin(answers, answers.c.account_id == a.c.external_id)
            .outerjoin(touched, touched.c.account_id == a.c.external_id)
            .outerjoin(deals, deals.c.account_id == a.c.external_id)
            .where(live(a, source)).order_by(a.c.external_id))


def account_values(row: Mapping[str, Any], params: ScoreParams) -> dict[str, Any]:
    nps = nps_of(row["n"], row["promoters"], row["detractors"])
    kind = category(row["mean"]) if row["n"] else None
    flagged, reason = upsell_of(nps, kind, row, params)
    return {"nps_score": nps, "nps_category": kind, "nps_last_answer": row["last_answer"],
            "upsell_flag": flagged, "upsell_reason": reason}


# -- contacts ------------------------------------------------------------------------------------
def contact_inputs(connection: Connection, source: str, params: ScoreParams) -> Select[Any]:
    c, s = table(Contact), table(SurveyResponse)
    order = func.row_number().over(partition_by=s.c.contact_id,
                                   order_by=(s.c.answered_at.desc(), s.c.external_id.desc()))
    ranked = (select(s.c.contact_id, s.c.score, s.c.answered_at, order.label("rank"))
              .where(live(s, source), s.c.kind == "nps", s.c.contact_id.is_not(None),
                     s.c.answered_at <= params.as_of).subquery("ranked"))
    return (select(*record_columns(c), ranked.c.score, ranked.c.answered_at)
            .outerjoin(ranked, and_(ranked.c.contact_id == c.c.external_id, ranked.c.rank == 1))
            .where(live(c, source)).order_by(c.c.external_id))


def contact_values(row: Mapping[str, Any], params: ScoreParams) -> dict[str, Any]:
    score = row["score"]
    return {"nps_score": score, "nps_category": category(score),
            "nps_last_answer": row["answered_at"]}


# -- deals ---------------------------------------------------------------------------------------
def deal_inputs(connection: Connection, source: str, params: ScoreParams) -> Select[Any]:
    d, h = table(Deal), table(DealStageChange)
    entered = (select(h.c.deal_id, func.max(h.c.entered_at).label("entered_at"))
               .where(live(h, source), h.c.entered_at <= params.as_of)
               .group_by(h.c.deal_id).subquery("entered"))
    return (select(*record_columns(d), d.c.stage, d.c.is_closed, d.c.created_at,
                   entered.c.entered_at)
            .outerjoin(entered, entered.c.deal_id == d.c.external_id)
            .where(live(d, source)).order_by(d.c.external_id))


def usual_stays(connection: Connection, source: str, params: ScoreParams) -> dict[str, float]:
    """Mean days a deal stays in each stage, over stays that ended (left for another stage)."""
    h = table(DealStageChange)
    left = func.lead(h.c.entered_at).over(partition_by=h.c.deal_id, order_by=h.c.entered_at)
    stays = (select(h.c.stage, h.c.entered_at, left.label("left_at"))
             .where(live(h, source), h.c.entered_at <= params.as_of).subquery("stays"))
    days = hours_between(connection.dialect.name, stays.c.left_at, stays.c.entered_at) / 24.0
    rows = connection.execute(select(stays.c.stage, func.avg(days))
                              .where(stays.c.left_at.is_not(None)).group_by(stays.c.stage))
    return {str(stage): float(mean) for stage, mean in rows if mean is not None}


def deal_values(row: Mapping[str, Any], params: ScoreParams, stays: Mapping[str, float]
                ) -> dict[str, Any]:
    since: datetime | None = row["entered_at"] or row["created_at"]
    if row["is_closed"] or since is None:
        return {"days_in_stage": None, "stalled": None}
    days = max(0, int((params.as_of - since).total_seconds() // 86_400))
    usual = stays.get(row["stage"] or "")
    stalled = None if usual is None else days > params.metrics.metrics.stalled_factor * usual
    return {"days_in_stage": days, "stalled": stalled}


# -- users ---------------------------------------------------------------------------------------
def user_inputs(connection: Connection, source: str, params: ScoreParams) -> Select[Any]:
    u, s, d = table(User), table(SurveyResponse), table(Deal)
    since = params.as_of - timedelta(days=params.rules.enps_window_days)
    enps = (select(s.c.team, func.count().label("n"),
                   func.sum(flag(s.c.score >= 9)).label("promoters"),
                   func.sum(flag(s.c.score <= 6)).label("detractors"))
            .where(live(s, source), s.c.kind == "enps", s.c.team.is_not(None),
                   s.c.answered_at >= since, s.c.answered_at <= params.as_of)
            .group_by(s.c.team).subquery("team_enps"))
    start = period_start(params.today, params.rules.quota_period)
    end = period_end(start, params.rules.quota_period)
    rep = func.coalesce(d.c.closed_owner_id, d.c.owner_id)
    corporate = params.metrics.currency
    amount = converted(d.c.amount, d.c.currency, d.c.close_date, corporate,
                       params.metrics.metrics.currency_rates)
    closed = (select(rep.label("rep"), func.sum(flag(d.c.is_won)).label("won"),
                     func.count().label("closed"),
                     func.sum(case((d.c.is_won, amount), else_=literal(0.0))).label("revenue"))
              .where(live(d, source), d.c.is_closed, d.c.close_date >= start, d.c.close_date < end,
                     d.c.close_date <= params.today)
              .group_by(rep).subquery("closed"))
    return (select(*record_columns(u), u.c.email, enps.c.n, enps.c.promoters, enps.c.detractors,
                   closed.c.won, closed.c.closed, closed.c.revenue)
            .outerjoin(enps, enps.c.team == u.c.team)
            .outerjoin(closed, closed.c.rep == u.c.external_id)
            .where(live(u, source)).order_by(u.c.external_id))


def user_values(row: Mapping[str, Any], params: ScoreParams) -> dict[str, Any]:
    minimum = params.metrics.metrics.anonymity_minimum
    enps = nps_of(row["n"], row["promoters"], row["detractors"]) if (row["n"] or 0) >= minimum else None
    rate = percent(row["won"], row["closed"])
    quota = quota_of(row, params)
    attainment = percent(row["revenue"] or 0.0, quota) if quota else None
    return {"enps": enps, "quota_attainment": attainment, "win_rate": rate}


def quota_of(row: Mapping[str, Any], params: ScoreParams) -> float | None:
    start = period_start(params.today, params.rules.quota_period)
    keys = {row["external_id"], row["email"]} - {None}
    amounts = [q.amount for q in params.metrics.quotas
               if q.period == params.rules.quota_period and q.start == start and q.rep in keys]
    return sum(amounts) if amounts else None


def percent(part: Any, whole: Any) -> Decimal | None:
    if not whole:
        return None
    value = Decimal(str(float(part or 0))) * 100 / Decimal(str(float(whole)))
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# -- one row to field texts ----------------------------------------------------------------------
class ScoreBook:
    """Turns result rows of one entity's inputs query into score texts."""

    def __init__(self, connection: Connection, entity: str, source: str, params: ScoreParams):
        self.entity = entity
        self.params = params
        self.stays = usual_stays(connection, source, params) if entity == "deal" else {}
        self.kinds = {s.name: s.kind for s in SCORES if s.entity == entity}

    def values_of(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        if self.entity == "account":
            raw = account_values(row, self.params)
        elif self.entity == "contact":
            raw = contact_values(row, self.params)
        elif self.entity == "deal":
            raw = deal_values(row, self.params, self.stays)
        else:
            raw = user_values(row, self.params)
        return {name: encode(self.kinds[name], value) for name, value in raw.items()}
