"""A connector's streams as a table: each declared `StreamSpec` with the function that reads it.

`read()` looks the stream up here instead of testing its name in an `if` chain, and `streams()`
hands the core the same specs, so what is declared and what is read cannot drift apart. The
table also stamps each page with the API calls made since the page before it (`Page.api_calls`),
so no reader counts them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from kpisync.connector import Page, StreamSpec
from kpisync.cursor import Cursor
from kpisync.errors import RejectedError

Reader = Callable[[StreamSpec, Cursor, datetime], Iterator[Page]]


@dataclass(frozen=True)
class Stream:
    spec: StreamSpec
    read: Reader


class StreamTable:
    def __init__(self, crm: str, streams: Iterable[Stream], calls: Callable[[], int]) -> None:
        self.crm, self.calls = crm, calls  # calls(): the connector's calls so far
        self.streams = {stream.spec.name: stream for stream in streams}

    def specs(self) -> list[StreamSpec]:
        return [stream.spec for stream in self.streams.values()]

    def read(self, name: str, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        stream = self.streams.get(name)
        if stream is None:
            raise RejectedError(f"{self.crm} has no stream {name!r}")
        before = self.calls()
        for page in stream.read(stream.spec, cursor, signpost):
            made = self.calls()
            yield replace(page, api_calls=made - before)
            before = made
