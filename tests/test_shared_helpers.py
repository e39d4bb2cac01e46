"""The shared small helpers: chunking, the sliding-window rate limiter (its arithmetic on an
injected clock) and the one webhook sender (accepted, refused, timed out, secrets masked)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.hubspot.client import Pacer
from kpisync.chunks import chunked
from kpisync.ratelimit import SlidingWindow
from kpisync.secrets import read_secret
from kpisync.webhook import post_json
from tests.test_unattended_kit import webhook_receiver

log = logging.getLogger("kpisync.test.webhook")


def test_chunked_keeps_order_and_sizes() -> None:
    assert list(chunked([1, 2, 3, 4, 5, 6, 7], 3)) == [[1, 2, 3], [4, 5, 6], [7]]
    assert list(chunked((1, 2, 3, 4), 2)) == [[1, 2], [3, 4]]
    assert list(chunked("abc", 5)) == [["a", "b", "c"]]
    assert list(chunked([], 500)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked([1], 0))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_window_counts_calls_and_says_how_long_until_one_more_fits() -> None:
    clock = Clock()
    window = SlidingWindow(5, 10.0, clock)
    window.record(3)  # at 100
    clock.now = 102.0
    window.record(1)
    assert (window.used(), window.delay()) == (4, 0.0)  # room for one more
    clock.now = 104.0
    window.record(2)
    # 6 calls: the 3 of t=100 must leave before a 7th fits under 5; they leave at t=110
    assert (window.used(), window.delay()) == (6, 6.0)
    clock.now = 110.0  # a record leaves exactly `seconds` after it was made
    assert (window.used(), window.delay()) == (3, 0.0)
    window.record(2)
    # 5 calls (1 at 102, 2 at 104, 2 at 110): the one of t=102 must leave: at t=112
    assert (window.used(), window.delay()) == (5, 2.0)
    window.record(9)  # one checkpoint's calls above the limit on their own: all must leave
    assert (window.used(), window.delay()) == (14, 10.0)
    clock.now = 120.0
    assert (window.used(), window.delay()) == (0, 0.0)


def test_hubspot_pacer_waits_past_the_second_for_the_sixth_call() -> None:
    clock = Clock()
    pacer = Pacer(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.sleeps == []
    pacer.wait()  # the five of t=100 leave at t=101; the pacer waits 10 ms past it
    assert clock.sleeps == [pytest.approx(1.01)]
    for _ in range(4):
        pacer.wait()  # the window holds only the one call of t=101.01
    assert clock.sleeps == [pytest.approx(1.01)]
    pacer.wait()
    assert clock.sleeps == [pytest.approx(1.01), pytest.approx(1.01)]


def test_webhook_delivers_json_and_reports_acceptance() -> None:
    with webhook_receiver(statuses=[500]) as hook:
        payload = {"text": "kpisync: hs is failing", "kind": "failing"}
        kwargs: dict[str, Any] = {"timeout_seconds": 5, "what": "test hook", "retried": "later"}
        assert post_json(hook.url, payload, log=log, **kwargs) is False  # 500: not accepted
        assert post_json(hook.url, payload, log=log, **kwargs) is True
        assert hook.received == [payload, payload]  # the refused one was sent too
        assert post_json(None, payload, log=log, **kwargs) is True  # none configured
        assert len(hook.received) == 2


def test_webhook_failure_is_logged_once_with_the_url_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with webhook_receiver(statuses=[503]) as hook:
        monkeypatch.setenv("KPISYNC_TEST_SHARED_HOOK", f"{hook.url}/T0KEN-abc123")
        url = read_secret("KPISYNC_TEST_SHARED_HOOK", key="test.hook")
        with caplog.at_level(logging.WARNING, logger=log.name):
            sent = post_json(
                url, {"a": 1}, timeout_seconds=5, what="test hook", retried="retried later", log=log
            )
    assert sent is False
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("test hook failed (retried later): HTTPStatusError: ")
    assert "'503 Service Unavailable' for url '***'" in message
    assert "T0KEN" not in message and hook.url not in message


@contextmanager
def silent_receiver() -> Iterator[str]:
    """A receiver that reads the request and answers only when the test ends."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            release.wait()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_webhook_that_never_answers_times_out_as_not_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with silent_receiver() as url, caplog.at_level(logging.WARNING, logger=log.name):
        sent = post_json(url, {"a": 1}, timeout_seconds=0.2, what="test hook", retried="x", log=log)
    assert sent is False
    assert [r.getMessage().split(": ")[1] for r in caplog.records] == ["ReadTimeout"]
