"""The conformance harness: what each CRM's test kit offers, so one suite runs over every connector.

A kit lives in `tests/kit_<crm>.py` and exposes `KIT`, an object with:

    name: str                                    e.g. "hubspot"
    serve(org) -> ContextManager[Served]         its emulator, serving the org over loopback

and `Served` offers:

    emulator                                     the running emulator (knobs, calls, reset_calls)
    connector(**options) -> Connector            a connector on it (fast retries, no search lag)
    settings_file(folder, store_url, **options)  a settings.toml for subprocess runs (`kpisync sync`)
    assert_store_equals_truth(engine)            the store against the emulator's truth, field by field
    change_deals(ids_wanted: int, seed) -> set[str]   amounts changed in the CRM; returns their ids
    delete_deal() -> str                         a deal deleted in the CRM (its API's way); its id
    bad_token_connector() -> Connector           a connector whose credentials the CRM refuses
    bad_credentials() -> dict                    connector options naming a wrong secret
    unreachable() -> dict                        connector options pointing at a closed port
    generous_limits() -> dict                    loosen the emulator's rate limits for long tests;
                                                 returns the connector options that match
    source: str                                  the source name the kit's settings use
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from emulators.org.model import Org

CRMS = ("hubspot", "salesforce", "vtiger", "vtiger_stock82")  # kit modules; one CRM may have two


def normal_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row as truth checks compare it: money read back from NUMERIC columns by value, custom
    fields without explicit nulls, aware instants in UTC."""
    out = []
    for value in values:
        if isinstance(value, Decimal):
            value = value.normalize()
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
        out.append(value)
    return tuple(out)


def write_settings_file(folder: Path, store_url: str, source: str, options: dict[str, Any]) -> Path:
    """A settings.toml with the store and one source table, for `kpisync` subprocesses."""
    lines = [f'[kpisync]\nstore = "{store_url}"\n', f"[sources.{source}]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in options.items() if value is not None]
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    return f'"{value}"'


@dataclass
class Served:
    """What every kit's served emulator shares: the test env's emulator, connectors, settings."""

    env: Any
    source: str
    kit_name: str = ""  # set by suites that vary expectations per kit

    @property
    def emulator(self) -> Any:
        return self.env.emulator

    def connector(self, **options: Any) -> Any:
        return self.env.connector(**options)

    def settings_file(self, folder: Path, store_url: str, **options: Any) -> Path:
        path: Path = self.env.settings_file(folder, store_url, **options)
        return path

    def bad_credentials(self) -> dict[str, Any]:
        raise NotImplementedError

    def unreachable(self) -> dict[str, Any]:
        raise NotImplementedError

    def generous_limits(self) -> dict[str, Any]:
        raise NotImplementedError

    def assert_store_equals_truth(self, engine: Engine) -> None:
        raise NotImplementedError

    def change_deals(self, count: int, seed: int) -> set[str]:
        raise NotImplementedError

    def delete_deal(self) -> str:
        raise NotImplementedError

    def tie_all_deals(self, at: datetime) -> None:
        raise NotImplementedError

    def bad_token_connector(self) -> Any:
        return self.env.connector(**self.bad_credentials())


class Kit(Protocol):
    name: str
    deal_stream: str  # the stream deals are read by

    def serve(self, org: Org, **emulator_options: Any) -> AbstractContextManager[Served]: ...


def available_kits() -> list[Kit]:
    """Every CRM kit present in tests/; a CRM without a kit yet is simply not in the list."""
    kits: list[Kit] = []
    for crm in CRMS:
        try:
            module = importlib.import_module(f"tests.kit_{crm}")
        except ModuleNotFoundError as error:
            if error.name != f"tests.kit_{crm}":
                raise
            continue
        kits.append(module.KIT)
    return kits
