"""The connector contract as tests: subclass `ConnectorConformance` in a test module and define a
fixture `conformance_subject` (a `ConformanceSubject`); every test below then runs on it, once per
parameter of that fixture. The store comes from the fixture `conformance_store_url` (a SQLite
file by default; override it to run on PostgreSQL)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from sqlalchemy import Engine

from kpisync.connector import Connector, FieldSpec, FieldUpdate, Page
from kpisync.cursor import Cursor
from kpisync.errors import Interrupted, KpisyncError, RejectedError, TransientError
from kpisync.store.database import open_store
from kpisync.store.models import ENTITY_MODELS, Row
from kpisync.sync import SyncOptions, SyncResult, sync_source

from .stores import assert_no_duplicates, cursors, last_run, stored_rows, without
from .subject import ConformanceSubject, comparable

LOST = "conformance: the connection was lost"


def sync(
    engine: Engine, subject: ConformanceSubject, connector: Connector | None = None, **options: Any
) -> SyncResult:
    every = timedelta(0) if subject.deletes_by_id_comparison else timedelta(days=7)
    options.setdefault("purge_check_every", every)
    connector = connector or subject.connector()
    try:
        return sync_source(engine, subject.source, connector, SyncOptions(**options))
    finally:
        connector.close()


def synced(engine: Engine, subject: ConformanceSubject, **options: Any) -> None:
    result = sync(engine, subject, **options)
    assert result.status == "succeeded", f"the sync ended {result.status}: {result.error}"


class LosesConnection:
    """A connector whose connection drops after `after` pages, as a network would mid-read."""

    def __init__(self, inner: Connector, after: int) -> None:
        self.inner, self.after, self.pages = inner, after, 0

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        for page in self.inner.read(stream, cursor, signpost=signpost):
            if self.pages == self.after:
                raise TransientError(f"{LOST} after {self.pages} pages")
            self.pages += 1
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def reached(pages: list[Page], count: int) -> bool:
    return len(pages) >= count


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text.strip() and "\n" not in text.strip(), f"not one line: {text!r}"
    return text


class ConnectorConformance:
    """The contract every kpisync connector keeps (docs/connector-authors.md)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.conformance]

    def test_check_passes_and_discover_lists_fields(
        self, conformance_subject: ConformanceSubject
    ) -> None:
        connector = conformance_subject.connector()
        try:
            assert connector.check() == [], "check() found problems on a healthy source"
            fields = connector.discover()
            assert fields, "discover() lists no field"
            bad = [info for info in fields if not (info.entity and info.name)]
            assert not bad, f"discover() lists fields without an entity or a name: {bad[:3]}"
        finally:
            connector.close()

    def test_streams_pages_and_cursors(self, conformance_subject: ConformanceSubject) -> None:
        """Each stream's pages carry kpisync's entities, and cursors that survive JSON."""
        connector = conformance_subject.connector()
        try:
            specs = connector.streams()
            names = [spec.name for spec in specs]
            assert names and len(set(names)) == len(names), f"streams(): {names}"
            pages = records = 0
            incremental = False
            for spec in specs:
                assert set(spec.entities) <= set(ENTITY_MODELS), f"{spec.name}: {spec.entities}"
                for page in connector.read(spec.name, Cursor(), signpost=datetime.now(UTC)):
                    pages += 1
                    records += len(page.records)
                    assert page.stream == spec.name, f"{spec.name} gave a page of {page.stream}"
                    for record in page.records:
                        # Known entities only: HubSpot's `deals` carries stage changes it does
                        # not declare (its `entities` also key deletes and merges by record id).
                        assert record.entity in ENTITY_MODELS, f"{spec.name}: a {record.entity}"
                        key = (
                            record.values.get("external_id")
                            if isinstance(record, Row)
                            else record.external_id
                        )
                        assert isinstance(key, str) and key, f"{spec.name}: external_id {key!r}"
                    for gone in page.deleted:
                        assert gone.entity in spec.entities, f"{spec.name}: deleted {gone.entity}"
                    if page.cursor is not None:
                        assert isinstance(page.cursor, Cursor), f"{spec.name}: {page.cursor!r}"
                        kept = json.loads(json.dumps(page.cursor.to_json()))
                        assert Cursor.from_json(kept) == page.cursor, f"{spec.name}: cursor changes"
                        incremental |= not (spec.whole or spec.metadata)
            usage = connector.api_usage()
            assert all(isinstance(k, str) and isinstance(v, int) for k, v in usage.items()), usage
        finally:
            connector.close()
        assert records, "a full read gave no records: seed the source in the subject"
        assert pages >= conformance_subject.MIN_PAGES, (
            f"a full read took {pages} pages: seed more records (or a smaller page size) so "
            f"reads can be interrupted between pages"
        )
        assert incremental, "no stream's page carries a cursor: every sync would read everything"

    def test_full_sync_equals_truth_and_a_resync_changes_nothing(
        self, conformance_subject: ConformanceSubject, conformance_engine: Engine
    ) -> None:
        engine, subject = conformance_engine, conformance_subject
        synced(engine, subject)
        subject.assert_store_equals_truth(engine)
        first = stored_rows(engine, subject.source)
        synced(engine, subject)
        again = stored_rows(engine, subject.source)
        rewritten = sorted(key for key in first if first[key] != again.get(key))
        assert not rewritten and again.keys() == first.keys(), (
            f"an incremental sync with nothing changed rewrote {rewritten[:5]} "
            f"({len(rewritten)} rows) and added {sorted(again.keys() - first.keys())[:5]}"
        )
        synced(engine, subject, full=True)
        reread = stored_rows(engine, subject.source)
        old, new = without(first, "synced_at"), without(reread, "synced_at")
        changed = sorted(key for key in old if comparable(new.get(key)) != comparable(old[key]))
        assert not changed and reread.keys() == first.keys(), (
            f"a full re-read changed {changed[:5]} ({len(changed)} rows), which the source did "
            f"not change, and added {sorted(reread.keys() - first.keys())[:5]}"
        )
        assert_no_duplicates(engine)
        subject.assert_store_equals_truth(engine)

    def test_incremental_sync_reads_exactly_the_edits(
        self, conformance_subject: ConformanceSubject, conformance_engine: Engine
    ) -> None:
        engine, subject = conformance_engine, conformance_subject
        synced(engine, subject)
        before = stored_rows(engine, subject.source)
        edited = subject.edit(seed=1)
        assert edited, "edit() changed no record"
        synced(engine, subject)
        subject.assert_store_equals_truth(engine)
        after = stored_rows(engine, subject.source)
        touched = {
            key for key in after if before.get(key, {}).get("synced_at") != after[key]["synced_at"]
        }
        kinds = {entity for entity, _ in edited}
        missed = sorted(edited - touched)
        extra = sorted(key for key in touched - edited if key[0] in kinds)
        assert not missed, f"the incremental sync missed edited records {missed[:5]}"
        assert not extra, (
            f"the incremental sync rewrote {len(extra)} records nobody edited, "
            f"e.g. {extra[:5]}: does read() start from the cursor?"
        )
        assert_no_duplicates(engine)

    def test_deletes_are_marked(
        self, conformance_subject: ConformanceSubject, conformance_engine: Engine
    ) -> None:
        engine, subject = conformance_engine, conformance_subject
        synced(engine, subject)
        entity, external_id = subject.delete()
        synced(engine, subject)
        row = stored_rows(engine, subject.source).get((entity, external_id))
        assert row is not None, f"{entity} {external_id} was never stored"
        assert row["deleted_at"] is not None, (
            f"{entity} {external_id} was deleted in the source but is live in the store"
        )
        subject.assert_store_equals_truth(engine)

    def test_interrupted_reads_resume_to_truth(
        self, conformance_subject: ConformanceSubject, conformance_engine: Engine, tmp_path: Path
    ) -> None:
        """Full re-reads stopped between pages, or cut by a lost connection, after a random
        number of pages; each round edits the source first. A last sync ends equal to truth."""
        engine, subject = conformance_engine, conformance_subject
        counting = open_store(f"sqlite:///{tmp_path / 'counting.db'}")
        counted: list[Page] = []
        synced(counting, subject, on_page=counted.append)
        counting.dispose()
        assert len(counted) >= 2, f"a full sync committed {len(counted)} pages: seed more records"
        rng = random.Random(20261208)
        stops = []
        for round_ in range(4):
            subject.edit(seed=100 + round_)
            stop_at = rng.randint(1, len(counted) - 1)
            stops.append(stop_at)
            committed: list[Page] = []
            if round_ % 2 == 0:
                with pytest.raises(Interrupted):
                    sync(
                        engine,
                        subject,
                        full=True,
                        on_page=committed.append,
                        should_stop=partial(reached, committed, stop_at),
                    )
                assert len(committed) == stop_at
                assert last_run(engine, subject.source)[0] == "interrupted"
            else:
                with pytest.raises(TransientError, match=LOST):
                    lost = cast(Connector, LosesConnection(subject.connector(), stop_at))
                    sync(engine, subject, lost, full=True, on_page=committed.append)
                assert len(committed) <= stop_at
                assert last_run(engine, subject.source)[0] == "failed"
        synced(engine, subject)
        assert_no_duplicates(engine)
        subject.assert_store_equals_truth(engine)
        print(f"a full sync commits {len(counted)} pages; stopped after {stops}")

    def test_failures_are_kpisync_connector_errors(
        self, conformance_subject: ConformanceSubject, conformance_engine: Engine
    ) -> None:
        """Each failure the subject names is raised as its kpisync error, in one line without
        secrets, recorded as a failed run, and leaves the store as it was."""
        engine, subject = conformance_engine, conformance_subject
        cases = subject.error_cases()
        assert cases, "error_cases() names no failure"
        synced(engine, subject)
        before = (stored_rows(engine, subject.source), cursors(engine, subject.source))
        for case in cases:
            connector = case.connector()
            if case.found_by_check:
                problems = connector.check()
                assert problems and all(p.what and p.fix for p in problems), (
                    f"{case.name}: check() reported {problems}"
                )
            raised: BaseException | None = None
            try:
                sync(engine, subject, connector)
            except Exception as error:
                raised = error
            assert raised is not None, f"{case.name}: the sync succeeded"
            assert isinstance(raised, case.expected), (
                f"{case.name}: raised {type(raised).__name__}: {raised}; expected "
                f"{case.expected.__name__} (kpisync.errors): map the failure in the connector"
            )
            message = one_line(raised)
            status, recorded = last_run(engine, subject.source)
            assert status == "failed", f"{case.name}: the run was recorded {status}"
            for secret in case.secrets:
                assert secret not in message + (recorded or ""), f"{case.name}: a secret shows"
            after = (stored_rows(engine, subject.source), cursors(engine, subject.source))
            assert after == before, f"{case.name}: the failed sync changed the store"

    def test_write_back_as_declared(self, conformance_subject: ConformanceSubject) -> None:
        """A writable connector provisions the field, writes it, and reports a missing record as
        not found; a read-only one refuses, saying so."""
        case = conformance_subject.write_case()
        connector = conformance_subject.connector()
        try:
            if case is None:
                assert_read_only(connector)
                return
            spec = case.spec
            steps = connector.ensure_fields([spec], apply=False)
            assert [step.spec for step in steps] == [spec], steps
            assert steps[0].action in ("exists", "create"), (
                f"ensure_fields answers {steps[0].action!r} for {spec.name}: create the field "
                f"in write_case() first, as an admin would ({steps[0].detail})"
            )
            connector.ensure_fields([spec], apply=True)
            again = conformance_subject.connector()
            try:
                actions = [step.action for step in again.ensure_fields([spec], apply=False)]
            finally:
                again.close()
            assert actions == ["exists"], f"{spec.name} after provisioning: {actions}"
            results = connector.write(
                spec.entity, [FieldUpdate(case.external_id, ((spec.name, case.value),))]
            )
            assert [(r.external_id, r.ok) for r in results] == [(case.external_id, True)], results
            assert comparable(case.read_back()) == comparable(case.value), (
                f"{spec.entity} {case.external_id}.{spec.name} holds {case.read_back()!r} after "
                f"writing {case.value!r}"
            )
            missing = connector.write(
                spec.entity, [FieldUpdate(case.missing_id, ((spec.name, case.value),))]
            )
            assert [(r.external_id, r.ok, r.not_found) for r in missing] == [
                (case.missing_id, False, True)
            ], missing
        finally:
            connector.close()


def assert_read_only(connector: Connector) -> None:
    """Every entity the connector reads: fields are left to an admin and writes are refused."""
    entities = sorted({entity for spec in connector.streams() for entity in spec.entities})
    specs = [
        FieldSpec(entity, "kpisync_conformance", "kpisync conformance", "string")
        for entity in entities
    ]
    steps: Sequence[Any] = connector.ensure_fields(specs, apply=True)
    assert [step.action for step in steps] == ["manual"] * len(specs), (
        f"a read-only connector (write_case() is None) must answer 'manual' from ensure_fields, "
        f"not {steps}"
    )
    for entity in entities:
        try:
            connector.write(entity, [FieldUpdate("1", (("kpisync_conformance", "x"),))])
        except KpisyncError as error:
            assert isinstance(error, RejectedError), f"write() raised {type(error).__name__}"
            one_line(error)
        else:
            raise AssertionError(
                f"write() of a {entity} must raise RejectedError on a read-only "
                "connector (write_case() is None)"
            )
