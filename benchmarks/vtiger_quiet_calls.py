"""Webservice calls of a Vtiger sync with nothing changed, on the emulator and the real server.

    python benchmarks/vtiger_quiet_calls.py [--real]

A full sync, then (a second later) a sync with nothing changed in the CRM; printed: the second
run's calls per operation and in total. The emulator serves a seeded org in stock-8.2 mode (sync
fails, every module read by query), with the six standard modules and the survey module. With
`--real`, the stock Vtiger 8.2 of ../shared/vtiger/bringup.sh (VT_HOME etc. from the environment),
reset and seeded with tests/realvtiger's small org (six modules, no survey module), is measured too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulators.org.generate import generate_org
from emulators.vtiger.emulator import VtigerEmulator
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from tests.realvtiger.conftest import small_org
from tests.realvtiger.kit import ServedRealVtiger
from tests.realvtiger.seed import seed_org
from tests.realvtiger.server import RealVtiger, find_bringup
from tests.vtiger_env import SOURCE, VtigerEnv


def quiet_calls(connector_of: Any) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as folder:
        engine = open_store(f"sqlite:///{folder}/store.db")
        sync_source(engine, SOURCE, connector_of(), SyncOptions())
        time.sleep(1.1)  # the next run's bound lies past every record
        result = sync_source(engine, SOURCE, connector_of(), SyncOptions())
        assert result.status == "succeeded", result.error
        engine.dispose()
        return dict(result.api_calls)


def show(where: str, calls: dict[str, int]) -> None:
    parts = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
    print(f"{where}: {sum(calls.values())} calls ({parts})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true", help="also the real Vtiger 8.2")
    real = parser.parse_args().real
    org = generate_org(seed=5, deals=150)
    with VtigerEmulator(org) as emulator:
        env = VtigerEnv(org, emulator)
        show("emulator, stock 8.2, 7 modules", quiet_calls(env.connector))
    if real:
        script = find_bringup()
        assert script is not None, "no bringup.sh: see tests/realvtiger/server.py"
        server = RealVtiger(script)
        server.install()
        server.reset()
        served = ServedRealVtiger(server, seed_org(server, small_org()))
        time.sleep(1.1)
        show("real Vtiger 8.2, 6 modules", quiet_calls(served.connector))


if __name__ == "__main__":
    main()
