"""Every command of the README, run in the folder `kpisync demo --keep` leaves, for each CRM:
those on the store at once, those on the CRM after `kpisync sandbox serve --state` (the command
and the credentials taken from what the demo printed, nothing from the source code), and what
was written survives a restart of the sandbox."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.sandbox_process import Sandbox, kpisync

SOURCES = {"hubspot": "demo_hubspot", "salesforce": "demo_salesforce", "vtiger": "demo_vtiger"}


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = kpisync(*args, env=env)
    assert result.returncode == 0, f"kpisync {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("crm", list(SOURCES))
def test_every_readme_command_works_in_a_kept_demo_folder(crm: str, tmp_path: Path) -> None:
    kept, source = tmp_path / "kept", SOURCES[crm]
    demo = kpisync("demo", "--deals", "60", "--crm", crm, "--keep", str(kept))
    assert demo.returncode == 0, demo.stderr
    settings = ("--settings", str(kept / "settings.toml"))
    serve_line = re.search(r"kpisync sandbox serve (.+)", demo.stdout)
    assert serve_line, demo.stdout
    credentials = dict(re.findall(r"export (\w+)=(\S+)", demo.stdout))
    assert credentials, demo.stdout
    env = {name: shlex.split(value)[0] for name, value in credentials.items()}

    # the store alone: at once, the demo's emulator gone
    for command in (
        ("status",),
        ("status", "--runs", "10"),
        ("kpis", "--period", "quarter", "--grain", "team"),
        ("goals",),
        ("compute",),
        ("report", "--out", str(tmp_path / "report.html")),
        ("db", "upgrade"),
    ):
        ok(*settings, *command)
    assert "<html" in (tmp_path / "report.html").read_text("utf-8").lower()
    surveys = tmp_path / "answers.csv"
    surveys.write_text(
        "kind,team,score,answered_at\nenps,Team Alpha,9,2026-10-01\nenps,Team Alpha,6,2026-10-02\n",
        "utf-8",
    )
    ok(*settings, "surveys", "import", str(surveys), "--source", source)

    # the CRM: the sandbox restarted from the kept state, as the demo said
    with Sandbox(*shlex.split(serve_line[1])) as sandbox:
        assert ok(*settings, "check", source, env=env).startswith("✓")
        assert ok(*settings, "discover", source, env=env)
        assert "succeeded" in ok(*settings, "sync", env=env)
        plan = ok(*settings, "fields", "plan", source, env=env)
        assert "no scores are mapped" not in plan
        ok(*settings, "fields", "apply", source, env=env)
        ok(*settings, "writeback", "--dry-run", env=env)
        written = ok(*settings, "writeback", env=env)
        assert "failed 0" in written, written
        run = re.search(r"run (\d+)", written)
        assert run, written
        ok(*settings, "run", "--once", env=env)
        sandbox.stop()

    # stopped and started again: what was written is there, so nothing is left to write
    with Sandbox(*shlex.split(serve_line[1])) as again:
        assert again.port == sandbox.port
        dry = ok(*settings, "writeback", "--dry-run", env=env)
        assert "would write 0 field value(s)" in dry, dry
        reverted = ok(*settings, "writeback", "revert", run[1], env=env)
        assert "failed 0" in reverted or "reverted" in reverted, reverted
        again.stop()
