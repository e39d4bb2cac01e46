"""The query walk (stock 8.2) against the Vtiger emulator while the org changes under it.

A page may end inside a second that many rows share; the next page asks from the last row read and
restarts the second when that row moved. These tests edit and delete rows between the walk's pages
and check that every row still at or before the bound is read, and the calls it took.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.vtiger.querywalk import PAGE, walk_query
from emulators.org.generate import generate_org
from emulators.org.model import Org
from emulators.vtiger.emulator import VtigerEmulator
from kpisync.cursor import Cursor
from tests.vtiger_env import VtigerEnv

UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(seed=11, deals=400, activities_per_deal=1.5)


def live_at(emulator: VtigerEmulator, module: str, second: int) -> list[str]:
    """Ids of the live rows stamped `second`, in id order."""
    rows = [e for e in emulator.dump()[module].values() if e.live and e.modified == second]
    return [e.ws_id for e in sorted(rows, key=lambda e: e.crmid)]


@contextmanager
def tied(org: Org, module: str) -> Iterator[tuple[VtigerEmulator, VtigerEnv, int, list[str]]]:
    """A stock-8.2 emulator whose live `module` rows all share one second, a minute ago:
    (emulator, env, that second, the tie group's ids in id order)."""
    with VtigerEmulator(org, sync_works=False) as emulator:
        tie = int(datetime.now(UTC).timestamp()) - 60
        emulator.touch_all(module, datetime.fromtimestamp(tie, UTC))
        yield emulator, VtigerEnv(org, emulator), tie, live_at(emulator, module, tie)


def walk(
    env: VtigerEnv, module: str, cursor: Cursor, bound: int, between_pages: Callable[[int], None]
) -> tuple[list[str], list[Cursor], int]:
    """Run the walk; `between_pages(n)` runs after the n-th query. (ids read, cursors, queries)"""
    reader = env.connector().reader()
    calls = [0]

    def query(text: str) -> list[dict[str, Any]]:
        rows = reader.query(text)
        calls[0] += 1
        between_pages(calls[0])
        return rows

    read: list[str] = []
    cursors: list[Cursor] = []
    for batch in walk_query(query, module, cursor, bound, UTC_ZONE):
        read.extend(str(r["id"]) for r in batch.records)
        cursors.append(batch.cursor)
    return read, cursors, calls[0]


def test_a_tie_group_is_paged_with_one_row_of_overlap(org: Org) -> None:
    with tied(org, "Events") as (_, env, tie, group):
        assert len(group) > 3 * PAGE
        read, cursors, calls = walk(env, "Events", Cursor(), tie + 10, lambda n: None)
        assert read == group  # (modifiedtime, id) order, each row once
        assert calls == 2 + (len(group) - PAGE) // (PAGE - 1)  # 100, then 99 new a page
        assert cursors[0].value == str(tie)
        assert cursors[-1] == Cursor(value=str(tie + 1))  # the second is complete


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_rows_leaving_a_read_part_of_the_tie_restart_it(org: Org, change: str) -> None:
    """Each time, a row already read leaves the second: offsets shift, nothing may be skipped."""
    with tied(org, "Events") as (emulator, env, tie, group):
        bound = tie + 10
        left: list[str] = []

        def leave(n: int) -> None:  # after the 1st, 2nd and 4th query: one read row leaves
            if n in (1, 2, 4):
                ws_id = group[len(left) * 7]
                left.append(ws_id)
                if change == "edit":  # stamped now, past the bound: the next run reads it
                    emulator.update_record("Events", ws_id, {"subject": f"edited {n}"})
                else:
                    emulator.delete("Events", ws_id)

        read, _, calls = walk(env, "Events", Cursor(), bound, leave)
        assert set(read) == set(group)  # rows that left were read before they left
        assert len(read) > len(group)  # restarts re-read rows (written again, harmlessly)
        assert calls > 2 + (len(group) - PAGE) // (PAGE - 1)


def test_rows_leaving_the_unread_part_cost_nothing(org: Org) -> None:
    with tied(org, "Events") as (emulator, env, tie, group):
        ahead = group[-5:]

        def edit_ahead(n: int) -> None:
            if n == 1:
                for ws_id in ahead:
                    emulator.update_record("Events", ws_id, {"subject": "edited ahead"})

        read, _, calls = walk(env, "Events", Cursor(), tie + 10, edit_ahead)
        assert read == group[:-5]
        assert calls == 2 + (len(group) - 5 - PAGE) // (PAGE - 1)


def test_an_incremental_run_starts_after_the_complete_second(org: Org) -> None:
    """A run that ended on a short page starts the next strictly after its last second: a record
    edited again since then costs no restart."""
    with VtigerEmulator(org, sync_works=False) as emulator:
        env = VtigerEnv(org, emulator)
        now = int(datetime.now(UTC).timestamp())
        read, cursors, _ = walk(env, "Potentials", Cursor(), now - 1, lambda n: None)
        assert (
            len(read)
            == len(set(read))
            == sum(e.live for e in emulator.dump()["Potentials"].values())
        )
        end = cursors[-1]
        changed = sorted(read)[:150]
        for ws_id in changed:
            emulator.update_record("Potentials", ws_id, {"amount": "10.50"})
        later = int(datetime.now(UTC).timestamp()) + 1
        again, _, calls = walk(env, "Potentials", end, later, lambda n: None)
        assert sorted(again) == changed
        assert calls == math.ceil(len(changed) / PAGE) + (1 if len(changed) % PAGE == 0 else 0)


def test_a_cursor_from_an_older_version_drops_the_ids_it_names(org: Org) -> None:
    with tied(org, "Leads") as (_, env, tie, group):
        old = Cursor(value=str(tie), seen_ids=frozenset(group[:30]), state=(("mode", "query"),))
        read, cursors, _ = walk(env, "Leads", old, tie + 10, lambda n: None)
        assert read == group[30:]
        assert cursors[-1] == Cursor(value=str(tie + 1), state=(("mode", "query"),))
