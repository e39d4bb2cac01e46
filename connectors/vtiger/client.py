"""Vtiger's webservice.php over httpx: login, the session, the error table, retries, call counts.

Every call goes through `VtigerClient.call(operation, params)`: it logs in when there is no session
(getchallenge, then login with md5(token + access key)), sends the operation with the HTTP method
Vtiger registers for it, reads the `{success, result | error}` envelope (HTTP 200 even for errors),
renews the session once on INVALID_SESSIONID / SESSION_EXPIRED / SESSION_LEFT_IDLE, retries only
retryable errors (RetryPolicy), and counts calls per operation.

What came back is translated by one table, `ERRORS` (tests/test_error_tables.py pins it).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Any

import httpx
import orjson

from connectors.kit.errortable import Answer, ErrorTable, Rule, status
from kpisync.errors import (
    AuthError,
    RateLimited,
    RejectedError,
    TransientError,
)
from kpisync.netcause import network_cause
from kpisync.retry import RetryPolicy
from kpisync.secrets import mask, remember_secret

METHODS = {
    "getchallenge": "GET",
    "login": "POST",
    "listtypes": "GET",
    "describe": "GET",
    "query": "GET",
    "sync": "GET",
    "retrieve": "GET",
    "create": "POST",
    "update": "POST",
    "revise": "POST",
    "delete": "POST",
    "logout": "POST",
}
AUTH_CODES = frozenset(
    {
        "INVALID_USER_CREDENTIALS",
        "ACCESSKEY_UNDEFINED",
        "AUTHENTICATION_FAILURE",
        "INVALID_AUTH_TOKEN",
    }
)
SESSION_CODES = frozenset({"INVALID_SESSIONID", "SESSION_EXPIRED", "SESSION_LEFT_IDLE"})
TRANSIENT_CODES = frozenset({"DATABASE_QUERY_ERROR"})
CREDENTIAL_HINT = (
    "check the user name and access_key_env: the access key is shown under "
    "My Preferences of that user, and the user must be active"
)


class VtigerFailure(RejectedError):
    """Vtiger answered `success: false`; `code` is its error code."""

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class SyncUnavailable(RejectedError):
    """The server's `sync` operation is broken (stock Vtiger 8.2 on PHP 8): use query instead."""


class SessionLost(TransientError):
    """Internal: the session died; the call is retried after a fresh login."""


NOT_JSON = "(not JSON)"  # the code of an answer that is no webservice envelope
URL_HINT = "check the url setting: it must reach the CRM's webservice.php"
REFUSED = "Vtiger refused the credentials ({code}: {detail})"
# Vtiger's envelope: {"success": false, "error": {"code": "ACCESS_DENIED", "message": "..."}}.
ERRORS = ErrorTable(
    "Vtiger",
    [
        Rule(RateLimited, "Vtiger at {host} is rate limiting {operation}", status=status(429)),
        Rule(
            SyncUnavailable,
            "Vtiger at {host} answered sync with an empty HTTP 500",
            "stock Vtiger 8.2 on PHP 8 cannot serve sync; kpisync reads by query instead",
            status=status(500),
            body=r"^\s*$",
            operation="sync",
        ),
        Rule(
            TransientError,
            "Vtiger at {host} failed on {operation}: HTTP {status} with an empty body",
            status=status(500, 599),
            body=r"^\s*$",
        ),
        Rule(
            TransientError,
            "Vtiger at {host} failed on {operation}: HTTP {status}",
            status=status(500, 599),
        ),
        Rule(
            RejectedError,
            "Vtiger at {host} answered {operation} with HTTP {status}",
            URL_HINT,
            status=status(400, 499),
        ),
        Rule(
            RejectedError,
            "Vtiger at {host} answered {operation} with something that is not JSON: {detail}",
            "check the url setting points at the CRM (webservice.php)",
            codes=frozenset({NOT_JSON}),
        ),
        Rule(AuthError, REFUSED, CREDENTIAL_HINT, codes=AUTH_CODES),
        Rule(
            AuthError,
            REFUSED,
            CREDENTIAL_HINT,
            codes=frozenset({"AUTHENTICATION_REQUIRED"}),
            operation="login",
        ),
        Rule(
            SessionLost,
            "Vtiger session ended ({code}) during {operation}",
            codes=SESSION_CODES | {"AUTHENTICATION_REQUIRED"},
        ),
        Rule(
            TransientError, "Vtiger database error on {operation}: {detail}", codes=TRANSIENT_CODES
        ),
        Rule(
            VtigerFailure,
            "Vtiger refused {operation} ({code}): {detail}",
            build=lambda text, hint, answer: VtigerFailure(answer.code, text, hint=hint),
        ),
    ],
)


def answer_of(operation: str, response: httpx.Response, envelope: dict[str, Any] | None) -> Answer:
    """What Vtiger answered: an HTTP failure, a page that is no envelope, or an envelope's error."""
    body = response.content
    retry_after = response.headers.get("Retry-After")
    wait = float(retry_after) if retry_after and retry_after.replace(".", "").isdigit() else None
    text = body.decode("utf-8", "replace")
    if response.status_code >= 400:
        return Answer(response.status_code, body=text, operation=operation, retry_after=wait)
    if envelope is None:
        return Answer(response.status_code, NOT_JSON, repr(mask(text[:80])), text, operation)
    error = envelope.get("error") or {}
    return Answer(
        response.status_code,
        str(error.get("code") or "UNKNOWN"),
        mask(str(error.get("message") or "")),
        text,
        operation,
    )


def translate(operation: str, response: httpx.Response, host: str) -> Any:
    """The envelope's result, or the kpisync error the table above names."""
    envelope = parse_envelope(response.content) if response.status_code < 400 else None
    if envelope is not None and envelope.get("success"):
        return envelope.get("result")
    raise ERRORS.error(answer_of(operation, response, envelope), host=host)


def parse_envelope(body: bytes) -> dict[str, Any] | None:
    """The JSON envelope; PHP notices printed before it (a common install fault) are skipped."""
    text = body.decode("utf-8", "replace")
    start = text.find('{"success"')
    if start < 0:
        return None
    try:
        parsed = orjson.loads(text[start:])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class VtigerClient:
    """One Vtiger server, one user: its session, retry policy and call counts."""

    def __init__(
        self,
        *,
        url: str,
        username: str,
        access_key: str,
        policy: RetryPolicy,
        timeout_seconds: float = 60.0,
    ) -> None:
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("webservice.php") else f"{base}/webservice.php"
        self.host = base
        self.username = username
        self._key = access_key
        remember_secret(access_key)
        self.policy = policy
        self.calls: Counter[str] = Counter()
        self.session: str | None = None
        self.user_id: str | None = None
        self._lock = threading.Lock()
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            trust_env=False,
        )

    def call(self, operation: str, **params: str) -> Any:
        """One operation's result, with a session, retries and renewal."""

        def attempt() -> Any:
            if self.session is None:
                self.login()
            try:
                return self.send(operation, {**params, "sessionName": self.session or ""})
            except SessionLost:
                self.session = None
                raise

        return self.policy.call(attempt)

    def login(self) -> None:
        with self._lock:
            challenge = self.send("getchallenge", {"username": self.username})
            token = str(challenge["token"])
            digest = hashlib.md5((token + self._key).encode("utf-8")).hexdigest()
            result = self.send("login", {"username": self.username, "accessKey": digest})
            self.session = str(result["sessionName"])
            self.user_id = str(result.get("userId") or "")
            remember_secret(self.session)

    def send(self, operation: str, params: dict[str, str]) -> Any:
        method = METHODS.get(operation, "POST")
        fields = {"operation": operation, **params}
        self.calls[operation] += 1
        try:
            if method == "GET":
                response = self.http.get(self.endpoint, params=fields)
            else:
                response = self.http.post(self.endpoint, data=fields)
        except httpx.TimeoutException:
            raise TransientError(f"Vtiger at {self.host} timed out on {operation}") from None
        except httpx.TransportError as error:
            raise TransientError(
                f"cannot reach Vtiger at {self.host} for {operation}: {network_cause(error)}",
                hint="check the url setting and the network",
            ) from None
        return translate(operation, response, self.host)

    def close(self) -> None:
        self.http.close()
