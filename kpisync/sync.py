"""The sync engine: per stream, pages after the stored cursor, each committed in one transaction.

Connector-agnostic: it only sees `Page`s. A crash at any instant leaves the store at the end of the
last committed page, cursor included, so a rerun loses nothing and duplicates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from kpisync import metadata
from kpisync.collector import fewer_collections
from kpisync.connector import Connector, Page, explainer, purge_asker
from kpisync.cursor import Cursor
from kpisync.errors import Interrupted, KpisyncError
from kpisync.prefetch import prefetched
from kpisync.secrets import mask
from kpisync.store.catalog import record_fields
from kpisync.store.models import SyncRun
from kpisync.store.purge import Explain, mark_purged
from kpisync.store.writer import load_cursor, load_state, save_cursor, write_page

log = logging.getLogger(__name__)
PURGE_CHECK = "purge-check"  # the sync_state row whose updated_at is the last full id comparison
# Records the reader may hold ahead of the writer. Enough for the reader to start the next
# object's calls (a Bulk job, a first page) while the writer finishes the last one; a bounded
# constant, so memory stays flat in org size.
READ_AHEAD_RECORDS = 20_000


@dataclass
class StreamResult:
    stream: str
    pages: int = 0
    upserted: int = 0
    deleted: int = 0
    purged: int = 0


@dataclass
class SyncResult:
    source: str
    run_id: int
    status: str
    streams: list[StreamResult] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def upserted(self) -> int:
        return sum(stream.upserted for stream in self.streams)

    @property
    def deleted(self) -> int:
        return sum(stream.deleted + stream.purged for stream in self.streams)


@dataclass(frozen=True)
class SyncOptions:
    full: bool = False
    streams: tuple[str, ...] = ()  # empty: all
    purge_check_every: timedelta | None = timedelta(days=7)
    metadata_every: timedelta | None = timedelta(days=1)  # None: read metadata every run
    should_stop: Callable[[], bool] = lambda: False
    on_page: Callable[[Page], None] = lambda page: None
    on_run: Callable[[int], None] = lambda run_id: None  # told the sync run's id once it is stored


def now_utc() -> datetime:
    return datetime.now(UTC)


def sync_source(
    engine: Engine, source: str, connector: Connector, options: SyncOptions
) -> SyncResult:
    """Sync every stream of `source`; the run is recorded whatever happens."""
    with fewer_collections():
        return _sync_source(engine, source, connector, options)


def _sync_source(
    engine: Engine, source: str, connector: Connector, options: SyncOptions
) -> SyncResult:
    run_id = start_run(engine, source)
    options.on_run(run_id)
    result = SyncResult(source=source, run_id=run_id, status="running")
    signpost = now_utc()
    try:
        kept_at = metadata.restored(
            engine, source, connector, every=options.metadata_every, full=options.full, now=signpost
        )
        kept = kept_at is not None
        if not kept:
            new_fields = record_fields(engine, source, connector.discover(), signpost)
            if new_fields:
                log.info("new custom fields on %s: %s", source, ", ".join(new_fields))
        if purge_check_due(engine, source, options):
            purged = StreamResult(stream=PURGE_CHECK)
            purged.purged = check_for_purged(engine, source, connector)
            result.streams.append(purged)
        specs = [
            spec
            for spec in connector.streams()
            if not (kept and spec.metadata)
            and (not options.streams or spec.name in options.streams)
        ]
        outcomes = [StreamResult(stream=spec.name) for spec in specs]
        result.streams.extend(outcomes)  # filled as pages commit: a stopped run records its part
        whole = {spec.name for spec in specs if spec.whole}
        sync_streams(engine, source, connector, outcomes, signpost, options, whole)
        # Kept when every metadata stream of the run is written, or when the connector had to
        # read its metadata again mid-run (a changed field showed in the records: the metadata
        # streams stay due when they were).
        if not options.streams and (not kept or metadata.moved(connector)):
            if kept:
                record_fields(engine, source, connector.discover(), signpost)
            metadata.keep(engine, source, connector, kept_at or signpost)
        if purge_check_requested(connector):
            asked = StreamResult(stream=PURGE_CHECK)
            asked.purged = mark_purged(
                engine, source, connector.list_ids(), now_utc(), explain_missing(connector)
            )
            result.streams.append(asked)
        result.status = "succeeded"
    except Interrupted as exc:
        result.status, result.error = "interrupted", str(exc)
        raise
    except KpisyncError as exc:
        result.status, result.error = "failed", mask(str(exc))
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, the last page rolled back
        result.status, result.error = "interrupted", "stopped at once by a second signal"
        raise
    except Exception as exc:
        result.status, result.error = (
            "failed",
            mask(f"unexpected error: {type(exc).__name__}: {exc}")[:500],
        )
        raise
    finally:
        if result.status == "running":  # an unexpected error is on its way up: record it too
            result.status, result.error = "failed", "unexpected error (see the log)"
        result.api_calls = connector.api_usage()
        finish_run(engine, result)
    return result


def sync_streams(
    engine: Engine,
    source: str,
    connector: Connector,
    outcomes: list[StreamResult],
    signpost: datetime,
    options: SyncOptions,
    whole: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Sync the streams of `outcomes` in order, counting each one's pages into its outcome.

    One reader thread reads the streams one after another and runs ahead across their borders,
    so a stream's first call overlaps the writing of the last page before it. Each stream's
    cursor is only ever written by its own pages, so all of them are loaded before reading starts.
    The streams in `whole` are read whole: their rows are written only where they changed.
    """
    by_stream = {outcome.stream: outcome for outcome in outcomes}
    with engine.connect() as connection:
        cursors = {
            stream: Cursor() if options.full else load_cursor(connection, source, stream)
            for stream in by_stream
        }

    def every_page() -> Iterator[tuple[str, Page]]:
        for stream in by_stream:
            for page in connector.read(stream, cursors[stream], signpost=signpost):
                yield stream, page

    pages = prefetched(
        every_page(), depth=READ_AHEAD_RECORDS, weight=lambda item: max(1, len(item[1].records))
    )
    with closing(pages):  # stops the reader thread however the loop ends
        for stream, page in pages:
            with engine.begin() as connection:
                upserted, deleted = write_page(
                    connection, source, page, now_utc(), only_changed=stream in whole
                )
            outcome = by_stream[stream]
            outcome.pages += 1
            outcome.upserted += upserted
            outcome.deleted += deleted
            options.on_page(page)
            if options.should_stop():
                raise Interrupted(
                    f"stopped during {source}/{stream} after a committed page",
                    hint="the next run resumes from here",
                )
    for outcome in outcomes:
        log.info(
            "synced %s/%s: %d pages, %d upserted, %d deleted",
            source,
            outcome.stream,
            outcome.pages,
            outcome.upserted,
            outcome.deleted,
        )


def purge_check_due(engine: Engine, source: str, options: SyncOptions) -> bool:
    """Due when `--full`, or when the last full id comparison is older than the setting.

    A source never synced has nothing to compare, so its first check waits a whole interval.
    """
    if options.full:
        return True
    with engine.begin() as connection:
        state = load_state(connection, source, PURGE_CHECK)
        if state is None:
            save_cursor(connection, source, PURGE_CHECK, Cursor(), now_utc())
            return False
    every = options.purge_check_every
    return every is not None and now_utc() - state >= every


def purge_check_requested(connector: Connector) -> bool:
    """A connector whose pages cannot carry deletes (Vtiger read by query) may notice, while
    reading, that records are gone, and ask for the id comparison now (Capability.
    ASKS_PURGE_CHECK); its `list_ids` then lists what it asks about (the periodic timer is left
    alone)."""
    asker = purge_asker(connector)
    return asker is not None and bool(asker.purge_check_wanted())


def explain_missing(connector: Connector) -> Explain | None:
    """The connector's explanation of ids gone from its listing (Capability.EXPLAINS_MISSING)."""
    found = explainer(connector)
    return found.explain_missing if found is not None else None


def check_for_purged(engine: Engine, source: str, connector: Connector) -> int:
    """Compare the CRM's full id lists with the store; rows the CRM no longer has are deleted."""
    started = now_utc()
    purged = mark_purged(engine, source, connector.list_ids(), started, explain_missing(connector))
    with engine.begin() as connection:
        save_cursor(connection, source, PURGE_CHECK, Cursor(), started)
    log.info("purge check on %s: %d rows no longer in the CRM", source, purged)
    return purged


def start_run(engine: Engine, source: str, kind: str = "sync") -> int:
    with engine.begin() as connection:
        table = SyncRun.__table__  # type: ignore[attr-defined]
        inserted = connection.execute(
            table.insert().values(
                source=source,
                kind=kind,
                started_at=now_utc(),
                status="running",
                upserted=0,
                deleted=0,
                api_calls={},
            )
        )
        key = inserted.inserted_primary_key
        assert key is not None
        return int(key[0])


def finish_run(engine: Engine, result: SyncResult) -> None:
    with engine.begin() as connection:
        table = SyncRun.__table__  # type: ignore[attr-defined]
        connection.execute(
            table.update()
            .where(table.c.id == result.run_id)
            .values(
                finished_at=now_utc(),
                status=result.status,
                upserted=result.upserted,
                deleted=result.deleted,
                api_calls=result.api_calls,
                error=result.error,
            )
        )
