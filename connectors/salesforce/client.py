"""Salesforce over simple-salesforce: login, the error table, retries, call counts, API usage.

Login is ours, made with the same `requests` session simple-salesforce then uses (trust_env off,
certificates always checked, `ca_bundle` when given): SOAP `login()` for username + password +
security token, or the OAuth 2.0 token endpoint for the connected-app password, refresh-token and
JWT bearer flows, all against `login_url`. simple-salesforce's own login only reaches
`https://{domain}.salesforce.com`, so it is handed the session id and instance URL (direct mode).
Every API call goes through `SalesforceClient.call`: tenacity retries on the retryable marker only,
one table translates simple-salesforce's exceptions, INVALID_SESSION_ID logs in again once, and
each response's Sforce-Limit-Info is kept.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.util import exception_handler

from connectors.kit.errortable import Answer, ErrorTable, Rule, status
from kpisync.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    KpisyncError,
    RateLimited,
    RejectedError,
    SchemaDriftError,
    TransientError,
)
from kpisync.netcause import network_cause
from kpisync.retry import RetryPolicy
from kpisync.secrets import mask, remember_secret

T = TypeVar("T")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REAUTH_HINT = "check the username, password and security token, or re-authorise the connected app"
SAID = "Salesforce {status} on {what}: {detail}"
# Salesforce's REST error body: [{"message": "...", "errorCode": "INVALID_FIELD", "fields": []}].
ERRORS = ErrorTable(
    "Salesforce",
    [
        Rule(
            AuthError,
            "Salesforce refused the credentials for {what}: {detail}",
            REAUTH_HINT,
            status=status(401),
        ),
        Rule(
            RateLimited,
            SAID,
            "the org's API allowance or concurrency limit was reached; kpisync backs off",
            status=status(403),
            codes=frozenset({"REQUEST_LIMIT_EXCEEDED"}),
        ),
        Rule(
            RejectedError,
            SAID,
            "give the integration user read access to this object",
            status=status(403),
        ),
        Rule(
            SchemaDriftError,
            SAID,
            "a field kpisync reads is gone; run 'kpisync discover'",
            status=status(400),
            codes=frozenset({"INVALID_FIELD"}),
        ),
        Rule(
            SchemaDriftError,
            SAID,
            "the object is not available to this user or org",
            status=status(400),
            codes=frozenset({"INVALID_TYPE"}),
        ),
        Rule(
            RejectedError,
            SAID,
            "the query cursor expired; it is re-queried",
            status=status(400),
            codes=frozenset({"INVALID_QUERY_LOCATOR"}),
        ),
        Rule(RejectedError, SAID, "Salesforce refused the request", status=status(400)),
        Rule(RejectedError, SAID, "the resource does not exist in this org", status=status(404)),
        Rule(
            TransientError, SAID, "Salesforce had a server error; retried", status=status(500, 599)
        ),
        Rule(RejectedError, SAID),
    ],
)


def error_code(content: Any) -> tuple[str, str]:
    """(errorCode, message) of a REST error body (a JSON array of error objects)."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", content.get("error", ""))), str(
            content.get("message", "")
        )
    return "", str(content)[:200]


def answer_of(error: SalesforceError) -> Answer:
    """What Salesforce answered, from a simple-salesforce exception (`.status`, `.content`)."""
    code, message = error_code(error.content)
    detail = mask(f"{code}: {message.strip()}" if code else message.strip())
    return Answer(
        status=int(error.status or 0), code=code, detail=detail, body=str(error.content)[:2000]
    )


def translate(error: Exception, *, what: str) -> KpisyncError:
    """The error table: a simple-salesforce or requests failure -> a kpisync error (masked)."""
    if isinstance(error, SalesforceError):
        return ERRORS.error(answer_of(error), what=what)
    if isinstance(error, requests.exceptions.SSLError):
        return ConnectorError(
            f"TLS certificate check failed for {what}",
            hint="set ca_bundle to the CA that signed the server's certificate",
        )
    if isinstance(error, requests.exceptions.RequestException | OSError):
        return TransientError(
            f"cannot reach Salesforce for {what}: {network_cause(error)}",
            hint="check login_url and the network",
        )
    return ConnectorError(f"unexpected failure on {what}: {mask(str(error))}")


def throttled(response: requests.Response) -> None:
    """A login refused for the rate (HTTP 429, or 403 REQUEST_LIMIT_EXCEEDED) is RateLimited,
    retried after a pause like any call, not refused credentials."""
    limited = response.status_code == 429 or (
        response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text
    )
    if not limited:
        return
    try:
        retry_after: float | None = float(response.headers.get("Retry-After", ""))
    except ValueError:
        retry_after = None
    raise RateLimited(
        f"Salesforce login was rate-limited (HTTP {response.status_code})",
        retry_after=retry_after,
        hint="kpisync waits and logs in again",
    )


@dataclass(frozen=True)
class Credentials:
    """One of the four login flows; secrets already read from the environment."""

    flow: str  # soap | password | refresh_token | jwt
    username: str | None = None
    password: str | None = None
    security_token: str = ""
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    private_key_file: str | None = None

    def remember(self) -> None:
        for secret in (self.password, self.security_token, self.client_secret, self.refresh_token):
            if secret:
                remember_secret(secret)


@dataclass(frozen=True)
class Login:
    session_id: str
    instance_url: str


def soap_envelope(username: str, password: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8" ?><env:Envelope '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com"><env:Header><urn:CallOptions>'
        "<urn:client>kpisync</urn:client></urn:CallOptions></env:Header><env:Body>"
        '<n1:login xmlns:n1="urn:partner.soap.sforce.com">'
        f"<n1:username>{escape(username)}</n1:username>"
        f"<n1:password>{escape(password)}</n1:password></n1:login></env:Body></env:Envelope>"
    )


def xml_value(text: str, name: str) -> str | None:
    found = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", text, re.DOTALL)
    return found.group(1) if found else None


class SalesforceClient:
    """One org: its session, login, simple-salesforce handle, retry policy and call counts."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        login_url: str,
        version: str,
        ca_bundle: str | None,
        policy: RetryPolicy,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.credentials = credentials
        self.login_url = login_url.rstrip("/")
        self.version = version
        self.policy = policy
        self.timeout = (min(5.0, timeout_seconds), timeout_seconds)
        self.calls: Counter[str] = Counter()
        self.api_used: int | None = None
        self.api_max: int | None = None
        self.seconds_waiting = 0.0  # on the CRM: HTTP calls, and Bulk jobs being polled (`wait`)
        self.session = requests.Session()
        self.session.trust_env = False  # an environment CA bundle must not override `verify`
        if ca_bundle:
            if not Path(ca_bundle).is_file():
                raise ConfigError(
                    f"ca_bundle: {ca_bundle} is not a file",
                    hint="give the path of a PEM file with the CA certificate(s)",
                )
            self.session.verify = ca_bundle
        self._sf: Salesforce | None = None
        self._lock = threading.Lock()  # the session
        self._counting = threading.Lock()  # calls, and time with calls in flight
        self._in_flight, self._busy_since = 0, 0.0
        credentials.remember()

    # --- calls -------------------------------------------------------------------------------------
    @contextmanager
    def _on_the_crm(self) -> Iterator[None]:
        """Counts wall time with at least one call in flight (calls overlap when a chain reads
        ahead) into `seconds_waiting`, so overlapping calls are not counted twice."""
        with self._counting:
            if self._in_flight == 0:
                self._busy_since = time.perf_counter()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._counting:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self.seconds_waiting += time.perf_counter() - self._busy_since

    def calls_made(self) -> Counter[str]:
        """A copy of the calls counted so far, by endpoint (a chain's next call may be adding
        to them from another thread)."""
        with self._counting:
            return self.calls.copy()

    def wait(self, seconds: float) -> None:
        """Sleep while the org works on something asked of it (a Bulk job): time spent waiting on
        the CRM, counted with the calls' own in `seconds_waiting`."""
        with self._on_the_crm():
            time.sleep(seconds)

    def call(self, endpoint: str, function: Callable[[Salesforce], T]) -> T:
        """`function(sf)` with retries; `endpoint` names it in counts and errors. Thread-safe."""
        relogged = False

        def attempt() -> T:
            nonlocal relogged
            sf = self.connect()
            with self._counting:
                self.calls[endpoint] += 1
            try:
                with self._on_the_crm():
                    result = function(sf)
            except (SalesforceError, requests.exceptions.RequestException, OSError) as error:
                translated = translate(error, what=endpoint)
                if isinstance(translated, AuthError) and not relogged:
                    relogged = True
                    self.relogin(sf)
                    raise TransientError(
                        f"logged in again after INVALID_SESSION_ID on {endpoint}"
                    ) from None
                raise translated from None
            self._usage(sf)
            return result

        return self.policy.call(attempt)

    def _usage(self, sf: Salesforce) -> None:
        usage = sf.api_usage.get("api-usage")
        if usage is not None:
            self.api_used, self.api_max = usage.used, usage.total

    def restful(self, endpoint: str, path: str, **kwargs: Any) -> Any:
        """A JSON REST call through `call` ({} for an empty answer such as 204)."""
        return self.call(
            endpoint, lambda sf: sf.restful(path, timeout=self.timeout, **kwargs) or {}
        )

    def usage_from_headers(self, headers: Any) -> None:
        found = re.match(r"\s*api-usage=(\d+)/(\d+)", headers.get("Sforce-Limit-Info") or "")
        if found:
            self.api_used, self.api_max = int(found.group(1)), int(found.group(2))

    def get_raw(
        self, sf: Salesforce, path: str, params: dict[str, Any], accept: str
    ) -> requests.Response:
        """A GET whose body is not JSON (Bulk CSV results), through the same session."""
        headers = {**sf.headers, "Accept": accept}
        response = self.session.get(
            sf.base_url + path, params=params, headers=headers, timeout=self.timeout
        )
        if response.status_code >= 300:
            exception_handler(response, name=path)
        self.usage_from_headers(response.headers)
        return response

    # --- login -------------------------------------------------------------------------------------
    def connect(self) -> Salesforce:
        with self._lock:
            if self._sf is None:
                login = self.login()
                remember_secret(login.session_id)
                # Plain dicts: simple-salesforce's default OrderedDict hook doubles JSON parsing.
                self._sf = Salesforce(
                    session_id=login.session_id,
                    instance_url=login.instance_url,
                    session=self.session,
                    version=self.version,
                    parse_float=Decimal,
                    object_pairs_hook=None,
                )
            return self._sf

    def relogin(self, expired: Salesforce) -> None:
        """A new session in place of `expired`, unless another thread already made one."""
        with self._lock:
            if self._sf is expired:
                self._sf = None
        self.connect()

    def login(self) -> Login:
        with self._counting:
            self.calls[f"login ({self.credentials.flow})"] += 1
        try:
            if self.credentials.flow == "soap":
                return self._soap_login()
            return self._oauth_login()
        except requests.exceptions.RequestException as error:
            raise translate(error, what="login") from None

    def _soap_login(self) -> Login:
        c = self.credentials
        response = self.session.post(
            f"{self.login_url}/services/Soap/u/{self.version}",
            data=soap_envelope(c.username or "", (c.password or "") + c.security_token).encode(),
            headers={"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"},
            timeout=self.timeout,
        )
        throttled(response)
        if response.status_code >= 500 and "LoginFault" not in response.text:
            raise TransientError(f"Salesforce login failed with HTTP {response.status_code}")
        if response.status_code != 200:
            code = xml_value(response.text, "exceptionCode") or str(response.status_code)
            message = xml_value(response.text, "exceptionMessage") or ""
            raise AuthError(
                f"Salesforce refused the credentials: {code} {mask(message)}", hint=REAUTH_HINT
            )
        session_id, server = (
            xml_value(response.text, "sessionId"),
            xml_value(response.text, "serverUrl"),
        )
        if not session_id or not server:
            raise ConnectorError("Salesforce login answered without sessionId or serverUrl")
        host = server.split("://", 1)[-1].split("/", 1)[0].replace("-api", "")
        return Login(session_id, f"https://{host}")

    def _oauth_login(self) -> Login:
        c = self.credentials
        form: dict[str, str] = {"client_id": c.client_id or ""}
        if c.flow == "password":
            form.update(
                grant_type="password",
                client_secret=c.client_secret or "",
                username=c.username or "",
                password=(c.password or "") + c.security_token,
            )
        elif c.flow == "refresh_token":
            form.update(grant_type="refresh_token", refresh_token=c.refresh_token or "")
            if c.client_secret:
                form["client_secret"] = c.client_secret
        else:
            form = {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        response = self.session.post(
            f"{self.login_url}/services/oauth2/token", data=form, timeout=self.timeout
        )
        throttled(response)
        if response.status_code >= 500:
            raise TransientError(
                f"Salesforce token endpoint failed with HTTP {response.status_code}"
            )
        try:
            payload = response.json()
        except ValueError:
            raise ConnectorError(
                f"Salesforce token endpoint answered HTTP {response.status_code} without JSON"
            ) from None
        if response.status_code != 200:
            detail = f"{payload.get('error')}: {payload.get('error_description')}"
            hint = (
                (
                    "the source needs re-authorising: create a new refresh token and update its "
                    "environment variable"
                )
                if c.flow == "refresh_token"
                else REAUTH_HINT
            )
            raise AuthError(f"Salesforce refused the credentials: {mask(detail)}", hint=hint)
        return Login(str(payload["access_token"]), str(payload["instance_url"]))

    def _assertion(self) -> str:
        c = self.credentials
        try:
            key = Path(c.private_key_file or "").read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                f"private_key_file: cannot read {c.private_key_file}: {error.strerror}"
            ) from None
        claims = {
            "iss": c.client_id,
            "sub": c.username,
            "aud": self.login_url,
            "exp": datetime.now(UTC) + timedelta(minutes=3),
        }
        return jwt.encode(claims, key, algorithm="RS256")

    def close(self) -> None:
        self.session.close()
