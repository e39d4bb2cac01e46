"""The `[scheduler]` table: how a `kpisync run` worker behaves.

[scheduler]
parallel_runs = 4            # connector instances run at the same time by one worker
lock_wait_seconds = 5        # a slot whose instance is still running waits this long, then is
                             # recorded as skipped (coalesced into the run still going)
compute_lock_wait_seconds = 300   # KPI computations are serialised across instances and workers
lease_seconds = 60           # a run's claim on its instance (kpisync.locks.Lease) lasts this long
                             # unrenewed: a killed, paused or cut-off worker's run is taken
                             # over this long after its last renewal
stop_timeout_seconds = 20    # after SIGTERM: wait this long for runs to reach a checkpoint
misfire_grace_seconds = 0    # 0: a slot missed while no worker ran still runs, once (coalesced);
                             # N: only if at most N seconds late
health_host = "127.0.0.1"
health_port = 0              # 0: no health server unless --health-port is given
stages = ["sync", "compute", "writeback"]   # what a run does; sync always comes first
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kpisync.config import Settings, StrictModel, validate_model


class SchedulerSettings(StrictModel):
    parallel_runs: int = Field(default=4, ge=1, le=64)
    lock_wait_seconds: float = Field(default=5.0, ge=0)
    compute_lock_wait_seconds: float = Field(default=300.0, ge=0)
    lease_seconds: float = Field(default=60.0, ge=1)
    stop_timeout_seconds: float = Field(default=20.0, gt=0)
    misfire_grace_seconds: float = Field(default=0.0, ge=0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535)
    stages: tuple[Literal["sync", "compute", "writeback"], ...] = ("sync", "compute", "writeback")

    @field_validator("stages")
    @classmethod
    def _sync_first(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "sync" not in value:
            raise ValueError('a run always syncs: keep "sync" in stages')
        return value


def scheduler_settings(settings: Settings) -> SchedulerSettings:
    return validate_model(SchedulerSettings, settings.table("scheduler"), prefix="scheduler")
