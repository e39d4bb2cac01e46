"""The Salesforce kit for the conformance suite (see tests/harness.py)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator
from tests.harness import Served
from tests.salesforce_env import SOURCE, SalesforceEnv
from tests.salesforce_truth import assert_store_equals_truth


@dataclass
class ServedSalesforce(Served):
    env: SalesforceEnv
    source: str = SOURCE

    def assert_store_equals_truth(self, engine: Engine) -> None:
        assert_store_equals_truth(engine, self.emulator.dump())

    def generous_limits(self) -> dict[str, Any]:
        """Salesforce has no per-second limit to loosen (the daily allowance is ample).

        A sync of the small test org takes about a second of API work after several seconds of
        interpreter start-up, so kill points would mostly land before any page is read; a little
        latency per call (as any real org has) puts them inside the sync.
        """
        self.emulator.knobs.latency_seconds = 0.03
        return {}

    def change_deals(self, count: int, seed: int) -> set[str]:
        rng = random.Random(seed)
        ids = rng.sample(sorted(self.emulator.live("Opportunity")), count)
        for rid in ids:
            self.emulator.update_record(
                "Opportunity", rid, {"Amount": Decimal(f"{rng.randint(100, 99999)}.25")}
            )
        return set(ids)

    def delete_deal(self) -> str:
        rid: str = sorted(self.emulator.live("Opportunity"))[1]
        self.emulator.delete("Opportunity", rid)
        return rid

    def tie_all_deals(self, at: datetime) -> None:
        """Every deal gets one modified time, as a CRM's mass update does."""
        self.emulator.touch_all("Opportunity", at)

    def bad_credentials(self) -> dict[str, Any]:
        os.environ["KPISYNC_TEST_SF_BAD_PASSWORD"] = "not-the-password"
        return {"password_env": "KPISYNC_TEST_SF_BAD_PASSWORD"}

    def unreachable(self) -> dict[str, Any]:
        return {"login_url": "https://127.0.0.1:9"}


class SalesforceKit:
    deal_stream = "Opportunity"
    name = "salesforce"

    @contextmanager
    def serve(self, org: Org, **emulator_options: Any) -> Iterator[ServedSalesforce]:
        with SalesforceEmulator(org, **emulator_options) as emulator:
            yield ServedSalesforce(SalesforceEnv(org, emulator))


KIT = SalesforceKit()
