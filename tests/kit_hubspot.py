"""The HubSpot kit for the conformance suite (see tests/harness.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.org import Org
from tests.harness import Served
from tests.hubspot_env import SOURCE, TOKEN, HubSpotEnv
from tests.hubspot_truth import assert_store_equals_truth


@dataclass
class ServedHubSpot(Served):
    env: HubSpotEnv
    source: str = SOURCE

    def assert_store_equals_truth(self, engine: Engine) -> None:
        assert_store_equals_truth(engine, SOURCE, self.emulator.dump(), self.env.org)

    def generous_limits(self) -> dict[str, Any]:
        """A portal with a high search limit, so repeated kill rounds stay short."""
        self.emulator.search_rate_per_second = 40
        return {"search_rate_per_second": 40}

    def change_deals(self, count: int, seed: int) -> set[str]:
        rng = random.Random(seed)
        ids = rng.sample(sorted(self.emulator.dump()["deals"]), count)
        for rid in ids:
            self.emulator.update_record("deals", rid, {"amount": f"{rng.randint(100, 99999)}.25"})
        return set(ids)

    def delete_deal(self) -> str:
        rid = sorted(self.emulator.dump()["deals"])[1]
        self.emulator.archive("deals", rid)
        return rid

    def tie_all_deals(self, at: datetime) -> None:
        """Every deal gets one modified time, as a CRM's mass update does."""
        self.emulator.touch_all("deals", at)

    def bad_credentials(self) -> dict[str, Any]:
        import os
        os.environ["KPISYNC_TEST_BAD_TOKEN"] = "pat-na1-not-a-real-token"
        return {"token_env": "KPISYNC_TEST_BAD_TOKEN"}

    def unreachable(self) -> dict[str, Any]:
        return {"host": "http://127.0.0.1:9"}



class HubSpotKit:
    deal_stream = "deals"
    name = "hubspot"

    @contextmanager
    def serve(self, org: Org, **emulator_options: Any) -> Iterator[ServedHubSpot]:
        with HubSpotEmulator(org, access_token=TOKEN, **emulator_options) as emulator:
            yield ServedHubSpot(HubSpotEnv(org, emulator))


KIT = HubSpotKit()
