"""`kpisync demo` through the real CLI: the whole loop ends well and leaves no temporary store
behind, unless asked to keep it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from kpisync.store.database import open_store
from kpisync.store.models import Deal
from metrics.models import KpiValueRecord
from writeback.models import WriteRun


def demo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpisync.cli", "demo", "--deals", "60", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp), "COLUMNS": "120"},
    )


def test_the_demo_removes_its_temporary_store_and_keeps_one_when_asked(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = demo(scratch)
    assert done.returncode == 0, done.stderr
    assert "the temporary store is removed" in done.stdout
    # the goal the org misses is shown after the KPI table, not logged amid the output
    assert "alert: goal Q3 revenue: Sales volume (revenue) of the org is missed" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr
    # off a terminal nothing is cut, and nothing is padded either: rules stay a page wide
    assert max(len(line) for line in done.stdout.splitlines()) < 1000
    assert not [p for p in scratch.iterdir() if p.name.startswith("kpisync-demo-")]

    kept = tmp_path / "kept"
    done = demo(scratch, "--keep", str(kept))
    assert done.returncode == 0, done.stderr
    engine = open_store(f"sqlite:///{kept / 'kpisync.db'}", upgrade=False)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Deal)).scalar() == 60
        margins = (
            connection.execute(
                select(col(KpiValueRecord.value)).where(
                    col(KpiValueRecord.kpi) == "margin", col(KpiValueRecord.value).is_not(None)
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    # Each synthetic deal's margin is a share of its amount from 0.15 to 0.65, so every
    # amount-weighted margin lies there too (read as money, it came out near 0%).
    assert margins and all(margin is not None and 0.15 <= margin <= 0.65 for margin in margins)
    # the report of the quarter the KPI table shows, beside the kept store
    assert "Sales report — Q3 2026" in (kept / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("crm", ["salesforce", "vtiger"])
def test_the_demo_runs_the_whole_loop_on_each_crm(crm: str, tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    done = demo(tmp_path, "--crm", crm, "--keep", str(kept))
    assert done.returncode == 0, done.stderr
    synced = re.search(r"synced in run 1: (\d+) rows, (\d+) API calls", done.stdout)
    assert synced, done.stdout
    assert 0 < int(synced[2]) < 200  # the calls made, not the org's usage counters
    engine = open_store(f"sqlite:///{kept / 'kpisync.db'}", upgrade=False)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Deal)).scalar() == 60
        assert connection.execute(select(func.count()).select_from(KpiValueRecord)).scalar()
        runs = connection.execute(select(WriteRun).where(col(WriteRun.kind) == "write")).all()
    engine.dispose()
    assert [(run.status, run.failed) for run in runs] == [("succeeded", 0)]
    assert runs[0].written > 50
    assert "after, read back through the emulator's API" in done.stdout
    assert "Sales report — Q3 2026" in (kept / "report.html").read_text(encoding="utf-8")
