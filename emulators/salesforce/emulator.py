"""Salesforce REST emulator: the synthetic org served over loopback HTTPS in Salesforce's shapes.

simple-salesforce 1.12 talks to it unchanged. It only builds `https://` URLs, so the emulator
serves TLS from a certificate authority made with trustme (`ca_path` is the CA to trust): a
throwaway one, or the one kept in `ca_folder` (made there the first time) for settings that last.
Served: SOAP `login()` and the OAuth token endpoint (auth); `query`,
`queryAll` and `nextRecordsUrl` pages (2,000 rows, `Sforce-Query-Options: batchSize=N`, 200 at
least) over a real small SOQL parser (soql: MALFORMED_QUERY, INVALID_FIELD,
INVALID_TYPE); global and per-object describe; sObject rows (GET, POST, PATCH, DELETE); sObject
Collections update (`PATCH composite/sobjects`, 200 records, per-record results, allOrNone);
Bulk API 2.0 query jobs with CSV results and `Sforce-Locator`; `limits` and
`limits/recordCount`. A request whose URI and headers pass 16,384 bytes gets 414 or 431, as
from Salesforce's front end. Custom address and geolocation fields (`add_compound_field`) come
as one object by REST and are refused by Bulk API queries. OpportunityFieldHistory exists only
with `field_history` (tracking) on. Every API call counts against a daily allowance, reported in
`Sforce-Limit-Info: api-usage=used/max`; when it is spent, calls get 403 REQUEST_LIMIT_EXCEEDED.
Errors are the real JSON arrays; an unknown or expired session gets 401 INVALID_SESSION_ID.
Module map: schema (objects, ids), records (org -> truth), store (SOQL, writes), render (wire
shapes, cursors, bulk jobs), auth (logins, sessions), routes (handlers).
"""

from __future__ import annotations

import copy
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import trustme

from emulators.org.model import Org
from emulators.salesforce.auth import OrgLogin, Sessions
from emulators.salesforce.finance import add_rates_and_quotas, optional_objects
from emulators.salesforce.records import Record, Truth, build_truth, utc_now_ms
from emulators.salesforce.render import BulkJobs, QueryCursors, errors
from emulators.salesforce.routes import register_routes
from emulators.salesforce.schema import COMPOUND_PARTS, TYPE_OF, FieldDef, Schema, make_id
from emulators.salesforce.soql import SoqlError
from emulators.salesforce.store import RecordError, SalesforceStore
from emulators.server import EmulatorServer, Knobs, Request, Response

API_VERSION = "59.0"
CA_FILE, CA_KEY_FILE = "emulator-ca.pem", "emulator-ca-key.pem"
URI_AND_HEADERS_MAX = 16_384  # bytes, per REST call (help article 000386264)
UNAUTHENTICATED = ("POST /services/Soap/", "POST /services/oauth2/")

__all__ = ["OrgLogin", "SalesforceEmulator", "SalesforceKnobs", "make_id"]


@dataclass
class SalesforceKnobs(Knobs):
    """The shared fault knobs plus the org's 24-hour API allowance."""

    daily_api_limit: int = 1_000_000
    bulk_polls_until_complete: int = 1


class SalesforceEmulator(EmulatorServer):
    """A stateful Salesforce org built from one synthetic org, served over loopback TLS."""

    def __init__(
        self,
        org: Org,
        *,
        login: OrgLogin | None = None,
        knobs: Knobs | None = None,
        clock: Callable[[], datetime] = utc_now_ms,
        session_seconds: float = 7200.0,
        field_history: bool = True,
        ca_folder: Path | None = None,
    ) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        if ca_folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="kpisync-sf-ca-")
            ca_folder = Path(self._folder.name)
        self.ca, self.ca_path = lasting_ca(ca_folder)
        certificate = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        super().__init__(knobs or SalesforceKnobs(), context)
        self.org = org
        self.clock = clock
        self.login = login or OrgLogin()
        self.sessions = Sessions(self.login, session_seconds)
        self.schema = Schema(
            org.stages,
            list(org.currencies),
            org.custom_fields,
            field_history,
            optional_objects(org),
        )
        truth = build_truth(org, self.schema)
        add_rates_and_quotas(truth, self.schema, org)
        self.store = SalesforceStore(truth, self.schema, clock)
        self.cursors = QueryCursors()
        self.bulk = BulkJobs()
        self.api_used = 0
        self.refused_too_long = 0  # requests refused with 414 or 431
        register_routes(self)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    # --- request pipeline ------------------------------------------------------------------------
    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Salesforce's front end refuses a request whose URI and headers pass 16,384 bytes, before
        any API call is counted: 414 when the URI alone does, else 431 (a SELECT of hundreds of
        fields in a query's GET URL does)."""
        header_bytes = sum(len(name) + len(value) + 4 for name, value in headers.items())
        if len(target) + header_bytes > URI_AND_HEADERS_MAX:
            self.refused_too_long += 1
            status, reason = (
                (414, "URI Too Long")
                if len(target) > URI_AND_HEADERS_MAX
                else (431, "Request Header Fields Too Large")
            )
            return Response(
                status,
                {"Content-Type": "text/html"},
                f"<html><body><h1>{status} {reason}</h1></body></html>".encode(),
            )
        return super().dispatch(method, target, headers, body)

    def handle(self, request: Request, handler: Callable[[Request], Response]) -> Response:
        """Auth, the daily allowance, the handler under the store lock, Sforce-Limit-Info."""
        if request.route_key.startswith(UNAUTHENTICATED):
            return handler(request)
        if not self.sessions.valid(request.headers.get("authorization")):
            return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        limit = int(getattr(self.knobs, "daily_api_limit", 1_000_000))
        self.bulk.polls_until_complete = int(getattr(self.knobs, "bulk_polls_until_complete", 1))
        if self.api_used >= limit:
            return errors(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                headers={"Sforce-Limit-Info": f"api-usage={self.api_used}/{limit}"},
            )
        self.api_used += 1
        with self.store.lock:
            try:
                response = handler(request)
            except SoqlError as error:
                response = errors(400, error.code, error.message)
            except RecordError as error:
                response = errors(error.http_status, error.status_code, error.message, error.fields)
            except (ValueError, TypeError, AttributeError, KeyError) as error:
                response = errors(400, "JSON_PARSER_ERROR", f"Unexpected request body: {error}")
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{limit}"
        return response

    def fault_response(self, kind: str) -> Response:
        """Injected faults in Salesforce's shapes (its rate limit is a 403, not a 429)."""
        if kind == "429":
            return errors(
                403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded. (injected)"
            )
        return errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable (injected)")

    def not_found(self, request: Request) -> Response:
        return errors(404, "NOT_FOUND", "The requested resource does not exist")

    # --- test hooks --------------------------------------------------------------------------------
    def dump(self) -> Truth:
        """A deep copy of the current truth, recycle-bin rows included."""
        with self.store.lock:
            return copy.deepcopy(self.store.truth)

    def update_record(self, sobject: str, rid: str, values: dict[str, Any]) -> None:
        """Change fields as a user in the Salesforce UI would (read-only ones allowed)."""
        with self.store.lock:
            typed = self.store.coerce(sobject, values, creating=True)
            self.store.update(sobject, rid, typed, system=True)

    def add_custom_field(
        self, sobject: str, name: str, kind: str, label: str, options: tuple[str, ...] = ()
    ) -> str:
        """Create a custom field as an admin would in Setup > Object Manager; its API name.

        `kind` is a neutral type (string, number, date, enumeration, bool)."""
        api = name if name.endswith("__c") else f"{name}__c"
        with self.store.lock:
            self.schema.objects[sobject].add(
                FieldDef(api, TYPE_OF[kind], label, custom=True, picklist=tuple(options))
            )
            for record in self.store.truth[sobject].values():
                record.setdefault(api, None)  # a new field is null on every record
        return api

    def add_compound_field(self, sobject: str, name: str, kind: str, label: str) -> str:
        """A custom address or geolocation field (`kind` "address" or "location") and its
        components `<name>__<Part>__s`; its API name. REST returns it as one object, Bulk API
        queries refuse it (FUNCTIONALITY_NOT_ENABLED), and its components are ordinary fields."""
        api = name if name.endswith("__c") else f"{name}__c"
        with self.store.lock:
            obj = self.schema.objects[sobject]
            obj.add(FieldDef(api, kind, label, updateable=False, custom=True))
            for part, part_type in COMPOUND_PARTS[kind].items():
                component = f"{api.removesuffix('__c')}__{part}__s"
                obj.add(
                    FieldDef(
                        component, part_type, f"{label} ({part})", custom=True, compound_of=api
                    )
                )
                for record in self.store.truth[sobject].values():
                    record.setdefault(component, None)
        return api

    def create_record(self, sobject: str, values: dict[str, Any]) -> str:
        with self.store.lock:
            return str(
                self.store.create(sobject, self.store.coerce(sobject, values, True), system=True)[
                    "Id"
                ]
            )

    def delete(self, sobject: str, rid: str) -> None:
        """Delete to the recycle bin (queryAll still returns it, IsDeleted = true)."""
        with self.store.lock:
            self.store.delete(sobject, rid)

    def purge(self, sobject: str, rid: str) -> None:
        """Hard-delete: gone from the recycle bin too, as after emptying it."""
        with self.store.lock:
            self.store.purge(sobject, rid)

    def merge(self, sobject: str, master: str, loser: str) -> None:
        with self.store.lock:
            self.store.merge(sobject, master, loser)

    def touch_all(self, sobject: str, at: datetime) -> None:
        """Give every record of an object the same SystemModstamp (a mass update)."""
        with self.store.lock:
            self.store.touch_all(sobject, at)

    def expire_sessions(self) -> None:
        self.sessions.expire_all()

    def revoke_refresh_token(self) -> None:
        self.sessions.refresh_revoked = True

    def live(self, sobject: str) -> dict[str, Record]:
        with self.store.lock:
            return {
                rid: dict(r) for rid, r in self.store.truth[sobject].items() if not r["IsDeleted"]
            }

    def stop(self) -> None:
        super().stop()
        if self._folder is not None:
            self._folder.cleanup()


def lasting_ca(folder: Path) -> tuple[trustme.CA, Path]:
    """The certificate authority kept in `folder` (made there the first time) and the path of
    its certificate, the file a client's `ca_bundle` names. A CA made anew on each start would
    leave settings pointing at a certificate that no longer signs the server's."""
    cert, key = folder / CA_FILE, folder / CA_KEY_FILE
    if cert.is_file() and key.is_file():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes()), cert
    ca = trustme.CA()
    folder.mkdir(parents=True, exist_ok=True)
    key.touch(mode=0o600)
    ca.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cert))
    return ca, cert
