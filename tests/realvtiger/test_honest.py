"""On the real Vtiger 8.2: a custom field left without its column (the layout editor's ALTER TABLE
failed) empties every SELECT * with success; the sync fails naming that field, never
"succeeded, 0 rows"."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import col

from kpisync.store.database import open_store
from kpisync.store.models import Deal, SyncRun
from tests.realvtiger.kit import ServedRealVtiger
from tests.realvtiger.server import RealVtiger, Seeded


def sync(settings: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", "sync", "--settings", str(settings)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def runs(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        return [
            (r.status, r.error)
            for r in connection.execute(
                select(col(SyncRun.status), col(SyncRun.error)).order_by(col(SyncRun.id))
            )
        ]


def test_a_broken_field_fails_the_sync_instead_of_reading_nothing(
    seeded_org: tuple[RealVtiger, Seeded], tmp_path: Path
) -> None:
    server, seeded = seeded_org
    served = ServedRealVtiger(server, seeded)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    settings = served.settings_file(tmp_path, store)
    assert sync(settings).returncode == 0
    broke = server.run(
        "add-field",
        "Potentials",
        "Broken",
        "Decimal",
        extra_env={"VT_FIELD_LENGTH": "100"},
        check=False,
    )
    assert broke.returncode == 1 and "without its column" in broke.stderr
    (name,) = server.sql("SELECT fieldname FROM vtiger_field WHERE fieldlabel = 'Broken'")[0]
    assert name is not None
    assert server.web().query("SELECT * FROM Potentials;") == []  # the server's own symptom
    deal = served.live_deals()[0]
    server.sql(
        f"UPDATE vtiger_crmentity SET modifiedtime = NOW() WHERE crmid = {deal.partition('x')[2]}"
    )  # an edit (revise fails on this module now)
    time.sleep(1.1)
    done = sync(settings)
    assert done.returncode == 3, done.stderr
    assert f"{name} ('Broken')" in done.stderr and "empty page of Potentials" in done.stderr
    engine = open_store(store)
    assert runs(engine)[-1][0] == "failed" and name in str(runs(engine)[-1][1])
    with engine.connect() as connection:
        assert connection.execute(select(col(Deal.external_id))).first() is not None
    engine.dispose()
    (tmp_path / "fresh").mkdir()
    first = sync(served.settings_file(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert first.returncode == 3 and "Broken" in first.stderr, first.stderr
