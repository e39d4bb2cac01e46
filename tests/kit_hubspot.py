"""The HubSpot kit for the conformance suite (see tests/harness.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.model import Org
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
        """Amounts changed; a changed deal's first line item gets a new quantity and price too."""
        rng = random.Random(seed)
        dump = self.emulator.dump()
        ids = rng.sample(sorted(dump["deals"]), count)
        for rid in ids:
            self.emulator.update_record("deals", rid, {"amount": f"{rng.randint(100, 99999)}.25"})
            items = sorted(
                i
                for i in dump["deals"][rid]["associations"].get("line_items", {})
                if not dump["line_items"][i]["archived"]
            )
            if items:
                self.emulator.update_record(
                    "line_items",
                    items[0],
                    {"quantity": str(rng.randint(2, 9)), "price": f"{rng.randint(10, 999)}.50"},
                )
        return set(ids)

    def delete_deal(self) -> str:
        """A deal archived, and a line item of another deal (a product taken off it)."""
        dump = self.emulator.dump()
        rid: str = sorted(dump["deals"])[1]
        self.emulator.archive("deals", rid)
        item = min(
            i
            for i, r in dump["line_items"].items()
            if not r["archived"] and rid not in r["associations"].get("deals", {})
        )
        self.emulator.archive("line_items", item)
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
