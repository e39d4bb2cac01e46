"""What a KPI is: a frozen declaration, the measure that computes it, and the value it yields.

A declaration names the KPI, says what it means in one sentence, its unit, the grains it is broken
down by, the date that puts a record in a period and whether higher is better. Its measure is SQL
(SQLAlchemy Core) over one of the staged fact tables (see `metrics.staging`):

    Ratio    sum(numerator) / sum(denominator) per period and key; an empty denominator is NULL
    Total    sum(value) of the rows that have one; rows without one are counted as left out
    Median   the middle value per period and key, by window functions (both backends)
    Custom   a function returning a whole SELECT of (period_start, key, value, count, excluded)
    Derived  a small formula over other KPIs' values and inputs kept outside the CRM (quotas,
             spend, working hours): growth, attainment, CAC, CLV …; no row is read here
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import Table
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from metrics.run import Run

Direction = Literal["higher", "lower", "neutral"]
RowExpr = Callable[[Table], ColumnElement[Any]]

GRAINS: tuple[str, ...] = (
    "org",
    "team",
    "rep",
    "region",
    "account",
    "source",
    "segment",
    "deal_type",
    "product",
    "stage",
    "competitor",
)


@dataclass(frozen=True)
class KpiValue:
    """One computed value; `value` None means "no data" and `reason` says why."""

    kpi: str
    period: str
    period_start: date
    grain: str
    key: str
    value: float | None
    count: int | None = None  # records that fed the value
    excluded: int | None = None  # records left out for missing inputs
    reason: str | None = None


@dataclass(frozen=True)
class Ratio:
    numerator: RowExpr
    denominator: RowExpr
    excluded: RowExpr | None = None
    scale: float = 1.0
    fed: RowExpr | None = None  # records that fed it; the denominator when it is a count


@dataclass(frozen=True)
class Total:
    value: RowExpr  # NULL where the row lacks an input
    fed: RowExpr  # 1 for rows that count, 0 otherwise
    excluded: RowExpr | None = None


@dataclass(frozen=True)
class Median:
    value: RowExpr  # rows where it is NULL are left out
    where: RowExpr  # rows that belong (1/0)
    excluded: RowExpr | None = None


@dataclass(frozen=True)
class Custom:
    build: Callable[[Run, str, str], Select[Any]]  # (run, period kind, grain) -> rows


@dataclass(frozen=True)
class Derived:
    inputs: tuple[str, ...]
    derive: Callable[[Run, ValueIndex, str, str], list[KpiValue]]  # (run, values, kind, grain)
    lead_in: bool = False  # its inputs are needed for the year before the window too (growth)


class ValueIndex:
    """Computed values by KPI, period kind and grain, then by (period start, key)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], dict[tuple[date, str], KpiValue]] = {}

    def add(self, values: list[KpiValue]) -> None:
        for value in values:
            slot = self._values.setdefault((value.kpi, value.period, value.grain), {})
            slot[(value.period_start, value.key)] = value

    def get(self, kpi: str, kind: str, grain: str) -> Mapping[tuple[date, str], KpiValue]:
        return self._values.get((kpi, kind, grain), {})

    def value(self, kpi: str, kind: str, grain: str, start: date, key: str) -> float | None:
        found = self.get(kpi, kind, grain).get((start, key))
        return found.value if found else None


@dataclass
class Scope:
    """The values a computation stands for: every value of `whole` KPIs, and of `sliced` KPIs
    those in the listed (KPI, period kind, period start); the rest of `kpis` stand as stored."""

    kpis: set[str]
    whole: set[str]
    sliced: set[tuple[str, str, date]]


Measure = Ratio | Total | Median | Custom | Derived


@dataclass(frozen=True)
class Kpi:
    name: str  # stable snake_case
    title: str
    definition: str  # one sentence
    unit: str  # ratio | money | count | days | hours | score | multiple
    grains: tuple[str, ...]
    period_date: str  # the date that puts a record in a period
    direction: Direction
    fact: str  # the staged fact it is aggregated over ("" for custom and derived)
    measure: Measure
    empty_reason: str = "no records in the period"
    family: str = ""
    notes: str = ""
    tags: tuple[str, ...] = field(default=())
    periods: tuple[str, ...] = ("week", "month", "quarter", "year")  # the period kinds it has
    needs: tuple[str, ...] = ()  # inputs not every CRM holds (metrics.holdings); else "no data"


class Registry:
    """Every declared KPI by name, in declaration order."""

    def __init__(self) -> None:
        self._kpis: dict[str, Kpi] = {}

    def add(self, *kpis: Kpi) -> None:
        for kpi in kpis:
            if kpi.name in self._kpis:
                raise ValueError(f"KPI {kpi.name!r} declared twice")
            unknown = set(kpi.grains) - set(GRAINS)
            if unknown:
                raise ValueError(f"KPI {kpi.name!r}: unknown grains {sorted(unknown)}")
            self._kpis[kpi.name] = kpi

    def __getitem__(self, name: str) -> Kpi:
        return self._kpis[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kpis

    def __iter__(self) -> Iterator[Kpi]:
        return iter(self._kpis.values())

    def names(self) -> list[str]:
        return list(self._kpis)
