"""Reading ahead keeps order, hands errors over unchanged, and stops when the consumer leaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kpisync.errors import TransientError
from kpisync.prefetch import prefetched


def test_items_arrive_in_order_and_at_most_depth_ahead() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for number in range(20):
            produced.append(number)
            yield number

    seen = []
    for item in prefetched(pages(), depth=2):
        time.sleep(0.01)
        assert len(produced) - len(seen) <= 4  # depth in the queue, one handed over, one in hand
        seen.append(item)
    assert seen == list(range(20))


def test_an_error_reaches_the_consumer_after_the_good_items() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise TransientError("HubSpot error 503")

    seen = []
    with pytest.raises(TransientError, match="503"):
        for item in prefetched(pages()):
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_reader_and_closes_its_iterator() -> None:
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    for item in prefetched(pages()):
        if item == 3:
            break
    assert closed.wait(2)
    assert not any(t.name == "kpisync-prefetch" and t.is_alive() for t in threading.enumerate())
