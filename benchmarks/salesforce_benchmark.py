"""Salesforce sync benchmark: Bulk API 2.0 first sync, REST first sync, incremental REST sync.

    python benchmarks/salesforce_benchmark.py [--deals 10000 50000] [--latency 0.02]

For each size the emulator runs in its own process (its memory is not counted; started by this
script with --serve). Three runs, each into its own fresh SQLite store except the incremental:
a first sync through Bulk API 2.0 query jobs (every object above 0 records), a first sync by
REST queryAll pages, then 1% of every object is touched in the emulator and an incremental REST
sync runs on the REST store. Printed per run: wall time, rows/s, time waiting on HTTP vs local
work, peak traced memory, and per object the API calls made against the lower bound:
REST ceil(records / 2000) (Opportunity also pays its OpportunityHistory rows / 2000),
Bulk 1 create + 1 poll + ceil(records / maxRecords). Setup calls (login, limits, describe,
record counts) are shown apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kpisync.config import parse_settings
from kpisync.connector import Page
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source

PAGE = 2000
BULK_PAGE = 10_000
PRIMARY = {"User": "user", "OpportunityStage": "pipeline_stage", "Account": "account",
           "Contact": "contact", "Lead": "lead", "Opportunity": "deal",
           "OpportunityLineItem": "line_item", "Task": "activity", "Event": "activity",
           "NPS_Response__c": "survey_response"}
FULL_READS = ("User", "OpportunityStage")  # small objects read whole each run, not incrementally


@dataclass
class Figures:
    label: str
    wall: float = 0.0
    waiting: float = 0.0
    peak_mb: float = 0.0
    rows: int = 0
    calls: Counter[str] = field(default_factory=Counter)  # per stream
    records: Counter[str] = field(default_factory=Counter)  # primary records per stream
    history: int = 0
    total_calls: int = 0


def serve(args: argparse.Namespace) -> None:
    from kpisync.sandbox.orggen import generate_org
    from kpisync.sandbox.salesforce import SalesforceEmulator, SalesforceKnobs

    org = generate_org(seed=7, deals=args.deals, activities_per_deal=args.activities_per_deal)
    emulator = SalesforceEmulator(org, knobs=SalesforceKnobs(latency_seconds=args.latency,
                                                            daily_api_limit=10**9))
    with emulator:
        login = emulator.login
        print(json.dumps({"base_url": emulator.base_url, "ca": str(emulator.ca_path),
                          "username": login.username, "password": login.password,
                          "token": login.security_token}), flush=True)
        for line in sys.stdin:
            command = line.strip().split()
            if not command or command[0] == "quit":
                break
            if command[0] == "change":
                print(json.dumps(touch_fraction(emulator, float(command[1]))), flush=True)


def touch_fraction(emulator: Any, fraction: float) -> dict[str, int]:
    """Touch every n-th record of each incremental object, as users editing would."""
    changed = {}
    step = max(1, round(1 / fraction))
    for sobject, name in (("Account", "Name"), ("Contact", "Title"), ("Lead", "Company"),
                          ("Opportunity", "Name"), ("Task", "Subject"), ("Event", "Subject")):
        ids = sorted(emulator.live(sobject))[::step]
        for rid in ids:
            emulator.update_record(sobject, rid, {name: emulator.store.truth[sobject][rid][name]})
        changed[sobject] = len(ids)
    return changed


def start_emulator(args: argparse.Namespace, deals: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--deals", str(deals), "--latency",
         str(args.latency), "--activities-per-deal", str(args.activities_per_deal)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    os.environ["KPISYNC_BENCH_SF_PASSWORD"] = ready["password"]
    os.environ["KPISYNC_BENCH_SF_TOKEN"] = ready["token"]
    return process, ready


def run_sync(label: str, engine: Any, ready: dict[str, str], **options: Any) -> Figures:
    settings = parse_settings({"sources": {"bench": {
        "type": "salesforce", "login_url": ready["base_url"], "ca_bundle": ready["ca"],
        "username": ready["username"], "password_env": "KPISYNC_BENCH_SF_PASSWORD",
        "security_token_env": "KPISYNC_BENCH_SF_TOKEN", "lag_seconds": 0,
        "bulk_poll_seconds": 0.2, "min_api_remaining": 0, **options}}})
    connector = build_connector(settings.source("bench"))
    figures = Figures(label)

    def count(page: Page) -> None:
        figures.calls[page.stream] += page.api_calls
        for record in page.records:
            if record.entity == PRIMARY[page.stream]:
                figures.records[page.stream] += 1
            elif record.entity == "deal_stage_change":
                figures.history += 1

    tracemalloc.start()
    started = time.perf_counter()
    result = sync_source(engine, "bench", connector, SyncOptions(purge_check_every=None,
                                                                 on_page=count))
    figures.wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    figures.peak_mb = peak / 2**20
    figures.waiting = connector.client.seconds_waiting  # type: ignore[attr-defined]
    figures.rows = result.upserted
    figures.total_calls = sum(v for k, v in result.api_calls.items() if not k.startswith("limit:"))
    connector.close()
    return figures


def bound(stream: str, records: int, history: int, bulk: bool) -> int:
    if stream in FULL_READS:
        return 2 if stream == "User" else 1  # users and their roles
    if bulk:
        return 2 + max(1, math.ceil(records / BULK_PAGE))
    extra = math.ceil(history / PAGE) if stream == "Opportunity" else 0
    return max(1, math.ceil(records / PAGE)) + extra


def print_figures(f: Figures, bulk: bool) -> None:
    local = f.wall - f.waiting
    print(f"\n== {f.label}: {f.rows} rows in {f.wall:.1f} s ({f.rows / f.wall:,.0f} rows/s); "
          f"waiting on HTTP {f.waiting:.1f} s, local work {local:.1f} s "
          f"({100 * local / f.wall:.0f}% of wall); peak traced memory {f.peak_mb:.1f} MiB")
    print(f"{'object':22} {'records':>8} {'calls':>6} {'bound':>6} {'ratio':>6}")
    calls_sum = bounds_sum = 0
    for stream, calls in f.calls.items():
        records = f.records[stream]
        b = bound(stream, records, f.history, bulk and stream not in FULL_READS)
        calls_sum, bounds_sum = calls_sum + calls, bounds_sum + b
        print(f"{stream:22} {records:>8} {calls:>6} {b:>6} {calls / b:>6.2f}")
    if f.history:
        print(f"{'(stage changes)':22} {f.history:>8}")
    setup = f.total_calls - calls_sum
    print(f"{'setup (login, limits, describe, counts)':40} {setup:>6}")
    print(f"{'all objects':22} {sum(f.records.values()):>8} {calls_sum:>6} {bounds_sum:>6} "
          f"{calls_sum / max(1, bounds_sum):>6.2f}")


def bench(args: argparse.Namespace, deals: int) -> None:
    process, ready = start_emulator(args, deals)
    folder = tempfile.mkdtemp(prefix="kpisync-sf-bench-")
    try:
        bulk_store = open_store(f"sqlite:///{folder}/bulk.db")
        figures = run_sync(f"{deals} deals: Bulk API 2.0 first sync", bulk_store, ready,
                           bulk_above_records=0, bulk_page_records=BULK_PAGE)
        print_figures(figures, bulk=True)
        rest_store = open_store(f"sqlite:///{folder}/rest.db")
        print_figures(run_sync(f"{deals} deals: REST first sync", rest_store, ready,
                               bulk_above_records=10**9), bulk=False)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("change 0.01\n")
        process.stdin.flush()
        changed = json.loads(process.stdout.readline())
        print(f"\n(changed in the emulator: {changed})")
        print_figures(run_sync(f"{deals} deals: incremental REST sync, 1% changed", rest_store,
                               ready, bulk_above_records=10**9), bulk=False)
    finally:
        if process.stdin is not None:
            process.stdin.write("quit\n")
            process.stdin.close()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/salesforce_benchmark.py")
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every call")
    parser.add_argument("--activities-per-deal", type=float, default=1.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(argparse.Namespace(**{**vars(args), "deals": args.deals[0]}))
        return
    for deals in args.deals:
        bench(args, deals)


if __name__ == "__main__":
    main()
