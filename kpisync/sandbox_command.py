"""`kpisync sandbox`: a CRM emulator run on its own, for kpisync (or anything else) to talk to.

`serve` runs one in the foreground until SIGINT or SIGTERM, on a fixed port, with the fixed demo
credentials; with `--state DIR` its records (everything written to it included) are saved there when calls
pause (at least every minute while they keep coming) and when it stops, and loaded when it starts
again.
`settings` writes a settings.toml that works with every command against it.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console

from emulators.org.generate import generate_org
from emulators.state import StateFileError, load_state, save_state
from kpisync.demo_crms import DemoCrm
from kpisync.errors import ConfigError, StateError
from kpisync.sandbox_setup import (
    Mapping,
    SandboxFolder,
    add_score_fields,
    ca_home,
    demo_crm,
    exports,
    settings_text,
)

QUIET_SECONDS = 2.0  # records are saved once calls pause this long
SAVE_AT_LEAST_EVERY_SECONDS = 60.0  # or this often while calls keep coming
DEFAULT_DEALS, DEFAULT_SEED = 400, 7

console = Console(soft_wrap=True)


@dataclass
class Sandbox:
    """An emulator made ready to serve: the CRM, the emulator, its port and score fields."""

    crm: DemoCrm
    emulator: Any
    port: int
    mapping: Mapping
    state: Path | None
    seed: int
    deals: int


def prepare(
    crm_name: str | None,
    *,
    port: int | None,
    deals: int | None,
    seed: int | None,
    latency_ms: float = 0.0,
    faults: float = 0.0,
    state: Path | None = None,
) -> Sandbox:
    """The sandbox asked for: from the state folder when it holds one (its org, port and
    records), else a fresh org with the score fields added."""
    described = SandboxFolder.read(state) if state else None
    if described is None and crm_name is None:
        raise ConfigError(
            "which CRM? --crm is needed",
            hint="add --crm hubspot, salesforce or "
            "vtiger (a --state folder made before remembers it)",
        )
    crm = demo_crm(crm_name or described.crm)  # type: ignore[union-attr]
    if described is not None:
        clash = [
            f"{name} {asked} (the folder's org has {kept})"
            for name, asked, kept in (
                ("--crm", crm.key, described.crm),
                ("--deals", deals, described.deals),
                ("--seed", seed, described.seed),
            )
            if asked is not None and asked != kept
        ]
        if clash:
            raise ConfigError(
                f"{state} is a sandbox of another org: {'; '.join(clash)}",
                hint="leave those options out, or use another --state folder",
            )
        deals, seed = described.deals, described.seed
    seed = DEFAULT_SEED if seed is None else seed
    deals = DEFAULT_DEALS if deals is None else deals
    org = generate_org(seed=seed, deals=deals)
    knobs = crm.knobs(latency_ms / 1000.0, faults, seed)
    emulator = crm.serve(org, knobs, ca_folder=state or ca_home())
    restored = False
    if state is not None:
        try:
            restored = load_state(emulator, state)
        except StateFileError as error:
            raise StateError(str(error), hint="start from another --state folder") from error
    mapping = described.mapping if restored and described else add_score_fields(crm, emulator)
    chosen = port if port is not None else described.port if described else crm.default_port
    return Sandbox(crm, emulator, chosen, mapping, state, seed, deals)


def write_settings(sandbox: Sandbox, path: Path) -> None:
    """settings.toml for the sandbox (its store beside it), and the sandbox's URL in it."""
    path = path.resolve()
    scheme = "https" if sandbox.crm.key == "salesforce" else "http"
    emulator = sandbox.emulator
    if not emulator.base_url:  # not serving: the URL it will serve on
        emulator.base_url = f"{scheme}://127.0.0.1:{sandbox.port}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        settings_text(sandbox.crm, emulator, path.parent / "kpisync.db", sandbox.mapping), "utf-8"
    )


def how_to_use(sandbox: Sandbox, settings: Path | None) -> str:
    crm = sandbox.crm
    where = f"--settings {settings} " if settings else ""
    written = (
        f"settings: {settings}"
        if settings
        else f"settings: `kpisync sandbox settings --crm {crm.key} --port {sandbox.port}"
        f"{f' --state {sandbox.state}' if sandbox.state else ''} --out settings.toml`"
    )
    return (
        f"{written}\nset its demo credentials:\n{exports(crm)}\n"
        f"then: kpisync {where}check {crm.source}"
    )


def serve(
    crm: str = typer.Option(
        None, "--crm", help="hubspot, salesforce or vtiger (a --state folder remembers it)."
    ),
    port: int = typer.Option(
        None,
        "--port",
        min=0,
        max=65535,
        help="Port on 127.0.0.1 (0: any free one). Default: the "
        "state folder's, else 18601/18602/18603 by CRM.",
    ),
    deals: int = typer.Option(
        None, "--deals", min=1, help=f"Size of the synthetic org ({DEFAULT_DEALS})."
    ),
    seed: int = typer.Option(None, "--seed", help=f"Seed of the synthetic org ({DEFAULT_SEED})."),
    latency: float = typer.Option(
        0.0, "--latency", min=0.0, help="Milliseconds added to every call."
    ),
    faults: float = typer.Option(
        0.0,
        "--faults",
        min=0.0,
        max=1.0,
        help="Share of calls answered with the CRM's rate-limit "
        "error or a 5xx (half each), drawn from --seed.",
    ),
    state: Path = typer.Option(
        None, "--state", help="Folder that keeps the records across restarts."
    ),
    settings_out: Path = typer.Option(
        None, "--write-settings", help="Write a settings.toml for this sandbox here."
    ),
) -> None:
    """Serve a CRM emulator in the foreground until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()  # set by a signal from now on, even one sent while starting

    def stop_on(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_on)
    folder = state.resolve() if state else None
    sandbox = prepare(
        crm, port=port, deals=deals, seed=seed, latency_ms=latency, faults=faults, state=folder
    )
    try:
        base_url = sandbox.emulator.start(sandbox.port)
    except OSError as error:
        raise ConfigError(
            f"port {sandbox.port} on 127.0.0.1: {error.strerror}",
            hint="stop what uses it, or pass another --port",
        ) from error
    try:
        sandbox.port = int(base_url.rsplit(":", 1)[1])
        if folder is not None:
            SandboxFolder(
                sandbox.crm.key, sandbox.seed, sandbox.deals, sandbox.port, sandbox.mapping
            ).write(folder)
            save_state(sandbox.emulator, folder)
        if settings_out is not None:
            write_settings(sandbox, settings_out)
        console.print(
            f"{sandbox.crm.name} sandbox at {base_url}"
            f"{f', records kept in {folder}' if folder else ''}\n"
            f"{how_to_use(sandbox, settings_out.resolve() if settings_out else None)}\n"
            f"Ctrl-C stops it.",
            markup=False,
            highlight=False,
        )
        serve_until(stop, sandbox)
    finally:
        sandbox.emulator.stop()
        if folder is not None:
            save_state(sandbox.emulator, folder)
    injected = sum(sandbox.emulator.faults_injected.values())
    console.print(
        f"stopped after {sandbox.emulator.total_calls} calls, "
        f"{injected} of them failed on purpose (--faults)"
        + (f"; records saved in {folder}" if folder else "")
    )


def serve_until(stop: threading.Event, sandbox: Sandbox) -> None:
    """Wait for `stop`; meanwhile save the records when calls came in and then paused (a
    1,000-deal org takes about 1.5 s to save, under the store's lock)."""
    saved = seen = sandbox.emulator.total_calls
    last_save = time.monotonic()
    while not stop.wait(QUIET_SECONDS):
        calls = sandbox.emulator.total_calls
        quiet = calls == seen  # a save holds the store's lock: not amid a client's run
        if (
            sandbox.state is not None
            and calls != saved
            and (quiet or time.monotonic() - last_save > SAVE_AT_LEAST_EVERY_SECONDS)
        ):
            save_state(sandbox.emulator, sandbox.state)
            saved, last_save = calls, time.monotonic()
        seen = calls


def settings(
    crm: str = typer.Option(None, "--crm", help="hubspot, salesforce or vtiger."),
    port: int = typer.Option(
        None, "--port", min=1, max=65535, help="The port the sandbox serves on."
    ),
    deals: int = typer.Option(None, "--deals", min=1, help="As given to serve."),
    seed: int = typer.Option(None, "--seed", help="As given to serve."),
    state: Path = typer.Option(None, "--state", help="The sandbox's state folder."),
    out: Path = typer.Option(Path("settings.toml"), "--out", help="Where to write the settings."),
) -> None:
    """Write a settings.toml that works with every command against `kpisync sandbox serve`."""
    sandbox = prepare(
        crm, port=port, deals=deals, seed=seed, state=state.resolve() if state else None
    )
    write_settings(sandbox, out)
    console.print(
        f"wrote {out.resolve()} (its store: {out.resolve().parent / 'kpisync.db'})\n"
        f"set the sandbox's demo credentials:\n{exports(sandbox.crm)}",
        markup=False,
        highlight=False,
    )
    if sandbox.crm.key == "salesforce":
        console.print(f"its ca_bundle: {sandbox.emulator.ca_path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    sandbox_app = typer.Typer(
        help="Run a CRM emulator (HubSpot, Salesforce, Vtiger) to try kpisync on.",
        no_args_is_help=True,
    )
    sandbox_app.command("serve")(serve)
    sandbox_app.command("settings")(settings)
    app.add_typer(sandbox_app, name="sandbox")
