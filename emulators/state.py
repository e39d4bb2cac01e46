"""An emulator's records on disk, for `kpisync sandbox serve --state DIR`.

An emulator is rebuilt from its synthetic org (the seed and size kept in the state folder), then
the mutable parts it keeps its records in (`PERSISTED`: its store, schema, id counters) take
the values they had when last saved. So everything written to it (records, custom fields,
scores) survives a restart, while what the org generator derives is made again.

Each part's attributes (but the indexes derived from its records) are pickled together in one file,
so objects they share stay shared; a
reference from one part to another (a store's schema) is saved by name and joins the live
object on load; a time zone is saved by its key. Locks are made anew and callables (clocks) are
kept from the fresh emulator.
Loading accepts only the emulator's own classes and plain data: a state file cannot name any
other code to run. A file saved while the emulators lived in `kpisync/sandbox/` names their old
modules; they are read as the new ones (docs/decisions/emulators-package.md).
"""

from __future__ import annotations

import io
import os
import pickle
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from emulators.server import EmulatorServer

RECORDS_FILE = "records.pickle"
PERSISTED: dict[str, tuple[str, ...]] = {  # emulator class name -> the attributes to keep
    "HubSpotEmulator": ("store", "schema"),
    "SalesforceEmulator": ("store", "schema"),
    "VtigerEmulator": ("store", "schema", "ids"),
}
# indexes a store derives from its records and rebuilds when missing: never saved
DERIVED = frozenset({"_columns", "_sorted", "_ids", "_wanted", "_index"})
LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
SAFE_BUILTINS = frozenset(
    {
        "set",
        "frozenset",
        "dict",
        "list",
        "tuple",
        "bytes",
        "bytearray",
        "int",
        "float",
        "str",
        "bool",
        "complex",
        "slice",
        "range",
        "object",
    }
)
SAFE_MODULES = frozenset({"datetime", "decimal", "collections"})


class StateFileError(Exception):
    """A state file that cannot be read back (damaged, or from another kind of emulator)."""


def _parts(emulator: EmulatorServer) -> dict[str, Any]:
    names = PERSISTED.get(type(emulator).__name__)
    if names is None:
        raise StateFileError(f"{type(emulator).__name__} keeps no state")
    return {name: getattr(emulator, name) for name in names}


def _kept(value: Any) -> bool:
    return not callable(value) and not isinstance(value, LOCK_TYPES)


class _Saver(pickle.Pickler):
    def __init__(self, file: io.BytesIO, parts: dict[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.names = {id(part): name for name, part in parts.items()}

    def persistent_id(self, obj: Any) -> str | None:
        if isinstance(obj, ZoneInfo):
            return f"zone:{obj.key}"
        if isinstance(obj, LOCK_TYPES):
            return "lock:" + ("r" if isinstance(obj, type(threading.RLock())) else "")
        return self.names.get(id(obj))


class _Loader(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, parts: dict[str, Any]) -> None:
        super().__init__(file)
        self.parts = parts

    def persistent_load(self, pid: Any) -> Any:
        if pid == "lock:r":
            return threading.RLock()
        if pid == "lock:":
            return threading.Lock()
        if pid in self.parts:
            return self.parts[pid]
        if isinstance(pid, str) and pid.startswith("zone:"):
            return ZoneInfo(pid.removeprefix("zone:"))
        raise StateFileError(f"unknown reference {pid!r}")

    def find_class(self, module: str, name: str) -> Any:
        module = moved(module)
        allowed = (
            module.startswith("emulators.")
            or module in SAFE_MODULES
            or (module == "builtins" and name in SAFE_BUILTINS)
            or (module, name) == ("itertools", "count")
        )
        if not allowed:
            raise StateFileError(f"{module}.{name} is not part of an emulator's state")
        return super().find_class(module, name)


def moved(module: str) -> str:
    """The module a class named in an older state file lives in now: `kpisync.sandbox.orggen`
    is `emulators.org.generate`, `kpisync.sandbox.hubspot_store` is `emulators.hubspot.store`."""
    old = module.removeprefix("kpisync.sandbox.")
    if old == module:
        return module
    if old in ("server", "state"):
        return f"emulators.{old}"
    if old.startswith("org"):
        return "emulators.org." + {"": "model", "gen": "generate"}.get(old[3:], old[3:])
    crm, _, part = old.partition("_")
    return f"emulators.{crm}.{part or 'emulator'}"


def save_state(emulator: EmulatorServer, folder: Path) -> Path:
    """Write the emulator's records to `folder` (atomically: a crash keeps the last save)."""
    parts = _parts(emulator)
    lock = getattr(getattr(emulator, "store", None), "lock", None) or threading.RLock()
    buffer = io.BytesIO()
    with lock:
        state = {
            name: {
                key: value
                for key, value in vars(part).items()
                if key not in DERIVED and _kept(value)
            }
            for name, part in parts.items()
        }
        _Saver(buffer, parts).dump(state)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RECORDS_FILE
    partial = target.with_suffix(".partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, target)
    return target


def load_state(emulator: EmulatorServer, folder: Path) -> bool:
    """Give the (fresh, not yet serving) emulator the records saved in `folder`; False when
    nothing was saved there yet."""
    source = folder / RECORDS_FILE
    if not source.is_file():
        return False
    parts = _parts(emulator)
    try:
        state = _Loader(io.BytesIO(source.read_bytes()), parts).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as error:
        raise StateFileError(f"{source} cannot be read: {error}") from error
    if not isinstance(state, dict) or set(state) != set(parts):
        raise StateFileError(f"{source} holds the state of another kind of emulator")
    for name, attributes in state.items():
        fresh = vars(parts[name])
        fresh.update(attributes)
        for derived in DERIVED & set(fresh):
            fresh[derived] = type(fresh[derived])()  # rebuilt from the loaded records
    return True
