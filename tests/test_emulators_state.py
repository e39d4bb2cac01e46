"""A state folder saved while the emulators lived in kpisync/sandbox/ (its pickle names classes by
their old modules) still loads: `kpisync sandbox serve --state` on a kept demo folder keeps
working after the move (docs/decisions/emulators-package.md)."""

from __future__ import annotations

import importlib
import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from emulators.salesforce.emulator import SalesforceEmulator
from emulators.server import EmulatorServer
from emulators.state import DERIVED, PERSISTED, RECORDS_FILE, load_state, save_state
from emulators.vtiger.emulator import VtigerEmulator

# where each module was before the move: the history, written out rather than derived
OLD_NAMES = {
    "emulators.hubspot.emulator": "hubspot",
    "emulators.hubspot.auth": "hubspot_auth",
    "emulators.hubspot.calculated": "hubspot_calculated",
    "emulators.hubspot.meta": "hubspot_meta",
    "emulators.hubspot.records": "hubspot_records",
    "emulators.hubspot.render": "hubspot_render",
    "emulators.hubspot.schema": "hubspot_schema",
    "emulators.hubspot.search": "hubspot_search",
    "emulators.hubspot.store": "hubspot_store",
    "emulators.org.model": "org",
    "emulators.org.finance": "orgfinance",
    "emulators.org.generate": "orggen",
    "emulators.org.vocabulary": "orgvocabulary",
    "emulators.salesforce.emulator": "salesforce",
    "emulators.salesforce.auth": "salesforce_auth",
    "emulators.salesforce.finance": "salesforce_finance",
    "emulators.salesforce.records": "salesforce_records",
    "emulators.salesforce.render": "salesforce_render",
    "emulators.salesforce.routes": "salesforce_routes",
    "emulators.salesforce.schema": "salesforce_schema",
    "emulators.salesforce.soql": "salesforce_soql",
    "emulators.salesforce.store": "salesforce_store",
    "emulators.server": "server",
    "emulators.state": "state",
    "emulators.vtiger.emulator": "vtiger",
    "emulators.vtiger.records": "vtiger_records",
    "emulators.vtiger.render": "vtiger_render",
    "emulators.vtiger.schema": "vtiger_schema",
    "emulators.vtiger.store": "vtiger_store",
    "emulators.vtiger.vtql": "vtiger_vtql",
}
LOCKS = (type(threading.Lock()), type(threading.RLock()))


def build(crm: str, seed: int) -> EmulatorServer:
    org = generate_org(seed=seed, deals=30)
    if crm == "hubspot":
        return HubSpotEmulator(org)
    if crm == "salesforce":
        return SalesforceEmulator(org)
    return VtigerEmulator(org)


def parts(emulator: EmulatorServer) -> dict[str, Any]:
    return {name: getattr(emulator, name) for name in PERSISTED[type(emulator).__name__]}


def same(a: Any, b: Any, seen: set[tuple[int, int]] | None = None) -> bool:
    """Equal by value, objects by their saved attributes (locks, callables, indexes left out)."""
    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:
        return True
    seen.add((id(a), id(b)))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], seen) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y, seen) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dict__") and not isinstance(a, type):
        kept = {
            k: v
            for k, v in vars(a).items()
            if k not in DERIVED and not callable(v) and not isinstance(v, LOCKS)
        }
        other = {
            k: v
            for k, v in vars(b).items()
            if k not in DERIVED and not callable(v) and not isinstance(v, LOCKS)
        }
        return same(kept, other, seen)
    if isinstance(a, itertools.count):  # an id counter: equal when it is at the same number
        return repr(a) == repr(b)
    return bool(a == b)


@contextmanager
def old_module_names() -> Iterator[None]:
    """Classes named as they were under kpisync/sandbox/, for as long as a save takes."""
    renamed: list[type] = []
    try:
        for new, old in OLD_NAMES.items():
            module = importlib.import_module(new)
            sys.modules[f"kpisync.sandbox.{old}"] = module
            for value in vars(module).values():
                if isinstance(value, type) and value.__module__ == new:
                    value.__module__ = f"kpisync.sandbox.{old}"
                    renamed.append(value)
        yield
    finally:
        for cls in renamed:
            cls.__module__ = next(
                new for new, old in OLD_NAMES.items() if cls.__module__ == f"kpisync.sandbox.{old}"
            )
        for old in OLD_NAMES.values():
            sys.modules.pop(f"kpisync.sandbox.{old}", None)


@pytest.mark.parametrize("crm", ["hubspot", "salesforce", "vtiger"])
def test_a_state_file_saved_under_the_old_module_names_loads(crm: str, tmp_path: Path) -> None:
    saved = build(crm, seed=11)
    with old_module_names():
        save_state(saved, tmp_path)
    assert b"kpisync.sandbox." in (tmp_path / RECORDS_FILE).read_bytes()
    assert b"emulators." not in (tmp_path / RECORDS_FILE).read_bytes()
    fresh = build(crm, seed=12)  # another org: its records differ until the state is loaded
    assert not same(parts(fresh), parts(saved))
    assert load_state(fresh, tmp_path)
    assert same(parts(fresh), parts(saved))
