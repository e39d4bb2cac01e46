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

from kpisync.sandbox.hubspot import HubSpotEmulator, HubSpotKnobs
from kpisync.sandbox.orggen import generate_org


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
    org = generate_org(seed=args.seed, deals=args.deals, activities_per_deal=args.activities_per_deal)
    emulator = HubSpotEmulator(org, access_token=args.token, knobs=HubSpotKnobs(
        latency_seconds=args.latency, ten_secondly_budget=args.ten_secondly, daily_budget=10**9),
                               search_rate_per_second=args.search_rate)
    with emulator:
        print(json.dumps({"base_url": emulator.base_url, "token": args.token}), flush=True)
        for line in sys.stdin:  # one line per command; "quit" or EOF stops
            command = line.strip()
            if command == "quit":
                break
            if command == "counts":
                counts = {t: sum(1 for r in rs.values() if not r["archived"])
                          for t, rs in emulator.dump().items()}
                print(json.dumps(counts), flush=True)
            if command.startswith("change "):
                _, fraction = command.split()
                print(json.dumps({"changed": emulator.change_fraction(float(fraction))}), flush=True)


if __name__ == "__main__":
    main()
