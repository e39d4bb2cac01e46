"""Each connector's error table, pinned: (status, body as the CRM documents it) -> error class and
message. Failures are built as each vendor client builds them (hubspot-api-client's ApiException,
simple-salesforce's exception_handler over a requests Response, an httpx Response for Vtiger)."""

from __future__ import annotations

import json

import httpx
import pytest
import requests
from hubspot.crm.objects.exceptions import ApiException
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.util import exception_handler

from connectors.hubspot.client import REFRESH_ERRORS
from connectors.hubspot.client import translate as hubspot_translate
from connectors.salesforce.client import translate as salesforce_translate
from connectors.vtiger.client import SessionLost, SyncUnavailable, VtigerFailure
from connectors.vtiger.client import translate as vtiger_translate
from kpisync.errors import (
    AuthError,
    KpisyncError,
    RateLimited,
    RejectedError,
    SchemaDriftError,
    TransientError,
)


def hubspot_error(
    status: int, body: dict[str, object], headers: dict[str, str] | None = None
) -> ApiException:
    error = ApiException(status=status, reason="Error")
    error.body = json.dumps(body)
    error.headers = headers or {}
    return error


def hs_body(category: str, message: str) -> dict[str, object]:
    return {
        "status": "error",
        "message": message,
        "correlationId": "6d1d7d0e-5f3c",
        "category": category,
    }


HUBSPOT: list[tuple[int, dict[str, object], dict[str, str], type[KpisyncError], str]] = [
    (
        401,
        hs_body("INVALID_AUTHENTICATION", "Authentication credentials not found."),
        {},
        AuthError,
        "HubSpot refused the credentials for GET /crm/v3/owners: Authentication",
    ),
    (
        403,
        hs_body("MISSING_SCOPES", "This app hasn't been granted all required scopes."),
        {},
        RejectedError,
        "HubSpot denied GET /crm/v3/owners: This app hasn't",
    ),
    (
        429,
        {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "policyName": "SECONDLY",
        },
        {},
        RateLimited,
        "HubSpot rate limit on GET /crm/v3/owners: You have reached your secondly limit.",
    ),
    (
        502,
        hs_body("INTERNAL_ERROR", "Bad Gateway"),
        {},
        TransientError,
        "HubSpot error 502 on GET /crm/v3/owners: Bad Gateway",
    ),
    (
        400,
        hs_body("VALIDATION_ERROR", "Property values were not valid"),
        {},
        RejectedError,
        "HubSpot rejected GET /crm/v3/owners (400 VALIDATION_ERROR): Property values",
    ),
    (
        404,
        hs_body("OBJECT_NOT_FOUND", "resource not found"),
        {},
        RejectedError,
        "(404 OBJECT_NOT_FOUND): resource not found",
    ),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind", "fragment"), HUBSPOT)
def test_hubspot_error_table(
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    kind: type[KpisyncError],
    fragment: str,
) -> None:
    error = hubspot_translate(
        hubspot_error(status, body, headers), what="GET /crm/v3/owners", host="http://127.0.0.1"
    )
    assert type(error) is kind
    assert fragment in error.message


def test_hubspot_rate_limits_carry_their_wait() -> None:
    secondly = hubspot_translate(
        hubspot_error(429, {"policyName": "SECONDLY"}), what="search", host="h"
    )
    ten_secondly = hubspot_translate(
        hubspot_error(429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "3"}),
        what="x",
        host="h",
    )
    assert isinstance(secondly, RateLimited) and secondly.retry_after == 1.0
    assert isinstance(ten_secondly, RateLimited) and ten_secondly.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}),
        (401, hs_body("INVALID_AUTHENTICATION", "The client id is not valid")),
    ],
)
def test_hubspot_refused_refresh_token_is_a_revoked_grant(
    status: int, body: dict[str, object]
) -> None:
    error = hubspot_translate(
        hubspot_error(status, body), what="token refresh", host="h", table=REFRESH_ERRORS
    )
    assert type(error) is AuthError
    assert "refresh token" in error.message and error.hint and "re-authorising" in error.hint


def salesforce_error(status: int, body: object) -> SalesforceError:
    response = requests.Response()
    response.status_code, response.url = status, "https://127.0.0.1/services/data/v59.0/query"
    response._content = json.dumps(body).encode()
    try:
        exception_handler(response, name="query")
    except SalesforceError as error:
        return error
    raise AssertionError("simple-salesforce raised nothing")


def sf_body(code: str, message: str) -> list[dict[str, object]]:
    return [{"message": message, "errorCode": code}]


SALESFORCE = [
    (
        401,
        sf_body("INVALID_SESSION_ID", "Session expired or invalid"),
        AuthError,
        "Salesforce refused the credentials for GET query: INVALID_SESSION_ID: Session expired",
    ),
    (
        403,
        sf_body("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        RateLimited,
        "Salesforce 403 on GET query: REQUEST_LIMIT_EXCEEDED",
    ),
    (
        403,
        sf_body("INSUFFICIENT_ACCESS", "insufficient access rights on object id"),
        RejectedError,
        "Salesforce 403 on GET query: INSUFFICIENT_ACCESS",
    ),
    (
        400,
        sf_body("INVALID_FIELD", "No such column 'Foo__c' on entity 'Account'."),
        SchemaDriftError,
        "INVALID_FIELD: No such column 'Foo__c'",
    ),
    (
        400,
        sf_body("INVALID_TYPE", "sObject type 'Bar__c' is not supported."),
        SchemaDriftError,
        "INVALID_TYPE: sObject type",
    ),
    (
        400,
        sf_body("INVALID_QUERY_LOCATOR", "invalid query locator"),
        RejectedError,
        "INVALID_QUERY_LOCATOR",
    ),
    (
        400,
        sf_body("MALFORMED_QUERY", "unexpected token: FROM"),
        RejectedError,
        "Salesforce 400 on GET query: MALFORMED_QUERY",
    ),
    (
        404,
        sf_body("NOT_FOUND", "The requested resource does not exist"),
        RejectedError,
        "NOT_FOUND",
    ),
    (
        503,
        sf_body("SERVER_UNAVAILABLE", "Server unavailable"),
        TransientError,
        "Salesforce 503 on GET query: SERVER_UNAVAILABLE",
    ),
    (300, [{"attributes": {}}], RejectedError, "Salesforce 300 on GET query"),
]


@pytest.mark.parametrize(("status", "body", "kind", "fragment"), SALESFORCE)
def test_salesforce_error_table(
    status: int, body: object, kind: type[KpisyncError], fragment: str
) -> None:
    error = salesforce_translate(salesforce_error(status, body), what="GET query")
    assert type(error) is kind
    assert fragment in error.message


def vt_error(code: str, message: str) -> bytes:
    return json.dumps({"success": False, "error": {"code": code, "message": message}}).encode()


VTIGER = [
    ("query", 429, b"Too Many Requests", RateLimited, "Vtiger at H is rate limiting query"),
    ("sync", 500, b"", SyncUnavailable, "answered sync with an empty HTTP 500"),
    ("query", 500, b"", TransientError, "failed on query: HTTP 500 with an empty body"),
    ("query", 502, b"<html>Bad Gateway</html>", TransientError, "failed on query: HTTP 502"),
    ("query", 404, b"<html>Not Found</html>", RejectedError, "answered query with HTTP 404"),
    ("query", 200, b"<html>login page</html>", RejectedError, "something that is not JSON"),
    (
        "login",
        200,
        vt_error("INVALID_USER_CREDENTIALS", "Invalid username or password"),
        AuthError,
        "Vtiger refused the credentials (INVALID_USER_CREDENTIALS: Invalid username",
    ),
    (
        "login",
        200,
        vt_error("AUTHENTICATION_REQUIRED", "Authentication required"),
        AuthError,
        "(AUTHENTICATION_REQUIRED",
    ),
    (
        "query",
        200,
        vt_error("INVALID_SESSIONID", "Session Identifier provided is Invalid"),
        SessionLost,
        "Vtiger session ended (INVALID_SESSIONID) during query",
    ),
    (
        "query",
        200,
        vt_error("AUTHENTICATION_REQUIRED", "Authentication required"),
        SessionLost,
        "(AUTHENTICATION_REQUIRED) during query",
    ),
    (
        "query",
        200,
        vt_error("DATABASE_QUERY_ERROR", "Database error while performing"),
        TransientError,
        "Vtiger database error on query: Database error",
    ),
    (
        "query",
        200,
        vt_error("QUERY_SYNTAX_ERROR", "Syntax Error on line 1"),
        VtigerFailure,
        "Vtiger refused query (QUERY_SYNTAX_ERROR): Syntax Error",
    ),
    (
        "revise",
        200,
        vt_error("ACCESS_DENIED", "Permission to perform the operation is denied"),
        VtigerFailure,
        "Vtiger refused revise (ACCESS_DENIED)",
    ),
]


@pytest.mark.parametrize(("operation", "status", "body", "kind", "fragment"), VTIGER)
def test_vtiger_error_table(
    operation: str, status: int, body: bytes, kind: type[KpisyncError], fragment: str
) -> None:
    with pytest.raises(KpisyncError) as raised:
        vtiger_translate(operation, httpx.Response(status, content=body), "H")
    assert type(raised.value) is kind
    assert fragment in raised.value.message


def test_vtiger_failure_carries_its_code_and_success_its_result() -> None:
    with pytest.raises(VtigerFailure) as raised:
        vtiger_translate("query", httpx.Response(200, content=vt_error("ACCESS_DENIED", "no")), "H")
    assert raised.value.code == "ACCESS_DENIED"
    answer = httpx.Response(200, content=b'Notice: x\n{"success": true, "result": [1]}')
    assert vtiger_translate("query", answer, "H") == [1]
