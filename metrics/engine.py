"""Computing every KPI: stage the facts once, then one aggregate query per fact, period and grain.

KPIs aggregated over the same staged fact share a query: for each period kind and grain, every
Ratio and Total measure of that fact becomes three columns (value, count, excluded) of one
GROUP BY. Medians and custom measures get their own query; derived KPIs combine values already
computed. Values with no data carry their declaration's reason; the org grain gets a "no data"
row (or 0 for totals) for every past period without records, so an empty period is visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, literal, select, tuple_
from sqlalchemy.sql import Select

from kpisync.calendars import GREGORIAN, Calendar
from metrics import anonymity, incremental, reuse
from metrics.alerts import evaluate_alerts, watched_kpis
from metrics.catalogue import REGISTRY
from metrics.customer_staging import stage_customers
from metrics.declaration import (
    Custom,
    Derived,
    Kpi,
    KpiValue,
    Median,
    Ratio,
    Registry,
    Scope,
    Total,
    ValueIndex,
)
from metrics.holdings import missing_inputs, unserved
from metrics.lead_staging import stage_leads, stage_people
from metrics.options import MetricConfig
from metrics.periods import KINDS, Bucketer, history_window, period_start
from metrics.portable import ratio
from metrics.run import Fact, Run
from metrics.sanity import check_roles
from metrics.snapshots import prune_snapshots, record_reuse, store_values, stored_values
from metrics.staging import (
    stage_activities,
    stage_answers,
    stage_deals,
    stage_lines,
    stage_reps,
    stage_stays,
)

FACTS: dict[str, Fact] = {
    "deal_closed": Fact("kpi_deal", "c_", lambda t: t.c.is_closed == 1),
    "deal_created": Fact("kpi_deal", "k_", lambda t: t.c.k_year.is_not(None)),
    "lead": Fact("kpi_lead", "l_"),
    "person": Fact("kpi_person", "p_"),
    "activity": Fact("kpi_activity", "o_"),
    "nps": Fact("kpi_answer", "s_", lambda t: t.c.kind == "nps"),
    "enps": Fact("kpi_answer", "s_", lambda t: t.c.kind == "enps"),
    "stay": Fact("kpi_stay", "e_", lambda t: t.c.days.is_not(None)),
    "stage_entry": Fact("kpi_stay", "n_"),
    "acquired": Fact("kpi_customer", "a_", rename={"rep": "won_by", "team": "won_by_team"}),
    "won_line": Fact("kpi_line", "c_"),
    "rep_start": Fact("kpi_rep", "r_"),
}


@dataclass
class ComputeResult:
    computation_id: int | None
    as_of: datetime
    values: list[KpiValue]  # when kept (reused_from), only the values goals and alerts watch
    changed: int = 0
    reused_from: int | None = None  # the computation whose values were kept: nothing was recomputed
    alerts: list[Any] = field(default_factory=list)
    kept_values: int = 0  # when kept or incremental: how many stored values stand
    recomputed: int | None = None  # when incremental: how many values were recomputed

    @property
    def standing(self) -> int:
        """How many values this computation stands for."""
        if self.reused_from is not None or self.recomputed is not None:
            return self.kept_values
        return len(self.values)

    def of(self, kpi: str, period: str | None = None, grain: str | None = None) -> list[KpiValue]:
        return [
            v
            for v in self.values
            if v.kpi == kpi and period in (None, v.period) and grain in (None, v.grain)
        ]


def open_run(connection: Connection, config: MetricConfig, now: datetime) -> Run:
    window = history_window(
        now,
        config.zone,
        config.metrics.history_years,
        {str(k): n for k, n in config.metrics.recent_periods.items()},
        config.calendar,
    )
    return Run(connection, config, window, Bucketer(connection.dialect.name, config.zone, window))


def stage_all(run: Run) -> None:
    """Fill every staged fact table of `run`, in dependency order."""
    for step in (
        stage_deals,
        stage_customers,
        stage_leads,
        stage_people,
        stage_activities,
        stage_answers,
        stage_stays,
        stage_lines,
        stage_reps,
    ):
        step(run)


Periods = dict[str, set[date]]  # period kind -> the period starts recomputed


@dataclass
class Plan:
    """What moved since the computation whose values the store holds (metrics.incremental).

    `moved` holds, per staged table and period column, the period starts of every staged row that
    appeared, vanished or changed; `stored` the standing values of derived KPIs' inputs.
    """

    moved: dict[tuple[str, str], set[date]]
    stored: list[KpiValue]

    def periods(self, run: Run, kpi: Kpi, early: set[str]) -> Periods | None:
        """The periods of `kpi` to recompute ({} none, None all of them)."""
        if not isinstance(kpi.measure, Ratio | Total | Median):
            return None
        fact = FACTS[kpi.fact]
        out: Periods = {}
        for kind in kpi.periods:
            starts = set(self.moved.get((fact.table, fact.prefix + kind), set()))
            if kpi.name in early:  # growth reads the lead-in year, whose values are never stored
                starts |= set(run.window.lead_in_periods(kind))
            if starts:
                out[kind] = starts
        if "anonymous" in kpi.tags and out:
            return None  # anonymity protects all periods of a KPI together
        return out


def compute_values(
    connection: Connection,
    config: MetricConfig,
    *,
    now: datetime,
    registry: Registry = REGISTRY,
    only: Iterable[str] | None = None,
) -> list[KpiValue]:
    """Every value of every KPI (or of `only` and what they derive from) as of `now`."""
    run = open_run(connection, config, now.astimezone(UTC))
    check_roles(connection, config)
    stage_all(run)
    values, _ = run_values(run, registry, only)
    drop_staged(run)
    return values


def drop_staged(run: Run) -> None:
    for table in run.tables.values():
        table.drop(run.connection)
    run.tables.clear()


def run_values(
    run: Run, registry: Registry, only: Iterable[str] | None, plan: Plan | None = None
) -> tuple[list[KpiValue], Scope]:
    """The values of `run`'s staged facts: all of them, or with `plan` only those whose inputs
    moved (the rest stand as stored), with the scope they cover."""
    config = run.config
    wanted = needed(registry, only)
    early = lead_in_inputs(wanted)
    missing = missing_inputs(run.connection, {n for kpi in wanted for n in kpi.needs})
    instead = unserved(wanted, missing, run.window)
    parts: dict[str, Periods | None] = {
        k.name: None if plan is None or k.name in instead else plan.periods(run, k, early)
        for k in wanted
    }
    computed = [k for k in wanted if parts[k.name] != {}]
    index = ValueIndex()
    out: list[KpiValue] = []
    for fact_name, fact in FACTS.items():
        kpis = [k for k in computed if k.fact == fact_name and isinstance(k.measure, Ratio | Total)]
        for lead_in in (False, True):
            mine = [k for k in kpis if (k.name in early) == lead_in]
            for periods in unique([parts[k.name] for k in mine]):
                out += aggregate_fact(
                    run,
                    fact,
                    [k for k in mine if parts[k.name] == periods],
                    lead_in=lead_in,
                    periods=periods,
                )
    for kpi in computed:
        if isinstance(kpi.measure, Median):
            out += median_values(run, kpi, parts[kpi.name])
        elif isinstance(kpi.measure, Custom):
            out += custom_values(run, kpi)
    out = [with_reason(registry, v) for v in out]
    out = fill_org(run, [k for k in computed if not isinstance(k.measure, Derived)], out, early)
    out = [v for v in out if within(parts[v.kpi], v)]
    out = protected(out, computed, config.metrics.anonymity_minimum, config.calendar)
    if plan is not None:
        index.add(
            [v for v in plan.stored if parts[v.kpi] is not None and not within(parts[v.kpi], v)]
        )
    index.add(out)
    first = {kind: run.window.first_shown(kind) for kind in KINDS}
    out = [v for v in out if v.period_start >= first[v.period]]  # lead-in inputs go
    for kpi in computed:
        if isinstance(kpi.measure, Derived):
            derived = [
                with_reason(registry, v)
                for kind in kpi.periods
                for grain in kpi.grains
                for v in kpi.measure.derive(run, index, kind, grain)
            ]
            index.add(derived)
            out += derived
    out = served(run, wanted, out)
    scope = Scope(
        {k.name for k in wanted},
        {n for n, p in parts.items() if p is None},
        {
            (n, kind, start)
            for n, p in parts.items()
            if p
            for kind, starts in p.items()
            for start in starts
        },
    )
    return out, scope


def unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def within(periods: Periods | None, value: KpiValue) -> bool:
    return periods is None or value.period_start in periods.get(value.period, ())


def protected(
    values: list[KpiValue], kpis: list[Kpi], minimum: int, calendar: Calendar = GREGORIAN
) -> list[KpiValue]:
    """`values` with each anonymous KPI's passed through `metrics.anonymity.protect`."""
    for kpi in kpis:
        if "anonymous" in kpi.tags:
            mine = [v for v in values if v.kpi == kpi.name]
            values = [v for v in values if v.kpi != kpi.name] + anonymity.protect(
                mine, minimum, calendar
            )
    return values


def served(run: Run, kpis: list[Kpi], values: list[KpiValue]) -> list[KpiValue]:
    """`values`, with those of KPIs whose input no source holds replaced by "no data" and why."""
    missing = missing_inputs(run.connection, {n for kpi in kpis for n in kpi.needs})
    instead = unserved(kpis, missing, run.window)
    return [v for v in values if v.kpi not in instead] + [v for vs in instead.values() for v in vs]


def needed(registry: Registry, only: Iterable[str] | None) -> list[Kpi]:
    if only is None:
        return list(registry)
    names: set[str] = set()
    pending = list(only)
    while pending:
        name = pending.pop()
        if name not in names:
            names.add(name)
            measure = registry[name].measure
            pending += list(measure.inputs) if isinstance(measure, Derived) else []
    return [k for k in registry if k.name in names]


def lead_in_inputs(kpis: list[Kpi]) -> set[str]:
    """The KPIs whose values a derived KPI needs for the window's lead-in year too (growth)."""
    return {
        name
        for kpi in kpis
        if isinstance(kpi.measure, Derived) and kpi.measure.lead_in
        for name in kpi.measure.inputs
    }


def aggregate_fact(
    run: Run, fact: Fact, kpis: list[Kpi], *, lead_in: bool = False, periods: Periods | None = None
) -> list[KpiValue]:
    """The Ratio and Total KPIs of one fact, every period kind and grain (from the window's
    lead-in year with `lead_in`; such values are inputs, dropped before they are shown).

    PostgreSQL reads the staged table once per period kind, every grain a grouping set of one
    GROUP BY; SQLite has no GROUPING SETS and runs one GROUP BY per grain. With `periods`, only
    the listed periods of each kind.
    """
    out: list[KpiValue] = []
    for kind in KINDS:
        if periods is not None and kind not in periods:
            continue
        starts = None if periods is None else periods[kind]
        mine = [k for k in kpis if kind in k.periods]
        grains = sorted({g for k in mine for g in k.grains})
        if not grains:
            continue
        since = period_start(run.window.lead_in, kind, run.window.calendar) if lead_in else None
        if run.dialect == "postgresql":
            out += grouped_values(
                run,
                fact,
                kind,
                grains,
                mine,
                [c for k in mine for c in measure_columns(run.table(fact.table), k)],
                since=since,
                starts=starts,
            )
        else:
            for grain in grains:
                out += grain_values(
                    run, fact, kind, grain, [k for k in mine if grain in k.grains], since, starts
                )
    return out


def grain_values(
    run: Run,
    fact: Fact,
    kind: str,
    grain: str,
    kpis: list[Kpi],
    since: date | None = None,
    starts: set[date] | None = None,
) -> list[KpiValue]:
    table = run.table(fact.table)
    period, key = run.period_column(fact, kind), run.grain_column(fact, grain)
    columns = [c for k in kpis for c in measure_columns(table, k)]
    query = (
        select(period, key, *columns)
        .where(*scope(run, fact, table, kind, since, starts), key.is_not(None))
        .group_by(period, key)
    )
    cells = [(k, 2 + 3 * i) for i, k in enumerate(kpis)]
    return [
        value
        for row in run.connection.execute(query).all()
        for value in row_values(cells, kind, grain, row[0], row[1], row)
    ]


def grouped_values(
    run: Run,
    fact: Fact,
    kind: str,
    grains: list[str],
    kpis: list[Kpi],
    columns: list[Any],
    *where: Any,
    since: date | None = None,
    starts: set[date] | None = None,
) -> list[KpiValue]:
    """One GROUP BY GROUPING SETS over `fact` for every grain of `grains` (PostgreSQL).

    `columns` holds (value, count, excluded) for each KPI of `kpis`, in order; each grain's rows
    yield values for the KPIs broken down by that grain.
    """
    table = run.table(fact.table)
    period = run.period_column(fact, kind)
    keyed = [g for g in grains if g != "org"]
    keys = [run.grain_column(fact, g) for g in keyed]
    assert len({id(k) for k in keys}) == len(keys), f"two grains of {fact.table} share a column"
    sets = [tuple_(period, key) for key in keys] + ([tuple_(period)] if "org" in grains else [])
    # GROUPING(k1, k2, ...) has a 0 bit for each key its grouping set groups by.
    which = func.grouping(*keys) if keys else literal(0)
    query = (
        select(period, which, *keys, *columns)
        .where(*scope(run, fact, table, kind, since, starts), *where)
        .group_by(func.grouping_sets(*sets))
    )
    everything = (1 << len(keys)) - 1
    grain_of = {everything ^ (1 << (len(keys) - 1 - i)): (g, 2 + i) for i, g in enumerate(keyed)}
    grain_of[everything] = ("org", -1)
    first = 2 + len(keys)
    cells = {g: [(k, first + 3 * i) for i, k in enumerate(kpis) if g in k.grains] for g in grains}
    out: list[KpiValue] = []
    for row in run.connection.execute(query).all():
        grain, position = grain_of[row[1]]
        key = "org" if position < 0 else row[position]
        if key is not None:
            out += row_values(cells[grain], kind, grain, row[0], key, row)
    return out


def row_values(
    cells: list[tuple[Kpi, int]], kind: str, grain: str, start: Any, key: Any, row: Any
) -> list[KpiValue]:
    """One value per (KPI, position of its value, count and excluded columns in `row`)."""
    period_start, key_text = as_date(start), str(key)
    return [
        KpiValue(
            kpi.name,
            kind,
            period_start,
            grain,
            key_text,
            _float(row[i]),
            _int(row[i + 1]),
            _int(row[i + 2]),
        )
        for kpi, i in cells
    ]


def scope(
    run: Run,
    fact: Fact,
    table: Any,
    kind: str,
    since: date | None = None,
    starts: set[date] | None = None,
) -> list[Any]:
    """The rows of the shown periods of `kind` (from `since` for lead-in inputs; of the periods
    starting on `starts` only, when given)."""
    period = run.period_column(fact, kind)
    conditions = [
        period.is_not(None),
        period >= (since or run.window.first_shown(kind)),
        period <= run.window.today,
    ]
    if starts is not None:
        conditions.append(period.in_(sorted(starts)))
    if fact.where is not None:
        conditions.append(fact.where(table))
    return conditions


def measure_columns(table: Any, kpi: Kpi) -> list[Any]:
    measure = kpi.measure
    assert isinstance(measure, Ratio | Total)
    excluded = func.sum(measure.excluded(table)) if measure.excluded else literal(0)
    if isinstance(measure, Ratio):
        numerator, denominator = (
            func.sum(measure.numerator(table)),
            func.sum(measure.denominator(table)),
        )
        fed = func.sum(measure.fed(table)) if measure.fed else denominator
        return [ratio(numerator, denominator, measure.scale), fed, excluded]
    assert isinstance(measure, Total)
    fed = func.sum(measure.fed(table))
    value = case(
        (and_(func.coalesce(fed, 0) == 0, func.coalesce(excluded, 0) > 0), None),
        else_=func.coalesce(func.sum(measure.value(table)), 0),
    )
    return [value, fed, excluded]


def median_values(run: Run, kpi: Kpi, periods: Periods | None = None) -> list[KpiValue]:
    assert isinstance(kpi.measure, Median)
    fact, out = FACTS[kpi.fact], []
    table = run.table(fact.table)
    for kind in kpi.periods:
        if periods is not None and kind not in periods:
            continue
        starts = None if periods is None else periods[kind]
        if run.dialect == "postgresql":
            value = kpi.measure.value(table)
            columns = [
                func.percentile_cont(0.5).within_group(value),
                func.count(value),
                func.sum(case((value.is_(None), 1), else_=0)),
            ]
            out += grouped_values(
                run,
                fact,
                kind,
                sorted(kpi.grains),
                [kpi],
                columns,
                kpi.measure.where(table),
                starts=starts,
            )
            continue
        for grain in kpi.grains:
            out += [
                KpiValue(
                    kpi.name,
                    kind,
                    as_date(r[0]),
                    grain,
                    str(r[1]),
                    _float(r[2]),
                    _int(r[3]),
                    _int(r[4]),
                )
                for r in run.connection.execute(
                    median_query(run, fact, table, kpi, kind, grain, starts)
                )
            ]
    return out


def median_query(
    run: Run,
    fact: Fact,
    table: Any,
    kpi: Kpi,
    kind: str,
    grain: str,
    starts: set[date] | None = None,
) -> Select[Any]:
    """The middle row (or the mean of the two middle rows) per period and key, by window functions
    (SQLite has no percentile_cont)."""
    assert isinstance(kpi.measure, Median)
    period, key = run.period_column(fact, kind), run.grain_column(fact, grain)
    value = kpi.measure.value(table)
    valid = case((value.is_not(None), 1), else_=0)
    ranked = (
        select(
            period.label("p"),
            key.label("k"),
            value.label("v"),
            valid.label("ok"),
            func.row_number().over(partition_by=(period, key, valid), order_by=value).label("rn"),
            func.sum(valid).over(partition_by=(period, key)).label("n"),
        )
        .where(
            *scope(run, fact, table, kind, None, starts), key.is_not(None), kpi.measure.where(table)
        )
        .subquery("ranked")
    )
    r = ranked.c
    middle = and_(r.ok == 1, r.rn.in_([(r.n + 1) // 2, (r.n + 2) // 2]))
    return select(
        r.p, r.k, func.avg(case((middle, r.v))), func.max(r.n), func.sum(1 - r.ok)
    ).group_by(r.p, r.k)


def custom_values(run: Run, kpi: Kpi) -> list[KpiValue]:
    assert isinstance(kpi.measure, Custom)
    out = []
    for kind in kpi.periods:
        allowed = set(run.window.periods(kind))
        for grain in kpi.grains:
            for row in run.connection.execute(kpi.measure.build(run, kind, grain)):
                start = as_date(row[0])
                if start not in allowed or row[1] is None:
                    continue
                out.append(
                    KpiValue(
                        kpi.name,
                        kind,
                        start,
                        grain,
                        str(row[1]),
                        _float(row[2]),
                        _int(row[3]),
                        _int(row[4]),
                    )
                )
    return out


def fill_org(
    run: Run,
    kpis: list[Kpi],
    values: list[KpiValue],
    early: frozenset[str] | set[str] = frozenset(),
) -> list[KpiValue]:
    """A row for every past period at the org grain: 0 for totals, "no data" for the rest (for
    the `early` KPIs, growth's inputs, from the lead-in year on)."""
    present = {(v.kpi, v.period, v.period_start) for v in values if v.grain == "org"}
    out = list(values)
    for kpi in kpis:
        if (
            "org" not in kpi.grains
            or "now" in kpi.tags
            or kpi.unit == "count"
            and isinstance(kpi.measure, Custom)
        ):
            continue
        for kind in kpi.periods:
            lead_in = run.window.lead_in_periods(kind) if kpi.name in early else []
            for start in lead_in + run.window.periods(kind):
                if (kpi.name, kind, start) in present:
                    continue
                if isinstance(kpi.measure, Total):
                    out.append(KpiValue(kpi.name, kind, start, "org", "org", 0.0, 0, 0))
                else:
                    out.append(
                        KpiValue(kpi.name, kind, start, "org", "org", None, 0, 0, kpi.empty_reason)
                    )
    return out


def with_reason(registry: Registry, value: KpiValue) -> KpiValue:
    if value.value is None and value.reason is None:
        return KpiValue(
            value.kpi,
            value.period,
            value.period_start,
            value.grain,
            value.key,
            None,
            value.count,
            value.excluded,
            registry[value.kpi].empty_reason,
        )
    return value


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def compute_all(
    engine: Engine,
    config: MetricConfig,
    *,
    now: datetime | None = None,
    only: Iterable[str] | None = None,
    force: bool = False,
) -> ComputeResult:
    """Compute every KPI as of `now`, store the values and snapshots, evaluate goals and alerts.

    When none of the inputs moved since the last computation (metrics.reuse), its stored values
    stand and nothing is recomputed, unless `force`. When only records moved, only the values
    whose staged rows moved are recomputed (metrics.incremental).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with engine.begin() as connection:
        inputs = reuse.fingerprint(connection, config, only, now)
        kept = None if force else reuse.reusable(connection, config, inputs, now)
        if kept is None:
            values, scope, token = changed_values(connection, config, now, only, force)
    watched = watched_kpis(config) & {kpi.name for kpi in needed(REGISTRY, only)}
    if kept is None:
        computation_id, changed = store_values(
            engine, values, as_of=now, inputs=inputs, scope=scope
        )
        if token is not None:
            incremental.confirm(engine, computation_id, token)
        if config.metrics.snapshot_days:
            prune_snapshots(
                engine, older_than=datetime.now(UTC) - timedelta(days=config.metrics.snapshot_days)
            )
        if scope is None:
            result = ComputeResult(computation_id, now, values, changed)
        else:  # values of the other periods stand: goals and alerts read the store
            result = ComputeResult(
                computation_id,
                now,
                stored_values(engine, watched),
                changed,
                kept_values=standing_count(engine, computation_id),
                recomputed=len(values),
            )
    else:  # the kept values stay in the store; only those goals and alerts look at are read
        computation_id, standing = record_reuse(engine, kept, as_of=now, inputs=inputs)
        result = ComputeResult(
            computation_id,
            now,
            stored_values(engine, watched),
            0,
            reused_from=kept,
            kept_values=standing,
        )
    result.alerts = evaluate_alerts(engine, config, result)
    return result


def changed_values(
    connection: Connection,
    config: MetricConfig,
    now: datetime,
    only: Iterable[str] | None,
    force: bool,
) -> tuple[list[KpiValue], Scope | None, str | None]:
    """The values to store: every one (no scope), or only those whose staged rows moved since the
    computation the store holds, with the scope they cover; and the token of the staged facts
    kept for the next computation (none for a computation of some KPIs only)."""
    run = open_run(connection, config, now)
    check_roles(connection, config)
    stage_all(run)
    staged = {fact.table: run.table(fact.table) for fact in FACTS.values()}
    base = incremental.base_inputs(
        config, now, missing_inputs(connection, {n for kpi in REGISTRY for n in kpi.needs})
    )
    plan = None
    if only is None and not force and incremental.ready(connection, base):
        moved = incremental.moved(connection, staged)
        if moved is not None:
            inputs = {
                (name, grain)
                for kpi in REGISTRY
                if isinstance(kpi.measure, Derived)
                for name in kpi.measure.inputs
                for grain in kpi.grains
            }  # a derived
            plan = Plan(
                moved, incremental.standing_values(connection, inputs)
            )  # KPI reads its grain
    values, scope = run_values(run, REGISTRY, only, plan)
    token = None if only is not None else incremental.keep_base(connection, staged, base)
    drop_staged(run)
    return values, None if plan is None else scope, token


def standing_count(engine: Engine, computation_id: int) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(reuse.COMPUTATIONS.c["values"]).where(
                    reuse.COMPUTATIONS.c.id == computation_id
                )
            ).scalar_one()
        )
