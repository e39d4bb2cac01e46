"""Soak of worker exclusivity: three `kpisync run` workers, three CRMs, random SIGKILLs and one
PostgreSQL restart; at the end the store must equal each CRM and no two runs of one source (nor
two KPI computations) may ever have written at the same time.

    python -m benchmarks.worker_exclusivity_soak [--minutes 10] [--deals 60] [--interval 5]
                                                 [--lease 5] [--kill-every 45] [--seed 3]

(from the repository root, as root or as a user who may run PostgreSQL's initdb: it starts a
PostgreSQL server of its own in a temporary folder, which it restarts once half-way.) Three
HubSpot emulators with ~8% faults in alternate minutes and users editing 2% of every object a
minute. Each guarded write is logged by a trigger, in its own transaction, with the run that
proved the lease for it (tests/test_unattended_kit.py); a killed worker is started again.

Printed: runs per status, kills, the restart, writes and overlaps found (per source and for the
KPI computation), writes made without a lease, store incidents per source, and whether each
source's store equals its CRM's truth.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from benchmarks.hubspot_process import change_fraction
from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.server import Knobs
from kpisync.scheduler.models import OpsIncident, PipelineRun
from kpisync.store.database import open_store
from tests.hubspot_truth import assert_store_equals_truth
from tests.test_unattended_kit import (
    GuardedWrite,
    OwnPostgres,
    guarded_writes,
    log_guarded_writes,
    own_postgres,
)

TOKEN = "pat-na1-exclusive-0123456789"
TOKEN_ENV = "KPISYNC_SOAK_TOKEN"
SOURCES = ("crm_a", "crm_b", "crm_c")
RUNS = PipelineRun.__table__  # type: ignore[attr-defined]
INCIDENTS = OpsIncident.__table__  # type: ignore[attr-defined]
FAULTS = Knobs(
    latency_seconds=0.015,
    rate_429=0.03,
    rate_5xx=0.03,
    rate_drop=0.015,
    rate_timeout=0.005,
    hang_seconds=2.0,
)
SOURCE_TABLES = {"accounts", "contacts", "deals", "activities", "sync_state"}


def settings_text(urls: dict[str, str], store_url: str, interval: float, lease: float) -> str:
    parts = [f'[kpisync]\nstore = "{store_url}"\n']
    for source, url in urls.items():
        parts.append(f"""
[sources.{source}]
type = "hubspot"
host = "{url}"
token_env = "{TOKEN_ENV}"
search_lag_seconds = 0
search_rate_per_second = 1000
fast_retries = true
timeout_seconds = 3
batch_records = 50
roles = {{ deal_type = "deal_category" }}

[sources.{source}.schedule]
interval_seconds = {interval}
""")
    parts.append(f"""
[scheduler]
stages = ["sync", "compute"]
lock_wait_seconds = 1
compute_lock_wait_seconds = 30
lease_seconds = {lease}
""")
    return "\n".join(parts)


def start_worker(settings: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "kpisync.cli", "--log-json", "run", "--settings", str(settings)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def edit_org(emulator: HubSpotEmulator, rng: random.Random) -> None:
    """A minute of users: 2% of every object touched, sometimes a deal archived or added."""
    emulator.knobs, saved = Knobs(), emulator.knobs
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


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        return Counter(
            dict(
                connection.execute(
                    select(RUNS.c.status, func.count()).group_by(RUNS.c.status)
                ).all()
            )
        )


def succeeded_since(engine: Engine, after: int) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                select(RUNS.c.source, func.count())
                .where(RUNS.c.id > after, RUNS.c.status == "succeeded")
                .group_by(RUNS.c.source)
            ).all()
        )


def overlaps(writes: list[GuardedWrite]) -> int:
    """Pairs of runs whose spans of writes intersect."""
    spans: dict[str, tuple[float, float]] = {}
    for w in writes:
        assert w.label is not None
        at = w.at.timestamp()
        first, last = spans.get(w.label, (at, at))
        spans[w.label] = (min(first, at), max(last, at))
    ordered = sorted(spans.values())
    return sum(
        1 for i, (_, end) in enumerate(ordered) for start, _ in ordered[i + 1 :] if start <= end
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_exclusivity_soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--deals", type=int, default=60)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between slots")
    parser.add_argument("--lease", type=float, default=5.0, help="scheduler.lease_seconds")
    parser.add_argument("--kill-every", type=float, default=45.0, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.environ[TOKEN_ENV] = TOKEN
    folder = Path(tempfile.mkdtemp(prefix="kpisync-exclusive-"))
    orgs = {
        source: generate_org(seed=args.seed + i, deals=args.deals)
        for i, source in enumerate(SOURCES)
    }
    with own_postgres() as server:
        engine = open_store(server.url)
        log_guarded_writes(engine)
        emulators = {
            s: HubSpotEmulator(orgs[s], access_token=TOKEN, search_rate_per_second=1000)
            for s in SOURCES
        }
        for emulator in emulators.values():
            emulator.__enter__()
        try:
            settings = folder / "settings.toml"
            settings.write_text(
                settings_text(
                    {s: e.base_url for s, e in emulators.items()},
                    server.url,
                    args.interval,
                    args.lease,
                ),
                "utf-8",
            )
            results = soak(args, rng, engine, server, emulators, settings, folder)
        finally:
            for emulator in emulators.values():
                emulator.__exit__(None, None, None)
        report(args, engine, results, orgs, emulators)
        engine.dispose()
    print(f"worker logs: {folder}")


def soak(
    args: argparse.Namespace,
    rng: random.Random,
    engine: Engine,
    server: OwnPostgres,
    emulators: dict[str, HubSpotEmulator],
    settings: Path,
    folder: Path,
) -> dict[str, object]:
    workers = [start_worker(settings, folder / f"worker{i}.log") for i in range(3)]
    print(
        f"soak: {args.minutes:g} min, 3 workers, sources {', '.join(SOURCES)}, a slot every "
        f"{args.interval:g} s, lease {args.lease:g} s; logs in {folder}",
        flush=True,
    )
    started = time.monotonic()
    end = started + args.minutes * 60
    restart_at = started + args.minutes * 30
    next_kill = started + rng.expovariate(1 / args.kill_every)
    next_edit = next_report = started
    kills, restarted = 0, None
    while time.monotonic() < end:
        now = time.monotonic()
        faulty = int((now - started) // 60) % 2 == 1
        for emulator in emulators.values():
            emulator.knobs = FAULTS if faulty else Knobs()
        if now >= next_edit:
            for emulator in emulators.values():
                edit_org(emulator, rng)
            next_edit = now + 60
        if now >= next_kill:
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = start_worker(settings, folder / f"worker{victim}.log")
            next_kill = now + rng.expovariate(1 / args.kill_every)
        if restarted is None and now >= restart_at:
            before = time.monotonic()
            server.restart()
            restarted = time.monotonic() - before
            print(f"  PostgreSQL restarted ({restarted:.1f} s down)", flush=True)
        if now >= next_report:
            print(
                f"  {(now - started) / 60:4.1f} min  kills {kills}  faults "
                f"{'on ' if faulty else 'off'}  runs {dict(statuses(engine))}",
                flush=True,
            )
            next_report = now + 60
        time.sleep(0.5)
    for emulator in emulators.values():
        emulator.knobs = Knobs()
    with engine.connect() as connection:
        last = connection.execute(select(func.max(RUNS.c.id))).scalar() or 0
    deadline = time.monotonic() + 300
    settled = False
    while time.monotonic() < deadline and not settled:
        done = succeeded_since(engine, last)
        settled = all(done.get(s, 0) >= 2 for s in SOURCES)
        time.sleep(1)
    codes = []
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        codes.append(worker.wait(120))
    return {"kills": kills, "restart": restarted, "settled": settled, "codes": codes}


def report(
    args: argparse.Namespace,
    engine: Engine,
    results: dict[str, object],
    orgs: dict[str, Org],
    emulators: dict[str, HubSpotEmulator],
) -> None:
    runs = statuses(engine)
    print(
        f"\nruns: {sum(runs.values())} — " + ", ".join(f"{k} {v}" for k, v in sorted(runs.items()))
    )
    print(
        f"SIGKILLs: {results['kills']}; PostgreSQL restarts: 1 ({results['restart']:.1f} s); "
        f"workers' exit codes on SIGTERM: {results['codes']}"
    )
    with engine.connect() as connection:
        source_of = {
            str(r.id): r.source for r in connection.execute(select(RUNS.c.id, RUNS.c.source))
        }
        incidents = Counter(
            r.source
            for r in connection.execute(
                select(INCIDENTS.c.source).where(INCIDENTS.c.kind == "store")
            )
        )
        lost = connection.execute(
            select(RUNS.c.source, RUNS.c.error).where(RUNS.c.status == "lost")
        ).all()
        logged = connection.execute(text("SELECT count(*) FROM guarded_writes")).scalar()
    writes = guarded_writes(engine)
    unfenced = [w for w in writes if w.label is None]
    by_source: dict[str, list[GuardedWrite]] = defaultdict(list)
    compute = []
    for w in writes:
        if w.label is None:
            continue
        if w.table in SOURCE_TABLES:
            by_source[source_of.get(w.label, "?")].append(w)
        elif w.table == "kpi_values":
            compute.append(w)
    found = {source: overlaps(ws) for source, ws in sorted(by_source.items())}
    print(f"guarded writes logged: {logged}; without a lease: {len(unfenced)}")
    for source in SOURCES:
        runs_writing = len({w.label for w in by_source[source]})
        print(
            f"  {source}: {len(by_source[source])} writes by {runs_writing} runs; "
            f"overlaps found: {found.get(source, 0)}"
        )
    print(
        f"  KPI computation: {len(compute)} writes by {len({w.label for w in compute})} runs; "
        f"overlaps found: {overlaps(compute)}"
    )
    print(f"overlaps found: {sum(found.values()) + overlaps(compute)}")
    print(f"store incidents per source: {dict(sorted(incidents.items()))} (1 restart)")
    for source, error in lost[:6]:
        print(f"  lost ({source}): {error}")
    print(f"final clean runs: {'yes' if results['settled'] else 'NO'}")
    for source in SOURCES:
        try:
            assert_store_equals_truth(engine, source, emulators[source].dump(), orgs[source])
            print(f"  {source}: store equals the CRM's truth")
        except AssertionError as error:
            print(f"  {source}: STORE DIFFERS from the CRM: {error}")


if __name__ == "__main__":
    main()
