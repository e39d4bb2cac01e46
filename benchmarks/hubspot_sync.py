"""HubSpot sync benchmark: API calls against the lower bound, records/s, overhead, peak memory.

    python benchmarks/hubspot_sync.py [--deals 10000 100000] [--latency 0.02]

For each size: the emulator runs in its own process (so its memory is not counted), a full sync
runs into a fresh SQLite store, then 1% of every object type is changed and an incremental sync
runs. Printed per run: wall time, records/s, time waiting on HTTP vs local work, peak traced
memory, and per endpoint the calls made against that endpoint's lower bound (records ÷ the
largest page it allows). The emulator's request budgets are lifted so the figures measure
kpisync, not HubSpot's limits; the real search limit (5/s) alone puts a floor of N/1000 s.
Line items are one more searched object: per run they add a properties call, ⌈N/200⌉ searches
(at least 1), one line_items->deals association read per 1,000 changed line items, and the
archived listing (⌈A/100⌉, at least 1); every endpoint's bound below already counts them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from kpisync.config import parse_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.store.models import User
from kpisync.sync import SyncOptions, sync_source

from resident_memory import resident_bytes  # benchmarks/ is on the path when run as a script
from results import keep_output, latency, size  # benchmarks/, on the path as a script

PAGE_LIMITS = {"search": 200, "batch/read": 100, "associations": 1000, "list": 100}


@dataclass
class Figures:
    label: str
    wall: float
    waiting: float
    peak_mb: float
    rows: int
    calls: Counter[str]


def start_emulator(deals: int, latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("hubspot_process.py")),
            "hubspot",
            "--deals",
            str(deals),
            "--activities-per-deal",
            "1",
            "--latency",
            str(latency),
            "--search-rate",
            "100000",
            "--ten-secondly",
            "100000000",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    os.environ["KPISYNC_BENCH_TOKEN"] = ready["token"]
    return process, ready["base_url"]


def run_sync(label: str, engine, base_url: str) -> Figures:  # type: ignore[no-untyped-def]
    settings = parse_settings(
        {
            "sources": {
                "bench": {
                    "type": "hubspot",
                    "host": base_url,
                    "token_env": "KPISYNC_BENCH_TOKEN",
                    "search_lag_seconds": 0,
                    "search_rate_per_second": 100000,
                }
            }
        }
    )
    connector = build_connector(settings.source("bench"))
    baseline = resident_bytes()
    peak = baseline

    def sample(_page: object) -> None:
        nonlocal peak
        peak = max(peak, resident_bytes())

    started = time.perf_counter()
    result = sync_source(
        engine, "bench", connector, SyncOptions(purge_check_every=None, on_page=sample)
    )
    wall = time.perf_counter() - started
    connector.close()
    return Figures(
        label,
        wall,
        connector.client.seconds_waiting,
        (peak - baseline) / 2**20,
        result.upserted,
        Counter(result.api_calls),
    )


def print_figures(figures: Figures, records: dict[str, int]) -> None:
    local = figures.wall - figures.waiting
    print(
        f"\n== {figures.label}: {figures.rows} rows in {figures.wall:.1f} s "
        f"({figures.rows / figures.wall:,.0f} rows/s); waiting on HTTP {figures.waiting:.1f} s, "
        f"local work {local:.1f} s ({100 * local / figures.wall:.0f}% of wall); "
        f"resident memory grew by at most {figures.peak_mb:.1f} MiB during the sync"
    )
    print(
        f"{'object':22} {'records':>8} {'calls':>6} {'bound':>6} {'ratio':>6} {'floor':>6} "
        f"{'ratio':>6}   (bound = records / 200, the search page; floor = the fewest calls "
        f"HubSpot's API allows: every endpoint at its own largest page, history reads left out; "
        f"calls = every endpoint for the object)"
    )
    by_object: Counter[str] = Counter()
    floor: Counter[str] = Counter()
    for endpoint, calls in figures.calls.items():
        by_object[object_of(endpoint)] += calls
        if not is_history_read(endpoint):
            floor[object_of(endpoint)] += lower_bound(endpoint, records)
    for name, calls in sorted(by_object.items()):
        bound = max(1, math.ceil(records.get(name, 0) / PAGE_LIMITS["search"]))
        least = max(1, floor[name])
        print(
            f"{name:22} {records.get(name, 0):8d} {calls:6d} {bound:6d} {calls / bound:6.2f} "
            f"{least:6d} {calls / least:6.2f}"
        )
    print(
        f"{'endpoint':58} {'calls':>6} {'bound':>6} {'ratio':>6}   (bound = records / that endpoint's page)"
    )
    total_calls = total_bound = 0
    for endpoint, calls in sorted(figures.calls.items()):
        bound = lower_bound(endpoint, records)
        total_calls += calls
        total_bound += bound
        print(f"{endpoint:58} {calls:6d} {bound:6d} {calls / bound:6.2f}")
    print(
        f"{'all endpoints':58} {total_calls:6d} {total_bound:6d} {total_calls / max(total_bound, 1):6.2f}"
    )
    print(
        "(deals/batch/read reads stage and owner history only for deals whose calculated stage "
        "properties cannot prove their path or whose owner was assigned after close; its bound "
        "is every changed deal / 100, the figure before that)"
    )


def is_history_read(endpoint: str) -> bool:
    return endpoint.endswith("/batch/read") and "/crm/v3/objects/" in endpoint


def object_of(endpoint: str) -> str:
    segments = endpoint.split()[-1].strip("/").split("/")
    if segments[:3] == ["crm", "v3", "objects"] or segments[:3] == ["crm", "v3", "properties"]:
        return segments[3]
    if segments[:3] == ["crm", "v4", "associations"]:
        return USED_BY.get((segments[3], segments[4]), segments[3])
    return "setup (" + "/".join(segments[2:4]) + ")"


# The contact->company association read serves survey answers (their respondent's company).
USED_BY = {("contacts", "companies"): "feedback_submissions"}


def lower_bound(endpoint: str, changed: dict[str, int]) -> int:
    """The fewest calls that can move `changed` records through this endpoint (at least 1)."""
    parts = endpoint.split()
    path = parts[1] if len(parts) > 1 else ""
    segments = path.strip("/").split("/")
    if path.endswith("/search"):
        return max(1, math.ceil(changed.get(segments[3], 0) / PAGE_LIMITS["search"]))
    if path.endswith("/batch/read") and "associations" in path:
        users = changed.get(object_of(endpoint), 0)
        return max(1, math.ceil(users / PAGE_LIMITS["associations"]))
    if path == "/crm/v3/owners":  # every owner, then the archived ones: HubSpot lists them apart
        return math.ceil(changed.get("owners", 0) / PAGE_LIMITS["list"]) + 1
    if path.endswith("/batch/read"):
        return max(1, math.ceil(changed.get(segments[3], 0) / PAGE_LIMITS["batch/read"]))
    return 1  # setup calls: properties, pipelines, owners, the archived listing


def owners_in(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(User)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per API call")
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/out/<what it measures>.txt"
    )
    args = parser.parse_args()
    keep_output(args.save, "hubspot", *map(size, args.deals), latency(args.latency))
    for deals in args.deals:
        emulator, base_url = start_emulator(deals, args.latency)
        folder = tempfile.mkdtemp(prefix="kpisync-bench-")
        engine = open_store(f"sqlite:///{folder}/store.db")
        try:
            assert emulator.stdin is not None and emulator.stdout is not None
            full = run_sync(f"{deals:,} deals, full sync", engine, base_url)
            emulator.stdin.write("counts\n")
            emulator.stdin.flush()
            owners = {"owners": owners_in(engine)}  # listed in full every run
            print_figures(full, {**json.loads(emulator.stdout.readline()), **owners})
            emulator.stdin.write("change 0.01\n")
            emulator.stdin.flush()
            changed = {**json.loads(emulator.stdout.readline())["changed"], **owners}
            time.sleep(0.01)
            incremental = run_sync(
                f"{deals:,} deals, incremental with 1% changed", engine, base_url
            )
            print_figures(incremental, changed)
        finally:
            if emulator.stdin:
                emulator.stdin.close()
            emulator.wait(timeout=60)
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
