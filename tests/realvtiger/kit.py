"""The conformance kit's interface (tests/harness.py) on the real Vtiger: connectors and settings
pointed at it, changes made through its webservice, the store checked against its own truth."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from kpisync.config import parse_settings
from kpisync.registry import build_connector
from tests.harness import write_settings_file
from tests.realvtiger.server import RealVtiger, Seeded
from tests.realvtiger.truth import confirm_with_database, server_truth
from tests.vtiger_truth import assert_store_equals_truth

KEY_ENV = "KPISYNC_TEST_REAL_VTIGER_KEY"
SOURCE = "vt"
ROLES = {
    "currency": "Currency",
    "loss_reason": "Loss reason",
    "competitor": "Competitor",
    "margin": "Margin",
    "deal_type": "Deal category",
}


@dataclass
class ServedRealVtiger:
    server: RealVtiger
    seeded: Seeded
    source: str = SOURCE
    url: str = ""  # where connectors go (a proxy in front of the server); the server's by default

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "type": "vtiger",
            "url": self.url or self.server.url,
            "access_key_env": KEY_ENV,
            "fast_retries": True,
            "timeout_seconds": 60,
            "roles": dict(ROLES),
            "direction_field": "Direction",
            "server_timezone": "UTC",
        }
        options.update(extra)
        return options

    def connector(self, **extra: Any) -> Any:
        os.environ[KEY_ENV] = self.server.access_key
        settings = parse_settings({"sources": {SOURCE: self.options(**extra)}})
        return build_connector(settings.source(SOURCE))

    def settings_file(self, folder: Path, store_url: str, **extra: Any) -> Path:
        os.environ[KEY_ENV] = self.server.access_key
        return write_settings_file(folder, store_url, SOURCE, self.options(**extra))

    def assert_store_equals_truth(self, engine: Engine) -> None:
        truth = server_truth(self.server)
        confirm_with_database(self.server, truth)
        assert_store_equals_truth(engine, SOURCE, truth, ZoneInfo("UTC"))

    def generous_limits(self) -> dict[str, Any]:
        return {}

    def live_deals(self) -> list[str]:
        return sorted(r["id"] for r in self.server.web().query_all("Potentials", "id"))

    def change_deals(self, count: int, seed: int) -> set[str]:
        rng = random.Random(seed)
        ids = rng.sample(self.live_deals(), count)
        for ws_id in ids:  # whole amounts: the installer's admin writes no decimals
            self.server.web().revise({"id": ws_id, "amount": str(rng.randint(100, 99999))})
        return set(ids)

    def delete_deal(self) -> str:
        ws_id = self.live_deals()[1]
        self.server.web().delete(ws_id)
        return ws_id

    def bad_credentials(self) -> dict[str, Any]:
        os.environ["KPISYNC_TEST_VTIGER_BAD_KEY"] = "not-the-access-key"
        return {"access_key_env": "KPISYNC_TEST_VTIGER_BAD_KEY"}

    def bad_token_connector(self) -> Any:
        return self.connector(**self.bad_credentials())

    def unreachable(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:9"}
