"""The scores written back, and each record's desired values from the store.

    account  nps_score (NPS over the window, -100..100), nps_category (of the latest answer in
             the window), nps_last_answer (date), upsell_flag, upsell_reason (writeback.upsell)
    contact  nps_score (latest answer, 0..10), nps_category, nps_last_answer
    deal     days_in_stage, stalled (open deals: days in stage > factor x the stage's mean stay)
    user     enps (the team's, only where anonymity allows), quota_attainment and win_rate
             (current period, in percent, from the last KPI computation)

The KPI engine's per-record functions (`metrics.records`) give the NPS, the latest answers, team
eNPS with its anonymity protection, rep scores and deal stages, so write-back and the KPIs always
agree. The SQL here adds only what they do not: the upsell inputs, and per entity one SELECT of
every live record of the source (id, custom, synced_at) that change detection walks in order.
Deleted records are never selected, so they are never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.sql import Select

from kpisync.store.models import Account, Activity, Contact, Deal, User
from metrics import (
    AccountNps,
    DealStage,
    LatestAnswer,
    RepScores,
    account_nps,
    flag,
    latest_contact_answers,
    lowered_in,
    open_deal_stages,
    rep_scores,
    team_enps,
)
from writeback.rules import ScoreParams
from writeback.upsell import upsell_of
from writeback.values import encode

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


def inputs_query(
    connection: Connection, entity: str, source: str, params: ScoreParams
) -> Select[Any]:
    """One row per live `entity` record of `source`, ordered by id, with what its scores need."""
    if entity == "account":
        return account_inputs(source, params)
    t = {"contact": table(Contact), "deal": table(Deal), "user": table(User)}[entity]
    extra = [t.c.team] if entity == "user" else []
    return select(*record_columns(t), *extra).where(live(t, source)).order_by(t.c.external_id)


def account_inputs(source: str, params: ScoreParams) -> Select[Any]:
    """Accounts with the upsell rule's inputs: last activity, won deals, open upgrade deals."""
    a, act, d = table(Account), table(Activity), table(Deal)
    touched = (
        select(
            act.c.account_id.label("account_id"), func.max(act.c.occurred_at).label("last_activity")
        )
        .where(live(act, source), act.c.account_id.is_not(None), act.c.occurred_at <= params.as_of)
        .group_by(act.c.account_id)
        .subquery("touched")
    )
    upgrade_types = params.metrics.metrics.roles.upgrade_types
    deals = (
        select(
            d.c.account_id.label("account_id"),
            func.sum(flag(and_(d.c.is_won, d.c.close_date <= params.today))).label("won"),
            func.sum(
                flag(and_(d.c.is_closed.is_(False), lowered_in(d.c.deal_type, upgrade_types)))
            ).label("open_upgrades"),
        )
        .where(live(d, source), d.c.account_id.is_not(None))
        .group_by(d.c.account_id)
        .subquery("account_deals")
    )
    return (
        select(*record_columns(a), touched.c.last_activity, deals.c.won, deals.c.open_upgrades)
        .outerjoin(touched, touched.c.account_id == a.c.external_id)
        .outerjoin(deals, deals.c.account_id == a.c.external_id)
        .where(live(a, source))
        .order_by(a.c.external_id)
    )


def whole(value: float | None) -> int | None:
    if value is None:
        return None
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent(ratio: float | None) -> Decimal | None:
    if ratio is None:
        return None
    return (Decimal(str(ratio)) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


class ScoreBook:
    """One entity's score inputs from the KPI engine, and rows turned into field texts."""

    def __init__(self, connection: Connection, entity: str, source: str, params: ScoreParams):
        self.entity = entity
        self.params = params
        self.kinds = {s.name: s.kind for s in SCORES if s.entity == entity}
        engine, config, now = connection.engine, params.metrics, params.as_of
        self.accounts: dict[str, AccountNps] = {}
        self.contacts: dict[str, LatestAnswer] = {}
        self.deals: dict[str, DealStage] = {}
        self.teams: dict[str, float | None] = {}
        self.reps: dict[str, RepScores] = {}
        if entity == "account":
            self.accounts = account_nps(
                engine, source, now=now, window_days=config.metrics.nps_window_days
            )
        elif entity == "contact":
            self.contacts = latest_contact_answers(engine, source)
        elif entity == "deal":
            self.deals = open_deal_stages(engine, config, source, now=now)
        elif entity == "user":
            self.teams = team_enps(engine, config, source, now=now)
            self.reps = rep_scores(engine, config, now=now, period=params.rules.quota_period)

    def values_of(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        builder = {
            "account": self.account_values,
            "contact": self.contact_values,
            "deal": self.deal_values,
            "user": self.user_values,
        }[self.entity]
        return {name: encode(self.kinds[name], value) for name, value in builder(row).items()}

    def account_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        found = self.accounts.get(row["external_id"])
        nps = whole(found.nps) if found else None
        kind = found.last_category if found else None
        flagged, reason = upsell_of(nps, kind, row, self.params)
        return {
            "nps_score": nps,
            "nps_category": kind,
            "nps_last_answer": found.last_answered_at if found else None,
            "upsell_flag": flagged,
            "upsell_reason": reason,
        }

    def contact_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        found = self.contacts.get(row["external_id"])
        if found is None:
            return {"nps_score": None, "nps_category": None, "nps_last_answer": None}
        return {
            "nps_score": found.score,
            "nps_category": found.category,
            "nps_last_answer": found.answered_at,
        }

    def deal_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        found = self.deals.get(row["external_id"])
        if found is None:
            return {"days_in_stage": None, "stalled": None}
        return {
            "days_in_stage": int(found.days_in_stage),
            "stalled": found.stalled if found.usual_days is not None else None,
        }

    def user_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        rep = self.reps.get(row["external_id"])
        return {
            "enps": whole(self.teams.get(row["team"] or "")),
            "quota_attainment": percent(rep.quota_attainment) if rep else None,
            "win_rate": percent(rep.win_rate) if rep else None,
        }
