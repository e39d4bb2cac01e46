"""Per-record inputs for write-back: scores that go onto one CRM record each.

Every function reads in bulk (one aggregate query per call) and returns a mapping keyed by the
record's external id within `source`. eNPS is read from the stored KPI values, after the anonymity
protection, so a team under the minimum, or one that would reveal such a group by differencing,
gets None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, and_, func, select

from kpisync.store.models import Contact, Deal, SurveyResponse, User, model_table
from metrics.options import MetricConfig
from metrics.periods import period_start
from metrics.portable import flag, hours_between, ratio
from metrics.run import Run
from metrics.snapshots import latest_values
from metrics.staging import stays_query

ANSWERS, CONTACTS, DEALS = model_table(SurveyResponse), model_table(Contact), model_table(Deal)


def category(score: float | None) -> str | None:
    if score is None:
        return None
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


@dataclass(frozen=True)
class AccountNps:
    nps: float | None  # -100..100 over the window
    answers: int
    last_answered_at: datetime | None
    last_category: str | None = None  # category of the account's latest answer in the window


@dataclass(frozen=True)
class LatestAnswer:
    score: int
    category: str
    answered_at: datetime


@dataclass(frozen=True)
class RepScores:
    quota_attainment: float | None
    win_rate: float | None
    period: str
    period_start: date


@dataclass(frozen=True)
class DealStage:
    stage: str
    days_in_stage: float
    usual_days: float | None  # mean completed stay in this stage, over all deals
    stalled: bool


def account_nps(
    engine: Engine, source: str, *, now: datetime, window_days: int
) -> dict[str, AccountNps]:
    """NPS of each account over the `window_days` before `now` (answers of its contacts included)."""
    s, c = ANSWERS.alias("s"), CONTACTS.alias("c")
    account = func.coalesce(s.c.account_id, c.c.account_id)
    query = (
        select(
            account,
            ratio(func.sum(flag(s.c.score >= 9) - flag(s.c.score <= 6)), func.count(), 100.0),
            func.count(),
            func.max(s.c.answered_at),
        )
        .select_from(
            s.outerjoin(
                c,
                and_(
                    c.c.source == s.c.source,
                    c.c.external_id == s.c.contact_id,
                    c.c.deleted_at.is_(None),
                ),
            )
        )
        .where(
            s.c.source == source,
            s.c.kind == "nps",
            s.c.deleted_at.is_(None),
            s.c.answered_at >= now - timedelta(days=window_days),
            s.c.answered_at <= now,
            account.is_not(None),
        )
        .group_by(account)
    )
    latest = (
        select(
            account.label("account"),
            s.c.score,
            func.row_number()
            .over(partition_by=account, order_by=(s.c.answered_at.desc(), s.c.id.desc()))
            .label("rn"),
        )
        .select_from(query.get_final_froms()[0])
        .where(*query.whereclause.clauses)  # type: ignore[union-attr]
        .subquery("latest")
    )
    with engine.connect() as connection:
        last = dict(
            connection.execute(
                select(latest.c.account, latest.c.score).where(latest.c.rn == 1)
            ).all()
        )
        return {
            row[0]: AccountNps(row[1], row[2], _instant(row[3]), category(last.get(row[0])))
            for row in connection.execute(query)
        }


def latest_contact_answers(engine: Engine, source: str) -> dict[str, LatestAnswer]:
    """The latest NPS answer of each contact that answered."""
    s = ANSWERS
    ranked = (
        select(
            s.c.contact_id,
            s.c.score,
            s.c.answered_at,
            func.row_number()
            .over(partition_by=s.c.contact_id, order_by=(s.c.answered_at.desc(), s.c.id.desc()))
            .label("rn"),
        )
        .where(
            s.c.source == source,
            s.c.kind == "nps",
            s.c.deleted_at.is_(None),
            s.c.contact_id.is_not(None),
        )
        .subquery("ranked")
    )
    query = select(ranked.c.contact_id, ranked.c.score, ranked.c.answered_at).where(
        ranked.c.rn == 1
    )
    with engine.connect() as connection:
        return {
            r[0]: LatestAnswer(r[1], category(r[1]) or "", _instant(r[2]))  # type: ignore[arg-type]
            for r in connection.execute(query)
        }


def enps_period(config: MetricConfig) -> str:
    """The period kind whose eNPS is written back: the shortest holding the NPS window."""
    days = config.metrics.nps_window_days
    return "week" if days <= 7 else "month" if days <= 31 else "quarter" if days <= 92 else "year"


def team_enps(
    engine: Engine, config: MetricConfig, source: str, *, now: datetime
) -> dict[str, float | None]:
    """Each team's eNPS of the current period (`enps_period`), as the last computation stored it.

    Write-back shows nothing the KPI does not: these are the stored values, after anonymity
    (`metrics.anonymity`), so a hidden team is None and no written value can be differenced
    against a shown one into a group under the minimum. Teams of `source`'s users only.
    """
    kind = enps_period(config)
    start = period_start(now.astimezone(config.zone).date(), kind, config.calendar)
    users = User.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        teams = set(
            connection.execute(
                select(users.c.team)
                .where(
                    users.c.source == source,
                    users.c.deleted_at.is_(None),
                    users.c.team.is_not(None),
                )
                .distinct()
            ).scalars()
        )
    stored = {
        v.key: v.value for v in latest_values(engine, "enps", kind, "team", period_start=start)
    }
    return {team: stored.get(team) for team in sorted(teams | stored.keys())}


def rep_scores(
    engine: Engine, config: MetricConfig, *, now: datetime, period: str = "quarter"
) -> dict[str, RepScores]:
    """Quota attainment and win rate of each rep for the current period, from the last compute."""
    start = period_start(now.astimezone(config.zone).date(), period, config.calendar)
    found: dict[str, dict[str, float | None]] = {}
    for kpi in ("quota_attainment", "win_rate"):
        for value in latest_values(engine, kpi, period, "rep", period_start=start):
            found.setdefault(value.key, {})[kpi] = value.value
    return {
        rep: RepScores(v.get("quota_attainment"), v.get("win_rate"), period, start)
        for rep, v in found.items()
    }


def open_deal_stages(
    engine: Engine, config: MetricConfig, source: str, *, now: datetime
) -> dict[str, DealStage]:
    """Days each open deal has spent in its current stage, and whether that is stalled."""
    with engine.connect() as connection:
        run = Run(connection, config, None, None)  # type: ignore[arg-type]
        stays = stays_query(run)
        days = hours_between(connection.dialect.name, stays.c.left_at, stays.c.entered_at) / 24.0
        usual: dict[str, float] = dict(
            connection.execute(
                select(stays.c.stage, func.avg(days))
                .where(stays.c.left_at.is_not(None), stays.c.source == source)
                .group_by(stays.c.stage)
            ).all()
        )
        current = connection.execute(
            select(stays.c.deal_id, stays.c.stage, stays.c.entered_at)
            .select_from(
                stays.join(
                    DEALS,
                    and_(DEALS.c.source == stays.c.source, DEALS.c.external_id == stays.c.deal_id),
                )
            )
            .where(
                stays.c.left_at.is_(None), stays.c.source == source, DEALS.c.is_closed.is_(False)
            )
        ).all()
    out = {}
    factor = config.metrics.stalled_factor
    for deal, stage, entered in current:
        spent = (now - _instant(entered)).total_seconds() / 86400  # type: ignore[operator]
        typical = usual.get(stage)
        out[deal] = DealStage(
            stage,
            spent,
            None if typical is None else float(typical),
            typical is not None and spent > float(typical) * factor,
        )
    return out


def _instant(value: object) -> datetime | None:
    """Aware UTC datetimes from either backend (SQLite aggregates return text)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
