"""Reading ahead: a connector's next page is fetched while the engine commits the current one.

A sync is a loop of "wait for the CRM" and "write to the store"; overlapping them hides most of
the local work behind the network. At most `depth` pages wait in memory, so memory stays bounded.
The connector's iterator runs entirely in one background thread (it is never shared), its errors
reach the caller unchanged, and leaving the loop early stops the thread at its next page.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
POLL_SECONDS = 0.1
JOIN_SECONDS = 10.0  # leaving early waits this long for an in-flight call; the thread then ends alone


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Done:
    pass


@dataclass(frozen=True)
class _Item(Generic[T]):
    value: T


def prefetched(items: Iterator[T], *, depth: int = 2) -> Generator[T, None, None]:
    """`items`, in order, produced by a background thread up to `depth` ahead of the consumer."""
    handoff: queue.Queue[_Item[T] | _Failed | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(message: _Item[T] | _Failed | _Done) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(_Item(item)):
                    return
            offer(_Done())
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            offer(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="kpisync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            message = handoff.get()
            if isinstance(message, _Done):
                return
            if isinstance(message, _Failed):
                raise message.error
            yield message.value
    finally:
        stop.set()
        worker.join(JOIN_SECONDS)
