"""Test scaffolding: a seeded org served by the Vtiger emulator, and connectors pointed at it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.vtiger import VtigerConnector
from emulators.org.model import Org
from emulators.vtiger.emulator import ADMIN_KEY, VtigerEmulator
from kpisync.config import parse_settings
from kpisync.registry import build_connector
from tests.harness import write_settings_file

KEY_ENV = "KPISYNC_TEST_VTIGER_KEY"
SOURCE = "vt"
ROLES = {
    "currency": "Currency",
    "loss_reason": "Loss reason",
    "competitor": "Competitor",
    "margin": "Margin",
    "deal_type": "Deal category",
}
SURVEY = {"module": "NPSResponses"}  # the emulator's survey module, with the default field names


@dataclass
class VtigerEnv:
    org: Org
    emulator: VtigerEmulator
    key: str = ADMIN_KEY

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "type": "vtiger",
            "url": self.emulator.base_url,
            "access_key_env": KEY_ENV,
            "fast_retries": True,
            "timeout_seconds": 5,
            "roles": dict(ROLES),
            "survey": dict(SURVEY),
            "direction_field": "Direction",
            "server_timezone": self.emulator.zone.key,
        }
        options.update(extra)
        return options

    def connector(self, **extra: Any) -> VtigerConnector:
        os.environ[KEY_ENV] = self.key
        settings = parse_settings({"sources": {SOURCE: self.options(**extra)}})
        connector = build_connector(settings.source(SOURCE))
        assert isinstance(connector, VtigerConnector)
        return connector

    def settings_file(self, folder: Path, store_url: str, **extra: Any) -> Path:
        os.environ[KEY_ENV] = self.key
        return write_settings_file(folder, store_url, SOURCE, self.options(**extra))
