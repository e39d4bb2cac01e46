"""Write-back cycles on the three CRM emulators: sync then write-back, repeated with nothing
changed. Prints per CRM and cycle the values written, conflicts and the write-back's API calls
(the companion of writeback_cycles.py, which runs on a real Vtiger 8.2).

    PYTHONPATH=. python benchmarks/writeback_cycles_emulators.py [--cycles 3] [--deals 120]

The org, fields and NPS answers are tests/test_writeback_crms.py's (seed 11).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from emulators.org.generate import generate_org
from kpisync.config import parse_settings
from kpisync.store.database import open_store
from tests.hubspot_env import TOKEN, TOKEN_ENV
from tests.test_writeback_converge import ALL
from tests.test_writeback_crms import WANTED, Portal
from tests.vtiger_env import KEY_ENV as VTIGER_KEY_ENV
from writeback.options import source_plan
from writeback.provision import provision_fields
from writeback.runs import run_writeback


def cycles(name: str, deals: int, count: int) -> None:
    crm, org = ALL[name], generate_org(seed=11, deals=deals)
    folder = Path(tempfile.mkdtemp(prefix=f"kpisync-wb-{name}-"))
    engine = open_store(f"sqlite:///{folder / 'store.db'}")
    os.environ[TOKEN_ENV] = TOKEN
    with crm.kit.serve(org) as served:
        if name == "vtiger":
            os.environ[VTIGER_KEY_ENV] = served.env.key
        mapping = {
            entity: {score: crm.add_field(served.emulator, entity, score) for score in scores}
            for entity, scores in WANTED.items()
        }
        settings = parse_settings(
            {
                "kpisync": {"store": str(engine.url), "timezone": "UTC"},
                "sources": {served.source: served.env.options()},
                "writeback": {served.source: mapping},
            }
        )
        portal = Portal(crm, org, served, engine, settings, mapping, folder)
        provision_fields(
            source_plan(settings, portal.source), portal.connector(), apply=name == "hubspot"
        )
        for cycle in range(1, count + 1):
            time.sleep(crm.settle_seconds)
            portal.sync()
            report = run_writeback(
                engine, settings, portal.source, portal.connector(), as_of=portal.as_of
            )
            print(
                f"{name:<11} {cycle:>5}  {report.status:<9} {report.written:>8} "
                f"{report.failed:>7} {report.conflicts:>10} {report.api_calls:>21}"
            )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--deals", type=int, default=120)
    args = parser.parse_args()
    print("crm         cycle  status     written  failed  conflicts  write-back API calls")
    for name in sorted(ALL):
        cycles(name, args.deals, args.cycles)


if __name__ == "__main__":
    main()
