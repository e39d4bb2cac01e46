"""Salesforce sync benchmark: Bulk API 2.0 first sync, REST first sync, incremental REST sync.

    python benchmarks/salesforce_benchmark.py [--deals 10000] [--latency 0.02] [--backend sqlite]

For each size the emulator runs in its own process (its memory is not counted; started by this
script with --serve). Three runs, each into its own fresh store (a SQLite file, or a database on
a PostgreSQL server with --backend postgres) except the incremental:
a first sync through Bulk API 2.0 query jobs (every object above 0 records), a first sync by
REST queryAll pages, then 1% of every object is touched in the emulator and an incremental REST
sync runs on the REST store. Printed per run: wall time, rows/s, local overhead as a share of
wall time, peak resident memory (sampled after every page; benchmarks/resident_memory.py), and
per object the API calls made against the lower bound:
- REST: ceil(records / 2000); Opportunity also pays the OpportunityHistory rows it must read / 2000
  and its owner changes (OpportunityFieldHistory, Field = 'Owner') / 2000, at least 1 each: every
  opportunity's on a first sync, the changed opportunities' on an incremental.
- Bulk: per job 1 create + 1 poll + ceil(rows / maxRecords); Opportunity runs three jobs (itself,
  OpportunityHistory, OpportunityFieldHistory).
Local overhead is given two ways: wall time not spent waiting on the emulator's fixed latency
(calls x latency), and wall time beyond the reader's whole wait on the CRM (latency plus the
emulator's own work, and the sleeps between polls of a Bulk job that is still running), which is
how benchmarks/hubspot_sync.py reports it. Setup calls (login, limits, describe, record counts)
are shown apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kpisync.config import parse_settings
from kpisync.connector import Page
from kpisync.registry import build_connector
from kpisync.sync import SyncOptions, sync_source

from resident_memory import PeakResident  # benchmarks/ is on the path when run as a script
from results import keep_output, latency, size  # benchmarks/, on the path as a script
from stores import BACKENDS, throwaway_store

PAGE = 2000
BULK_PAGE = 10_000
POLLS = 2  # the emulator's jobs complete on the second poll (bulk_polls_until_complete = 1)
PRIMARY = {
    "User": "user",
    "OpportunityStage": "pipeline_stage",
    "Account": "account",
    "Contact": "contact",
    "Lead": "lead",
    "Opportunity": "deal",
    "OpportunityLineItem": "line_item",
    "Task": "activity",
    "Event": "activity",
    "NPS_Response__c": "survey_response",
}
FULL_READS = ("User", "OpportunityStage")  # small objects read whole each run, not incrementally
WHOLE_EACH_RUN = ("ConversionRate", "ForecastingQuota")  # connectors.salesforce.finance


@dataclass
class Figures:
    label: str
    latency: float = 0.0
    wall: float = 0.0
    waiting: float = 0.0
    cpu: float = 0.0  # this process's CPU time (all threads) during the sync
    peak_mb: float = 0.0
    growth_mb: float = 0.0
    rows: int = 0
    calls: Counter[str] = field(default_factory=Counter)  # per stream
    records: Counter[str] = field(default_factory=Counter)  # primary records per stream
    history: int = 0
    total_calls: int = 0


def serve(args: argparse.Namespace) -> None:
    from emulators.org.generate import generate_org
    from emulators.salesforce.emulator import SalesforceEmulator, SalesforceKnobs

    org = generate_org(seed=7, deals=args.deals, activities_per_deal=args.activities_per_deal)
    emulator = SalesforceEmulator(
        org, knobs=SalesforceKnobs(latency_seconds=args.latency, daily_api_limit=10**9)
    )
    with emulator:
        login = emulator.login
        print(
            json.dumps(
                {
                    "base_url": emulator.base_url,
                    "ca": str(emulator.ca_path),
                    "username": login.username,
                    "password": login.password,
                    "token": login.security_token,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            command = line.strip().split()
            if not command or command[0] == "quit":
                break
            if command[0] == "change":
                print(json.dumps(touch_fraction(emulator, float(command[1]))), flush=True)
            if command[0] == "counts":
                print(json.dumps(history_counts(emulator)), flush=True)
            if command[0] == "counts-changed":  # the history of opportunities touched by "change"
                print(json.dumps(history_counts(emulator, set(emulator.touched))), flush=True)


def history_counts(emulator: Any, of: set[str] | None = None) -> dict[str, int]:
    """Rows the Opportunity stream's history reads can return (of the opportunities `of`, else of
    all): stage rows, owner-change rows."""
    truth = emulator.dump()

    def counted(row: dict[str, Any]) -> bool:
        return not row["IsDeleted"] and (of is None or row["OpportunityId"] in of)

    owner = sum(
        1
        for r in truth.get("OpportunityFieldHistory", {}).values()
        if r["Field"] == "Owner" and counted(r)
    )
    return {
        "stage_rows": sum(1 for r in truth["OpportunityHistory"].values() if counted(r)),
        "owner_rows": owner,
    }


def touch_fraction(emulator: Any, fraction: float) -> dict[str, int]:
    """Touch every n-th record of each incremental object, as users editing would."""
    changed = {}
    step = max(1, round(1 / fraction))
    for sobject, name in (
        ("Account", "Name"),
        ("Contact", "Title"),
        ("Lead", "Company"),
        ("Opportunity", "Name"),
        ("Task", "Subject"),
        ("Event", "Subject"),
    ):
        ids = sorted(emulator.live(sobject))[::step]
        if sobject == "Opportunity":
            emulator.touched = ids
        for rid in ids:
            emulator.update_record(sobject, rid, {name: emulator.store.truth[sobject][rid][name]})
        changed[sobject] = len(ids)
    return changed


def start_emulator(
    args: argparse.Namespace, deals: int
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--deals",
            str(deals),
            "--latency",
            str(args.latency),
            "--activities-per-deal",
            str(args.activities_per_deal),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    os.environ["KPISYNC_BENCH_SF_PASSWORD"] = ready["password"]
    os.environ["KPISYNC_BENCH_SF_TOKEN"] = ready["token"]
    return process, ready


def run_sync(
    label: str, engine: Any, ready: dict[str, str], latency: float, **options: Any
) -> Figures:
    settings = parse_settings(
        {
            "sources": {
                "bench": {
                    "type": "salesforce",
                    "login_url": ready["base_url"],
                    "ca_bundle": ready["ca"],
                    "username": ready["username"],
                    "password_env": "KPISYNC_BENCH_SF_PASSWORD",
                    "security_token_env": "KPISYNC_BENCH_SF_TOKEN",
                    "lag_seconds": 0,
                    "bulk_poll_seconds": 0.2,
                    "min_api_remaining": 0,
                    **options,
                }
            }
        }
    )
    connector = build_connector(settings.source("bench"))
    figures = Figures(label, latency)
    memory = PeakResident()

    def count(page: Page) -> None:
        memory.sample()
        figures.calls[page.stream] += page.api_calls
        for record in page.records:
            if record.entity == PRIMARY[page.stream]:
                figures.records[page.stream] += 1
            elif record.entity == "deal_stage_change":
                figures.history += 1

    started, cpu_before = time.perf_counter(), time.process_time()
    result = sync_source(
        engine, "bench", connector, SyncOptions(purge_check_every=None, on_page=count)
    )
    figures.wall = time.perf_counter() - started
    figures.cpu = time.process_time() - cpu_before
    memory.sample()
    figures.peak_mb, figures.growth_mb = memory.peak / 2**20, memory.growth / 2**20
    figures.waiting = connector.client.seconds_waiting  # type: ignore[attr-defined]
    figures.rows = result.upserted
    figures.total_calls = sum(v for k, v in result.api_calls.items() if not k.startswith("limit:"))
    connector.close()
    return figures


def bound(stream: str, records: int, history: dict[str, int], bulk: bool) -> int:
    if stream in FULL_READS:
        return 2 if stream == "User" else 0  # users and their roles; stages are read in setup
    if stream in WHOLE_EACH_RUN:  # small objects read whole; absent ones cost only a describe
        return math.ceil(records / PAGE)
    if bulk:
        jobs = [records]
        if stream == "Opportunity":
            jobs += [history["stage_rows"], history["owner_rows"]]
        return sum(1 + POLLS + max(1, math.ceil(rows / BULK_PAGE)) for rows in jobs)
    calls = max(1, math.ceil(records / PAGE))
    if stream == "Opportunity" and records:
        calls += max(1, math.ceil(history["stage_rows"] / PAGE))
        calls += max(1, math.ceil(history["owner_rows"] / PAGE))
    return calls


def print_figures(f: Figures, history: dict[str, int], bulk: bool) -> None:
    fixed = f.total_calls * f.latency
    beyond_latency = f.wall - fixed
    beyond_http = f.wall - f.waiting
    print(
        f"\n== {f.label}: {f.rows} rows in {f.wall:.1f} s ({f.rows / f.wall:,.0f} rows/s); "
        f"{f.total_calls} calls x {f.latency * 1000:.0f} ms = {fixed:.1f} s of fixed latency"
    )
    print(
        f"   local overhead: {beyond_latency:.1f} s beyond the fixed latency "
        f"({100 * beyond_latency / f.wall:.0f}% of wall); {beyond_http:.1f} s beyond the "
        f"reader's whole wait on the CRM of {f.waiting:.1f} s ({100 * beyond_http / f.wall:.0f}% of "
        "wall)"
    )
    print(
        f"   CPU time of the syncing process: {f.cpu:.1f} s ({100 * f.cpu / f.wall:.0f}% of "
        "wall; near 100% means the sync is bound by its own work, not by the CRM)"
    )
    print(
        f"   peak resident memory {f.peak_mb:.1f} MiB (grew {f.growth_mb:.1f} MiB during the sync)"
    )
    print(f"{'object':22} {'records':>8} {'calls':>6} {'bound':>6} {'ratio':>6}")
    calls_sum = bounds_sum = 0
    for stream, calls in f.calls.items():
        records = f.records[stream]
        b = bound(stream, records, history, bulk and stream not in FULL_READS)
        if b:  # calls with no bound (describes, stages) are counted as setup below
            calls_sum, bounds_sum = calls_sum + calls, bounds_sum + b
        ratio = f"{calls / b:>6.2f}" if b else " setup"
        print(f"{stream:22} {records:>8} {calls:>6} {b:>6} {ratio}")
    if f.history:
        print(f"{'(stage changes)':22} {f.history:>8}")
    setup = f.total_calls - calls_sum
    print(f"{'setup (login, limits, describe, counts)':40} {setup:>6}")
    print(
        f"{'all objects':22} {sum(f.records.values()):>8} {calls_sum:>6} {bounds_sum:>6} "
        f"{calls_sum / max(1, bounds_sum):>6.2f}"
    )


def ask(process: subprocess.Popen[str], command: str) -> Any:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(command + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def bench(args: argparse.Namespace, deals: int) -> None:
    process, ready = start_emulator(args, deals)
    latency = args.latency
    try:
        history = ask(process, "counts")
        print(f"\n(history rows in the emulator: {history}; store: {args.backend})")
        if "bulk" in args.runs:
            with throwaway_store(args.backend) as bulk_store:
                print_figures(
                    run_sync(
                        f"{deals} deals: Bulk API 2.0 first sync",
                        bulk_store,
                        ready,
                        latency,
                        bulk_above_records=0,
                        bulk_page_records=BULK_PAGE,
                    ),
                    history,
                    bulk=True,
                )
        if "rest" in args.runs:
            with throwaway_store(args.backend) as rest_store:
                print_figures(
                    run_sync(
                        f"{deals} deals: REST first sync",
                        rest_store,
                        ready,
                        latency,
                        bulk_above_records=10**9,
                    ),
                    history,
                    bulk=False,
                )
                changed = ask(process, "change 0.01")
                print(f"\n(changed in the emulator: {changed})")
                touched = ask(process, "counts-changed")  # an incremental reads their history
                print(f"(their history rows: {touched})")
                print_figures(
                    run_sync(
                        f"{deals} deals: incremental REST sync, 1% changed",
                        rest_store,
                        ready,
                        latency,
                        bulk_above_records=10**9,
                    ),
                    touched,
                    bulk=False,
                )
    finally:
        if process.stdin is not None:
            process.stdin.write("quit\n")
            process.stdin.close()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/salesforce_benchmark.py")
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000])
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["bulk", "rest"],
        choices=["bulk", "rest"],
        help="bulk: the Bulk API 2.0 first sync; rest: the REST first sync, then an incremental",
    )
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every call")
    parser.add_argument("--activities-per-deal", type=float, default=1.0)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sqlite",
        help="the store: a SQLite file, or a fresh database on the PostgreSQL "
        "server in KPISYNC_BENCH_POSTGRES_URL",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/out/<what it measures>.txt"
    )
    args = parser.parse_args()
    if args.serve:
        serve(argparse.Namespace(**{**vars(args), "deals": args.deals[0]}))
        return
    keep_output(
        args.save,
        "salesforce",
        *map(size, args.deals),
        *args.runs,
        args.backend,
        latency(args.latency),
    )
    for deals in args.deals:
        bench(args, deals)


if __name__ == "__main__":
    main()
