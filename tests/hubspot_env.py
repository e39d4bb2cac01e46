"""Test scaffolding: a seeded org served by the HubSpot emulator, and connectors pointed at it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.hubspot import HubSpotConnector
from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.model import Org
from kpisync.config import parse_settings
from kpisync.registry import build_connector
from tests.harness import write_settings_file

TOKEN_ENV = "KPISYNC_TEST_HUBSPOT_TOKEN"
TOKEN = "pat-na1-test-0123456789"
SOURCE = "hs"


@dataclass
class HubSpotEnv:
    org: Org
    emulator: HubSpotEmulator

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "type": "hubspot",
            "host": self.emulator.base_url,
            "token_env": TOKEN_ENV,
            "search_lag_seconds": 0,
            "fast_retries": True,
            "timeout_seconds": 5,
            "search_rate_per_second": self.emulator.search_rate_per_second,
            "archived_every_minutes": 0,  # deletes seen by the next sync
            "roles": {"deal_type": "deal_category"},
        }
        options.update(extra)
        return options

    def connector(self, **extra: Any) -> HubSpotConnector:
        os.environ[TOKEN_ENV] = TOKEN
        settings = parse_settings({"sources": {SOURCE: self.options(**extra)}})
        connector = build_connector(settings.source(SOURCE))
        assert isinstance(connector, HubSpotConnector)
        return connector

    def settings_file(self, folder: Path, store_url: str, **extra: Any) -> Path:
        os.environ[TOKEN_ENV] = TOKEN
        return write_settings_file(folder, store_url, SOURCE, self.options(**extra))
