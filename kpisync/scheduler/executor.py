"""An APScheduler executor that hands each job the time it was due (`due_at`).

The due time names the slot a run claims in the store, so workers sharing one database agree on
which run is which. It is APScheduler's documented extension point (a `BaseExecutor` subclass
implementing `_do_submit_job`); the run itself is APScheduler's own `run_job`, misfire checks
and events included. It also lets the worker wait for running jobs with a deadline on shutdown.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.job import Job


@dataclass(frozen=True)
class SlotJob:
    """The view of a job `run_job` needs, with `due_at` added to its keyword arguments."""

    id: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    misfire_grace_time: float | None = None
    name: str = ""

    def __str__(self) -> str:
        return self.name or self.id


def slot_view(job: Job, due_at: datetime, *, any_time: bool = False) -> SlotJob:
    grace = None if any_time else job.misfire_grace_time
    return SlotJob(
        job.id, job.func, tuple(job.args), {**job.kwargs, "due_at": due_at}, grace, job.name
    )


def run_slots(
    job: Job,
    run_times: list[datetime],
    logger_name: str,
    any_time: Callable[[Job], bool] = lambda job: False,
) -> list[Any]:
    """Run each slot; one that `any_time` accepts runs however late (no misfire check)."""
    late_ok = job.misfire_grace_time is not None and any_time(job)
    events: list[Any] = []
    for due_at in run_times:
        events += run_job(
            slot_view(job, due_at, any_time=late_ok), job._jobstore_alias, [due_at], logger_name
        )
    return events


class SlotExecutor(BaseExecutor):  # type: ignore[misc]  # apscheduler 3 is untyped
    """A thread pool running jobs as `func(*args, due_at=..., **kwargs)`; a job `any_time`
    accepts runs however late its slot (a source's first run)."""

    def __init__(
        self, max_workers: int = 4, any_time: Callable[[Job], bool] = lambda job: False
    ) -> None:
        super().__init__()
        self.any_time = any_time
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers, "kpisync-run")
        self.active: set[concurrent.futures.Future[list[Any]]] = set()
        self.active_lock = threading.Lock()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def done(future: concurrent.futures.Future[list[Any]]) -> None:
            with self.active_lock:
                self.active.discard(future)
            if future.cancelled():  # queued when the worker shut down: it never started
                self._run_job_success(job.id, [])
                return
            error = future.exception()
            if error is None:
                self._run_job_success(job.id, future.result())
            else:
                self._run_job_error(job.id, error, error.__traceback__)

        future = self.pool.submit(run_slots, job, run_times, self._logger.name, self.any_time)
        with self.active_lock:
            self.active.add(future)
        future.add_done_callback(done)

    def wait_idle(self, timeout: float) -> bool:
        """True when every submitted run ended within `timeout` seconds."""
        with self.active_lock:
            running = set(self.active)
        _, pending = concurrent.futures.wait(running, timeout=timeout)
        return not pending

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)
