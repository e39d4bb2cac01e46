"""The Vtiger emulator's mutable truth: VTQL queries, the sync operation and record writes.

Semantics follow crm-api-facts 3.3 and 3.6: queries see live rows only (Leads: not converted),
order among equal sort values is arbitrary (a hash of the crmid, not the id), at most 100 rows;
`sync` returns every row whose modifiedtime lies in (since, t100] where t100 is the 100th distinct
modifiedtime after `since` (so a page can exceed 100), deleted and converted rows as ws ids, and
by default only the calling user's own records. Deleting sets deleted=1 and moves modifiedtime,
as Vtiger's trash does; `purge` removes a row outright (nothing reports it).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from emulators.vtiger.records import Entity, Truth
from emulators.vtiger.render import parse_stamp
from emulators.vtiger.schema import MODULE_OF_PREFIX, PREFIX, FieldDef, Schema
from emulators.vtiger.vtql import MAX_ROWS, Condition, Group, Query, like_pattern

# stock 8.2 answers a missing or deleted id as it answers a forbidden one
NOT_FOUND = "Permission to perform the operation is denied"
STAMP_FIELDS = ("createdtime", "modifiedtime")
NUMERIC = frozenset({"currency", "double", "integer"})


class EmptyServerError(Exception):
    """The server fails without an answer (an empty HTTP 500), as PHP errors do behind Vtiger."""


class VtigerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def tie_rank(crmid: int) -> int:
    return (crmid * 2654435761) & 0xFFFFFFFF


class VtigerStore:
    def __init__(
        self,
        truth: Truth,
        schema: Schema,
        clock: Callable[[], int],
        zone: ZoneInfo,
        next_crmid: int,
    ) -> None:
        self.truth = truth
        self.schema = schema
        self.clock = clock
        self.zone = zone
        self.lock = threading.RLock()
        self.next_crmid = next_crmid
        # the writing user's "number of currency decimals" (users ws id -> decimals); others 2
        self.currency_decimals: dict[str, int] = {}
        self._wanted: dict[tuple[str, Condition], list[Any]] = {}  # literals parsed once
        self.by_crmid = {
            e.crmid: e for m, rows in truth.items() if m != "Users" for e in rows.values()
        }
        self._version: dict[str, int] = {m: 0 for m in truth}
        self._index: dict[tuple[str, str], tuple[int, Any]] = {}

    # --- lookups -------------------------------------------------------------------------------
    def find(self, ws_id: str, *, live: bool = True) -> Entity:
        prefix, _, number = str(ws_id).partition("x")
        if not number or not prefix.isdigit() or not number.isdigit():
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        module = MODULE_OF_PREFIX.get(int(prefix))
        if module is None or module not in self.truth:
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        entity = (
            self.truth["Users"].get(int(number))
            if module == "Users"
            else self.by_crmid.get(int(number))
        )
        if entity is None or (live and not entity.live):
            raise VtigerError("ACCESS_DENIED", NOT_FOUND)
        if entity.module != module:
            raise VtigerError("INVALID_ID_ATTRIBUTE", "Id specified is incorrect")
        return entity

    def _changed(self, module: str) -> None:
        self._version[module] += 1

    def by_modified(self, module: str) -> tuple[list[int], list[Entity]]:
        """Every row (deleted too) sorted by (modifiedtime, hash); the times alongside."""
        key = (module, "modified")
        cached = self._index.get(key)
        if cached is None or cached[0] != self._version[module]:
            rows = sorted(
                self.truth[module].values(), key=lambda e: (e.modified, tie_rank(e.crmid))
            )
            cached = (self._version[module], ([e.modified for e in rows], rows))
            self._index[key] = cached
        return cached[1]

    # --- query ---------------------------------------------------------------------------------
    def query(self, query: Query) -> list[Entity] | int:
        module = query.module
        if module not in self.truth:
            raise VtigerError("ACCESS_DENIED", "Permission to read given object is denied")
        known = self.schema.fields[module]
        unknown = [f for f in query.fields_used() if f not in known and f != "id"]
        if unknown:
            raise VtigerError(
                "ACCESS_DENIED",
                f"Permission to read given object is denied (unknown field {unknown[0]})",
            )
        candidates, residual = self._candidates(module, query)
        matches = (
            e for e in candidates if e.live and (residual is None or self._test(e, residual))
        )
        if query.count:
            return sum(1 for _ in matches)
        if query.order[:1] == [("modifiedtime", False)]:  # candidates come in that order already
            rows = leading_seconds(matches, query.offset + min(query.limit, MAX_ROWS))
        else:
            rows = list(matches)
        if query.order:
            for name, descending in reversed(query.order):
                rows.sort(key=partial(self._sort_key, name=name), reverse=descending)
        elif not query.order:
            rows.sort(key=lambda e: tie_rank(e.crmid))
        return rows[query.offset : query.offset + min(query.limit, MAX_ROWS)]

    def _candidates(self, module: str, query: Query) -> tuple[list[Entity], Group | None]:
        """Rows to test; a lone conjunction with modifiedtime ranges is narrowed by bisection."""
        where = query.where
        times, rows = self.by_modified(module)
        if where is None or len(where.any_of) != 1:
            return rows, where
        lo, hi, rest = 0, len(rows), []
        for item in where.any_of[0]:
            if (
                isinstance(item, Condition)
                and item.field == "modifiedtime"
                and item.op in ("=", ">", ">=", "<", "<=")
            ):
                t = self._literal(module, "modifiedtime", item.values[0])
                if item.op in (">", "="):
                    lo = max(
                        lo, bisect_right(times, t) if item.op == ">" else bisect_left(times, t)
                    )
                if item.op == ">=":
                    lo = max(lo, bisect_left(times, t))
                if item.op in ("<", "<=", "="):
                    hi = min(
                        hi, bisect_left(times, t) if item.op == "<" else bisect_right(times, t)
                    )
            else:
                rest.append(item)
        return rows[lo : max(lo, hi)], (Group((tuple(rest),)) if rest else None)

    def _literal(self, module: str, name: str, text: str) -> Any:
        definition = self.schema.fields[module].get(name)
        if name == "id":
            number = text.partition("x")[2] if "x" in text else text
            return int(number) if number.isdigit() else -1
        if name in STAMP_FIELDS or (definition is not None and definition.type == "datetime"):
            try:
                return parse_stamp(text, self.zone)
            except ValueError:
                raise VtigerError("QUERY_SYNTAX_ERROR", f"invalid date value {text!r}") from None
        if definition is not None and definition.type in NUMERIC:
            try:
                return float(text)
            except ValueError:
                return None
        return text.lower()

    def _value(self, entity: Entity, name: str) -> Any:
        if name == "id":
            return entity.crmid
        if name == "createdtime":
            return entity.created
        if name == "modifiedtime":
            return entity.modified
        raw = entity.fields.get(name, "")
        definition = self.schema.fields[entity.module].get(name)
        if definition is not None and definition.type in NUMERIC:
            try:
                return float(raw) if raw != "" else None
            except ValueError:
                return None
        return raw.lower()

    def _sort_key(self, entity: Entity, *, name: str) -> tuple[int, Any]:
        value = self._value(entity, name)
        return (0, "") if value is None else (1, value)

    def _test(self, entity: Entity, group: Group) -> bool:
        return any(
            all(
                self._test(entity, item) if isinstance(item, Group) else self._compare(entity, item)
                for item in conjunction
            )
            for conjunction in group.any_of
        )

    def _compare(self, entity: Entity, condition: Condition) -> bool:
        value = self._value(entity, condition.field)
        if condition.op == "like":
            return bool(
                like_pattern(condition.values[0]).match(
                    str(entity.fields.get(condition.field, ""))
                    if condition.field not in ("id", *STAMP_FIELDS)
                    else str(value)
                )
            )
        key = (entity.module, condition)
        wanted = self._wanted.get(key)
        if wanted is None:
            if len(self._wanted) > 1000:
                self._wanted.clear()
            wanted = self._wanted[key] = [
                self._literal(entity.module, condition.field, v) for v in condition.values
            ]
        if condition.op == "in":
            return value in wanted
        other = wanted[0]
        if value is None or other is None:
            return condition.op == "!=" and value != other
        try:
            return bool(
                {
                    "=": value == other,
                    "!=": value != other,
                    "<": value < other,
                    ">": value > other,
                    "<=": value <= other,
                    ">=": value >= other,
                }[condition.op]
            )
        except TypeError:
            return False

    # --- sync ----------------------------------------------------------------------------------
    def sync(self, module: str, since: int, owner: str | None) -> dict[str, Any]:
        """Rows changed after `since` (owner None: everyone's), grouped as vtws_sync groups them.

        Like the server: the first 100 rows after `since` by modifiedtime fix the page's last
        time, then every row up to and including that time is returned, so a tie group at the
        end makes the page longer than 100, never shorter; `more` says whether later rows exist.
        """
        times, rows = self.by_modified(module)
        later = (e for e in rows[bisect_right(times, since) :] if owner is None or e.owner == owner)
        picked = list(islice(later, MAX_ROWS))
        if not picked:
            return {"rows": [], "last": since, "more": False}
        last = picked[-1].modified
        more = False
        for entity in later:
            if entity.modified != last:
                more = True
                break
            picked.append(entity)
        return {"rows": picked, "last": last, "more": more}

    # --- writes --------------------------------------------------------------------------------
    def create(self, module: str, element: dict[str, Any], user: str) -> Entity:
        if module not in self.truth or module == "Users":
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        values = self._clean(module, element, user, full=True)
        now = self.clock()
        crmid = self.next_crmid
        self.next_crmid += 1
        for name, definition in self.schema.fields[module].items():
            # every column exists: numbers and checkboxes get their column's default, 0
            values.setdefault(
                name,
                "0"
                if definition.type == "boolean"
                else definition.zero()
                if definition.type in ("currency", "double")
                else "",
            )
        values.update(modifiedby=user, source="WEBSERVICE")
        entity = Entity(module, crmid, values, now, now)
        self.truth[module][crmid] = entity
        self.by_crmid[crmid] = entity
        self._changed(module)
        return entity

    def revise(self, element: dict[str, Any], user: str, *, full: bool = False) -> Entity:
        entity = self.find(str(element.get("id", "")))
        values = self._clean(entity.module, element, user, full=full)
        if full:
            for name, definition in self.schema.fields[entity.module].items():
                if definition.editable and name not in values:
                    values[name] = self._stored(definition, "", user)
        entity.fields.update(values)
        entity.fields["modifiedby"] = user
        entity.modified = self.clock()
        self._changed(entity.module)
        return entity

    def delete(self, ws_id: str) -> None:
        entity = self.find(ws_id)
        if entity.module == "Users":
            raise VtigerError("ACCESS_DENIED", "Permission to perform the operation is denied")
        entity.deleted = True
        entity.modified = self.clock()
        self._changed(entity.module)

    def purge(self, ws_id: str) -> None:
        entity = self.find(ws_id, live=False)
        del self.truth[entity.module][entity.crmid]
        self.by_crmid.pop(entity.crmid, None)
        self._changed(entity.module)

    def convert_lead(
        self, ws_id: str, wanted: dict[str, dict[str, Any]], owner: str
    ) -> dict[str, str]:
        """vtws_convertlead: an account (an existing one of that name is reused), a contact and
        a deal as `wanted` asks, each new one marked isconvertedfromlead; the lead hidden, its
        modifiedtime moved. The ws ids, by module."""
        lead = self.find(ws_id)
        if lead.module != "Leads":
            raise VtigerError("INVALID_ID_ATTRIBUTE", "Id specified is incorrect")
        f = lead.fields
        made: dict[str, str] = {}
        copied = {
            "Accounts": {"accountname": f.get("company", "")},
            "Contacts": {
                "firstname": f.get("firstname", ""),
                "lastname": f.get("lastname", ""),
                "email": f.get("email", ""),
                "phone": f.get("phone", ""),
                "leadsource": f.get("leadsource", ""),
            },
            "Potentials": {"leadsource": f.get("leadsource", "")},
        }
        for module in ("Accounts", "Contacts", "Potentials"):
            if module not in wanted:
                continue
            values = {**copied[module], **wanted[module], "assigned_user_id": owner}
            if module == "Accounts":
                name = str(values.get("accountname", "")).lower()
                same = next(
                    (
                        e
                        for e in self.truth[module].values()
                        if e.live and e.fields.get("accountname", "").lower() == name
                    ),
                    None,
                )
                if same is not None:
                    made[module] = same.ws_id
                    continue
            if module == "Contacts" and "Accounts" in made:
                values["account_id"] = made["Accounts"]
            if module == "Potentials":
                values["related_to"] = made.get("Accounts") or made.get("Contacts", "")
                values["contact_id"] = made.get("Contacts", "")
            entity = self.create(module, values, owner)
            entity.fields["isconvertedfromlead"] = "1"
            made[module] = entity.ws_id
        if "Accounts" in made or "Contacts" in made:
            lead.converted = True
            lead.modified = self.clock()
            lead.fields["modifiedby"] = owner
            self._changed(lead.module)
        return made

    def touch_all(self, module: str, at: datetime) -> None:
        for entity in self.truth[module].values():
            entity.modified = int(at.timestamp())
        self._changed(module)

    def _clean(
        self, module: str, element: dict[str, Any], user: str, *, full: bool
    ) -> dict[str, str]:
        """Writable values normalised as the database stores them; unknown keys ignored."""
        definitions = self.schema.fields[module]
        if full:
            missing = [
                n
                for n, d in definitions.items()
                if d.mandatory and d.editable and not str(element.get(n) or "").strip()
            ]
            if missing:
                raise VtigerError("MANDATORY_FIELDS_MISSING", f"{missing[0]} does not have a value")
        out: dict[str, str] = {}
        for name, value in element.items():
            definition = definitions.get(name)
            if definition is None or not definition.editable or name == "id":
                continue
            out[name] = self._stored(definition, value, user)
        return out

    def _stored(self, definition: FieldDef, value: Any, user: str) -> str:
        if definition.type == "boolean":  # 8.2 stores 1 for these only, 0 for anything else
            on = value in ("1", "on") or (type(value) in (bool, int) and value == 1)
            return "1" if on else "0"
        if definition.type in ("currency", "double"):
            return self._number(definition, value, user)
        text = "" if value is None else str(value)
        if text == "":
            return ""
        if definition.type == "date":
            return lenient_date(text)
        if definition.type in ("reference", "owner"):
            try:
                target = self.find(text)
            except VtigerError:
                raise VtigerError(
                    "REFERENCE_INVALID", f"Invalid reference specified for {definition.name}"
                ) from None
            allowed = definition.refers_to or ("Users",)
            if target.module not in allowed:
                raise VtigerError(
                    "REFERENCE_INVALID", f"Invalid reference specified for {definition.name}"
                )
        return text

    def _number(self, definition: FieldDef, value: Any, user: str) -> str:
        """Empty stores 0 (no way back to empty); amounts and decimal custom fields are rounded
        to the writing user's currency decimals; a non-number is an empty HTTP 500."""
        text = "" if value is None or value is False else str(value).strip()
        if text == "":
            return definition.zero()
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise EmptyServerError(f"{definition.name}: {text!r} is not a number") from None
        if definition.rounds:
            places = self.currency_decimals.get(user, 2)
            number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return f"{number:.{definition.decimals}f}"


def leading_seconds(rows: Iterable[Entity], wanted: int) -> list[Entity]:
    """The first rows of a stream ordered by modifiedtime: at least `wanted`, and whole seconds,
    so that sorting them on (modifiedtime, anything) puts the same rows first as sorting all."""
    taken: list[Entity] = []
    for entity in rows:
        if len(taken) >= wanted and entity.modified != taken[-1].modified:
            break
        taken.append(entity)
    return taken


def lenient_date(text: str) -> str:
    """Vtiger parses input dates leniently ('31/12/2026' was accepted)."""
    for layout in ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y"):
        try:
            return datetime.strptime(text.strip()[:10], layout).date().isoformat()
        except ValueError:
            continue
    return date.today().isoformat()


def ws_prefix(module: str) -> int:
    return PREFIX[module]
