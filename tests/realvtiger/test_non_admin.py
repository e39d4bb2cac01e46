"""On the real Vtiger 8.2: a non-admin user (no Users module, whatever the role) syncs everything
its role may read, owners by id, with a warning; `check` says an admin's key is needed for names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from kpisync.store.database import open_store
from tests.realvtiger.kit import KEY_ENV, ServedRealVtiger
from tests.realvtiger.server import RealVtiger, Seeded
from tests.realvtiger.truth import server_truth
from tests.vtiger_truth import assert_store_equals_truth


def kpisync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_a_non_admin_syncs_owners_by_id_and_check_names_the_admin_key(
    seeded_org: tuple[RealVtiger, Seeded], tmp_path: Path
) -> None:
    server, seeded = seeded_org
    server.add_user("reza.viewer", "H4", "MENA")  # a Sales Manager
    served = ServedRealVtiger(server, seeded)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    settings = served.settings_file(tmp_path, store, username="reza.viewer")
    os.environ[KEY_ENV] = server.user_key("reza.viewer")  # the non-admin's own key
    checked = kpisync("check", "vt", "--settings", str(settings))
    assert checked.returncode == 3, checked.stderr
    assert "'reza.viewer' is not an admin" in checked.stderr
    assert "admin user's access key" in checked.stderr
    done = kpisync("sync", "--settings", str(settings))
    assert done.returncode == 0, done.stderr
    assert "cannot see the Users module" in done.stderr + done.stdout
    engine = open_store(store)
    truth = server_truth(server, "reza.viewer")
    assert len(truth["Potentials"]) == len(seeded.of("deal"))  # the role reads every deal
    assert_store_equals_truth(engine, served.source, truth, ZoneInfo("UTC"))
    engine.dispose()
