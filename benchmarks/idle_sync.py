"""An incremental sync with nothing changed, per CRM: the API calls it makes and the rows it writes.

    python benchmarks/idle_sync.py [--deals 400] [--crm hubspot salesforce vtiger vtiger-stock82] [--backend sqlite]

Each CRM's emulator serves a generated org in this process; a first sync fills a fresh store, then
three syncs run with nothing changed in the CRM: one with the kept metadata fresh, one with the
metadata due (kept copy too old), and a second fresh one. Printed per run: calls per endpoint, the
run's total against one call per stream plus authentication, the streams read, and rows written
(upserted + deleted) and whether the store's revision moved. Counts, not times: no latency.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ kits, run as a script

from emulators.org.generate import generate_org
from kpisync.connector import calls_in
from kpisync.store.revision import store_revisions
from kpisync.sync import SyncOptions, SyncResult, sync_source
from tests.harness import available_kits

from results import keep_output, size  # benchmarks/, on the path as a script
from stores import BACKENDS, postgres_store, sqlite_store

AUTH = ("login", "oauth", "token", "getchallenge")  # endpoint words of authentication calls
# The product's defaults where the tests' environment sets another value.
DEFAULTS: dict[str, dict[str, Any]] = {"hubspot": {"archived_every_minutes": 60.0}}


def auth_calls(calls: Counter[str]) -> int:
    return sum(n for endpoint, n in calls.items() if any(w in endpoint.lower() for w in AUTH))


def run(
    engine,
    served,
    options: SyncOptions,
    limits: dict[str, Any],  # type: ignore[no-untyped-def]
) -> tuple[SyncResult, bool]:
    with engine.connect() as connection:
        before = store_revisions(connection).get(served.source)
    connector = served.connector(**limits)
    try:
        result = sync_source(engine, served.source, connector, options)
    finally:
        connector.close()
    with engine.connect() as connection:
        moved = store_revisions(connection).get(served.source) != before
    return result, moved


def report(label: str, result: SyncResult, moved: bool, streams: int) -> int:
    """Print one run's figures; returns its calls."""
    calls = Counter({k: v for k, v in result.api_calls.items() if not k.startswith("limit:")})
    total, auth = calls_in(result.api_calls), auth_calls(calls)
    read = [s.stream for s in result.streams]
    print(
        f"\n-- {label}: {total} calls (bound: {streams} data streams + {auth} authentication = "
        f"{streams + auth}); rows written {result.upserted}, deleted {result.deleted}; "
        f"store revision {'moved' if moved else 'unchanged'}; {len(read)} streams read"
    )
    for endpoint, count in sorted(calls.items()):
        print(f"   {count:4d}  {endpoint}")
    return total


def bench(kit, deals: int, backend: str) -> None:  # type: ignore[no-untyped-def]
    org = generate_org(seed=30, deals=deals)
    store = sqlite_store() if backend == "sqlite" else postgres_store()
    with kit.serve(org) as served, store as engine:
        # no call spent on a rate limit's refusal
        limits = {**served.generous_limits(), **DEFAULTS.get(kit.name, {})}
        first, _ = run(engine, served, SyncOptions(purge_check_every=None), limits)
        print(
            f"\n== {kit.name}, {deals} deals, {backend}: first sync {first.upserted} rows, "
            f"{calls_in(first.api_calls)} calls"
        )
        connector = served.connector(**limits)
        streams = len([s for s in connector.streams() if not s.metadata])
        connector.close()
        idle = SyncOptions(purge_check_every=None)
        kept = report("nothing changed, metadata kept", *run(engine, served, idle, limits), streams)
        due = SyncOptions(purge_check_every=None, metadata_every=timedelta(0))
        read = report("nothing changed, metadata due", *run(engine, served, due, limits), streams)
        print(f"   (metadata when due: {read - kept} calls more)")
        report("nothing changed, metadata kept again", *run(engine, served, idle, limits), streams)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/idle_sync.py")
    parser.add_argument("--deals", type=int, default=400)
    parser.add_argument(
        "--crm", nargs="+", default=["hubspot", "salesforce", "vtiger", "vtiger-stock82"]
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument(
        "--save",
        action="store_true",
        help="also write the output to benchmarks/out/idle_sync_<size>_<backend>.txt",
    )
    args = parser.parse_args()
    keep_output(args.save, "idle_sync", size(args.deals), args.backend)
    kits = {kit.name: kit for kit in available_kits()}
    for name in args.crm:
        bench(kits[name], args.deals, args.backend)


if __name__ == "__main__":
    main()
