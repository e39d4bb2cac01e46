"""A separately packaged connector, installed by the test, found through the entry-point group."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from kpisync.store.database import open_store
from kpisync.store.models import Account

PLUGIN = Path(__file__).resolve().parent / "plugins" / "kpisync-jsonfile"


@pytest.fixture
def installed_plugin() -> Iterator[None]:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(PLUGIN)], check=True)
    yield
    subprocess.run([*pip, "uninstall", "--yes", "kpisync-jsonfile"], check=True)


def test_plugin_connector_syncs_through_the_cli(installed_plugin: None, tmp_path: Path) -> None:
    data = tmp_path / "accounts.jsonl"
    data.write_text("\n".join(json.dumps({"id": i, "name": name, "custom": {"tier": t}})
                              for i, name, t in [(1, "Acme", "gold"), (2, "Żółć sp. z o.o.", "silver")]),
                    encoding="utf-8")
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[kpisync]\nstore = "sqlite:///{tmp_path}/store.db"\n'
                        f'[sources.files]\ntype = "jsonfile"\npath = "{data}"\n', encoding="utf-8")
    kpisync = [sys.executable, "-m", "kpisync.cli"]
    done = subprocess.run([*kpisync, "sync", "--settings", str(settings)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with engine.connect() as connection:
        rows = connection.execute(select(col(Account.external_id), col(Account.name), col(Account.custom))
                                  .order_by(col(Account.external_id))).all()
    assert [tuple(r) for r in rows] == [("1", "Acme", {"tier": "gold"}),
                                        ("2", "Żółć sp. z o.o.", {"tier": "silver"})]
