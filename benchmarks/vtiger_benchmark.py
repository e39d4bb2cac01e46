"""Vtiger sync benchmark: calls against the lower bound (crm-api-facts 4), records/s, peak memory.

    python benchmarks/vtiger_benchmark.py [--deals 10000 100000] [--latency 0.02]
                                           [--modes sync query]

For each size and server behaviour (`sync` working, or stock 8.2 where every module is read by
query): the emulator runs in a child process (its memory is not counted), a full sync runs into a
fresh SQLite store, then 1% of every module's records are changed (50 edits share each second of
modifiedtime, so query pages end inside ties, as after a mass update) and an incremental sync runs.
Printed per run: wall time, records/s, time waiting on HTTP vs local work (and the connector's
share of it: mapping wire records to rows, timed apart), the sync process's peak
RSS (getrusage: a high-water mark over the process, so the incremental run shows the full run's;
the emulator's memory is not in it; tracemalloc is not used because it slows the run many-fold), and
per module the data calls (sync or query) against the lower bound: ceil(N/100) for sync (its last
page says more=false), ceil(N/100) + 1 for query (the short last page ends it). Setup calls
(getchallenge, login, listtypes, one describe per module, the users query, the mode probe's
count) are shown apart. In query mode, where no response tells of deletes, each module also makes
one `count(*)` a run to notice them (connectors/vtiger/deletecount.py): shown apart, and against
a bound of one such call (some call must ask; VTQL counts one module at a time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from connectors.vtiger import reads
from connectors.vtiger.client import VtigerClient
from connectors.vtiger.reads import ModuleReader
from kpisync.config import parse_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source

from resident_memory import PeakResident  # benchmarks/ is on the path when run as a script
from results import keep_output, latency, size  # benchmarks/, on the path as a script

MODULES = ("Accounts", "Contacts", "Leads", "Potentials", "Calendar", "Events")
SHAPE = {
    "accounts_per_deal": 0.1,
    "contacts_per_deal": 0.2,
    "leads_per_deal": 0.2,
    "activities_per_deal": 0.5,
}


SAME_SECOND = 50  # edits stamped with one modifiedtime; a mass update would share one second


def serve(deals: int, latency: float, sync_works: bool) -> None:
    """Child process: serve an org; on stdin 'change F' revise a share F of every module."""
    from emulators.org.generate import generate_org
    from emulators.vtiger.emulator import ADMIN_KEY, VtigerEmulator

    org = generate_org(seed=3, deals=deals, **SHAPE)  # type: ignore[arg-type]
    emulator = VtigerEmulator(org, sync_works=sync_works)
    url = emulator.start()
    emulator.knobs.latency_seconds = latency
    live = {m: sum(1 for e in emulator.store.truth[m].values() if e.live) for m in MODULES}
    rows = {m: len(emulator.store.truth[m]) for m in MODULES}  # sync also reports converted leads
    print(json.dumps({"url": url, "key": ADMIN_KEY, "live": live, "all": rows}), flush=True)
    rng = random.Random(1)
    for line in sys.stdin:
        share = float(line.split()[1])
        changed = {}
        for module in MODULES:
            ids = sorted(e.ws_id for e in emulator.store.truth[module].values() if e.live)
            picked = rng.sample(ids, max(1, int(len(ids) * share)))
            for n, ws_id in enumerate(picked):
                if n and n % SAME_SECOND == 0:  # spread edits over seconds, as a day's work is
                    time.sleep(1.0 - time.time() % 1.0)
                field = {"Potentials": "amount"}.get(
                    module,
                    "cf_853"
                    if module == "Accounts"
                    else "phone"
                    if module != "Calendar" and module != "Events"
                    else "subject",
                )
                emulator.update_record(
                    module,
                    ws_id,
                    {field: "4242" if field == "amount" else f"bench {rng.random():.6f}"},
                )
            changed[module] = len(picked)
        print(json.dumps(changed), flush=True)


def timed(owner: type, method: str) -> list[float]:
    """Wrap `owner.method` so every call adds its seconds to the returned one-item list."""
    spent = [0.0]
    original = getattr(owner, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(owner, method, wrapper)
    return spent


def counted_settles() -> Counter[str]:
    """Count, per module, the delete checks (one `count(*)` each) the reader settles a run with."""
    calls: Counter[str] = Counter()
    original = reads.settle

    def wrapper(count: Any, module: str, *args: Any, **kwargs: Any) -> Any:
        calls[module] += 1
        return original(count, module, *args, **kwargs)

    reads.settle = wrapper
    return calls


def run(
    label: str,
    engine: Any,
    url: str,
    waiting: list[float],
    mapping: list[float],
    delete_checks: Counter[str],
    counts: dict[str, int],
    mode: str,
) -> None:
    os.environ["KPISYNC_BENCH_VTIGER_KEY"] = os.environ["KPISYNC_BENCH_KEY"]
    settings = parse_settings(
        {
            "sources": {
                "bench": {
                    "type": "vtiger",
                    "url": url,
                    "access_key_env": "KPISYNC_BENCH_VTIGER_KEY",
                }
            }
        }
    )
    connector = build_connector(settings.source("bench"))
    per_stream: Counter[str] = Counter()
    memory = PeakResident()

    def on_page(page: Any) -> None:
        per_stream.update({page.stream: page.api_calls})
        memory.sample()

    waiting[0] = mapping[0] = 0.0
    delete_checks.clear()
    started = time.perf_counter()
    result = sync_source(
        engine, "bench", connector, SyncOptions(purge_check_every=None, on_page=on_page)
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = sum(counts.values())
    print(
        f"\n{label}: {rows} records in {wall:.1f} s = {rows / wall:,.0f} records/s; "
        f"HTTP wait {waiting[0]:.1f} s, local {wall - waiting[0]:.1f} s "
        f"({100 * (wall - waiting[0]) / wall:.0f}%); peak RSS so far {peak / 2**20:.0f} MiB, "
        f"grew {(memory.peak - memory.baseline) / 2**20:.1f} MiB during this sync"
    )
    print(
        f"  connector mapping (reader thread) {mapping[0]:.2f} s "
        f"({100 * mapping[0] / wall:.0f}% of wall)"
    )
    print(f"  all calls by operation: {dict(result.api_calls)}")
    for module in MODULES:
        n = counts[module]
        bound = max(1, math.ceil(n / 100) + (1 if mode == "query" else 0))
        checks = delete_checks[module]
        reads = per_stream[module.lower()] - checks
        line = (
            f"  {module:<11} {n:>7} records  data calls {reads:>5}  lower bound {bound:>5}  "
            f"ratio {reads / bound:.2f}"
        )
        if mode == "query":
            line += (
                f"   + {checks} delete-check count: {reads + checks} calls against "
                f"{bound + 1}, ratio {(reads + checks) / (bound + 1):.2f}"
            )
        print(line)
    connector.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--modes", nargs="+", default=["sync", "query"], choices=["sync", "query"])
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/out/<what it measures>.txt"
    )
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), float(args.serve[1]), args.serve[2] == "sync")
        return
    keep_output(args.save, "vtiger", *map(size, args.deals), *args.modes, latency(args.latency))
    # HTTP wait (every webservice call) and the connector's own mapping of wire records to rows
    waiting, mapping = timed(VtigerClient, "send"), timed(ModuleReader, "map_records")
    delete_checks = counted_settles()
    for deals in args.deals:
        for mode in args.modes:
            child = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(deals), str(args.latency), mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdin is not None and child.stdout is not None
            ready = json.loads(child.stdout.readline())
            os.environ["KPISYNC_BENCH_KEY"] = ready["key"]
            with tempfile.TemporaryDirectory() as folder:
                engine = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
                title = (
                    f"{deals:,} deals, {'sync works' if mode == 'sync' else 'stock 8.2 (query)'}"
                )
                run(
                    f"FULL {title}, latency {args.latency * 1000:.0f} ms",
                    engine,
                    ready["url"],
                    waiting,
                    mapping,
                    delete_checks,
                    ready["all" if mode == "sync" else "live"],
                    mode,
                )
                child.stdin.write("change 0.01\n")
                child.stdin.flush()
                changed = json.loads(child.stdout.readline())
                time.sleep(1.1)
                run(
                    f"INCREMENTAL 1% changed, {title}",
                    engine,
                    ready["url"],
                    waiting,
                    mapping,
                    delete_checks,
                    changed,
                    mode,
                )
                engine.dispose()
            child.stdin.close()
            child.wait()


if __name__ == "__main__":
    main()
