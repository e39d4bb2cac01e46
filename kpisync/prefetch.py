"""Reading ahead, at two levels, so that waiting on the CRM overlaps local work.

`prefetched`: a connector's pages are read in a background thread while the engine commits the
current one. At most `depth` pages (or records, when pages are weighed) wait in memory, so
memory stays bounded. The connector's iterator runs entirely in that thread (it is never
shared), its errors reach the caller unchanged, and leaving the loop early stops the thread at
its next page.

`chained`: inside a connector, a chain of calls where each names the next (a page token, a
locator) runs one call ahead: the next call is already in flight while the current answer is
parsed and mapped. Every call is one the chain would make anyway, so no extra calls are made
unless the caller leaves early (then at most one).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
POLL_SECONDS = 0.1
JOIN_SECONDS = (
    10.0  # leaving early waits this long for an in-flight call; the thread then ends alone
)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Done:
    pass


@dataclass(frozen=True)
class _Item(Generic[T]):
    value: T


def prefetched(
    items: Iterator[T], *, depth: int = 2, weight: Callable[[T], int] | None = None
) -> Generator[T, None, None]:
    """`items`, in order, produced by a background thread ahead of the consumer: at most `depth`
    items ahead, or, with `weight`, items weighing `depth` in all (a heavier item goes alone)."""
    handoff: queue.SimpleQueue[tuple[_Item[T] | _Failed | _Done, int]] = queue.SimpleQueue()
    room = threading.Condition()
    ahead = 0  # the weight handed off and not yet taken
    stop = threading.Event()

    def offer(message: _Item[T] | _Failed | _Done, load: int = 0) -> bool:
        nonlocal ahead
        with room:
            while ahead > 0 and ahead + load > depth and not stop.is_set():
                room.wait(POLL_SECONDS)
            if stop.is_set():
                return False
            ahead += load
        handoff.put((message, load))
        return True

    def produce() -> None:
        try:
            for item in items:
                if not offer(_Item(item), weight(item) if weight else 1):
                    return
            offer(_Done())
        except BaseException as error:  # handed to the consumer, raised there
            offer(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="kpisync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            message, load = handoff.get()
            with room:
                ahead -= load
                room.notify()
            if isinstance(message, _Done):
                return
            if isinstance(message, _Failed):
                raise message.error
            yield message.value
    finally:
        stop.set()
        worker.join(JOIN_SECONDS)


def chained(
    first: Callable[[], R], following: Callable[[R], Callable[[], R] | None]
) -> Generator[R, None, None]:
    """The answers of `first()` and of each call `following(answer)` names, in order, until it
    names none; each next call runs in a background thread while the caller holds the answer
    before it. A call's error is raised where its answer would have been yielded."""
    pending: Future[R] | None = None
    try:
        answer = first()
        while True:
            call = following(answer)
            pending = in_background(call) if call is not None else None
            yield answer
            if pending is None:
                return
            answer = pending.result()
    finally:
        if pending is not None:
            pending.cancel()  # an early exit: the call is dropped, or left to end on its own


def in_background(call: Callable[[], R]) -> Future[R]:
    """`call()` in a daemon thread, so a call still in flight never holds up the process's exit
    (a pool's worker threads are joined at exit, retries and all)."""
    future: Future[R] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as error:  # raised by whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name="kpisync-ahead", daemon=True).start()
    return future
