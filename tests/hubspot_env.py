"""Test scaffolding: a seeded org served by the HubSpot emulator, and connectors pointed at it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpisync.config import parse_settings
from kpisync.registry import build_connector
from kpisync.sandbox.hubspot import HubSpotEmulator
from kpisync.sandbox.org import Org

TOKEN_ENV = "KPISYNC_TEST_HUBSPOT_TOKEN"
TOKEN = "pat-na1-test-0123456789"
SOURCE = "hs"


@dataclass
class HubSpotEnv:
    org: Org
    emulator: HubSpotEmulator

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"type": "hubspot", "host": self.emulator.base_url,
                                   "token_env": TOKEN_ENV, "search_lag_seconds": 0,
                                   "fast_retries": True, "timeout_seconds": 5,
                                   "search_rate_per_second": self.emulator.search_rate_per_second,
                                   "roles": {"deal_type": "deal_category"}}
        options.update(extra)
        return options

    def connector(self, **extra: Any):  # type: ignore[no-untyped-def]
        os.environ[TOKEN_ENV] = TOKEN
        settings = parse_settings({"sources": {SOURCE: self.options(**extra)}})
        return build_connector(settings.source(SOURCE))

    def settings_file(self, folder: Path, store_url: str, **extra: Any) -> Path:
        os.environ[TOKEN_ENV] = TOKEN
        lines = [f'[kpisync]\nstore = "{store_url}"\n', f"[sources.{SOURCE}]"]
        for key, value in self.options(**extra).items():
            lines.append(f"{key} = {_toml(value)}")
        path = folder / "settings.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'{k} = {_toml(v)}' for k, v in value.items()) + " }"
    return f'"{value}"'
