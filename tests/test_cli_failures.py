"""Every failure an admin can meet, through the real CLI: one line naming what is wrong (and a fix
line), the exit code of the README's table, no traceback, and nothing changed (the store's bytes
and mode, the broken file's too)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table

from emulators.hubspot.emulator import HubSpotEmulator
from emulators.org.generate import generate_org
from kpisync.config import load_settings
from kpisync.scheduler.models import JOBS_TABLE, PipelineRun
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.engine import compute_all
from metrics.options import metric_config
from tests.harness import write_settings_file
from tests.hubspot_env import SOURCE, TOKEN, TOKEN_ENV, HubSpotEnv

CLI = [sys.executable, "-m", "kpisync.cli"]


def kpisync(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KPISYNC_SETTINGS", "COLUMNS")
    }
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environment, TOKEN_ENV: TOKEN, **(env or {})},
        cwd=cwd,
    )


@dataclass
class World:
    env: HubSpotEnv
    store: Path
    settings: Path


def fingerprint(path: Path) -> tuple[str, int]:
    """The file's bytes and mode."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode & 0o777


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("world")
    org = generate_org(seed=2, deals=40)
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=50) as emulator:
        env = HubSpotEnv(org, emulator)
        store = folder / "store.db"
        settings = env.settings_file(folder, f"sqlite:///{store}")
        engine = open_store(f"sqlite:///{store}")
        sync_source(engine, SOURCE, env.connector(), SyncOptions())
        compute_all(engine, metric_config(load_settings(settings)))
        with engine.connect() as connection:  # everything in the main file: a reader's last
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # close changes nothing
        engine.dispose()
        yield World(env, store, settings)


def settings_for(world: World, folder: Path, store_url: str) -> Path:
    return write_settings_file(folder, store_url, SOURCE, world.env.options())


def corrupt_file(world: World, folder: Path) -> tuple[list[str], Path]:
    bad = folder / "corrupt.db"
    bad.write_bytes(bytes(range(256)) * 64)
    bad.chmod(0o644)
    return ["--settings", str(settings_for(world, folder, f"sqlite:///{bad}"))], bad


def damaged_page(world: World, folder: Path) -> tuple[list[str], Path]:
    damaged = folder / "damaged.db"
    shutil.copy(world.store, damaged)
    with damaged.open("r+b") as handle:  # the header stays; the pages' own headers do not
        for page in range(2, damaged.stat().st_size // 4096, 3):
            handle.seek(page * 4096)
            handle.write(b"\xff" * 200)
    return ["--settings", str(settings_for(world, folder, f"sqlite:///{damaged}"))], damaged


def no_folder(world: World, folder: Path) -> tuple[list[str], Path | None]:
    url = f"sqlite:///{folder / 'nowhere' / 'store.db'}"
    return ["--settings", str(settings_for(world, folder, url))], None


def store_is_a_folder(world: World, folder: Path) -> tuple[list[str], Path | None]:
    (folder / "store.db").mkdir()
    return [
        "--settings",
        str(settings_for(world, folder, f"sqlite:///{folder / 'store.db'}")),
    ], None


def survey_file(content: bytes) -> Callable[[World, Path], tuple[list[str], Path]]:
    def prepare(world: World, folder: Path) -> tuple[list[str], Path]:
        path = folder / "answers.csv"
        path.write_bytes(content)
        return [str(path), "--source", SOURCE, "--settings", str(world.settings)], path

    return prepare


def survey_folder(world: World, folder: Path) -> tuple[list[str], Path | None]:
    return [str(folder), "--source", SOURCE, "--settings", str(world.settings)], None


def existing(name: str, *settings: str) -> Callable[[World, Path], tuple[list[str], Path]]:
    def prepare(world: World, folder: Path) -> tuple[list[str], Path]:
        path = folder / name
        path.write_text("# mine\n", encoding="utf-8")
        return [str(path), *[str(world.settings) if s == "SETTINGS" else s for s in settings]], path

    return prepare


def host(url: str, *, sync: bool = False) -> Callable[[World, Path], tuple[list[str], Path | None]]:
    """Settings naming another host; a sync gets a copy of the store (it records its attempt)."""

    def prepare(world: World, folder: Path) -> tuple[list[str], Path | None]:
        store = world.store
        if sync:
            store = folder / "copy.db"
            shutil.copy(world.store, store)
        settings = write_settings_file(
            folder, f"sqlite:///{store}", SOURCE, world.env.options(host=url, fast_retries=False)
        )
        return ([] if sync else [SOURCE]) + ["--settings", str(settings)], None

    return prepare


def plain(*args: str) -> Callable[[World, Path], tuple[list[str], Path | None]]:
    def prepare(world: World, folder: Path) -> tuple[list[str], Path | None]:
        return [*args, "--settings", str(world.settings)], None

    return prepare


BIG_CELL = b"score,date,email\n9,2025-03-01," + b"x" * (129 * 1024) + b"\n"
# (command, prepare, exit code, what the first line says)
CASES = [
    ("status", corrupt_file, 4, "is not a SQLite database (file is not a database)"),
    ("kpis", corrupt_file, 4, "is not a SQLite database (file is not a database)"),
    ("sync", corrupt_file, 4, "is not a SQLite database (file is not a database)"),
    ("status", damaged_page, 4, "the store is damaged: database disk image is malformed"),
    ("kpis", damaged_page, 4, "the store is damaged: database disk image is malformed"),
    ("status", no_folder, 2, "nowhere does not exist"),
    ("status", store_is_a_folder, 2, "store.db is a folder"),
    (
        "surveys import",
        survey_file(BIG_CELL),
        2,
        "line 2: not readable as CSV (field larger than field limit (131072))",
    ),
    ("surveys import", survey_folder, 2, "is a folder, not a file"),
    (
        "surveys import",
        survey_file(b"score,date,email\n-1,2025-03-01,nobody@x.test\n"),
        7,
        "1 of the file's rows were rejected",
    ),
    (
        "surveys import",
        survey_file("\ufeffsc\u200bore;when\n9;2025\n".encode()),
        2,
        "no answered_at column (columns found: score, when)",
    ),
    ("kpis", plain("--json", "--csv"), 2, "--json and --csv are two formats"),
    ("kpis", plain("--kpi", "win rat"), 2, "unknown KPI 'win rat'; did you mean 'Win rate'"),
    ("kpis", plain("--period", "fortnight"), 2, "unknown period 'fortnight'"),
    ("kpis", plain("--history"), 2, "--history needs --kpi"),
    ("goals", plain(), 2, "no goals configured"),
    ("init", existing("settings.toml"), 2, "already exists"),
    ("db backup", existing("backup.db", "--settings", "SETTINGS"), 2, "backup.db already exists"),
    (
        "check",
        host("http://127.0.0.1:9"),
        3,
        "cannot reach HubSpot at http://127.0.0.1:9 for GET /crm/v3/owners: connection refused",
    ),
    ("check", host("http://kpisync-test.invalid"), 3, "the host name does not resolve (DNS)"),
    ("sync", host("http://127.0.0.1:9", sync=True), 3, "connection refused"),
]


@pytest.mark.parametrize(
    ("command", "prepare", "code", "says"),
    CASES,
    ids=[f"{c[0]}-{getattr(c[1], '__name__', 'x')}-{i}" for i, c in enumerate(CASES)],
)
def test_each_failure_is_one_line_its_exit_code_and_changes_nothing(
    world: World,
    tmp_path: Path,
    command: str,
    prepare: Callable[..., tuple[list[str], Path]],
    code: int,
    says: str,
) -> None:
    arguments, touched = prepare(world, tmp_path)
    before = fingerprint(world.store)
    touched_before = fingerprint(touched) if touched is not None and touched.is_file() else None
    done = kpisync(*command.split(), *arguments, cwd=tmp_path)
    assert done.returncode == code, done
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    marker = "✗ " if command == "check" else "error: "
    assert lines and lines[0].startswith(marker) and says in lines[0], done.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  fix: ")), done.stderr
    assert fingerprint(world.store) == before
    if touched_before is not None:
        assert fingerprint(touched) == touched_before  # bytes and mode (0644 stays 0644)


def test_db_check_says_what_is_wrong_and_how_to_recover(world: World, tmp_path: Path) -> None:
    arguments, damaged = damaged_page(world, tmp_path)
    before = fingerprint(damaged)
    done = kpisync("db", "check", *arguments)
    assert done.returncode == 4, done
    assert "unreadable: the store is damaged: database disk image is malformed" in done.stdout
    assert f"mv {damaged} {damaged}.damaged" in done.stdout
    assert "'kpisync sync --full'" in done.stdout and "'kpisync db backup'" in done.stdout
    assert "imported survey answers" in done.stdout and "write-back audit" in done.stdout
    assert fingerprint(damaged) == before
    healthy = kpisync("db", "check", "--json", "--settings", str(world.settings))
    assert healthy.returncode == 0, healthy
    report = json.loads(healthy.stdout)
    assert report["sound"] and report["integrity"] == [] and report["revision"] == report["newest"]
    with sqlite3.connect(world.store) as connection:
        deals = connection.execute("SELECT count(*) FROM deals").fetchone()[0]
    assert report["counts"]["deals"] == deals == len(world.env.org.deals)


def test_db_backup_is_a_consistent_copy_that_serves_as_the_store(
    world: World, tmp_path: Path
) -> None:
    target = tmp_path / "backup.db"
    done = kpisync("db", "backup", str(target), "--settings", str(world.settings))
    assert done.returncode == 0, done
    assert target.stat().st_mode & 0o777 == 0o600
    tables = ("deals", "accounts", "kpi_values", "sync_state")
    with sqlite3.connect(world.store) as a, sqlite3.connect(target) as b:
        for name in tables:
            query = f"SELECT * FROM {name} ORDER BY 1"
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), name
    restored = kpisync(
        "db", "check", "--settings", str(settings_for(world, tmp_path, f"sqlite:///{target}"))
    )
    assert restored.returncode == 0 and "integrity: ok" in restored.stdout, restored


def test_a_read_only_store_serves_the_read_only_commands(world: World, tmp_path: Path) -> None:
    """The store's folder is mounted read-only (in a private mount namespace)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(world.store, folder / "store.db")
    settings = settings_for(world, tmp_path, f"sqlite:///{folder / 'store.db'}")
    before = fingerprint(folder / "store.db")
    report = tmp_path / "report.html"
    script = f"mount --bind -o ro {folder} {folder} && " + " ; ".join(
        f"{' '.join(CLI)} {command} --settings {settings} >{tmp_path}/{n}.out "
        f"2>{tmp_path}/{n}.err; echo $? >{tmp_path}/{n}.rc"
        for n, command in enumerate(
            [
                "status --json",
                "kpis --json",
                f"report --out {report}",
                "sync",
                "compute",
                "surveys import /dev/null --source hs",
            ]
        )
    )
    subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", script],
        check=True,
        timeout=600,
        env={**os.environ, TOKEN_ENV: TOKEN},
    )

    def outcome(n: int) -> tuple[int, str, str]:
        return (
            int((tmp_path / f"{n}.rc").read_text()),
            (tmp_path / f"{n}.out").read_text(),
            (tmp_path / f"{n}.err").read_text(),
        )

    code, out, err = outcome(0)
    assert code == 0 and json.loads(out)[0]["source"] == SOURCE, err
    code, out, err = outcome(1)
    assert code == 0 and out.count("\n") > 10 and "Traceback" not in err, err
    code, out, err = outcome(2)
    assert code == 0 and report.stat().st_size > 1000, err
    for n, command in ((3, "sync"), (4, "compute"), (5, "surveys import")):
        code, out, err = outcome(n)
        assert code == 4, (command, err)
        assert err.splitlines()[0] == (
            f"error: the store is read-only (a read-only file or file "
            f"system); '{command}' writes to it"
        ), err
    assert fingerprint(folder / "store.db") == before


def test_every_line_under_log_json_is_json_the_error_and_traceback_included(
    world: World, tmp_path: Path
) -> None:
    arguments, _ = damaged_page(world, tmp_path)
    for debug in ([], ["--debug"]):
        done = kpisync("--log-json", *debug, "--verbose", "kpis", *arguments)
        assert done.returncode == 4
        records = [json.loads(line) for line in done.stderr.splitlines()]
        assert records[-1]["level"] == "error" and records[-1]["exit_code"] == 4
        assert records[-1]["message"] == "the store is damaged: database disk image is malformed"
        assert ("Traceback (most recent call last)" in records[-1].get("traceback", "")) == bool(
            debug
        )
    done = kpisync(
        "--log-json", "check", SOURCE, *host("http://127.0.0.1:9")(world, tmp_path)[0][1:]
    )
    assert done.returncode == 3
    [record] = [json.loads(line) for line in done.stderr.splitlines()]
    assert "connection refused" in record["message"] and record["fix"]


def test_a_closed_pipe_ends_the_output_quietly(world: World) -> None:
    """`kpisync kpis --csv | head -0`: the reader has gone before the first write."""
    for form in ("--csv", "--json", ""):
        process = subprocess.Popen(
            [*CLI, "kpis", *([form] if form else []), "--settings", str(world.settings)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, TOKEN_ENV: TOKEN},
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        error = process.stderr.read().decode()
        assert process.wait(timeout=300) == 0 and error == "", (form, error)


def test_ctrl_c_on_sync_is_recorded_as_interrupted_and_the_next_sync_resumes(
    tmp_path: Path,
) -> None:
    """The signal is placed by progress: once the emulator has answered a few calls, it is held
    (its lock) so the sync cannot finish, Ctrl-C is sent, and the emulator is let go once the
    CLI has said it stops after the page being written."""
    org = generate_org(seed=5, deals=120)
    with HubSpotEmulator(org, access_token=TOKEN, search_rate_per_second=50) as emulator:
        env = HubSpotEnv(org, emulator)
        store = tmp_path / "store.db"
        settings = env.settings_file(tmp_path, f"sqlite:///{store}")
        process = subprocess.Popen(
            [*CLI, "--log-json", "sync", "--settings", str(settings)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, TOKEN_ENV: TOKEN},
        )
        assert process.stderr is not None
        try:
            while emulator.daily_used < 8:  # discovery done, the first pages under way
                assert process.poll() is None, process.communicate()
                os.sched_yield()
            with emulator.store.lock:
                assert process.poll() is None
                process.send_signal(signal.SIGINT)
                said = json.loads(process.stderr.readline())
                assert said["message"].startswith("SIGINT: stopping after the page being written")
            rest = process.stderr.read()
            assert process.wait(timeout=300) == 130, rest
        finally:
            if process.poll() is None:
                process.kill()
        [record] = [json.loads(line) for line in rest.splitlines()]
        assert record["message"].startswith("stopped during hs/") and record["exit_code"] == 130
        with sqlite3.connect(store) as connection:
            status, error = connection.execute(
                "SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        assert status == "interrupted" and error.startswith("stopped during hs/"), error
        again = kpisync("sync", "--settings", str(settings))
        assert again.returncode == 0, again
        with sqlite3.connect(store) as connection:
            deals = connection.execute(
                "SELECT count(*) FROM deals WHERE deleted_at IS NULL"
            ).fetchone()[0]
        assert deals == len(org.deals)


def test_status_lists_syncs_by_hand_and_computes_the_next_run_from_the_settings(
    world: World, tmp_path: Path
) -> None:
    settings = write_settings_file(
        tmp_path, f"sqlite:///{tmp_path / 'store.db'}", SOURCE, world.env.options()
    )
    shutil.copy(world.store, tmp_path / "store.db")
    with settings.open("a", encoding="utf-8") as handle:
        handle.write("\n[sources.hs.schedule]\ninterval_minutes = 15\n")
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    jobs = Table(JOBS_TABLE, MetaData(), autoload_with=engine)
    stale = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    with engine.begin() as connection:  # a worker that stopped long ago left its plan behind
        connection.execute(
            jobs.insert().values(id="pipeline:hs", next_run_time=stale.timestamp(), job_state=b"")
        )
        connection.execute(
            PipelineRun.__table__.insert().values(  # type: ignore[attr-defined]
                source="hs",
                due_at=stale - timedelta(minutes=15),
                worker="gone:1",
                status="succeeded",
                claimed_at=stale,
                started_at=stale,
                finished_at=stale,
            )
        )  # (one never run is due now)
    engine.dispose()
    started = datetime.now(UTC)
    done = kpisync("status", "--json", "--runs", "5", "--settings", str(settings))
    assert done.returncode == 0, done
    [row] = json.loads(done.stdout)
    next_run = datetime.fromisoformat(row["next_run"])
    assert next_run > started and next_run.minute % 15 == 0 and next_run.second == 0
    assert "a run due 2026-01-05 10:00 UTC has not started" in row["schedule"]
    assert [run["trigger"] for run in row["runs"]] == ["manual", "schedule"]
    assert row["runs"][0]["status"] == "succeeded" and row["runs"][0]["upserted"] > 0


def test_output_is_not_cut_when_stdout_is_not_a_terminal(world: World) -> None:
    listed = kpisync("discover", SOURCE, "--json", "--settings", str(world.settings))
    table = kpisync("discover", SOURCE, "--settings", str(world.settings))
    assert listed.returncode == table.returncode == 0, table
    names = [field["name"] for field in json.loads(listed.stdout)["fields"]]
    assert names and all(name in table.stdout for name in names)  # an 80-column table cut them
    status = kpisync("status", "--settings", str(world.settings))
    assert status.returncode == 0 and "succeeded" in status.stdout and "…" not in status.stdout


def test_kpis_shows_one_period_per_table_named_in_its_title(world: World) -> None:
    from kpisync.formats import period_label
    from metrics.periods import period_start, shift

    def rows(*args: str) -> list[dict[str, object]]:
        done = kpisync("kpis", "--json", *args, "--settings", str(world.settings))
        assert done.returncode == 0, done
        return [json.loads(line) for line in done.stdout.splitlines()]

    today = datetime.now(UTC).date()  # the settings' timezone is UTC
    last_month = shift(period_start(today, "month"), "month", -1)
    shown = rows()
    assert shown and {r["period_start"] for r in shown} == {last_month.isoformat()}
    teams = rows("--period", "quarter", "--grain", "team")
    last_quarter = shift(period_start(today, "quarter"), "quarter", -1)
    assert teams and {r["period_start"] for r in teams} == {last_quarter.isoformat()}
    win = rows("--kpi", "WIN RATE", "--grain", "org")
    assert win and {r["kpi"] for r in win} == {"win_rate"} and win[0]["unit"] == "ratio"
    assert {r["unit"] for r in rows("--kpi", "Net Promoter Score")} == {"score"}
    table = kpisync("kpis", "--settings", str(world.settings))
    assert f"{period_label(last_month, 'month')}, complete" in table.stdout
    running = kpisync("kpis", "--at", today.isoformat(), "--settings", str(world.settings))
    assert f"{period_label(period_start(today, 'month'), 'month')} to date, as of" in running.stdout
    assert date.fromisoformat(str(shown[0]["period_start"])) == last_month


def test_db_check_and_backup_of_either_store(store_url: str, tmp_path: Path) -> None:
    """SQLite's online backup or pg_dump: the copy holds the store's rows."""
    engine = open_store(store_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO store_revisions (source, revision) VALUES ('hs', 41)"
        )
    engine.dispose()
    settings = tmp_path / "settings.toml"
    settings.write_text('[kpisync]\nstore_env = "KPISYNC_TEST_STORE_URL"\n', encoding="utf-8")
    env = {"KPISYNC_TEST_STORE_URL": store_url}
    checked = kpisync("db", "check", "--json", "--settings", str(settings), env=env)
    assert checked.returncode == 0, checked
    assert json.loads(checked.stdout)["counts"]["store_revisions"] == 1
    target = tmp_path / "backup"
    done = kpisync("db", "backup", str(target), "--settings", str(settings), env=env)
    assert done.returncode == 0, done
    assert target.stat().st_mode & 0o777 == 0o600 and "Traceback" not in done.stderr
    if store_url.startswith("sqlite"):
        with sqlite3.connect(target) as copy:
            assert copy.execute("SELECT revision FROM store_revisions").fetchall() == [(41,)]
    else:
        from kpisync.store.maintenance import pg_tool

        listing = subprocess.run(
            [
                pg_tool("pg_restore"),
                "--data-only",
                "--table",
                "store_revisions",
                "--file",
                "-",
                str(target),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "hs\t41" in listing.stdout, listing.stdout[-500:]
