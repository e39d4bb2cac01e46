"""Retry policy as data: tenacity strategies in one frozen object, retrying only retryable errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from kpisync.errors import RateLimited

T = TypeVar("T")


def _is_retryable(error: BaseException) -> bool:
    return bool(getattr(error, "retryable", False))


class wait_for_server(wait_base):
    """Honour a rate limit's Retry-After when the server gave one, else fall back."""

    def __init__(self, fallback: wait_base, ceiling: float) -> None:
        self.fallback = fallback
        self.ceiling = ceiling

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.ceiling)
        return float(self.fallback(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    stop: stop_base = field(default_factory=lambda: stop_after_attempt(8) | stop_after_delay(300))
    wait: wait_base = field(
        default_factory=lambda: wait_for_server(
            wait_exponential(multiplier=0.5, max=30) + wait_random(0, 0.5), ceiling=120
        )
    )
    sleep: Callable[[float], None] = time.sleep

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        retrying = Retrying(
            stop=self.stop,
            wait=self.wait,
            sleep=self.sleep,
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        return retrying(function, *args, **kwargs)


def fast_policy(attempts: int = 8) -> RetryPolicy:
    """For tests and the demo: same decisions, tiny waits."""
    return RetryPolicy(
        stop=stop_after_attempt(attempts),
        wait=wait_for_server(wait_exponential(multiplier=0.01, max=0.2), ceiling=1.0),
    )
