"""Test scaffolding: a seeded org served by the Salesforce emulator, and connectors pointed at it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.salesforce import SalesforceConnector
from emulators.org.model import Org
from emulators.salesforce.emulator import SalesforceEmulator
from kpisync.config import parse_settings
from kpisync.registry import build_connector
from tests.harness import write_settings_file

PASSWORD_ENV = "KPISYNC_TEST_SF_PASSWORD"
TOKEN_ENV = "KPISYNC_TEST_SF_TOKEN"
SOURCE = "sf"


@dataclass
class SalesforceEnv:
    org: Org
    emulator: SalesforceEmulator

    def options(self, **extra: Any) -> dict[str, Any]:
        login = self.emulator.login
        os.environ[PASSWORD_ENV] = login.password
        os.environ[TOKEN_ENV] = login.security_token
        options: dict[str, Any] = {
            "type": "salesforce",
            "login_url": self.emulator.base_url,
            "username": login.username,
            "password_env": PASSWORD_ENV,
            "security_token_env": TOKEN_ENV,
            "ca_bundle": str(self.emulator.ca_path),
            "lag_seconds": 0,
            "fast_retries": True,
            "timeout_seconds": 5,
            "bulk_poll_seconds": 0,
            "min_api_remaining": 100,
            "roles": {"deal_type": "Deal_category__c"},
        }
        options.update(extra)
        return {k: v for k, v in options.items() if v is not None}

    def connector(self, **extra: Any) -> SalesforceConnector:
        settings = parse_settings({"sources": {SOURCE: self.options(**extra)}})
        connector = build_connector(settings.source(SOURCE))
        assert isinstance(connector, SalesforceConnector)
        return connector

    def settings_file(self, folder: Path, store_url: str, **extra: Any) -> Path:
        return write_settings_file(folder, store_url, SOURCE, self.options(**extra))
