"""The one sliding-window rate limiter: calls counted over the last `seconds`, held under `limit`.

Used by HubSpot's search pacer (5 calls in any second) and by the org budget's burst pacing (a
share of the CRM's burst allowance). It only counts and says how long to wait; the caller sleeps
(or waits on its stop signal), so the arithmetic is tested with an injected clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """Calls recorded with their time; a record leaves the window `seconds` after it was made."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError(
                f"a rate window needs limit >= 1 and seconds > 0, not {limit}, {seconds}"
            )
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self.records: deque[tuple[float, int]] = deque()

    def record(self, calls: int = 1) -> None:
        """Count `calls` made now."""
        if calls > 0:
            self.records.append((self.clock(), calls))

    def used(self) -> int:
        """Calls made in the last `seconds`."""
        self._expire(self.clock())
        return sum(calls for _, calls in self.records)

    def delay(self) -> float:
        """Seconds until the window holds fewer than `limit` calls (0.0 when it already does):
        the oldest records leave first, until what stays is under the limit."""
        now = self.clock()
        self._expire(now)
        over = sum(calls for _, calls in self.records) - self.limit + 1  # must leave first
        wait = 0.0
        for made, calls in self.records:
            if over <= 0:
                break
            over -= calls
            wait = made + self.seconds - now
        return wait

    def _expire(self, now: float) -> None:
        while self.records and now - self.records[0][0] >= self.seconds:
            self.records.popleft()
