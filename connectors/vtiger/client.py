"""Vtiger's webservice.php over httpx: login, the session, the error table, retries, call counts.

Every call goes through `VtigerClient.call(operation, params)`: it logs in when there is no session
(getchallenge, then login with md5(token + access key)), sends the operation with the HTTP method
Vtiger registers for it, reads the `{success, result | error}` envelope (HTTP 200 even for errors),
renews the session once on INVALID_SESSIONID / SESSION_EXPIRED / SESSION_LEFT_IDLE, retries only
retryable errors (RetryPolicy), and counts calls per operation.

The error table (`translate`), from what came back to the kpisync error tree:

    transport failure, timeout, dropped connection      TransientError   retried
    HTTP 429 (a proxy: Vtiger itself has none)           RateLimited      retried after Retry-After
    HTTP 500 with an empty body on `sync`                SyncUnavailable  not retried: fall back to
                                                                          query (stock 8.2, PHP 8)
    other HTTP 5xx, or a non-JSON 5xx                    TransientError   retried
    HTTP 404 / other 4xx                                 RejectedError    wrong URL
    HTTP 200 that is not JSON (an HTML page)             RejectedError    not a webservice.php
    INVALID_USER_CREDENTIALS, ACCESSKEY_UNDEFINED,
      AUTHENTICATION_FAILURE, inactive user              AuthError
    INVALID_SESSIONID, SESSION_EXPIRED,
      SESSION_LEFT_IDLE                                  (renew session once, then retry)
    DATABASE_QUERY_ERROR                                 TransientError   retried
    everything else (ACCESS_DENIED, QUERY_SYNTAX_ERROR,
      MANDATORY_FIELDS_MISSING, INVALID_ID_ATTRIBUTE,
      REFERENCE_INVALID, INTERNAL_SERVER_ERROR, ...)     RejectedError    carries `.code`
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Any

import httpx
import orjson

from kpisync.errors import (
    AuthError,
    RateLimited,
    RejectedError,
    TransientError,
)
from kpisync.netcause import network_cause
from kpisync.retry import RetryPolicy
from kpisync.secrets import mask, remember_secret

METHODS = {"getchallenge": "GET", "login": "POST", "listtypes": "GET", "describe": "GET",
           "query": "GET", "sync": "GET", "retrieve": "GET", "create": "POST", "update": "POST",
           "revise": "POST", "delete": "POST", "logout": "POST"}
AUTH_CODES = frozenset({"INVALID_USER_CREDENTIALS", "ACCESSKEY_UNDEFINED",
                        "AUTHENTICATION_FAILURE", "INVALID_AUTH_TOKEN"})
SESSION_CODES = frozenset({"INVALID_SESSIONID", "SESSION_EXPIRED", "SESSION_LEFT_IDLE"})
TRANSIENT_CODES = frozenset({"DATABASE_QUERY_ERROR"})
CREDENTIAL_HINT = ("check the user name and access_key_env: the access key is shown under "
                   "My Preferences of that user, and the user must be active")


class VtigerFailure(RejectedError):
    """Vtiger answered `success: false`; `code` is its error code."""

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class SyncUnavailable(RejectedError):
    """The server's `sync` operation is broken (stock Vtiger 8.2 on PHP 8): use query instead."""


class SessionLost(TransientError):
    """Internal: the session died; the call is retried after a fresh login."""


def translate(operation: str, response: httpx.Response, host: str) -> Any:
    """The envelope's result, or the kpisync error the table above names."""
    status = response.status_code
    body = response.content
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        wait = float(retry_after) if retry_after and retry_after.replace(".", "").isdigit() else None
        raise RateLimited(f"Vtiger at {host} is rate limiting {operation}", retry_after=wait)
    if status == 500 and not body.strip() and operation == "sync":
        raise SyncUnavailable(f"Vtiger at {host} answered sync with an empty HTTP 500",
                              hint="stock Vtiger 8.2 on PHP 8 cannot serve sync; kpisync reads "
                                   "by query instead")
    if status >= 500:
        raise TransientError(f"Vtiger at {host} failed on {operation}: HTTP {status}"
                             f"{'' if body.strip() else ' with an empty body'}")
    if status >= 400:
        raise RejectedError(f"Vtiger at {host} answered {operation} with HTTP {status}",
                            hint="check the url setting: it must reach the CRM's webservice.php")
    envelope = parse_envelope(body)
    if envelope is None:
        raise RejectedError(f"Vtiger at {host} answered {operation} with something that is not "
                            f"JSON: {mask(body[:80].decode('utf-8', 'replace'))!r}",
                            hint="check the url setting points at the CRM (webservice.php)")
    if envelope.get("success"):
        return envelope.get("result")
    error = envelope.get("error") or {}
    code, message = str(error.get("code") or "UNKNOWN"), mask(str(error.get("message") or ""))
    if code in AUTH_CODES or (operation == "login" and code == "AUTHENTICATION_REQUIRED"):
        raise AuthError(f"Vtiger refused the credentials ({code}: {message})", hint=CREDENTIAL_HINT)
    if code in SESSION_CODES or code == "AUTHENTICATION_REQUIRED":
        raise SessionLost(f"Vtiger session ended ({code}) during {operation}")
    if code in TRANSIENT_CODES:
        raise TransientError(f"Vtiger database error on {operation}: {message}")
    raise VtigerFailure(code, f"Vtiger refused {operation} ({code}): {message}")


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

    def __init__(self, *, url: str, username: str, access_key: str, policy: RetryPolicy,
                 timeout_seconds: float = 60.0) -> None:
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
        self.http = httpx.Client(timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
                                 trust_env=False)

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
            raise TransientError(f"cannot reach Vtiger at {self.host} for {operation}: "
                                 f"{network_cause(error)}",
                                 hint="check the url setting and the network") from None
        return translate(operation, response, self.host)

    def close(self) -> None:
        self.http.close()

