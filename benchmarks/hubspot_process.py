"""The HubSpot emulator in a process of its own, driven through stdin, for the benchmarks:
`python benchmarks/hubspot_process.py hubspot --deals N` (users run `kpisync sandbox serve`).

Prints one JSON line with the base URL and token once it listens, then serves until stdin closes
or says "quit"; "counts" prints the live records per type, "change F" touches that fraction of
them. The benchmarks keep the emulator's memory out of the process they measure this way, with
budgets no real portal has (`--search-rate`, `--ten-secondly`).
"""

from __future__ import annotations

import argparse
import json
import sys

from emulators.hubspot.emulator import HubSpotEmulator, HubSpotKnobs
from emulators.org.generate import generate_org


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/hubspot_process.py")
    parser.add_argument("crm", choices=["hubspot"])
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--activities-per-deal", type=float, default=8.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--search-rate", type=float, default=5.0)
    parser.add_argument("--ten-secondly", type=int, default=190, help="calls per rolling 10 s")
    parser.add_argument("--token", default="pat-na1-bench")
    args = parser.parse_args(argv)
    org = generate_org(
        seed=args.seed, deals=args.deals, activities_per_deal=args.activities_per_deal
    )
    emulator = HubSpotEmulator(
        org,
        access_token=args.token,
        knobs=HubSpotKnobs(
            latency_seconds=args.latency, ten_secondly_budget=args.ten_secondly, daily_budget=10**9
        ),
        search_rate_per_second=args.search_rate,
    )
    with emulator:
        print(json.dumps({"base_url": emulator.base_url, "token": args.token}), flush=True)
        for line in sys.stdin:  # one line per command; "quit" or EOF stops
            command = line.strip()
            if command == "quit":
                break
            if command == "counts":
                counts = {
                    t: sum(1 for r in rs.values() if not r["archived"])
                    for t, rs in emulator.dump().items()
                }
                print(json.dumps(counts), flush=True)
            if command.startswith("change "):
                _, fraction = command.split()
                print(
                    json.dumps({"changed": change_fraction(emulator, float(fraction))}), flush=True
                )


def change_fraction(emulator: HubSpotEmulator, fraction: float) -> dict[str, int]:
    """Touch `fraction` of the records of every type (every n-th id), as users editing would;
    how many per type."""
    changed: dict[str, int] = {}
    for object_type, records in emulator.dump().items():
        if object_type in ("line_items", "feedback_submissions", "notes"):
            continue
        ids = sorted(rid for rid, r in records.items() if not r["archived"])
        step = max(1, round(1 / fraction)) if fraction > 0 else 0
        chosen = ids[::step] if step else []
        for rid in chosen:
            field = {"companies": "industry", "contacts": "jobtitle", "deals": "dealname"}.get(
                object_type, "hs_timestamp"
            )
            value = records[rid]["properties"].get(field) or ""
            emulator.update_record(object_type, rid, {field: value})
        changed[object_type] = len(chosen)
    return changed


if __name__ == "__main__":
    main()
