"""A separately packaged connector, installed by the test: found through the entry-point group,
and run through kpisync's shipped conformance suite by its own tests (as its CI would)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from kpisync.conformance import ConnectorConformance
from kpisync.store.database import open_store
from kpisync.store.models import Account

PLUGIN = Path(__file__).resolve().parent / "plugins" / "kpisync-jsonfile"
CONNECTOR = Path("kpisync_jsonfile") / "__init__.py"
SUITE = {name for name in dir(ConnectorConformance) if name.startswith("test_")}
# Deliberate faults, each with the contract test that must catch it.
BROKEN = {
    "reads from the start whatever the cursor": (
        "done = int(cursor.value or 0)",
        "done = 0",
        "test_incremental_sync_reads_exactly_the_edits",
    ),
    "drops deletions": (
        'for item in items if item.get("deleted")',
        "for item in items if False",
        "test_deletes_are_marked",
    ),
    "lets a missing file escape as an OSError": (
        "        except OSError as error:\n            raise TransientError",
        "        except LookupError as error:\n            raise TransientError",
        "test_failures_are_kpisync_connector_errors",
    ),
}


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin installed (offline, no dependencies) from a copy, so its build stays out of the
    repository; the copy, with its tests, is what the tests run."""
    copy = tmp_path_factory.mktemp("plugin") / PLUGIN.name
    shutil.copytree(PLUGIN, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(copy)], check=True
    )
    yield copy
    subprocess.run([*pip, "uninstall", "--yes", "kpisync-jsonfile"], check=True)


def run_plugin_tests(
    folder: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """The plugin's own pytest in `folder`: exit code, outcome per test, and its output."""
    report = tmp_path / f"{folder.name}-junit.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            f"--basetemp={tmp_path / (folder.name + '-tmp')}",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return done.returncode, outcomes, done.stdout + done.stderr


def test_plugin_connector_syncs_through_the_cli(installed_plugin: Path, tmp_path: Path) -> None:
    data = tmp_path / "accounts.jsonl"
    accounts = [(1, "Acme", "gold"), (2, "Żółć sp. z o.o.", "silver")]
    data.write_text(
        "\n".join(
            json.dumps({"id": i, "name": name, "custom": {"tier": t}}) for i, name, t in accounts
        ),
        encoding="utf-8",
    )
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[kpisync]\nstore = "sqlite:///{tmp_path}/store.db"\n'
        f'[sources.files]\ntype = "jsonfile"\npath = "{data}"\n',
        encoding="utf-8",
    )
    kpisync = [sys.executable, "-m", "kpisync.cli"]
    done = subprocess.run(
        [*kpisync, "sync", "--settings", str(settings)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Account.external_id), col(Account.name), col(Account.custom)).order_by(
                col(Account.external_id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("1", "Acme", {"tier": "gold"}),
        ("2", "Żółć sp. z o.o.", {"tier": "silver"}),
    ]


def test_plugin_passes_the_shipped_conformance_suite_and_a_broken_copy_fails_it(
    installed_plugin: Path, tmp_path: Path
) -> None:
    code, outcomes, output = run_plugin_tests(installed_plugin, tmp_path)
    assert code == 0, output
    ran = {
        name.rpartition("::")[2]
        for name, outcome in outcomes.items()
        if "TestJsonFileConnector" in name and outcome == "passed"
    }
    assert ran == SUITE and len(SUITE) >= 7, f"ran {sorted(ran)} of {sorted(SUITE)}"
    print(f"the plugin passed all {len(ran)} conformance tests")
    for fault, (good, bad, catcher) in BROKEN.items():
        broken = tmp_path / f"broken-{catcher}"
        shutil.copytree(
            installed_plugin, broken, ignore=shutil.ignore_patterns("build", "*.egg-info")
        )
        source = (broken / CONNECTOR).read_text(encoding="utf-8")
        assert source.count(good) == 1, f"the fault '{fault}' no longer applies: update BROKEN"
        (broken / CONNECTOR).write_text(source.replace(good, bad), encoding="utf-8")
        # The broken copy comes first on the path, ahead of the installed plugin.
        code, outcomes, output = run_plugin_tests(broken, tmp_path, {"PYTHONPATH": str(broken)})
        failed = {
            name.rpartition("::")[2] for name, outcome in outcomes.items() if outcome != "passed"
        }
        assert code == 1 and catcher in failed, f"a connector that {fault} passed:\n{output}"
