"""The Vtiger kit for the conformance suite (see tests/harness.py).

The conformance suite serves a Vtiger whose `sync` works (a patched install); tests/
test_vtiger_sync.py runs the same checks against stock 8.2 behaviour (sync answers an empty 500).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from emulators.org.model import Org
from emulators.vtiger.emulator import VtigerEmulator
from tests.harness import Served
from tests.vtiger_env import SOURCE, VtigerEnv
from tests.vtiger_truth import assert_store_equals_truth


@dataclass
class ServedVtiger(Served):
    env: VtigerEnv
    source: str = SOURCE

    def assert_store_equals_truth(self, engine: Engine) -> None:
        assert_store_equals_truth(engine, SOURCE, self.emulator.dump(), self.emulator.zone)

    def generous_limits(self) -> dict[str, Any]:
        return {}  # Vtiger has no rate limit of its own

    def live_deals(self) -> list[str]:
        return sorted(e.ws_id for e in self.emulator.dump()["Potentials"].values() if e.live)

    def change_deals(self, count: int, seed: int) -> set[str]:
        rng = random.Random(seed)
        ids = rng.sample(self.live_deals(), count)
        for ws_id in ids:
            self.emulator.update_record(
                "Potentials", ws_id, {"amount": f"{rng.randint(100, 99999)}.25"}
            )
        return set(ids)

    def delete_deal(self) -> str:
        ws_id = self.live_deals()[1]
        self.emulator.delete("Potentials", ws_id)
        return ws_id

    def tie_all_deals(self, at: datetime) -> None:
        """Every deal gets one modified time, as a CRM's mass update does."""
        self.emulator.touch_all("Potentials", at)

    def bad_credentials(self) -> dict[str, Any]:
        os.environ["KPISYNC_TEST_VTIGER_BAD_KEY"] = "not-the-access-key"
        return {"access_key_env": "KPISYNC_TEST_VTIGER_BAD_KEY"}

    def unreachable(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:9"}


class VtigerKit:
    deal_stream = "potentials"
    name = "vtiger"

    @contextmanager
    def serve(self, org: Org, **emulator_options: Any) -> Iterator[ServedVtiger]:
        with VtigerEmulator(org, sync_works=True, **emulator_options) as emulator:
            yield ServedVtiger(VtigerEnv(org, emulator))


KIT = VtigerKit()
