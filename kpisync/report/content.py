"""What a report holds: plain frozen values, gathered once and then drawn, rendered or mailed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from kpisync.calendars import GREGORIAN, Calendar
from kpisync.texts import localized, translate
from metrics import GoalStatus


@dataclass(frozen=True)
class Point:
    start: date
    value: float | None
    reason: str | None = None  # why there is no value
    partial: bool = False  # the current period: a value to date


@dataclass(frozen=True)
class Series:
    """One KPI at the org grain over the latest periods, oldest first."""

    kpi: str
    title: str
    definition: str
    unit: str
    direction: str  # higher | lower | neutral
    points: tuple[Point, ...]

    @property
    def current(self) -> Point | None:
        return self.points[-1] if self.points else None

    @property
    def previous(self) -> Point | None:
        return self.points[-2] if len(self.points) > 1 else None


@dataclass(frozen=True)
class RepRow:
    key: str  # the owner's id in the CRM
    name: str
    team: str | None
    revenue: float | None
    won: int | None
    win_rate: float | None
    closed: int | None
    average_deal: float | None
    attainment: float | None
    new_opportunities: float | None


@dataclass(frozen=True)
class DealRow:
    name: str
    account: str | None
    owner: str | None
    amount: float | None  # in the corporate currency
    original: str | None  # the amount as the CRM holds it, when in another currency
    close_date: date | None


@dataclass(frozen=True)
class GoalLine:
    status: GoalStatus
    title: str  # the KPI's title
    unit: str


@dataclass(frozen=True)
class Distribution:
    """Survey answers of one group by score 0..10; `counts` is empty when the group is hidden."""

    grain: str  # org | team
    key: str
    score: float | None  # the KPI engine's NPS or eNPS
    counts: tuple[int, ...]
    reason: str | None = None

    @property
    def answers(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> tuple[float, float, float]:
        """Detractors (0-6), passives (7-8), promoters (9-10) as fractions of the answers."""
        total = self.answers or 1
        return (
            sum(self.counts[:7]) / total,
            sum(self.counts[7:9]) / total,
            sum(self.counts[9:]) / total,
        )


@dataclass(frozen=True)
class SourceFreshness:
    source: str
    last_success: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    error: str | None
    age_hours: float | None  # since the last successful sync finished
    stale: bool


@dataclass(frozen=True)
class Report:
    title: str
    period: str  # week | month | quarter | year
    period_start: date
    period_label: str
    generated_at: datetime  # in the org's zone
    timezone: str
    currency: str
    computed_at: datetime | None  # the newest KPI computation, in the org's zone
    tiles: tuple[Series, ...]
    trends: tuple[Series, ...]
    leaderboard: tuple[RepRow, ...]
    wins: tuple[DealRow, ...]
    goals: tuple[GoalLine, ...]
    nps: Distribution | None
    enps: tuple[Distribution, ...]
    anonymity_minimum: int
    freshness: tuple[SourceFreshness, ...]
    locale: str = "en"  # en | fa: texts, digits and direction (kpisync.texts)
    calendar: Calendar = GREGORIAN  # how period starts are named
    complete: bool = False  # the period has ended (as of generated_at)
    chosen: str = ""  # why this period, when it is not the one holding generated_at
    store_changed_at: datetime | None = None  # the store changed after the last computation

    @property
    def heading(self) -> str:
        """'Q3 2026, complete' or 'Q4 2026 to date, as of 2026-12-07 21:40'."""
        if self.complete:
            return f"{self.period_label}, {translate('complete', self.locale)}"
        as_of = localized(f"{self.generated_at:%Y-%m-%d %H:%M}", self.locale)
        return (
            f"{self.period_label} {translate('to date', self.locale)}, "
            f"{translate('as of', self.locale)} {as_of}"
        )
