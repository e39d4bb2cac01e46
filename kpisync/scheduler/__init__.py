"""Unattended runs: `kpisync run` schedules, per connector instance, sync -> compute -> write-back.

    models.py     the store's tables for it: pipeline runs, API budget days, ops incidents, jobs
    options.py    the [scheduler] settings table
    triggers.py   schedule settings -> APScheduler triggers every worker computes alike
    executor.py   the APScheduler executor that tells each run which slot it is
    history.py    claiming slots, recording ends, settling runs a dead worker left open
    worker.py     the APScheduler set-up of one worker process

The pipeline itself is kpisync.pipeline; locks kpisync.locks; the API budget kpisync.budget;
health and metrics kpisync.health; operations alerts kpisync.alerts_ops; the command
kpisync.run_command.
"""
