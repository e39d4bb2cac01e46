"""Authentication and rate limits of the HubSpot emulator.

A request is authorised by `Authorization: Bearer <token>` holding the private-app token or a live
OAuth access token minted by `POST /oauth/v1/token` (grant_type=refresh_token). Missing or wrong
tokens give 401 INVALID_AUTHENTICATION, expired OAuth tokens 401 EXPIRED_AUTHENTICATION.
Rate limits are sliding windows per token on a monotonic clock: a 10-second rolling budget for
ordinary calls and a per-second budget for search.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from emulators.hubspot.store import HubSpotError


@dataclass
class OAuthApp:
    """An installed OAuth app: its client credentials and current refresh token."""

    client_id: str
    client_secret: str
    refresh_token: str
    access_token_lifetime_seconds: int = 1800


class TokenBook:
    """Valid tokens: the private-app token plus OAuth access tokens with their expiry."""

    def __init__(
        self, private_token: str, oauth: OAuthApp | None, clock: Callable[[], datetime]
    ) -> None:
        self.private_token = private_token
        self.oauth = oauth
        self.clock = clock
        self.access_tokens: dict[str, datetime] = {}
        self.refresh_revoked = False
        self._issued = 0
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> str:
        """The token of a valid `Authorization` header; else raise the matching 401."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        if token and token == self.private_token:
            return token
        expiry = self.access_tokens.get(token)
        if expiry is None:
            raise HubSpotError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        now = self.clock()
        if now >= expiry:
            minutes = int((now - expiry).total_seconds() // 60)
            raise HubSpotError(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {minutes} minute(s) ago.",
            )
        return token

    def refresh(self, form: dict[str, str]) -> dict[str, Any]:
        """Handle POST /oauth/v1/token; raises a 400 body for bad grants or credentials."""
        app = self.oauth
        if form.get("grant_type") != "refresh_token":
            raise OAuthError("BAD_GRANT_TYPE", "grant_type must be refresh_token")
        if (
            app is None
            or form.get("client_id") != app.client_id
            or form.get("client_secret") != app.client_secret
        ):
            raise OAuthError("BAD_CLIENT_ID", "missing or unknown client_id/client_secret")
        if self.refresh_revoked or form.get("refresh_token") != app.refresh_token:
            raise OAuthError("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        with self._lock:
            self._issued += 1
            token = f"oat-emulator-{self._issued:06d}"
        self.access_tokens[token] = self.clock() + timedelta(
            seconds=app.access_token_lifetime_seconds
        )
        return {
            "token_type": "bearer",
            "access_token": token,
            "refresh_token": app.refresh_token,
            "expires_in": app.access_token_lifetime_seconds,
        }

    def expire_all(self) -> None:
        """Expire every OAuth access token now (test hook)."""
        now = self.clock()
        for token in self.access_tokens:
            self.access_tokens[token] = now


class OAuthError(Exception):
    """A 400 from the token endpoint, with HubSpot's `status` code word."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {
            "status": self.status,
            "message": self.message,
            "correlationId": "00000000-0000-4000-8000-000000000000",
        }


class SlidingLimiter:
    """Counts calls per key in a sliding window on the monotonic clock."""

    def __init__(self, window_seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self.window = window_seconds
        self.now = now
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, budget: float) -> tuple[bool, int]:
        """Record a call if within budget: (allowed, calls now in the window)."""
        now = self.now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= budget:
                return False, len(hits)
            hits.append(now)
            return True, len(hits)

    def retry_after(self, key: str) -> float:
        """Seconds until the oldest call in the window expires."""
        with self._lock:
            hits = self._hits.get(key)
            return max(0.0, hits[0] + self.window - self.now()) if hits else 0.0

    def reset(self) -> None:
        """Forget every recorded call."""
        with self._lock:
            self._hits.clear()
