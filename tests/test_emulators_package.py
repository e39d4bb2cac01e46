"""The emulators stand beside the product (docs/decisions/emulators-package.md): no import cycle
among their modules, none of them imports the product, and of the product only the demo and the
sandbox command import them.

Imports are read from the source, every one counted: at the top, under TYPE_CHECKING and inside
functions alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("kpisync", "connectors", "metrics", "writeback")
# the product modules that serve an emulator: `kpisync demo` and `kpisync sandbox`
SERVING = {"kpisync.demo", "kpisync.demo_crms", "kpisync.sandbox_command"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (`from a import b` counts `a.b` too: it may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph(package: str) -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in (ROOT / package).rglob("*.py")}


def test_no_import_cycle_among_the_emulators() -> None:
    modules = graph("emulators")
    edges = {
        name: {other for other in found if other in modules and other != name}
        for name, found in modules.items()
    }
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for other in sorted(edges[name]):
            walk(other, [*path, name])
        done.add(name)

    for name in sorted(edges):
        walk(name, [])
    assert {"emulators.hubspot.meta", "emulators.salesforce.routes"} <= done


def test_the_emulators_import_nothing_of_the_product() -> None:
    reaching = sorted(
        f"{name} imports {other}"
        for name, found in graph("emulators").items()
        for other in found
        if other.split(".")[0] in PRODUCT
    )
    assert reaching == []


def test_only_the_demo_and_the_sandbox_command_import_the_emulators() -> None:
    users = {
        name
        for package in PRODUCT
        for name, found in graph(package).items()
        if any(other.split(".")[0] == "emulators" for other in found)
    }
    assert users == SERVING
