"""Write-back at scale: 100,000 accounts on the HubSpot emulator, 10% of their scores changed.

Prints the write calls the run made against the lower bound (changed records / 100, HubSpot's batch
size) and against writing record by record, and the time spent planning and sending.

    python benchmarks/writeback_benchmark.py [--records 100000] [--changed 0.1]

The store is filled directly (the benchmark measures write-back, not sync): one account row and one
NPS answer per emulator company. A first run writes every score; then 10% of the answers move to
another NPS category and the measured run writes exactly those.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from math import ceil
from pathlib import Path

from sqlalchemy import Engine, bindparam

from emulators.hubspot.emulator import HubSpotEmulator, HubSpotKnobs
from emulators.org.generate import generate_org
from kpisync.config import parse_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.store.models import Account, SurveyResponse
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback

from results import keep_output, size  # benchmarks/, on the path as a script

TOKEN_ENV = "KPISYNC_BENCH_HUBSPOT_TOKEN"
WRITE = "POST /crm/v3/objects/{type}/batch/update"
SCORES = (10, 8, 2)  # one answer each: NPS 100, 0, -100


def fill_store(engine: Engine, ids: list[str], scores: list[int], answered: datetime) -> None:
    accounts = Account.__table__  # type: ignore[attr-defined]
    answers = SurveyResponse.__table__  # type: ignore[attr-defined]
    synced = answered
    with engine.begin() as connection:
        for start in range(0, len(ids), 5000):
            chunk = range(start, min(start + 5000, len(ids)))
            connection.execute(
                accounts.insert(),
                [
                    {
                        "source": "bench",
                        "external_id": ids[i],
                        "custom": {},
                        "raw": {},
                        "synced_at": synced,
                    }
                    for i in chunk
                ],
            )
            connection.execute(
                answers.insert(),
                [
                    {
                        "source": "bench",
                        "external_id": f"n{i}",
                        "custom": {},
                        "raw": {},
                        "kind": "nps",
                        "score": scores[i],
                        "account_id": ids[i],
                        "answered_at": answered,
                        "origin": "crm",
                    }
                    for i in chunk
                ],
            )


def change_answers(engine: Engine, picked: list[int], scores: list[int]) -> None:
    answers = SurveyResponse.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(
            answers.update()
            .where(answers.c.source == "bench", answers.c.external_id == bindparam("eid"))
            .values(score=bindparam("new")),
            [{"eid": f"n{i}", "new": SCORES[(SCORES.index(scores[i]) + 1) % 3]} for i in picked],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/out/<what it measures>.txt"
    )
    args = parser.parse_args()
    keep_output(args.save, "writeback", size(args.records), f"{args.changed * 100:g}pct_changed")
    rng = random.Random(args.seed)
    os.environ[TOKEN_ENV] = "pat-bench"
    folder = Path(tempfile.mkdtemp(prefix="kpisync-wb-bench-"))
    org = generate_org(seed=args.seed, deals=10)
    knobs = HubSpotKnobs(ten_secondly_budget=10**9, daily_budget=10**9)
    with HubSpotEmulator(org, access_token="pat-bench", knobs=knobs) as emulator:
        started = time.perf_counter()
        ids = [
            emulator.create_record("companies", {"name": f"Bench {i}"}) for i in range(args.records)
        ]
        print(
            f"emulator: {args.records:,} companies created in {time.perf_counter() - started:.1f} s"
        )
        settings = parse_settings(
            {
                "kpisync": {"store": f"sqlite:///{folder / 'store.db'}"},
                "sources": {
                    "bench": {
                        "type": "hubspot",
                        "host": emulator.base_url,
                        "token_env": TOKEN_ENV,
                        "fast_retries": True,
                    }
                },
                "writeback": {"bench": {"account": {"nps_score": "kpisync_nps_score"}}},
            }
        )
        connector = build_connector(settings.source("bench"))
        provision_fields(source_plan(settings, "bench"), connector, apply=True)
        engine = open_store(settings.core.store)
        as_of = datetime.now(UTC)
        scores = [rng.choice(SCORES) for _ in ids]
        fill_store(engine, ids, scores, as_of - timedelta(days=1))

        emulator.reset_calls()
        started = time.perf_counter()
        first = run_writeback(engine, settings, "bench", connector, as_of=as_of)
        print(
            f"first run (every score): {first.written:,} writes in "
            f"{emulator.calls[WRITE]:,} calls, {time.perf_counter() - started:.1f} s"
        )

        picked = rng.sample(range(len(ids)), round(len(ids) * args.changed))
        change_answers(engine, picked, scores)
        emulator.reset_calls()
        started = time.perf_counter()
        dry = run_writeback(engine, settings, "bench", connector, as_of=as_of, dry_run=True)
        planning = time.perf_counter() - started
        started = time.perf_counter()
        report = run_writeback(engine, settings, "bench", connector, as_of=as_of)
        elapsed = time.perf_counter() - started
        calls = emulator.calls[WRITE]
        changed = len(picked)
        print(
            f"measured run: {args.records:,} records, {changed:,} scores changed "
            f"({args.changed:.0%})"
        )
        print(f"  write calls made           {calls:>8,}")
        print(f"  lower bound (changed/100)  {ceil(changed / 100):>8,}")
        print(f"  record by record           {changed:>8,}")
        print(
            f"  written / planned          {report.written:,} / {dry.planned:,}, failed "
            f"{report.failed}"
        )
        print(
            f"  time: plan (dry run) {planning:.1f} s; plan + send {elapsed:.1f} s "
            f"({report.written / elapsed:,.0f} writes/s)"
        )
        emulator.reset_calls()
        again = run_writeback(engine, settings, "bench", connector, as_of=as_of)
        print(
            f"  a third run with nothing changed: {again.planned} writes, "
            f"{sum(emulator.calls.values())} calls"
        )
        engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
