"""The engine reads streams one after another and ahead across their borders: each stream still
commits its own pages and cursor, and a failing stream leaves every page read before it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from kpisync.collector import ALLOCATIONS_PER_PASS
from kpisync.connector import FieldInfo, Page, StreamSpec
from kpisync.cursor import Cursor
from kpisync.errors import ConnectorError
from kpisync.store.database import open_store
from kpisync.store.models import Account, Contact, RecordBase, SyncRun
from kpisync.store.writer import load_cursor
from kpisync.sync import SyncOptions, sync_source


class TwoStreams:
    """Accounts a1..a3 and contacts c1..c3, a page each; contacts fail at `fail_at` (1-based)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.started: list[tuple[str, str | None]] = []
        self.thresholds: list[int] = []

    def discover(self) -> list[FieldInfo]:
        return []

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec("accounts", ("account",)), StreamSpec("contacts", ("contact",))]

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        self.started.append((stream, cursor.value))
        self.thresholds.append(gc.get_threshold()[0])
        for number in range(int(cursor.value or 0) + 1, 4):
            if stream == "contacts" and number == self.fail_at:
                raise ConnectorError("contacts page 2 failed", hint="try again")
            row = (
                Account.row(external_id=f"a{number}", name=f"A{number}")
                if stream == "accounts"
                else Contact.row(external_id=f"c{number}", first_name=f"C{number}")
            )
            yield Page(stream=stream, records=[row], cursor=Cursor(value=str(number)))

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        return iter(())

    def api_usage(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def stored(engine: Engine, model: type[RecordBase]) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(col(model.external_id)).order_by(col(model.external_id))
            ).scalars()
        )


def cursors(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        return {s: load_cursor(connection, "two", s).value for s in ("accounts", "contacts")}


def test_a_failing_stream_keeps_every_page_before_it_and_the_rerun_resumes(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    options = SyncOptions(purge_check_every=None)
    with pytest.raises(ConnectorError):
        sync_source(engine, "two", TwoStreams(fail_at=2), options)  # type: ignore[arg-type]
    assert stored(engine, Account) == ["a1", "a2", "a3"]
    assert stored(engine, Contact) == ["c1"]
    assert cursors(engine) == {"accounts": "3", "contacts": "1"}
    with engine.connect() as connection:
        failed = connection.execute(select(col(SyncRun.status), col(SyncRun.upserted))).one()
    assert tuple(failed) == ("failed", 4)  # the run's record counts the pages it committed

    rerun = TwoStreams()
    result = sync_source(engine, "two", rerun, options)  # type: ignore[arg-type]
    assert rerun.started == [("accounts", "3"), ("contacts", "1")]
    assert [(s.stream, s.pages, s.upserted) for s in result.streams] == [
        ("accounts", 0, 0),
        ("contacts", 2, 2),
    ]
    assert stored(engine, Contact) == ["c1", "c2", "c3"]
    assert cursors(engine) == {"accounts": "3", "contacts": "3"}


def test_the_collector_runs_less_often_during_a_sync_and_as_before_after_it(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    before = gc.get_threshold()
    failing, fine = TwoStreams(fail_at=1), TwoStreams()
    with pytest.raises(ConnectorError):
        sync_source(engine, "two", failing, SyncOptions(purge_check_every=None))  # type: ignore[arg-type]
    assert gc.get_threshold() == before
    sync_source(engine, "two", fine, SyncOptions(purge_check_every=None))  # type: ignore[arg-type]
    assert gc.get_threshold() == before
    assert min(failing.thresholds + fine.thresholds) >= ALLOCATIONS_PER_PASS > before[0]
