"""Soak run: `kpisync run` on a schedule for a long while, faults injected, memory watched.

    python -m benchmarks.soak [--minutes 30] [--deals 300] [--interval 10] [--store-url URL]

(from the repository root; it reuses tests/hubspot_truth.py for the final comparison). The HubSpot
emulator runs in this process; the worker is a real `kpisync run` subprocess whose resident memory
is sampled from /proc. While it runs, users "edit" the org (a slice of every object changes each
minute, now and then a deal is archived or created) and fault windows alternate with clean ones:
429s, 5xx, dropped connections and added latency. At the end faults stop, the worker gets two clean
runs, SIGTERM, and the store is compared with the emulator's truth record by record.

Printed: runs by outcome, RSS over time (first, last, peak, the trend in MB per hour), whether the
store equals the truth, and whether the worker stopped cleanly.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.hubspot_process import change_fraction
from benchmarks.results import keep_output
from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.server import Knobs
from kpisync.scheduler.models import PipelineRun
from kpisync.store.database import open_store
from tests.hubspot_truth import assert_store_equals_truth

TOKEN = "pat-na1-soak-0123456789"
TOKEN_ENV = "KPISYNC_SOAK_TOKEN"
RUNS = PipelineRun.__table__  # type: ignore[attr-defined]
FAULTS = Knobs(
    latency_seconds=0.005,
    rate_429=0.02,
    rate_5xx=0.03,
    rate_drop=0.01,
    rate_timeout=0.002,
    hang_seconds=2.0,
)


def settings_text(base_url: str, store_url: str, interval: float) -> str:
    return f"""
[kpisync]
store = "{store_url}"

[sources.soak]
type = "hubspot"
host = "{base_url}"
token_env = "{TOKEN_ENV}"
search_lag_seconds = 0
search_rate_per_second = 1000
fast_retries = true
timeout_seconds = 3
roles = {{ deal_type = "deal_category" }}

[sources.soak.schedule]
interval_seconds = {interval}

[scheduler]
stages = ["sync", "compute"]
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def edit_org(emulator: HubSpotEmulator, rng: random.Random) -> None:
    """What users do in a minute: touch 2% of everything, sometimes archive or add a deal."""
    emulator.knobs, saved = Knobs(), emulator.knobs  # edits are not API calls of ours
    change_fraction(emulator, 0.02)
    deals = sorted(rid for rid, r in emulator.dump()["deals"].items() if not r["archived"])
    if rng.random() < 0.5 and len(deals) > 10:
        emulator.archive("deals", rng.choice(deals))
    if rng.random() < 0.5:
        emulator.create_record(
            "deals",
            {
                "dealname": f"Soak deal {rng.randint(1, 10**6)}",
                "amount": f"{rng.randint(1000, 90000)}.00",
                "dealstage": "appointmentscheduled",
            },
        )
    emulator.knobs = saved


def outcomes(engine) -> Counter[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return Counter(
            dict(
                connection.execute(
                    select(RUNS.c.status, func.count()).group_by(RUNS.c.status)
                ).all()
            )
        )


def wait_clean_runs(engine, count: int, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    start = time.time()
    with engine.connect() as connection:
        last = connection.execute(select(func.max(RUNS.c.id))).scalar() or 0
    while time.time() - start < timeout:
        with engine.connect() as connection:
            done = (
                connection.execute(
                    select(func.count()).where(RUNS.c.id > last, RUNS.c.status == "succeeded")
                ).scalar()
                or 0
            )
        if done >= count:
            return True
        time.sleep(1)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--deals", type=int, default=300)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between runs")
    parser.add_argument("--fault-window", type=float, default=60.0, help="seconds on, then off")
    parser.add_argument("--store-url", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/out/<what it measures>.txt"
    )
    args = parser.parse_args()

    keep_output(args.save, "soak", f"{args.minutes:g}min")
    folder = Path(tempfile.mkdtemp(prefix="kpisync-soak-"))
    store_url = args.store_url or f"sqlite:///{folder / 'store.db'}"
    org = generate_org(seed=args.seed, deals=args.deals)
    os.environ[TOKEN_ENV] = TOKEN
    rng = random.Random(args.seed)
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=1000) as emulator:
        settings = folder / "settings.toml"
        settings.write_text(settings_text(emulator.base_url, store_url, args.interval), "utf-8")
        engine = open_store(store_url)
        log = (folder / "worker.log").open("wb")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kpisync.cli",
                "--log-json",
                "run",
                "--settings",
                str(settings),
                "--health-port",
                str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        print(
            f"soak: {args.minutes:g} min, {args.deals} deals, a run every {args.interval:g} s; "
            f"worker pid {worker.pid}, log {folder / 'worker.log'}",
            flush=True,
        )
        try:
            samples, settled, code, stop_seconds = soak(args, emulator, engine, worker, rng)
        finally:
            if worker.poll() is None:
                worker.kill()
        try:
            assert_store_equals_truth(engine, "soak", emulator.dump(), org)
            truth, healthy = "store equals the emulator's truth", settled and code == 0
        except AssertionError as error:
            truth, healthy = f"STORE DIFFERS from the truth: {error}", False
    report(outcomes(engine), samples, truth, settled, code, stop_seconds)
    engine.dispose()
    log.close()
    if healthy:
        shutil.rmtree(folder, ignore_errors=True)  # the store and the worker's log
    else:
        print(f"kept for a look: {folder}")


def soak(
    args: argparse.Namespace,
    emulator: HubSpotEmulator,
    engine,  # type: ignore[no-untyped-def]
    worker: subprocess.Popen[bytes],
    rng: random.Random,
) -> tuple[list[tuple[float, float]], bool, int, float]:
    """The timed loop: fault windows, edits, RSS samples; then clean runs and SIGTERM."""
    started = time.time()
    samples: list[tuple[float, float]] = []
    next_edit = next_sample = started
    while time.time() - started < args.minutes * 60:
        now = time.time()
        faulty = int((now - started) // args.fault_window) % 2 == 1
        emulator.knobs = FAULTS if faulty else Knobs()
        if now >= next_edit:
            edit_org(emulator, rng)
            next_edit = now + 60
        if now >= next_sample:
            samples.append((now - started, rss_mb(worker.pid)))
            print(
                f"  {samples[-1][0] / 60:5.1f} min  RSS {samples[-1][1]:6.1f} MB  "
                f"faults {'on ' if faulty else 'off'}  runs {dict(outcomes(engine))}",
                flush=True,
            )
            next_sample = now + max(30.0, args.minutes * 60 / 20)
        time.sleep(1)
    emulator.knobs = Knobs()
    settled = wait_clean_runs(engine, 2, timeout=max(120.0, 10 * args.interval))
    samples.append((time.time() - started, rss_mb(worker.pid)))
    worker.send_signal(signal.SIGTERM)
    stop_started = time.time()
    code = worker.wait(60)
    return samples, settled, code, time.time() - stop_started


def report(
    runs: Counter[str],
    samples: list[tuple[float, float]],
    truth: str,
    settled: bool,
    code: int,
    stop_seconds: float,
) -> None:
    total = sum(runs.values())
    print(f"\nruns: {total} — " + ", ".join(f"{k} {v}" for k, v in sorted(runs.items())))
    half = samples[len(samples) // 2 :]
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = (half[-1][1] - half[0][1]) / ((half[-1][0] - half[0][0]) / 3600)
    else:
        slope = float("nan")
    print(
        f"RSS MB: first {samples[0][1]:.1f}, last {samples[-1][1]:.1f}, "
        f"peak {max(s[1] for s in samples):.1f}; trend over the second half {slope:+.1f} MB/h"
    )
    print(f"final clean runs: {'yes' if settled else 'NO'}; {truth}")
    print(f"worker stopped on SIGTERM in {stop_seconds:.1f} s with exit code {code}")


if __name__ == "__main__":
    main()
