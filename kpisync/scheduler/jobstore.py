"""APScheduler's job store in the kpisync store, made to ride out a database outage.

APScheduler 3.11 guards only `get_due_jobs` against job store errors. When the database goes away
between that call and the end of the round, `update_job` or `get_next_run_time` raises out of its
scheduling loop, and the scheduling thread ends for good while the process lives on: no run ever
again, and nothing said. Here a lost connection in those two becomes a retry: the round looks again
after `retry_seconds`, and a next run time that could not be written is computed again then (the
slot it belongs to is claimed once in `pipeline_runs` however often it is submitted).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.exc import InterfaceError, OperationalError

from kpisync.pipeline import store_trouble

log = logging.getLogger(__name__)
LOST = (OperationalError, InterfaceError)  # the connection, not the statement


class OutageTolerantJobStore(SQLAlchemyJobStore):  # type: ignore[misc]  # untyped apscheduler
    def __init__(self, *, retry_seconds: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        self.retry_seconds = retry_seconds

    def get_next_run_time(self) -> datetime | None:
        try:
            found: datetime | None = super().get_next_run_time()
        except LOST:
            return datetime.now(UTC) + timedelta(seconds=self.retry_seconds)
        return found

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except LOST as error:
            log.warning(
                "the next run time of %s is not saved: the store is unreachable (%s); "
                "it is worked out again when the store answers",
                job.id,
                store_trouble(error),
            )
