"""Logins of the Salesforce emulator: SOAP `login()`, the OAuth 2.0 token endpoint, sessions.

SOAP: `POST /services/Soap/u/{version}` with a partner `login` envelope (password = password +
security token) answers a `loginResponse` with sessionId and serverUrl, or HTTP 500 with a
LoginFault (INVALID_LOGIN). OAuth: `POST /services/oauth2/token` with grant_type `password`
(connected app + username + password + token), `refresh_token`, or the JWT bearer grant
(`urn:ietf:params:oauth:grant-type:jwt-bearer`, an RS256 assertion checked against the connected
app's certificate key) answers access_token and instance_url, or 400 invalid_grant/invalid_client.
Sessions live `session_seconds`; an unknown or expired one gets 401 INVALID_SESSION_ID.
"""

from __future__ import annotations

import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import jwt

ORG_ID = "00D5g000004kPsYEAU"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class OrgLogin:
    """The integration user and the connected app the emulated org accepts."""

    username: str = "kpisync@example.org"
    password: str = "emulator-password"
    security_token: str = "emulatorTOKEN123"
    consumer_key: str = "3MVG9emulator.consumer.key"
    consumer_secret: str = "emulator-consumer-secret"
    refresh_token: str = "5Aep861emulator.refresh.token"
    jwt_public_key: str | None = None  # PEM; the JWT bearer grant is refused without it
    user_id: str = "0055g00000zZzZzAAK"


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class Sessions:
    """Live session ids (SOAP) and access tokens (OAuth) with their expiry (monotonic)."""

    def __init__(self, login: OrgLogin, session_seconds: float = 7200.0) -> None:
        self.login = login
        self.session_seconds = session_seconds
        self.refresh_revoked = False
        self.logins = 0
        self._live: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = f"{ORG_ID[:15]}!AR{secrets.token_urlsafe(24)}"
        with self._lock:
            self._live[token] = time.monotonic() + self.session_seconds
            self.logins += 1
        return token

    def valid(self, authorization: str | None) -> bool:
        token = (authorization or "").removeprefix("Bearer ").removeprefix("OAuth ").strip()
        expiry = self._live.get(token)
        return expiry is not None and time.monotonic() < expiry

    def expire_all(self) -> None:
        with self._lock:
            self._live = {token: 0.0 for token in self._live}

    # --- SOAP --------------------------------------------------------------------------------------
    def soap_login(self, body: bytes, base_url: str, version: str) -> tuple[int, str]:
        """(HTTP status, XML) for a partner-API login request."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 500, soap_fault(
                "soapenv:Client", "INVALID_REQUEST", "Unable to parse the request"
            )
        username = _text(root, "username")
        password = _text(root, "password")
        expected = self.login.password + self.login.security_token
        if username != self.login.username or password != expected:
            return 500, soap_fault(
                "sf:INVALID_LOGIN",
                "INVALID_LOGIN",
                "Invalid username, password, security token; or user locked out.",
            )
        session = self.issue()
        server = f"{base_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
        return 200, (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            f'xmlns:soapenv="{SOAP_NS}" xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse>'
            f"<result><metadataServerUrl>{base_url}/services/Soap/m/{version}/{ORG_ID[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{server}</serverUrl><sessionId>{escape(session)}</sessionId>"
            f"<userId>{self.login.user_id}</userId><userInfo><organizationId>{ORG_ID}"
            f"</organizationId><userEmail>{escape(self.login.username)}</userEmail>"
            f"<userName>{escape(self.login.username)}</userName></userInfo></result>"
            "</loginResponse></soapenv:Body></soapenv:Envelope>"
        )

    # --- OAuth -------------------------------------------------------------------------------------
    def token(self, form: dict[str, str], base_url: str) -> dict[str, Any]:
        grant = form.get("grant_type")
        app = self.login
        if grant == "password":
            self._check_client(form)
            if (
                form.get("username") != app.username
                or form.get("password") != app.password + app.security_token
            ):
                raise OAuthError(400, "invalid_grant", "authentication failure")
        elif grant == "refresh_token":
            if form.get("client_id") != app.consumer_key:
                raise OAuthError(400, "invalid_client_id", "client identifier invalid")
            if form.get("client_secret") not in (None, app.consumer_secret):
                raise OAuthError(400, "invalid_client", "invalid client credentials")
            if self.refresh_revoked or form.get("refresh_token") != app.refresh_token:
                raise OAuthError(400, "invalid_grant", "expired access/refresh token")
        elif grant == JWT_GRANT:
            self._check_jwt(form.get("assertion") or "", base_url)
        else:
            raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
        issued = str(int(time.time() * 1000))
        return {
            "access_token": self.issue(),
            "instance_url": base_url,
            "id": f"{base_url}/id/{ORG_ID}/{app.user_id}",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": secrets.token_urlsafe(32),
            "scope": "api",
        }

    def _check_client(self, form: dict[str, str]) -> None:
        if form.get("client_id") != self.login.consumer_key:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != self.login.consumer_secret:
            raise OAuthError(400, "invalid_client", "invalid client credentials")

    def _check_jwt(self, assertion: str, base_url: str) -> None:
        key = self.login.jwt_public_key
        if key is None:
            raise OAuthError(400, "invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError(400, "invalid_grant", "expired authorization code") from None
        except jwt.PyJWTError:
            raise OAuthError(400, "invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.login.consumer_key:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.login.username:
            raise OAuthError(400, "invalid_grant", "user hasn't approved this consumer")


def _text(root: ET.Element, name: str) -> str | None:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == name:
            return element.text or ""
    return None


def soap_fault(code: str, exception: str, message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        f'xmlns:soapenv="{SOAP_NS}" xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{exception}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{exception}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
