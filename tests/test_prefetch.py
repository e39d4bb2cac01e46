"""Reading ahead keeps order, hands errors over unchanged, and stops when the consumer leaves."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kpisync.errors import TransientError
from kpisync.prefetch import chained, prefetched


def test_items_arrive_in_order_and_at_most_depth_ahead() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for number in range(20):
            produced.append(number)
            yield number

    seen: list[int] = []
    for item in prefetched(pages(), depth=2):
        time.sleep(0.01)
        assert len(produced) - len(seen) <= 4  # depth in the queue, one handed over, one in hand
        seen.append(item)
    assert seen == list(range(20))


def test_weighed_items_run_ahead_up_to_their_total_weight_and_a_heavy_one_goes_alone() -> None:
    sizes = [3, 3, 3, 12, 1, 1, 1, 1, 1, 1]
    produced: list[int] = []

    def pages() -> Iterator[list[int]]:
        for size in sizes:
            produced.append(size)
            yield [0] * size

    seen: list[int] = []
    for page in prefetched(pages(), depth=6, weight=len):
        time.sleep(0.02)
        waiting = produced[len(seen) + 1 : -1]  # handed off, not taken (the last may be in hand)
        assert sum(waiting) <= 6 or len(waiting) == 1
        seen.append(len(page))
    assert seen == sizes


def test_an_error_reaches_the_consumer_after_the_good_items() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise TransientError("HubSpot error 503")

    seen: list[int] = []
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


def chain_of(
    length: int, started: list[threading.Event], fail_at: int | None = None
) -> tuple[Callable[[], int], Callable[[int], Callable[[], int] | None]]:
    """A chain whose call n answers n and names call n + 1, up to `length`."""

    def call(number: int) -> int:
        started[number].set()
        if number == fail_at:
            raise TransientError(f"call {number} failed")
        return number

    def following(answer: int) -> Callable[[], int] | None:
        return (lambda: call(answer + 1)) if answer + 1 < length else None

    return (lambda: call(0)), following


def test_a_chain_runs_its_next_call_while_the_caller_holds_an_answer() -> None:
    started = [threading.Event() for _ in range(6)]
    first, following = chain_of(6, started)
    seen: list[int] = []
    for answer in chained(first, following):
        if answer + 1 < 6:  # the next call is under way before this answer is let go
            assert started[answer + 1].wait(5)
        seen.append(answer)
    assert seen == [0, 1, 2, 3, 4, 5]


def test_a_chain_raises_a_calls_error_where_its_answer_would_be() -> None:
    started = [threading.Event() for _ in range(6)]
    first, following = chain_of(6, started, fail_at=3)
    seen: list[int] = []
    with pytest.raises(TransientError, match="call 3 failed"):
        for answer in chained(first, following):
            seen.append(answer)
    assert seen == [0, 1, 2] and not started[4].is_set()


def test_leaving_a_chain_early_makes_at_most_one_more_call() -> None:
    started = [threading.Event() for _ in range(6)]
    first, following = chain_of(6, started)
    answers = chained(first, following)
    assert next(answers) == 0 and next(answers) == 1
    answers.close()  # call 2 was asked for (it may run, or be cancelled before it starts)
    time.sleep(0.2)
    assert not started[3].is_set()


def test_a_call_still_in_flight_does_not_hold_up_the_process_exit() -> None:
    script = (
        "import time\n"
        "from kpisync.prefetch import chained\n"
        "answers = chained(lambda: 0, lambda n: (lambda: time.sleep(600) or n + 1))\n"
        "assert next(answers) == 0\n"  # call 1 (a hung HTTP call, say) is now in flight
        "print('leaving')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0 and done.stdout.strip() == "leaving", done.stderr
