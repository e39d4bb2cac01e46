"""One scheduled run of one connector instance: claim the slot, lock, sync -> compute -> write-back.

    claim     insert the slot's row (source, due_at): exactly one worker wins it
    lock      the instance's run lock (kpisync.locks); busy past `lock_wait_seconds`: skipped
    settle    rows a dead worker left open are closed (we hold the lock: nobody else runs it)
    budget    the connector is wrapped in the org's budget gate when a [budgets.*] table names it
    sync      kpisync.sync, stopping after the current page's commit when `stop` is set
    compute   kpisync.stages.compute_kpis, serialised across instances by the "compute" lock
    write     kpisync.stages.write_back (the same budgeted connector)
    record    the row's outcome, the worker's metrics, then an ops-alert review

Statuses: succeeded | failed | interrupted (a stop signal) | budget (the org's API share is used;
the next run resumes) | skipped (the instance was still running) | abandoned (a dead worker's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from kpisync import stages
from kpisync.alerts_ops import (
    FAILING,
    PAUSED,
    STALE,
    StoreOutage,
    alert_settings,
    open_incidents,
    review,
    webhook_sender,
)
from kpisync.budget import BudgetedConnector, BudgetGate, BudgetSpent, budget_of, day_usage
from kpisync.config import Settings
from kpisync.connector import Connector, calls_in
from kpisync.errors import Interrupted, KpisyncError
from kpisync.health import HealthState, RunMetrics
from kpisync.locks import run_lock
from kpisync.registry import build_connector
from kpisync.scheduler import history
from kpisync.scheduler.models import BUDGET, FAILED, INTERRUPTED, SKIPPED, SUCCEEDED
from kpisync.scheduler.options import SchedulerSettings
from kpisync.secrets import mask
from kpisync.store.models import SyncRun
from kpisync.sync import SyncOptions, sync_source

log = logging.getLogger(__name__)
STORE_UNREACHABLE = "store_unreachable"  # an outcome the store cannot record: /healthz, metrics
SYNC_RUNS = SyncRun.__table__  # type: ignore[attr-defined]


def instance_lock(source: str) -> str:
    return f"source:{source}"


class Pipeline:
    """Runs slots for one worker; thread-safe (one thread per running instance)."""

    def __init__(self, engine: Engine, settings: Settings, options: SchedulerSettings, *,
                 stop: threading.Event, worker: str | None = None,
                 metrics: RunMetrics | None = None, health: HealthState | None = None,
                 clock: Callable[[], datetime] = history.now_utc) -> None:
        self.engine, self.settings, self.options = engine, settings, options
        self.stop = stop
        self.worker = worker or history.worker_name()
        self.metrics, self.health = metrics, health
        self.clock = clock
        self.alerts = alert_settings(settings)
        self.send_alert = webhook_sender(self.alerts)
        self.store_outage = StoreOutage(self.send_alert)

    # --- one slot --------------------------------------------------------------------------
    def run_scheduled_slot(self, source: str, due_at: datetime, *,
                           trigger: str = "schedule") -> str | None:
        """run_slot for the scheduler and `run --once`. While the store cannot be reached (a
        database restart, a network cut) the slot is given up with one log line and a metric,
        not a traceback; the next slot tries again, and /healthz says the store is unreachable
        meanwhile."""
        try:
            outcome = self.run_slot(source, due_at, trigger=trigger)
        except OperationalError as error:
            trouble = store_trouble(error)
            log.error("%s: slot %s not run: the store is unreachable (%s); the next slot tries "
                      "again", source, due_at.isoformat(), trouble)
            self._health_end(source, STORE_UNREACHABLE, trouble)
            if self.metrics is not None:
                self.metrics.in_progress.labels(source).set(0)
                self.metrics.runs.labels(source, STORE_UNREACHABLE).inc()
            self.store_outage.down([source], trouble, self.clock())
            return STORE_UNREACHABLE
        self.store_outage.back([source])
        return outcome

    def run_slot(self, source: str, due_at: datetime, *, trigger: str = "schedule") -> str | None:
        """The slot's outcome, or None when another worker claimed it."""
        run_id = history.claim(self.engine, source, due_at, trigger=trigger, worker=self.worker)
        if run_id is None:
            log.debug("%s: slot %s already claimed by another worker", source, due_at.isoformat())
            return None
        with run_lock(self.engine, instance_lock(source), wait=self.options.lock_wait_seconds) as held:
            if not held:
                log.info("%s: slot %s skipped: the previous run is still going", source,
                         due_at.isoformat())
                history.finish(self.engine, run_id, history.RunRecord(
                    SKIPPED, error="the previous run of this instance was still going"))
                return SKIPPED
            history.settle_abandoned(self.engine, source, run_id, history.now_utc())
            record = self.run_locked(run_id, source, due_at)
            self.review_alerts(source)
        return record.status

    def run_locked(self, run_id: int, source: str, due_at: datetime) -> history.RunRecord:
        started = history.start(self.engine, run_id)
        log.info("%s: run %d started (slot %s)", source, run_id, due_at.isoformat())
        self._observe_start(source)
        record = history.RunRecord(status=FAILED)
        before = self._last_sync_run(source)
        try:
            self._run_stages(source, record)
        except BudgetSpent as error:
            record.status, record.error = BUDGET, mask(error.message)
        except Interrupted as error:
            record.status, record.error = INTERRUPTED, mask(error.message)
        except KpisyncError as error:
            record.status, record.error = FAILED, mask(str(error))
        except BaseException as error:  # a bug or a dead database: record it, then let it surface
            record.status, record.error = FAILED, mask(f"{type(error).__name__}: {error}")
            self._finish(run_id, source, record, started, before)
            raise
        self._finish(run_id, source, record, started, before)
        return record

    def _run_stages(self, source: str, record: history.RunRecord) -> None:
        connector: Connector = build_connector(self.settings.source(source))
        try:
            gated = self._budgeted(source, connector)
            if isinstance(gated, BudgetedConnector):
                gated.precheck()
            self._sync(source, gated, record)
            self._check_stop("after the sync")
            record.stages["compute"] = self._compute().summary()
            self._check_stop("after computing KPIs")
            try:
                written = self._write_back(source, gated)
            except KpisyncError as error:
                if isinstance(gated, BudgetedConnector) and gated.gate.spent:
                    raise BudgetSpent(f"write-back paused: {gated.gate.spent}",
                                      hint="the next run resumes it") from error
                raise
            finally:
                record.api_calls["writeback"] = self._calls(gated) - record.api_calls["sync"]
            record.stages["writeback"] = written.summary()
            record.status = SUCCEEDED
        finally:
            connector.close()

    def _budgeted(self, source: str, connector: Connector) -> Connector:
        budget = budget_of(self.settings, source)
        if budget is None:
            return connector
        gate = BudgetGate(self.engine, budget, connector, clock=self.clock, stop=self.stop)
        return BudgetedConnector(connector, gate)  # type: ignore[return-value]

    def _sync(self, source: str, connector: Connector, record: history.RunRecord) -> None:
        config = self.settings.source(source)
        options = SyncOptions(purge_check_every=timedelta(hours=config.common.purge_check_hours),
                              should_stop=self.stop.is_set)
        try:
            result = sync_source(self.engine, source, connector, options)
        finally:
            record.api_calls["sync"] = self._calls(connector)
        record.stages["sync"] = f"{result.status}: {result.upserted} upserted, {result.deleted} deleted"

    def _write_back(self, source: str, connector: Connector) -> stages.StageOutcome:
        if "writeback" not in self.options.stages:
            return stages.StageOutcome(stages.SKIPPED, "not in scheduler.stages")
        return stages.write_back(self.engine, self.settings, source, connector)

    def _compute(self) -> stages.StageOutcome:
        if "compute" not in self.options.stages:
            return stages.StageOutcome(stages.SKIPPED, "not in scheduler.stages")
        wait = self.options.compute_lock_wait_seconds
        with run_lock(self.engine, "compute", wait=wait) as held:
            if not held:
                return stages.StageOutcome(stages.SKIPPED, "another computation kept the lock")
            return stages.compute_kpis(self.engine, self.settings)

    def _check_stop(self, where: str) -> None:
        if self.stop.is_set():
            raise Interrupted(f"stopped {where}", hint="the next run starts from here")

    @staticmethod
    def _calls(connector: Connector) -> int:
        return calls_in(connector.api_usage())

    def _last_sync_run(self, source: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.max(SYNC_RUNS.c.id))
                                          .where(SYNC_RUNS.c.source == source)).scalar() or 0)

    # --- recording -------------------------------------------------------------------------
    def _finish(self, run_id: int, source: str, record: history.RunRecord, started: datetime,
                sync_before: int) -> None:
        sync_after = self._last_sync_run(source)
        if sync_after > sync_before:  # its counts, also of pages committed before a stop
            record.sync_run_id = sync_after
            with self.engine.connect() as connection:
                counts = connection.execute(select(SYNC_RUNS.c.upserted, SYNC_RUNS.c.deleted)
                                            .where(SYNC_RUNS.c.id == sync_after)).one()
            record.upserted, record.deleted = counts.upserted, counts.deleted
        record.stages.setdefault("sync", record.status if record.sync_run_id else "not started")
        history.finish(self.engine, run_id, record)
        seconds = (history.now_utc() - started).total_seconds()
        level = logging.WARNING if record.status == FAILED else logging.INFO
        log.log(level, "%s: run %d %s in %.1f s: %d upserted, %d deleted, %s API calls%s", source,
                run_id, record.status, seconds, record.upserted, record.deleted,
                sum(record.api_calls.values()), f"; {record.error}" if record.error else "")
        self._observe_end(source, record, seconds)

    def _observe_start(self, source: str) -> None:
        if self.metrics is not None:
            self.metrics.in_progress.labels(source).set(1)
        if self.health is not None:
            self.health.sources.setdefault(source, {})["running"] = True

    def _health_end(self, source: str, status: str, error: str | None) -> None:
        if self.health is not None:
            self.health.sources[source] = {"running": False, "last_status": status,
                                           "last_finished": history.now_utc().isoformat(),
                                           "last_error": error}

    def _observe_end(self, source: str, record: history.RunRecord, seconds: float) -> None:
        self._health_end(source, record.status, record.error)
        m = self.metrics
        if m is None:
            return
        m.in_progress.labels(source).set(0)
        m.runs.labels(source, record.status).inc()
        m.duration.labels(source).observe(seconds)
        m.rows.labels(source, "upserted").inc(record.upserted)
        m.rows.labels(source, "deleted").inc(record.deleted)
        for stage, calls in record.api_calls.items():
            m.api_calls.labels(source, stage).inc(max(0, calls))
        if record.status == SUCCEEDED:
            m.last_success.labels(source).set(time.time())
        recent = history.finished_statuses(self.engine, source, 50)
        streak = next((i for i, (status, _) in enumerate(recent) if status != FAILED), len(recent))
        m.failures_in_a_row.labels(source).set(streak)
        budget = budget_of(self.settings, source)
        if budget is not None:
            calls, remaining = day_usage(self.engine, budget.org,
                                         self.clock().astimezone(budget.zone).date())
            m.budget_calls.labels(budget.org).set(calls)
            if remaining is not None:
                m.budget_remaining.labels(budget.org).set(remaining)

    # --- alerts ----------------------------------------------------------------------------
    def review_alerts(self, source: str) -> None:
        """Review the instance's ops incidents; the caller holds the instance's lock."""
        review(self.engine, self.settings, source, self.alerts, self.send_alert,
               now=self.clock())
        if self.metrics is not None:
            kinds = {row.kind for row in open_incidents(self.engine, source)}
            for kind in (FAILING, STALE, PAUSED):
                self.metrics.incidents.labels(source, kind).set(1 if kind in kinds else 0)

    def review_idle(self, sources: list[str]) -> None:
        """Between runs: stale data is found even when no run happens. Busy instances are left
        to their running pipeline, which reviews at its end."""
        try:
            for source in sources:
                with run_lock(self.engine, instance_lock(source)) as held:
                    if held:
                        self.review_alerts(source)
        except OperationalError as error:
            trouble = store_trouble(error)
            log.warning("alert review skipped: the store is unreachable (%s)", trouble)
            self.store_outage.down(sources, trouble, self.clock())
            return
        self.store_outage.back(sources)


def store_trouble(error: DBAPIError) -> str:
    """The database's own first line, e.g. 'connection refused', secrets masked."""
    return mask(str(error.orig or error)).strip().splitlines()[0]
