"""Vtiger webservice emulator: the synthetic org served as `<base>/webservice.php` over loopback.

Operations (crm-api-facts 3.2), each registered as GET or POST as in vtiger_ws_operation (the
other method gives ACCESS_DENIED): getchallenge, login (md5(token + accessKey)), listtypes,
describe, query (the VTQL subset of vtql), sync, retrieve, create, update, revise, delete,
logout, convertlead. Envelopes `{"success": ..., "result"|"error": ...}` come with HTTP 200 even
for errors. Sessions expire after `session_lifetime_seconds` or `session_idle_seconds` idle
(INVALID_SESSIONID); challenge tokens live 300 s and serve two logins.

By default it behaves as the stock Vtiger 8.2.0 on PHP 8 measured in ../shared/vtiger/README.md:
`sync`, `logout` and `convertlead` answer an empty HTTP 500 text/html (as does an unknown
operation); `sync_works=True` is a server where they are fixed. Checkboxes store 1 only for "1",
"on", true and 1 and read "1"/"0" ("0" when never written); a number written empty stores 0;
amounts and decimal custom fields are rounded to the writing user's currency decimals (the
installer's admin has none: `admin_currency_decimals`); a non-number is an empty 500; `revise`
ignores unknown fields; Users cannot be created; non-admins see no Users module; a custom field
left without its column (`break_field`) makes `SELECT *` of its module answer an empty success.
`sync_type_registered=False` reproduces installs where the syncType argument is not registered, so
sync only ever returns the caller's own records. The shared `Knobs` add latency and faults.
Module map: schema (modules, fields, cf_ names), records (org -> truth), vtql (parser), store
(queries, sync, writes), render (wire values, time zone, Persian digits and Jalali dates).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from emulators.org.model import Org
from emulators.server import EmulatorServer, Knobs, Request, Response, json_response
from emulators.vtiger.records import ADMIN_ID, IdBook, Truth, build_truth
from emulators.vtiger.render import Locale, render
from emulators.vtiger.schema import PREFIX, TYPE_NAMES, FieldDef, build_schema, listtypes_json
from emulators.vtiger.store import EmptyServerError, VtigerError, VtigerStore
from emulators.vtiger.vtql import VtqlError, parse_query

__all__ = ["ADMIN_KEY", "VtigerEmulator"]
ADMIN_KEY = "vtEmulatorAdminKey0123"
OPERATIONS = {
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
    "convertlead": "POST",
}
NO_SESSION = ("getchallenge", "login")
TOKEN_SECONDS = 300


@dataclass
class Session:
    user_id: int
    started: float
    used: float


def empty_500() -> Response:
    return Response(500, {"Content-Type": "text/html; charset=UTF-8"}, b"")


def success(result: Any) -> Response:
    return json_response(200, {"success": True, "result": result})


def failure(code: str, message: str) -> Response:
    return json_response(200, {"success": False, "error": {"code": code, "message": message}})


class VtigerEmulator(EmulatorServer):
    """A stateful Vtiger 8.2 server built from one synthetic org."""

    def __init__(
        self,
        org: Org,
        *,
        admin_key: str = ADMIN_KEY,
        knobs: Knobs | None = None,
        sync_works: bool = False,
        sync_type_registered: bool = True,
        admin_currency_decimals: int = 0,
        server_timezone: str = "UTC",
        native_digits: bool = False,
        jalali_dates: bool = False,
        session_idle_seconds: float = 1800,
        session_lifetime_seconds: float = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(knobs or Knobs())
        self.org = org
        self.sync_works = sync_works
        self.sync_type_registered = sync_type_registered
        self.zone = ZoneInfo(server_timezone)
        self.locale = Locale(native_digits, jalali_dates)
        self.session_idle_seconds = session_idle_seconds
        self.session_lifetime_seconds = session_lifetime_seconds
        self.clock = clock
        self.schema = build_schema(org.custom_fields)
        truth, self.ids = build_truth(
            org, self.schema, int(org.now.timestamp()) - 5 * 365 * 86400, self.zone
        )
        self.store = VtigerStore(
            truth, self.schema, lambda: int(self.clock()), self.zone, self.ids.next
        )
        self.store.currency_decimals[self.user_ws(ADMIN_ID)] = admin_currency_decimals
        self.broken: dict[str, set[str]] = {}  # module -> custom fields without a column
        self.keys = {
            e.fields["user_name"]: (
                admin_key if e.crmid == ADMIN_ID else f"key-{e.fields['user_name']}"
            )
            for e in truth["Users"].values()
        }
        self.challenges: dict[str, tuple[str, float, int]] = {}  # token -> user, expiry, uses
        self.sessions: dict[str, Session] = {}
        self.op_calls: Counter[str] = Counter()  # per webservice operation
        self.add_route("GET", "/webservice.php", self.serve_get, key="GET /webservice.php")
        self.add_route("POST", "/webservice.php", self.serve_post, key="POST /webservice.php")

    # --- request pipeline ----------------------------------------------------------------------
    def reset_calls(self) -> None:
        super().reset_calls()
        with self._lock:
            self.op_calls.clear()

    def fault_response(self, kind: str) -> Response:
        if kind == "429":  # a proxy in front of the server; Vtiger itself has no rate limit
            return Response(
                429,
                {"Content-Type": "text/html", "Retry-After": "1"},
                b"<html><body>Too Many Requests</body></html>",
            )
        return Response(
            503,
            {"Content-Type": "text/html"},
            b"<html><body><h1>503 Service Unavailable</h1></body></html>",
        )

    def serve_get(self, request: Request) -> Response:
        return self.operate("GET", {k: v[0] for k, v in request.query.items()}, request)

    def serve_post(self, request: Request) -> Response:
        try:
            form = {
                k: v[0]
                for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()
            }
        except UnicodeDecodeError:
            form = {}
        return self.operate("POST", form, request)

    def operate(self, method: str, params: dict[str, str], request: Request) -> Response:
        operation = params.get("operation") or (request.arg("operation") or "")
        expected = OPERATIONS.get(operation)
        if expected is None:
            return empty_500()
        with self._lock:
            self.op_calls[operation] += 1
        if expected != method:
            return failure(
                "ACCESS_DENIED",
                f"Permission to perform the operation is denied for name:{operation}",
            )
        with self.store.lock:
            try:
                user = None if operation in NO_SESSION else self.session_user(params)
                run: Callable[..., Response] = getattr(self, f"op_{operation}")
                return run(params, user)
            except VtigerError as error:
                return failure(error.code, error.message)
            except VtqlError as error:
                return failure(error.code, error.message)
            except EmptyServerError:
                return empty_500()

    def session_user(self, params: dict[str, str]) -> int:
        name = params.get("sessionName")
        if not name:
            raise VtigerError("AUTHENTICATION_REQUIRED", "Authentication required")
        session = self.sessions.get(name)
        now = self.clock()
        if (
            session is None
            or now - session.started > self.session_lifetime_seconds
            or now - session.used > self.session_idle_seconds
        ):
            self.sessions.pop(name, None)
            raise VtigerError("INVALID_SESSIONID", "Session Identifier provided is Invalid")
        session.used = now
        return session.user_id

    def user_ws(self, user_id: int) -> str:
        return f"{PREFIX['Users']}x{user_id}"

    def is_admin(self, user_id: int) -> bool:
        return self.store.truth["Users"][user_id].fields.get("is_admin") == "on"

    # --- operations ----------------------------------------------------------------------------
    def op_getchallenge(self, params: dict[str, str], _: int | None) -> Response:
        now = self.clock()
        token = secrets.token_hex(7)
        self.challenges = {t: c for t, c in self.challenges.items() if c[1] > now}
        self.challenges[token] = (params.get("username", ""), now + TOKEN_SECONDS, 2)
        return success(
            {"token": token, "serverTime": int(now), "expireTime": int(now + TOKEN_SECONDS)}
        )

    def op_login(self, params: dict[str, str], _: int | None) -> Response:
        username, given = params.get("username", ""), params.get("accessKey", "")
        if not given:
            raise VtigerError("ACCESSKEY_UNDEFINED", "Access key for the user is undefined")
        now = self.clock()
        live = [(t, c) for t, c in self.challenges.items() if c[0] == username and c[1] > now]
        if not live:
            raise VtigerError("INVALID_AUTH_TOKEN", "Specified token is invalid or expired")
        user = next(
            (e for e in self.store.truth["Users"].values() if e.fields["user_name"] == username),
            None,
        )
        key = self.keys.get(username, "")
        if user is None or not any(
            hashlib.md5((t + key).encode()).hexdigest() == given for t, _ in live
        ):
            raise VtigerError("INVALID_USER_CREDENTIALS", "Invalid username or password")
        for token, (name, expiry, uses) in live:
            if hashlib.md5((token + key).encode()).hexdigest() == given:
                if uses <= 1:
                    del self.challenges[token]
                else:
                    self.challenges[token] = (name, expiry, uses - 1)
        if user.fields.get("status") != "Active":
            raise VtigerError("AUTHENTICATION_REQUIRED", "Given user is inactive")
        name = secrets.token_hex(13)
        self.sessions[name] = Session(user.crmid, now, now)
        return success(
            {
                "sessionName": name,
                "userId": self.user_ws(user.crmid),
                "version": "0.22",
                "vtigerVersion": "8.2.0",
            }
        )

    def op_logout(self, params: dict[str, str], _: int | None) -> Response:
        if not self.sync_works:
            return empty_500()
        self.sessions.pop(params.get("sessionName", ""), None)
        return success({"message": "successfull"})

    def op_listtypes(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        modules = tuple(m for m in self.schema.fields if m != "Users" or self.is_admin(user))
        return success(listtypes_json(modules))

    def op_describe(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        module = params.get("elementType", "")
        self.may_see(module, user)
        return success(self.schema.describe(module))

    def may_see(self, module: str, user: int) -> None:
        if module not in self.schema.fields or (module == "Users" and not self.is_admin(user)):
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")

    def op_query(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        query = parse_query(params.get("query", ""))
        self.may_see(query.module, user)
        missing = self.broken.get(query.module, set())
        if missing and not query.count and (query.columns is None or missing & set(query.columns)):
            return success([])  # the SELECT names a column that does not exist; Vtiger hides it
        found = self.store.query(query)
        if isinstance(found, int):
            return success([{"count": str(found)}])
        return success(
            [render(self.schema, e, self.zone, self.locale, query.columns) for e in found]
        )

    def op_sync(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        module = params.get("elementType", "")
        since = params.get("modifiedTime", "")
        if not self.sync_works or not module or not since.isdigit() or int(since) < 1:
            return empty_500()
        if module not in self.schema.fields or module == "Users":
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        everyone = False
        if self.sync_type_registered and params.get("syncType") == "application":
            if not self.is_admin(user):
                raise VtigerError("ACCESS_DENIED", "Only admin users can perform application sync")
            everyone = True
        page = self.store.sync(module, int(since), None if everyone else self.user_ws(user))
        rows = page["rows"]
        return success(
            {
                "updated": [render(self.schema, e, self.zone, self.locale) for e in rows if e.live],
                "deleted": [e.ws_id for e in rows if not e.live],
                "lastModifiedTime": page["last"],
                "more": page["more"],
            }
        )

    def op_retrieve(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        entity = self.store.find(params.get("id", ""), live=False)
        if entity.deleted:  # a converted lead, hidden from queries, still retrieves
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        self.may_see(entity.module, user)
        self.readable(entity.module)
        return success(render(self.schema, entity, self.zone, self.locale, label=True))

    def _element(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            element = json.loads(params.get("element") or "{}")
        except ValueError:
            return {}  # Vtiger reads malformed JSON as empty
        return element if isinstance(element, dict) else {}

    def readable(self, module: str) -> None:
        if module in self.broken:
            raise VtigerError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request")

    def op_create(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        if params.get("elementType") == "Users":  # describe says createable; it is not
            if "roleid" in self._element(params):
                raise VtigerError(
                    "ACCESS_DENIED", "Permission to perform the operation is denied for id"
                )
            raise VtigerError("MANDATORY_FIELDS_MISSING", "user_password does not have a value")
        entity = self.store.create(
            params.get("elementType", ""), self._element(params), self.user_ws(user)
        )
        return success(render(self.schema, entity, self.zone, self.locale, label=True))

    def op_update(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        self.readable(self.store.find(str(self._element(params).get("id", ""))).module)
        entity = self.store.revise(self._element(params), self.user_ws(user), full=True)
        return success(render(self.schema, entity, self.zone, self.locale, label=True))

    def op_revise(self, params: dict[str, str], user: int | None) -> Response:
        assert user is not None
        self.readable(self.store.find(str(self._element(params).get("id", ""))).module)
        entity = self.store.revise(self._element(params), self.user_ws(user))
        return success(render(self.schema, entity, self.zone, self.locale, label=True))

    def op_convertlead(self, params: dict[str, str], user: int | None) -> Response:
        """As vtws_convertlead: the lead hidden (converted), the entities asked for created and
        marked isconvertedfromlead. Stock 8.2 on PHP 8 cannot run it (an empty 500)."""
        assert user is not None
        if not self.sync_works:
            return empty_500()
        element = self._element(params)
        made = self.store.convert_lead(
            str(element.get("leadId", "")),
            {
                m: dict(v)
                for m, v in (element.get("entities") or {}).items()
                if isinstance(v, dict) and v.get("create")
            },
            str(element.get("assignedTo") or self.user_ws(user)),
        )
        return success({**made, "leadId": element.get("leadId")})

    def op_delete(self, params: dict[str, str], _: int | None) -> Response:
        self.store.delete(params.get("id", ""))
        return success({"status": "successful"})

    # --- test hooks ----------------------------------------------------------------------------
    def ws_id(self, kind: str, neutral_id: int) -> str:
        """The ws id of a neutral record ('account', 'contact', 'lead', 'deal')."""
        return IdBook.ws(self.ids, kind, neutral_id)

    def dump(self) -> Truth:
        """A deep copy of the current truth, deleted and converted rows included."""
        with self.store.lock:
            return copy.deepcopy(self.store.truth)

    def access_key(self, user_name: str) -> str:
        return self.keys[user_name]

    def update_record(self, module: str, ws_id: str, fields: dict[str, Any]) -> None:
        """Change fields as a user in the Vtiger UI would (modifiedtime moves)."""
        with self.store.lock:
            entity = self.store.find(ws_id)
            if entity.module != module:
                raise VtigerError("INVALID_ID_ATTRIBUTE", "Id specified is incorrect")
            self.store.revise({**fields, "id": ws_id}, self.user_ws(ADMIN_ID))

    def add_custom_field(
        self, module: str, label: str, kind: str, options: tuple[str, ...] = ()
    ) -> str:
        """Add a field in Settings > Module Layouts & Fields, as an admin would; its cf name.

        `kind` is a neutral type (string, number, date, enumeration, bool)."""
        with self.store.lock:
            taken = [
                int(n[3:])
                for defs in self.schema.fields.values()
                for n in defs
                if n.startswith("cf_")
            ]
            name = f"cf_{max(taken, default=851) + 2}"
            self.schema.fields[module][name] = FieldDef(
                name, label, TYPE_NAMES[kind], options=tuple(options)
            )
            self.schema.custom_names.setdefault(module, {})[label] = name
            for entity in self.store.truth[module].values():  # existing rows: the column default
                entity.fields[name] = "0" if kind == "bool" else ""
        return name

    def break_field(self, module: str, label: str) -> str:
        """A custom field whose ALTER TABLE failed (row size too large, a Decimal over 65
        digits): Vtiger keeps its definition without the column. Its cf name."""
        name = self.add_custom_field(module, label, "number")
        with self.store.lock:
            self.broken.setdefault(module, set()).add(name)
        return name

    def create_record(self, module: str, fields: dict[str, Any]) -> str:
        with self.store.lock:
            values = {"assigned_user_id": self.user_ws(ADMIN_ID), **fields}
            return self.store.create(module, values, self.user_ws(ADMIN_ID)).ws_id

    def delete(self, module: str, ws_id: str) -> None:
        """Move a record to the recycle bin (deleted=1), as the UI does."""
        with self.store.lock:
            self.store.delete(ws_id)

    def purge(self, module: str, ws_id: str) -> None:
        """Remove a record outright (emptied recycle bin): nothing reports it."""
        with self.store.lock:
            self.store.purge(ws_id)

    def convert_lead(self, ws_id: str, *, deal: bool = False) -> dict[str, str]:
        """Convert a lead as the web UI does (a contact, an account for its company, a deal if
        asked); the ws ids made, by module."""
        with self.store.lock:
            lead = self.store.find(ws_id)
            wanted = {"Contacts": {}, "Accounts": {"accountname": lead.fields.get("company")}}
            if deal:
                wanted["Potentials"] = {
                    "potentialname": lead.fields.get("company") or "Deal",
                    "closingdate": "2026-12-31",
                    "sales_stage": "Prospecting",
                }
            return self.store.convert_lead(ws_id, wanted, lead.owner or self.user_ws(ADMIN_ID))

    def touch_all(self, module: str, at: datetime) -> None:
        """Give every record of a module the same modifiedtime (a mass update)."""
        with self.store.lock:
            self.store.touch_all(module, at)

    def expire_sessions(self) -> None:
        with self.store.lock:
            self.sessions.clear()
