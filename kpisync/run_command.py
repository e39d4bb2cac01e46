"""`kpisync run`: the long-running worker (or, with --once, one pass over the instances).

    kpisync run [--settings PATH] [--source NAME ...] [--once]
                [--health-port N] [--health-host 127.0.0.1]

SIGTERM or SIGINT: no new runs start; running ones stop after the current page's commit and are
recorded as interrupted; the process exits once they have, or after `stop_timeout_seconds`.
A second signal exits at once (the store is still consistent: every page is one transaction).
`register(app)` adds the command to a Typer app (kpisync.cli loads this module when it runs).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import typer

from kpisync.cli_options import SETTINGS
from kpisync.context import open_context
from kpisync.health import HealthServer
from kpisync.pipeline import Pipeline
from kpisync.scheduler.history import now_utc
from kpisync.scheduler.models import BUDGET, INTERRUPTED, SKIPPED, SUCCEEDED
from kpisync.scheduler.options import scheduler_settings
from kpisync.scheduler.worker import Worker

log = logging.getLogger("kpisync.run")
FORCED_EXIT = 130


def install_stop_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop at the next checkpoint. Second: exit now."""

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting now", name)
            logging.shutdown()
            os._exit(FORCED_EXIT)
        log.warning("%s: stopping after the current page (send it again to exit at once)", name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_once(settings_path: Path, sources: list[str], stop: threading.Event) -> int:
    """Every selected instance's pipeline, now, one after another; the exit code."""
    context = open_context(settings_path)
    options = scheduler_settings(context.settings)
    pipeline = Pipeline(context.engine, context.settings, options, stop=stop)
    names = sources or sorted(context.settings.sources)
    for name in names:
        context.settings.source(name)
    outcomes = {}
    for name in names:
        if stop.is_set():
            break
        outcomes[name] = pipeline.run_scheduled_slot(name, now_utc(), trigger="once") or SKIPPED
    for name, status in outcomes.items():
        print(f"{name}: {status}")
    if INTERRUPTED in outcomes.values() or stop.is_set():
        return FORCED_EXIT
    return 0 if set(outcomes.values()) <= {SUCCEEDED, BUDGET, SKIPPED} else 1


def run_worker(
    settings_path: Path,
    sources: list[str],
    stop: threading.Event,
    health_port: int | None,
    health_host: str | None,
) -> int:
    context = open_context(settings_path)
    worker = Worker(context.engine, context.settings, stop=stop, sources=sources or None)
    port = health_port if health_port is not None else worker.options.health_port
    health = None
    if port:
        health = HealthServer(
            worker.health, worker.metrics, host=health_host or worker.options.health_host, port=port
        )
        health.start()
    worker.start()
    log.info(
        "worker %s running %d scheduled instances", worker.pipeline.worker, len(worker.triggers)
    )
    lost = False
    while not stop.wait(1.0):
        if not worker.scheduling():
            log.error(
                "the scheduler stopped unexpectedly; the worker exits with 1 so that its "
                "service manager starts it again"
            )
            lost = True
            break
    finished = worker.shutdown()
    if health is not None:
        health.stop()
    if not finished:
        log.warning(
            "runs still going after %.0f s: exiting; each keeps its last committed page",
            worker.options.stop_timeout_seconds,
        )
        logging.shutdown()
        os._exit(1)  # the run threads are stuck in a call; the next run settles their rows
    context.engine.dispose()
    log.info("worker %s stopped", worker.pipeline.worker)
    return 1 if lost else 0


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        settings: Path = SETTINGS,
        source: list[str] = typer.Option(None, "--source", help="Only this instance (repeatable)."),
        once: bool = typer.Option(
            False, "--once", help="Run each instance's pipeline once now, then exit."
        ),
        health_port: int = typer.Option(
            None, "--health-port", help="Serve /healthz and /metrics on this port."
        ),
        health_host: str = typer.Option(
            None, "--health-host", help="Address to serve them on (default 127.0.0.1)."
        ),
    ) -> None:
        """Run the scheduled pipelines (sync, compute, write-back) until stopped."""
        root = logging.getLogger()
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)  # a daemon's run lines belong in its log
        stop = threading.Event()
        install_stop_signals(stop)
        if once:
            code = run_once(settings, source or [], stop)
        else:
            code = run_worker(settings, source or [], stop, health_port, health_host)
        if code:
            raise typer.Exit(code)
