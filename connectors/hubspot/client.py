"""HubSpot over hubspot-api-client: the SDK's API objects built once, tokens, errors, call counts.

Every call goes through `HubSpotClient.call`, which refreshes an OAuth token ahead of expiry (also
after a long retry wait), retries only retryable errors (tenacity, via RetryPolicy), translates the
SDK's exceptions with one table, counts calls per endpoint, and returns the parsed JSON body.
Responses are read raw (`_preload_content=False`) so the SDK never builds model objects per record.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import exceptions as association_errors
from hubspot.crm.objects import exceptions as object_errors
from hubspot.crm.owners import exceptions as owner_errors
from hubspot.crm.pipelines import exceptions as pipeline_errors
from hubspot.crm.properties import exceptions as property_errors
from hubspot.oauth import exceptions as oauth_errors
from urllib3.exceptions import HTTPError as Urllib3Error

from connectors.kit.errortable import Answer, ErrorTable, Rule, status
from kpisync.errors import (
    AuthError,
    ConnectorError,
    KpisyncError,
    RateLimited,
    RejectedError,
    TransientError,
)
from kpisync.netcause import network_cause
from kpisync.retry import RetryPolicy
from kpisync.secrets import mask, remember_secret

SDK_ERRORS: tuple[type[Exception], ...] = (
    object_errors.ApiException,
    owner_errors.ApiException,
    pipeline_errors.ApiException,
    property_errors.ApiException,
    association_errors.ApiException,
    oauth_errors.ApiException,
)
REFRESH_MARGIN_SECONDS = 300  # refresh an OAuth token this long (at most) before it expires
SEARCH_LIMIT_WAIT = 1.0  # the search limit is per second


@dataclass(frozen=True)
class OAuthGrant:
    client_id: str
    client_secret: str
    refresh_token: str


AUTH_HINT = "check the token or re-authorise the source"
REFRESH_HINT = (
    "the source needs re-authorising: create a new refresh token and update its "
    "environment variable"
)
REFRESH_REFUSED = "HubSpot refused the refresh token: the grant was revoked or expired"
# HubSpot's error body: {"status": "error", "message", "correlationId", "category", ...}.
ERRORS = ErrorTable(
    "HubSpot",
    [
        Rule(
            AuthError,
            "HubSpot refused the credentials for {what}: {detail}",
            AUTH_HINT,
            status=status(401),
        ),
        Rule(
            RejectedError,
            "HubSpot denied {what}: {detail}",
            "grant the private app or OAuth app the missing scope",
            status=status(403),
        ),
        Rule(RateLimited, "HubSpot rate limit on {what}: {detail}", status=status(429)),
        Rule(TransientError, "HubSpot error {status} on {what}: {detail}", status=status(500, 599)),
        Rule(TransientError, "HubSpot error {status} on {what}: {detail}", status=status(0)),
        Rule(RejectedError, "HubSpot rejected {what} ({status} {code}): {detail}"),
    ],
)
# The token endpoint: a refused refresh token is a revoked grant, whatever the status says.
REFRESH_ERRORS = ErrorTable(
    "HubSpot",
    [
        Rule(AuthError, REFRESH_REFUSED, REFRESH_HINT, body=r'"status"\s*:\s*"BAD_REFRESH_TOKEN"'),
        Rule(AuthError, REFRESH_REFUSED, REFRESH_HINT, status=status(400, 401)),
        *ERRORS.rules,
    ],
)


def answer_of(error: Exception) -> Answer:
    """What HubSpot answered, from an SDK exception (`.status`, `.body`, `.headers`)."""
    code = int(getattr(error, "status", 0) or 0)
    raw = getattr(error, "body", None)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    body = _json_body(text)
    headers = getattr(error, "headers", None) or {}
    retry_after = _float(headers.get("Retry-After"))
    if retry_after is None and body.get("policyName") == "SECONDLY":
        retry_after = SEARCH_LIMIT_WAIT
    return Answer(
        status=code,
        detail=mask(str(body.get("message") or getattr(error, "reason", "") or "")) or "no detail",
        code=str(body.get("category") or body.get("errorType") or body.get("status") or ""),
        body=text,
        retry_after=retry_after,
    )


def translate(
    error: Exception, *, what: str, host: str, table: ErrorTable = ERRORS
) -> KpisyncError:
    """SDK/urllib3 failure -> kpisync error (message masked), by `table`."""
    if isinstance(error, SDK_ERRORS):
        return table.error(answer_of(error), what=what)
    if isinstance(error, Urllib3Error | OSError):
        return TransientError(
            f"cannot reach HubSpot at {host} for {what}: {network_cause(error)}",
            hint="check the host setting and the network",
        )
    return ConnectorError(f"unexpected failure on {what}: {mask(str(error))}")


def _json_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body[:200]}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Pacer:
    """At most `rate` calls in any sliding second: waits before a call instead of earning a 429."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, int(rate))
        self.clock, self.sleep = clock, sleep
        self.recent: deque[float] = deque()

    def wait(self) -> None:
        now = self.clock()
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        if len(self.recent) >= self.capacity:
            self.sleep(1.0 - (now - self.recent[0]) + 0.01)
            self.recent.popleft()
        self.recent.append(self.clock())


class HubSpotClient:
    """One portal's SDK APIs, its token, its retry policy and its call counts."""

    def __init__(
        self,
        *,
        host: str,
        token: str | None,
        grant: OAuthGrant | None,
        policy: RetryPolicy,
        timeout_seconds: float = 60.0,
        search_rate: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host.rstrip("/")
        self.timeout = (min(5.0, timeout_seconds), timeout_seconds)  # connect, read
        self.policy = policy
        self.calls: Counter[str] = Counter()
        self.daily_remaining: int | None = None
        self.daily_limit: int | None = None  # private apps only: OAuth apps get no daily headers
        self.search_pacer = Pacer(search_rate)
        self.seconds_waiting = 0.0  # time spent in HTTP calls, for benchmarks' overhead figures
        self._grant = grant
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_at = 0.0 if grant is not None else float("inf")  # OAuth: fetch one first
        self._token = token or ""
        if token:
            remember_secret(token)
        self.sdk = HubSpot(
            access_token=self._token or None,
            host=self.host,
            retry=urllib3.Retry(total=0, redirect=2, raise_on_status=False),
        )
        crm = self.sdk.crm
        self.search = crm.objects.search_api
        self.basic = crm.objects.basic_api
        self.batch = crm.objects.batch_api
        self.owners = crm.owners.owners_api
        self.properties = crm.properties.core_api
        self.property_groups = crm.properties.groups_api
        self.pipelines = crm.pipelines.pipelines_api
        self.associations = crm.associations.v4.batch_api
        self.tokens = self.sdk.oauth.tokens_api
        self._apis = [
            self.search,
            self.basic,
            self.batch,
            self.owners,
            self.properties,
            self.property_groups,
            self.pipelines,
            self.associations,
        ]
        if grant is not None:
            remember_secret(grant.client_secret)
            remember_secret(grant.refresh_token)

    def call(self, endpoint: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)` with retries; `endpoint` names it in counts and errors."""
        refreshed_on_401 = False

        def attempt() -> Any:
            nonlocal refreshed_on_401
            self._refresh_if_due()
            if endpoint.endswith("/search"):
                self.search_pacer.wait()
            self.calls[endpoint] += 1
            started = time.perf_counter()
            try:
                response = function(
                    *args, _preload_content=False, _request_timeout=self.timeout, **kwargs
                )
                data = response.data
            except (*SDK_ERRORS, Urllib3Error, OSError) as error:  # type: ignore[misc]
                self.seconds_waiting += time.perf_counter() - started
                translated = translate(error, what=endpoint, host=self.host)
                if (
                    isinstance(translated, AuthError)
                    and self._grant is not None
                    and not refreshed_on_401
                ):
                    refreshed_on_401 = True
                    self._refresh()
                    raise TransientError(f"token refreshed after a 401 on {endpoint}") from None
                raise translated from None
            self.seconds_waiting += time.perf_counter() - started
            return self._parse(response, data)

        return self.policy.call(attempt)

    def _parse(self, response: Any, data: bytes) -> Any:
        daily = response.headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None and daily.isdigit():
            self.daily_remaining = int(daily)
        limit = response.headers.get("X-HubSpot-RateLimit-Daily")
        if limit is not None and limit.isdigit():
            self.daily_limit = int(limit)
        return orjson.loads(data) if data else {}  # pages are large: orjson parses them 2-3x faster

    def _refresh_if_due(self) -> None:
        if self._grant is not None and self._clock() >= self._refresh_at:
            self._refresh()

    def _refresh(self) -> None:
        grant = self._grant
        assert grant is not None
        with self._lock:
            self.calls["POST /oauth/v1/token"] += 1
            try:
                response = self.tokens.create(
                    grant_type="refresh_token",
                    refresh_token=grant.refresh_token,
                    client_id=grant.client_id,
                    client_secret=grant.client_secret,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            except oauth_errors.ApiException as error:
                raise translate(
                    error, what="token refresh", host=self.host, table=REFRESH_ERRORS
                ) from None
            except (Urllib3Error, OSError) as error:
                raise translate(error, what="token refresh", host=self.host) from None
            payload = json.loads(response.data)
            self._token = str(payload["access_token"])
            remember_secret(self._token)
            lifetime = float(payload.get("expires_in", 1800))
            self._refresh_at = self._clock() + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 5)
            for api in self._apis:
                api.api_client.configuration.access_token = self._token
