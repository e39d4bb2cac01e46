"""A `kpisync run` worker: APScheduler with its jobs persisted in the store, running pipelines.

Jobs live in the store's `kpisync_jobs` table (APScheduler's SQLAlchemyJobStore), one per scheduled
connector instance (`pipeline:<source>`), calling `run_scheduled` by reference. Several workers may
share the table: a job found with an unchanged trigger is kept, so a slot missed while no worker
ran still fires once on start (coalesced), and whichever worker fires a slot first claims it in
`pipeline_runs`; the others see the claim and step aside. A source no worker has run yet is due
at once: its job waits for the trigger's latest slot up to now, so the first run starts when a
worker starts, and is claimed once however many start. Staleness reviews run on an in-memory job
of each worker.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from kpisync.alerts_ops import alert_settings
from kpisync.budget import org_budgets
from kpisync.config import Settings
from kpisync.errors import StateError
from kpisync.health import HealthState, RunMetrics
from kpisync.pipeline import Pipeline
from kpisync.scheduler import history
from kpisync.scheduler.executor import SlotExecutor
from kpisync.scheduler.jobstore import OutageTolerantJobStore
from kpisync.scheduler.models import JOBS_TABLE
from kpisync.scheduler.options import SchedulerSettings, scheduler_settings
from kpisync.scheduler.triggers import previous_fire, trigger_for

log = logging.getLogger(__name__)
JOB_PREFIX = "pipeline:"
JOB_FUNCTION = "kpisync.scheduler.worker:run_scheduled"
MAX_INSTANCES = 8
JOBSTORE_RETRY_SECONDS = 10.0  # a job store error: the next round looks again after this long
_active: Worker | None = None  # the worker of this process: jobs from the store call into it


def run_scheduled(source: str, *, due_at: datetime | None = None) -> None:
    """The job every persisted schedule calls (by reference, so the store holds no code).

    `due_at` comes from the SlotExecutor; the default only satisfies APScheduler's signature check.
    """
    if _active is None or due_at is None:
        raise StateError("a scheduled job fired outside a kpisync worker's slot executor")
    _active.pipeline.run_scheduled_slot(source, due_at)


def scheduled_triggers(settings: Settings, only: list[str] | None = None) -> dict[str, BaseTrigger]:
    """Every selected source with a schedule, and its trigger (settings errors raised here)."""
    triggers = {}
    for name in only or sorted(settings.sources):
        config = settings.source(name)
        trigger = trigger_for(name, config.schedule, settings.core.timezone)
        if trigger is not None:
            triggers[name] = trigger
    return triggers


class Worker:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        stop: threading.Event,
        sources: list[str] | None = None,
        worker: str | None = None,
    ) -> None:
        self.engine, self.settings, self.stop = engine, settings, stop
        self.options: SchedulerSettings = scheduler_settings(settings)
        alert_settings(settings)
        org_budgets(settings)  # every settings problem is reported before anything starts
        self.only = sources
        self.triggers = scheduled_triggers(settings, sources)
        self.metrics = RunMetrics()
        self.pipeline = Pipeline(
            engine, settings, self.options, stop=stop, worker=worker, metrics=self.metrics
        )
        self.health = HealthState(
            worker=self.pipeline.worker, store_ok=self.store_ok, next_runs=self.next_runs
        )
        self.pipeline.health = self.health
        self.executor = SlotExecutor(self.options.parallel_runs, any_time=self.first_run)
        grace = self.options.misfire_grace_seconds or None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={
                "default": OutageTolerantJobStore(
                    engine=engine, tablename=JOBS_TABLE, retry_seconds=JOBSTORE_RETRY_SECONDS
                ),
                "memory": MemoryJobStore(),
            },
            executors={"default": self.executor, "ops": ThreadPoolExecutor(1)},
            # several instances of a job may be submitted: each claims its slot and records it
            # (skipped when the instance's lock stays busy). With max_instances=1 a busy worker
            # would advance the shared job past a slot without anyone recording it.
            job_defaults={
                "coalesce": True,
                "max_instances": MAX_INSTANCES,
                "misfire_grace_time": grace,
            },
            jobstore_retry_interval=JOBSTORE_RETRY_SECONDS,
        )

    def start(self) -> None:
        global _active
        _active = self
        self.scheduler.start(paused=True)
        self.install_jobs()
        alerts = self.pipeline.alerts
        self.scheduler.add_job(
            self.pipeline.review_idle,
            "interval",
            args=[sorted(self.triggers)],
            seconds=alerts.check_every_seconds,
            id="ops:review",
            jobstore="memory",
            executor="ops",
            replace_existing=True,
        )
        self.scheduler.resume()
        self.health.scheduler_running = True
        for source, when in sorted(self.next_runs().items()):
            log.info(
                "%s: scheduled %s; next run %s",
                source,
                self.triggers[source],
                when.isoformat() if when else "never",
            )
        if not self.triggers:
            log.warning("no source has a [sources.<name>.schedule]: nothing to run")

    def install_jobs(self) -> None:
        """Add or update each source's job; keep a job whose trigger is unchanged (misfires
        coalesce); make a never-run source's job due now; remove jobs of sources no longer
        scheduled (only when running all sources)."""
        first = self.first_slots(datetime.now(UTC))
        for source, trigger in self.triggers.items():
            job_id = JOB_PREFIX + source
            existing = self.scheduler.get_job(job_id, jobstore="default")
            slot = first.get(source)
            if slot is not None:
                log.info(
                    "%s: never run: its first run starts now (the slot of %s)",
                    source,
                    slot.isoformat(),
                )
            if existing is not None and repr(existing.trigger) == repr(trigger):
                if slot is not None and (existing.next_run_time or slot) > slot:
                    self.scheduler.modify_job(job_id, jobstore="default", next_run_time=slot)
                continue
            self.scheduler.add_job(
                JOB_FUNCTION,
                trigger,
                args=[source],
                id=job_id,
                name=f"pipeline of {source}",
                jobstore="default",
                replace_existing=True,
                **({"next_run_time": slot} if slot is not None else {}),
            )
        if self.only:
            return
        for job in self.scheduler.get_jobs(jobstore="default"):
            if job.id.startswith(JOB_PREFIX) and job.id[len(JOB_PREFIX) :] not in self.triggers:
                log.info("removing the schedule of %s: no longer in settings", job.id)
                self.scheduler.remove_job(job.id, jobstore="default")

    def first_slots(self, now: datetime) -> dict[str, datetime]:
        """Each source no worker has run yet, with the slot its first run claims: the trigger's
        latest up to `now`. Due at once, and one row in `pipeline_runs` (unique source and slot)
        whichever workers fire it, whereas a slot of "now" would differ from worker to worker."""
        slots = {}
        for source, trigger in self.triggers.items():
            if history.first_claim(self.engine, source) is None:
                slot = previous_fire(trigger, now)
                if slot is not None:
                    slots[source] = slot
        return slots

    def first_run(self, job: Job) -> bool:
        """Whether `job` is the pipeline of a source no worker has run yet: its first run is due
        however late its slot, whatever `misfire_grace_seconds` says."""
        try:
            return bool(job.args) and history.first_claim(self.engine, job.args[0]) is None
        except SQLAlchemyError:
            return False  # the run cannot claim its slot either; the next round tries again

    def next_runs(self) -> dict[str, datetime | None]:
        runs: dict[str, datetime | None] = {}
        for source in self.triggers:
            job = self.scheduler.get_job(JOB_PREFIX + source, jobstore="default")
            when: datetime | None = job.next_run_time if job is not None else None
            runs[source] = when
            if when is not None:
                self.metrics.next_run.labels(source).set(when.timestamp())
        return runs

    def scheduling(self) -> bool:
        """Whether APScheduler's thread still runs: should it end by an error, no run would ever
        start again while the process lived on."""
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's own thread
        alive = thread.is_alive() if thread is not None else True  # (private: absent, trust state)
        return bool(self.scheduler.running and alive)

    def store_ok(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    def shutdown(self) -> bool:
        """Stop firing; give running pipelines `stop_timeout_seconds` to reach a checkpoint.

        Returns False when some run was still going at the deadline."""
        global _active
        self.health.stopping = True
        self.stop.set()
        self.scheduler.shutdown(wait=False)
        finished = self.executor.wait_idle(self.options.stop_timeout_seconds)
        self.health.scheduler_running = False
        if _active is self:
            _active = None
        return finished
