"""The import contract ([tool.importlinter] in pyproject.toml): it holds on the code as it is, and
it fails, naming the import, when a module imports upward, past the KPI engine's public surface,
or into the emulators (docs/decisions/import-layers.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]
# the emulators' package, whichever name the contract protects (kpisync.sandbox or emulators)
EMULATORS = next(c for c in CONFIG["contracts"] if c["id"] == "emulators")["protected_modules"][0]


def lint(folder: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages in `folder` (found there first: PYTHONPATH), uncached."""
    assert LINT.exists(), f"{LINT} is missing: pip install -e '.[dev]' installs import-linter"
    env = {**os.environ, "PYTHONPATH": str(folder), "COLUMNS": "300", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=folder, env=env, capture_output=True, text=True, check=False
    )


def copy_of_tree(into: Path) -> Path:
    """The contract's root packages and pyproject.toml, copied into `into`."""
    for package in CONFIG["root_packages"]:
        shutil.copytree(
            ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def test_the_contract_holds_on_the_code() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "added", "contract", "named"),
    [
        # the bottom layer importing the CLI
        (
            "kpisync/errors.py",
            "import kpisync.cli",
            "One direction of imports",
            "kpisync.errors -> kpisync.cli",
        ),
        # the KPI engine importing a feature above it
        (
            "metrics/goals.py",
            "import writeback",
            "One direction of imports",
            "metrics.goals -> writeback",
        ),
        # one feature importing another (the report and write-back are independent)
        (
            "writeback/planner.py",
            "import kpisync.report.gather",
            "One direction of imports",
            "writeback.planner -> kpisync.report.gather",
        ),
        # a feature reaching past the KPI engine's public surface
        (
            "kpisync/report/gather.py",
            "from metrics.engine import compute_all",
            "public surface",
            "kpisync.report.gather -> metrics.engine",
        ),
        # a connector importing the sync engine
        (
            "connectors/vtiger/reads.py",
            "import kpisync.sync",
            "never writes the store",
            "connectors.vtiger.reads -> kpisync.sync",
        ),
        # the product (not the demo) importing an emulator
        (
            "writeback/runs.py",
            f"import {EMULATORS}",
            "emulators sit beside the product",
            f"writeback.runs -> {EMULATORS}",
        ),
    ],
)
def test_an_added_import_against_the_contract_fails_naming_it(
    tmp_path: Path, module: str, added: str, contract: str, named: str
) -> None:
    tree = copy_of_tree(tmp_path)
    assert lint(tree).returncode == 0, "the copy must pass before the import is added"
    path = tree / module
    path.write_text(path.read_text("utf-8") + f"\n{added}  # noqa: E402,F401\n", "utf-8")

    result = lint(tree)

    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout, result.stdout
    broken = result.stdout[result.stdout.index("Broken contracts") :]
    assert contract in broken, broken
    assert named in broken, broken
