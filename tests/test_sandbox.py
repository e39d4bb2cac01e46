"""`kpisync sandbox serve` and `settings` through the real CLI: a fixed port, records that
survive a restart with `--state`, settings that work with every command, and the fault knob:
a sync against `--faults 0.1` still ends with the store equal to the CRM's records."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from kpisync.demo_crms import DEMO_CRMS
from kpisync.sandbox_command import prepare
from tests import hubspot_truth, salesforce_truth
from tests.sandbox_process import Sandbox, kpisync


def first_number(pattern: str, text: str) -> int:
    """The number the first group of `pattern` matches in `text` (fails when it is not there)."""
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return int(found[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ok(*args: str) -> str:
    done = kpisync(*args, env=credentials)
    assert done.returncode == 0, f"kpisync {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


credentials = {
    name: value for crm in DEMO_CRMS.values() for name, value in crm.credentials().items()
}


@pytest.mark.slow
@pytest.mark.parametrize("crm", ["hubspot", "salesforce", "vtiger"])
def test_a_sandbox_on_a_fixed_port_keeps_what_was_written_across_a_restart(
    crm: str, tmp_path: Path
) -> None:
    port, state, settings = free_port(), tmp_path / "state", tmp_path / "settings.toml"
    source = DEMO_CRMS[crm].source
    with Sandbox(
        "--crm",
        crm,
        "--port",
        str(port),
        "--deals",
        "40",
        "--state",
        str(state),
        "--write-settings",
        str(settings),
    ) as first:
        assert first.port == port
        ok("--settings", str(settings), "sync")
        ok("--settings", str(settings), "fields", "apply", source)
        ok("--settings", str(settings), "compute")
        written = ok("--settings", str(settings), "writeback")
        count = first_number(r"written (\d+), failed 0", written)
        assert count > 0
        printed = first.stop()
    for name in DEMO_CRMS[crm].credentials():  # the settings name it, serve says its value
        assert f"export {name}=" in printed and name in settings.read_text("utf-8")
    with Sandbox("--state", str(state)) as again:  # the port and the org come from the state
        assert again.port == port
        other = tmp_path / "other" / "settings.toml"
        ok("sandbox", "settings", "--state", str(state), "--out", str(other))
        assert "would write 0 field value(s)" in ok(
            "--settings", str(other), "writeback", "--dry-run"
        )
        assert f"demo_{crm}" in ok("--settings", str(other), "check", source)
        again.stop()


def test_a_state_folder_refuses_another_org(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Sandbox("--crm", "hubspot", "--port", "0", "--deals", "30", "--state", str(state)) as s:
        s.stop()
    refused = kpisync("sandbox", "serve", "--state", str(state), "--deals", "31")
    assert refused.returncode == 2
    assert "--deals 31 (the folder's org has 30)" in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_a_sync_against_injected_faults_still_ends_exact(crm: str, tmp_path: Path) -> None:
    state, settings = tmp_path / "state", tmp_path / "settings.toml"
    with Sandbox(
        "--crm",
        crm,
        "--port",
        "0",
        "--deals",
        "200",
        "--seed",
        "1",
        "--faults",
        "0.1",
        "--latency",
        "1",
        "--state",
        str(state),
        "--write-settings",
        str(settings),
    ) as sandbox:
        ok("--settings", str(settings), "sync")
        stopped = sandbox.stop()
    faults = re.search(r"(\d+) of them failed on purpose", stopped)
    assert faults and int(faults[1]) > 0, stopped
    emulator = prepare(None, port=None, deals=None, seed=None, state=state).emulator
    engine = create_engine(f"sqlite:///{tmp_path / 'kpisync.db'}")
    try:
        if crm == "hubspot":
            hubspot_truth.assert_store_equals_truth(
                engine, DEMO_CRMS[crm].source, emulator.dump(), emulator.org
            )
        else:
            salesforce_truth.assert_store_equals_truth(engine, emulator.dump())
    finally:
        engine.dispose()
