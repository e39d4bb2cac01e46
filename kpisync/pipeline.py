"""One scheduled run of one connector instance: claim the slot, lease, sync -> compute -> write-back.

    claim     insert the slot's row (source, due_at): exactly one worker wins it
    lease     the instance's lease (kpisync.locks.Lease); busy past `lock_wait_seconds`: skipped
    settle    rows a dead worker left open are closed (we hold the lease: nobody else runs it)
    budget    the connector is wrapped in the org's budget gate when a [budgets.*] table names it
    sync      kpisync.sync, stopping after the current page's commit when `stop` is set
    compute   kpisync.stages.compute_kpis, serialised across instances by the "compute" lease
    write     kpisync.stages.write_back (the same budgeted connector)
    record    the row's outcome (with its own sync's counts), the worker's metrics, then an
              ops-alert review

Every write of the stages is fenced by the lease (kpisync.locks.fenced): a run whose lease was
taken over, or which lost its store mid-run, stops at once and is recorded `lost`.

Statuses: succeeded | failed | interrupted (a stop signal) | budget (the org's API share is used;
the next run resumes) | skipped (the instance was still running) | lost (see above) |
abandoned (a dead worker's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

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
from kpisync.errors import ClaimLost, Interrupted, KpisyncError
from kpisync.health import HealthState, RunMetrics
from kpisync.locks import Lease, fenced, run_lock
from kpisync.registry import build_connector
from kpisync.scheduler import history
from kpisync.scheduler.models import BUDGET, FAILED, INTERRUPTED, LOST, SKIPPED, SUCCEEDED
from kpisync.scheduler.options import SchedulerSettings
from kpisync.secrets import mask
from kpisync.store.models import SyncRun
from kpisync.sync import SyncOptions, sync_source

log = logging.getLogger(__name__)
STORE_UNREACHABLE = "store_unreachable"  # an outcome the store cannot record: /healthz, metrics
SYNC_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
COMPUTE_LEASE = "compute"
STORE_RETRY_SECONDS = 1.0
RECORD_PATIENCE_SECONDS = 600.0  # how long a run the store dropped waits to record itself


def instance_lock(source: str) -> str:
    return f"source:{source}"


class Pipeline:
    """Runs slots for one worker; thread-safe (one thread per running instance)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        options: SchedulerSettings,
        *,
        stop: threading.Event,
        worker: str | None = None,
        metrics: RunMetrics | None = None,
        health: HealthState | None = None,
        clock: Callable[[], datetime] = history.now_utc,
    ) -> None:
        self.engine, self.settings, self.options = engine, settings, options
        self.stop = stop
        self.worker = worker or history.worker_name()
        self.metrics, self.health = metrics, health
        self.clock = clock
        self.alerts = alert_settings(settings)
        self.send_alert = webhook_sender(self.alerts)
        self.store_outage = StoreOutage(engine, self.send_alert)

    # --- one slot --------------------------------------------------------------------------
    def run_scheduled_slot(
        self, source: str, due_at: datetime, *, trigger: str = "schedule"
    ) -> str | None:
        """run_slot for the scheduler and `run --once`. While the store cannot be reached (a
        database restart, a network cut) the slot is given up with one log line and a metric,
        not a traceback; the next slot tries again, and /healthz says the store is unreachable
        meanwhile. A run the store dropped midway is recorded `lost` by run_slot itself."""
        try:
            outcome = self.run_slot(source, due_at, trigger=trigger)
        except (OperationalError, InterfaceError) as error:
            trouble = store_trouble(error)
            log.error(
                "%s: slot %s not run: the store is unreachable (%s); the next slot tries again",
                source,
                due_at.isoformat(),
                trouble,
            )
            self._health_end(source, STORE_UNREACHABLE, trouble)
            if self.metrics is not None:
                self.metrics.in_progress.labels(source).set(0)
                self.metrics.runs.labels(source, STORE_UNREACHABLE).inc()
            self.store_outage.down([source], trouble, self.clock())
            return STORE_UNREACHABLE
        if outcome != LOST:
            self.store_outage.back([source], self.clock())
        return outcome

    def run_slot(self, source: str, due_at: datetime, *, trigger: str = "schedule") -> str | None:
        """The slot's outcome, or None when another worker claimed it."""
        run_id = history.claim(self.engine, source, due_at, trigger=trigger, worker=self.worker)
        if run_id is None:
            log.debug("%s: slot %s already claimed by another worker", source, due_at.isoformat())
            return None
        lease = Lease(
            self.engine,
            instance_lock(source),
            holder=self.worker,
            seconds=self.options.lease_seconds,
            run_id=run_id,
        )
        try:
            held = lease.acquire(self.options.lock_wait_seconds, stop=self.stop)
        except (OperationalError, InterfaceError) as error:  # claimed, then the store went away
            skipped = history.RunRecord(
                SKIPPED,
                error=f"the store went away before the run started ({store_trouble(error)})",
            )
            self.store_outage.down([source], store_trouble(error), self.clock())
            self._when_store_answers(lambda: history.finish(self.engine, run_id, skipped))
            raise
        if not held and self.stop.is_set():
            history.finish(
                self.engine,
                run_id,
                history.RunRecord(
                    INTERRUPTED, error="stopped before it started; the next run does its work"
                ),
            )
            return INTERRUPTED
        if not held:
            log.info(
                "%s: slot %s skipped: the previous run is still going", source, due_at.isoformat()
            )
            history.finish(
                self.engine,
                run_id,
                history.RunRecord(
                    SKIPPED, error="the previous run of this instance was still going"
                ),
            )
            return SKIPPED
        try:
            history.settle_abandoned(self.engine, source, run_id, history.now_utc())
            record = self.run_leased(run_id, source, due_at, lease)
            if record.status != LOST:  # a run that lost its lease leaves reviews to its taker
                self._review_after_run(source, lease)
        finally:
            lease.release()
        return record.status

    def run_leased(
        self, run_id: int, source: str, due_at: datetime, lease: Lease
    ) -> history.RunRecord:
        """The run's stages, every write fenced by `lease`; recorded whatever happens."""
        started = history.start(self.engine, run_id)
        log.info("%s: run %d started (slot %s)", source, run_id, due_at.isoformat())
        self._observe_start(source)
        record = history.RunRecord(status=FAILED)
        try:
            with fenced(lease, label=str(run_id)):
                self._run_stages(source, record, run_id, lease)
        except ClaimLost as error:
            record.status, record.error = LOST, mask(error.message)
        except BudgetSpent as error:
            record.status, record.error = BUDGET, mask(error.message)
        except Interrupted as error:
            record.status, record.error = INTERRUPTED, mask(error.message)
            if lease.lost.is_set():
                record.status, record.error = LOST, lease.reason
        except KpisyncError as error:
            record.status, record.error = FAILED, mask(str(error))
        except (OperationalError, InterfaceError) as error:  # the store went away mid-run
            trouble = store_trouble(error)
            record.status = LOST
            record.error = (
                f"lost its store mid-run ({trouble}); the next run resumes from the "
                f"last committed page"
            )
            self.store_outage.down([source], trouble, self.clock())
            self._finish_when_store_answers(run_id, source, record, started, lease)
            return record
        except BaseException as error:  # a bug: record it, then let it surface
            record.status, record.error = FAILED, mask(f"{type(error).__name__}: {error}")
            self._finish(run_id, source, record, started)
            raise
        self._finish(run_id, source, record, started)
        return record

    def _finish_when_store_answers(
        self, run_id: int, source: str, record: history.RunRecord, started: datetime, lease: Lease
    ) -> None:
        """Record a run the store dropped, once it answers again (saying whether its lease was
        taken over meanwhile); at a stop the row is left to the next run, which settles it."""

        def finish() -> None:
            if not lease.still_held() and lease.reason and lease.reason not in (record.error or ""):
                record.error = f"{record.error}; meanwhile {lease.reason}"
            self._finish(run_id, source, record, started)

        if self._when_store_answers(finish):
            self.store_outage.back([source], self.clock())
            return
        log.error(
            "%s: run %d lost its store and could not record it; the next run of the "
            "instance settles it",
            source,
            run_id,
        )
        self._observe_end(
            source, record, (history.now_utc() - started).total_seconds(), store=False
        )

    def _when_store_answers(self, action: Callable[[], None]) -> bool:
        """Retry `action` while the store cannot be reached; False when stopped first."""
        deadline = time.monotonic() + RECORD_PATIENCE_SECONDS
        while True:
            try:
                action()
                return True
            except (OperationalError, InterfaceError):
                if time.monotonic() >= deadline or self.stop.wait(STORE_RETRY_SECONDS):
                    return False

    def _run_stages(
        self, source: str, record: history.RunRecord, run_id: int, lease: Lease
    ) -> None:
        connector: Connector = build_connector(self.settings.source(source))
        try:
            gated = self._budgeted(source, connector)
            if isinstance(gated, BudgetedConnector):
                gated.precheck()
            self._sync(source, gated, record, lease)
            self._check_stop("after the sync", lease)
            record.stages["compute"] = self._compute(run_id, lease).summary()
            self._check_stop("after computing KPIs", lease)
            try:
                written = self._write_back(source, gated)
            except KpisyncError as error:
                if isinstance(gated, BudgetedConnector) and gated.gate.spent:
                    raise BudgetSpent(
                        f"write-back paused: {gated.gate.spent}", hint="the next run resumes it"
                    ) from error
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

    def _sync(
        self, source: str, connector: Connector, record: history.RunRecord, lease: Lease
    ) -> None:
        config = self.settings.source(source)

        def own_run(sync_run_id: int) -> None:
            record.sync_run_id = sync_run_id

        options = SyncOptions(
            purge_check_every=timedelta(hours=config.common.purge_check_hours),
            should_stop=lambda: self.stop.is_set() or lease.lost.is_set(),
            on_run=own_run,
        )
        try:
            result = sync_source(self.engine, source, connector, options)
        finally:
            record.api_calls["sync"] = self._calls(connector)
        record.stages["sync"] = (
            f"{result.status}: {result.upserted} upserted, {result.deleted} deleted"
        )

    def _write_back(self, source: str, connector: Connector) -> stages.StageOutcome:
        if "writeback" not in self.options.stages:
            return stages.StageOutcome(stages.SKIPPED, "not in scheduler.stages")
        return stages.write_back(self.engine, self.settings, source, connector)

    def _compute(self, run_id: int, source_lease: Lease) -> stages.StageOutcome:
        """KPIs, one computation at a time across workers: its writes are fenced by the
        "compute" lease as well as by the instance's."""
        if "compute" not in self.options.stages:
            return stages.StageOutcome(stages.SKIPPED, "not in scheduler.stages")
        lease = Lease(
            self.engine,
            COMPUTE_LEASE,
            holder=self.worker,
            seconds=self.options.lease_seconds,
            run_id=run_id,
        )
        if not lease.acquire(self.options.compute_lock_wait_seconds, stop=self.stop):
            return stages.StageOutcome(stages.SKIPPED, "another computation kept the lock")
        try:
            with fenced(source_lease, lease, label=str(run_id)):
                return stages.compute_kpis(self.engine, self.settings)
        finally:
            lease.release()

    def _check_stop(self, where: str, lease: Lease) -> None:
        if lease.lost.is_set():
            raise ClaimLost(lease.reason or "its lease was taken over")
        if self.stop.is_set():
            raise Interrupted(f"stopped {where}", hint="the next run starts from here")

    @staticmethod
    def _calls(connector: Connector) -> int:
        return calls_in(connector.api_usage())

    # --- recording -------------------------------------------------------------------------
    def _finish(
        self, run_id: int, source: str, record: history.RunRecord, started: datetime
    ) -> None:
        """Record the run with its own sync's counts (also of pages committed before a stop);
        a sync the run left open (it lost its lease or its store) is closed as interrupted."""
        if record.sync_run_id is not None:
            with self.engine.begin() as connection:
                connection.execute(
                    update(SYNC_RUNS)
                    .where(SYNC_RUNS.c.id == record.sync_run_id, SYNC_RUNS.c.status == "running")
                    .values(status=INTERRUPTED, finished_at=history.now_utc(), error=record.error)
                )
                counts = connection.execute(
                    select(SYNC_RUNS.c.upserted, SYNC_RUNS.c.deleted).where(
                        SYNC_RUNS.c.id == record.sync_run_id
                    )
                ).one()
            record.upserted, record.deleted = counts.upserted, counts.deleted
        record.stages.setdefault("sync", record.status if record.sync_run_id else "not started")
        history.finish(self.engine, run_id, record)
        seconds = (history.now_utc() - started).total_seconds()
        level = logging.WARNING if record.status in (FAILED, LOST) else logging.INFO
        log.log(
            level,
            "%s: run %d %s in %.1f s: %d upserted, %d deleted, %s API calls%s",
            source,
            run_id,
            record.status,
            seconds,
            record.upserted,
            record.deleted,
            sum(record.api_calls.values()),
            f"; {record.error}" if record.error else "",
        )
        self._observe_end(source, record, seconds)

    def _observe_start(self, source: str) -> None:
        if self.metrics is not None:
            self.metrics.in_progress.labels(source).set(1)
        if self.health is not None:
            self.health.sources.setdefault(source, {})["running"] = True

    def _health_end(self, source: str, status: str, error: str | None) -> None:
        if self.health is not None:
            self.health.sources[source] = {
                "running": False,
                "last_status": status,
                "last_finished": history.now_utc().isoformat(),
                "last_error": error,
            }

    def _observe_end(
        self, source: str, record: history.RunRecord, seconds: float, *, store: bool = True
    ) -> None:
        """Health and metrics of the run, counted once; the gauges read from the store are left
        as they were when it cannot be read."""
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
        if store:
            try:
                self._observe_store(source)
            except SQLAlchemyError as error:
                log.info("%s: run gauges not updated: %s", source, type(error).__name__)

    def _observe_store(self, source: str) -> None:
        m = self.metrics
        assert m is not None
        recent = history.finished_statuses(self.engine, source, 50)
        streak = next((i for i, (status, _) in enumerate(recent) if status != FAILED), len(recent))
        m.failures_in_a_row.labels(source).set(streak)
        budget = budget_of(self.settings, source)
        if budget is not None:
            calls, remaining = day_usage(
                self.engine, budget.org, self.clock().astimezone(budget.zone).date()
            )
            m.budget_calls.labels(budget.org).set(calls)
            if remaining is not None:
                m.budget_remaining.labels(budget.org).set(remaining)

    # --- alerts ----------------------------------------------------------------------------
    def _review_after_run(self, source: str, lease: Lease) -> None:
        """The run is recorded: a store that fails now costs the review, not the run's count."""
        try:
            with fenced(lease, label=f"review:{source}"):
                self.review_alerts(source)
        except (OperationalError, InterfaceError) as error:
            trouble = store_trouble(error)
            log.warning("%s: alert review skipped: the store is unreachable (%s)", source, trouble)
            self.store_outage.down([source], trouble, self.clock())
        except ClaimLost as error:
            log.warning("%s: alert review skipped: %s", source, error.message)

    def review_alerts(self, source: str) -> None:
        """Review the instance's ops incidents; the caller holds the instance's lock."""
        review(self.engine, self.settings, source, self.alerts, self.send_alert, now=self.clock())
        if self.metrics is not None:
            kinds = {row.kind for row in open_incidents(self.engine, source)}
            for kind in (FAILING, STALE, PAUSED):
                self.metrics.incidents.labels(source, kind).set(1 if kind in kinds else 0)

    def review_idle(self, sources: list[str]) -> None:
        """Between runs: stale data is found even when no run happens. Busy instances are left
        to their running pipeline, which reviews at its end."""
        try:
            for source in sources:
                with run_lock(
                    self.engine,
                    instance_lock(source),
                    holder=self.worker,
                    seconds=self.options.lease_seconds,
                ) as held:
                    if held:
                        self.review_alerts(source)
        except (OperationalError, InterfaceError) as error:
            trouble = store_trouble(error)
            log.warning("alert review skipped: the store is unreachable (%s)", trouble)
            self.store_outage.down(sources, trouble, self.clock())
            return
        except ClaimLost as error:
            log.warning("alert review stopped: %s", error.message)
        self.store_outage.back(sources, self.clock())


def store_trouble(error: DBAPIError) -> str:
    """The database's own first line, e.g. 'connection refused', secrets masked."""
    return mask(str(error.orig or error)).strip().splitlines()[0]
