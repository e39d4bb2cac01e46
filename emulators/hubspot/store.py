"""The HubSpot emulator's mutable truth: records, writes with validation, archive, merge, search.

All methods assume the caller holds `lock` when several threads may write. Writes set `updatedAt`
and the type's modified property (`lastmodifieddate` on contacts, `hs_lastmodifieddate` elsewhere)
to the injected clock, and prepend property-history entries. Problems are raised as `HubSpotError`
carrying the HTTP status and HubSpot's error category.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from emulators.hubspot.records import Record, Truth, iso, new_record
from emulators.hubspot.schema import (
    OWNER_ASSIGNED,
    PropDef,
    Schema,
    association_type,
    created_prop,
    modified_prop,
)
from emulators.hubspot.search import (
    Filter,
    SearchError,
    Typed,
    compile_groups,
    is_range_on,
    matches,
    narrow,
    page_window,
    sort_spec,
    tie_rank,
    to_ms,
    typed,
)
from emulators.org.vocabulary import ms_to_dt

# Properties of other records that hold the id of a record of this type (repointed on merge).
REFERENCES = {
    "companies": (("contacts", "associatedcompanyid"),),
    "contacts": (("feedback_submissions", "hs_contact_id"),),
}
SortIndex = tuple[list[str], list[Typed], list[str]]  # present ids asc, their values, missing ids


class HubSpotError(Exception):
    """An API error: HTTP status, category and message (plus optional context)."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        context: dict[str, Any] | None = None,
        sub_category: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.context, self.sub_category = context, sub_category


def validation_error(message: str, sub_category: str | None = None) -> HubSpotError:
    """A 400 VALIDATION_ERROR."""
    return HubSpotError(400, "VALIDATION_ERROR", message, sub_category=sub_category)


class HubSpotStore:
    """Records per object type plus the derived indexes search needs."""

    def __init__(
        self,
        truth: Truth,
        schema: Schema,
        clock: Callable[[], datetime],
        stage_meta: dict[str, tuple[bool, bool, str]],
        first_new_id: int,
    ) -> None:
        self.truth = truth
        self.schema = schema
        self.clock = clock
        self.stage_meta = stage_meta  # stage id -> (is_closed, is_won, probability)
        self.lock = threading.RLock()
        self._next_id = first_new_id
        self._version: dict[str, int] = dict.fromkeys(truth, 0)
        self._columns: dict[tuple[str, str], tuple[int, dict[str, Typed | None]]] = {}
        self._sorted: dict[tuple[str, str], tuple[int, SortIndex]] = {}
        self._ids: dict[str, tuple[int, list[int]]] = {}

    # --- reads ---------------------------------------------------------------------------------
    def get(self, object_type: str, rid: str, archived: bool = False) -> Record | None:
        """A record if it exists and its archived state matches `archived`."""
        record = self.truth[object_type].get(rid)
        if record is None or record["archived"] != archived:
            return None
        return record

    def require(self, object_type: str, rid: str) -> Record:
        """A live record or a 404 OBJECT_NOT_FOUND."""
        record = self.get(object_type, rid)
        if record is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [rid]})
        return record

    def sorted_ids(self, object_type: str) -> list[int]:
        """All ids of a type (live and archived) in numeric order, cached per version."""
        version = self._version[object_type]
        cached = self._ids.get(object_type)
        if cached is None or cached[0] != version:
            cached = (version, sorted(int(i) for i in self.truth[object_type]))
            self._ids[object_type] = cached
        return cached[1]

    def list_page(
        self, object_type: str, archived: bool, after: str | None, limit: int
    ) -> tuple[list[Record], str | None]:
        """One page in id order from the `after` cursor (the next id to return)."""
        ids = self.sorted_ids(object_type)
        start = bisect_left(ids, int(after)) if after and after.isdigit() else 0
        page: list[Record] = []
        records = self.truth[object_type]
        index = start
        while index < len(ids) and len(page) < limit:
            record = records[str(ids[index])]
            if record["archived"] == archived:
                page.append(record)
            index += 1
        more = (
            any(records[str(i)]["archived"] == archived for i in ids[index : index + 1000])
            if index < len(ids)
            else False
        )
        return page, (str(ids[index]) if more else None)

    # --- writes --------------------------------------------------------------------------------
    def normalize(
        self, object_type: str, props: dict[str, Any], allow_read_only: bool = False
    ) -> dict[str, str | None]:
        """Validate property writes; 400 for unknown, read-only or badly typed values."""
        clean: dict[str, str | None] = {}
        for name, value in props.items():
            definition = self.schema.prop(object_type, name)
            if definition is None:
                raise validation_error(
                    f'Property values were not valid: Property "{name}" does not exist',
                    "PROPERTY_DOESNT_EXIST",
                )
            if definition.read_only and not allow_read_only:
                raise validation_error(
                    f'Property values were not valid: "{name}" is a read only '
                    "property; its value cannot be set.",
                    "READ_ONLY_VALUE",
                )
            clean[name] = self._coerce(definition, value)
        return clean

    @staticmethod
    def _coerce(definition: PropDef, value: Any) -> str | None:
        if value is None or value == "":
            return None if value is None else ""
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            if definition.type in ("datetime", "date"):
                return iso(ms_to_dt(to_ms(text)))
            if definition.type == "number":
                float(text)
        except ValueError as exc:
            raise validation_error(
                f'Property values were not valid: "{text}" is not a valid '
                f"{definition.type} for {definition.name}",
                "INVALID_PROPERTY_VALUE",
            ) from exc
        if definition.type == "enumeration" and definition.options:
            allowed = definition.options
            if any(part not in allowed for part in text.split(";")):
                raise validation_error(
                    f'Property values were not valid: "{text}" was not one '
                    f"of the allowed options: {', '.join(allowed)}",
                    "INVALID_OPTION",
                )
        return text

    def _touch(self, object_type: str, record: Record, at: str) -> None:
        record["updatedAt"] = at
        record["properties"][modified_prop(object_type)] = at
        self._version[object_type] += 1

    def _set(self, object_type: str, record: Record, props: dict[str, str | None], at: str) -> None:
        current = record["properties"]
        history = record["propertiesWithHistory"]
        owner_assigned = False
        for name, value in props.items():
            if current.get(name) == value:
                continue
            if name not in history and current.get(name) is not None:
                history[name] = [history_entry(current[name], record["createdAt"])]
            history.setdefault(name, []).insert(0, history_entry(value, at))
            current[name] = value
            owner_assigned |= name == "hubspot_owner_id" and bool(value)
        if owner_assigned and self.schema.prop(object_type, OWNER_ASSIGNED) is not None:
            current[OWNER_ASSIGNED] = at
        if object_type == "deals" and "dealstage" in props:
            closed, won, probability = self.stage_meta.get(
                current.get("dealstage") or "", (False, False, "0.0")
            )
            current["hs_is_closed"] = str(closed).lower()
            current["hs_is_closed_won"] = str(won).lower()
            current["hs_deal_stage_probability"] = probability
        if object_type == "line_items" and ("price" in props or "quantity" in props):
            current["amount"] = line_amount(current.get("price"), current.get("quantity"))
        self._touch(object_type, record, at)

    def update(self, object_type: str, rid: str, props: dict[str, str | None]) -> Record:
        """Apply validated properties to a live record."""
        record = self.require(object_type, rid)
        self._set(object_type, record, props, iso(self.clock()))
        return record

    def create(
        self,
        object_type: str,
        props: dict[str, str | None],
        associations: Sequence[tuple[str, str, int | None]] = (),
    ) -> Record:
        """A new record with a fresh id; associations as (to_type, to_id, typeId or None)."""
        now = iso(self.clock())
        rid = str(self._next_id)
        self._next_id += 1
        base = {
            "hs_object_id": rid,
            created_prop(object_type): now,
            modified_prop(object_type): now,
        }
        if props.get("hubspot_owner_id") and self.schema.prop(object_type, OWNER_ASSIGNED):
            base[OWNER_ASSIGNED] = props.get(created_prop(object_type)) or now
        record = new_record(
            rid,
            {**base, **{k: v for k, v in props.items() if v is not None}},
            props.get(created_prop(object_type)) or now,
            now,
        )
        self.truth[object_type][rid] = record
        if object_type == "line_items":
            props_now = record["properties"]
            props_now["amount"] = line_amount(props_now.get("price"), props_now.get("quantity"))
        self._set(object_type, record, {}, now)
        if object_type == "deals" and "dealstage" in props:
            self._set(object_type, record, {"dealstage": props["dealstage"]}, now)
        for to_type, to_id, type_id in associations:
            self.associate(object_type, rid, to_type, to_id, type_id)
        return record

    def associate(
        self, a_type: str, a_id: str, b_type: str, b_id: str, type_id: int | None = None
    ) -> None:
        """Link two records both ways (404 when the target does not exist)."""
        target = self.require(b_type, b_id)
        source = self.truth[a_type][a_id]
        source["associations"].setdefault(b_type, {})[b_id] = association_type(
            a_type, b_type, type_id
        ).type_id
        target["associations"].setdefault(a_type, {})[a_id] = association_type(
            b_type, a_type
        ).type_id

    def archive(self, object_type: str, rid: str) -> None:
        """Soft-delete: the record moves to the archived listing with archivedAt."""
        record = self.require(object_type, rid)
        record["archived"] = True
        record["archivedAt"] = iso(self.clock())
        self._version[object_type] += 1

    def purge(self, object_type: str, rid: str) -> None:
        """Remove a record entirely, with every association pointing at it."""
        record = self.truth[object_type].pop(rid, None)
        if record is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")
        for to_type, targets in record["associations"].items():
            for to_id in targets:
                other = self.truth[to_type].get(to_id)
                if other is not None:
                    other["associations"].get(object_type, {}).pop(rid, None)
        self._version[object_type] += 1

    def merge(self, object_type: str, primary: str, loser: str) -> Record:
        """Merge `loser` into `primary`: blanks filled, associations moved, loser gone."""
        if primary == loser:
            raise validation_error("Cannot merge an object with itself")
        survivor = self.require(object_type, primary)
        merged = self.require(object_type, loser)
        fill = {
            k: v
            for k, v in merged["properties"].items()
            if v not in (None, "")
            and survivor["properties"].get(k) in (None, "")
            and k not in ("hs_object_id", "hs_merged_object_ids")
        }
        ids = [
            i for i in (survivor["properties"].get("hs_merged_object_ids") or "").split(";") if i
        ]
        ids += [loser] + [
            i for i in (merged["properties"].get("hs_merged_object_ids") or "").split(";") if i
        ]
        fill["hs_merged_object_ids"] = ";".join(ids)
        moves = [
            (t, i, type_id)
            for t, targets in merged["associations"].items()
            for i, type_id in targets.items()
        ]
        self.purge(object_type, loser)
        for to_type, to_id, type_id in moves:
            if to_type in self.truth and to_id in self.truth[to_type] and to_id != primary:
                self.associate(object_type, primary, to_type, to_id, type_id)
        now = iso(self.clock())
        self._set(object_type, survivor, fill, now)
        for ref_type, ref_prop in REFERENCES.get(object_type, ()):
            for ref_id in survivor["associations"].get(ref_type, {}):
                other = self.truth[ref_type][ref_id]
                if other["properties"].get(ref_prop) == loser:
                    self._set(ref_type, other, {ref_prop: primary}, now)
        return survivor

    def touch_all(self, object_type: str, at: datetime) -> None:
        """Set every record's modified instant to one value (HubSpot's bulk-update pattern)."""
        stamp = iso(at)
        for record in self.truth[object_type].values():
            record["updatedAt"] = stamp
            record["properties"][modified_prop(object_type)] = stamp
        self._version[object_type] += 1

    # --- search --------------------------------------------------------------------------------
    def column(self, object_type: str, prop: str) -> dict[str, Typed | None]:
        """Typed values of one property for every record, cached per version."""
        version = self._version[object_type]
        cached = self._columns.get((object_type, prop))
        if cached is None or cached[0] != version:
            definition = self.schema.prop(object_type, prop)
            cached = (
                version,
                {
                    rid: safe_typed(definition, r["properties"].get(prop))
                    for rid, r in self.truth[object_type].items()
                },
            )
            self._columns[(object_type, prop)] = cached
        return cached[1]

    def sort_index(self, object_type: str, prop: str) -> SortIndex:
        """Live ids sorted ascending by a property (ties by hash), cached per version."""
        version = self._version[object_type]
        cached = self._sorted.get((object_type, prop))
        if cached is None or cached[0] != version:
            col = self.column(object_type, prop)
            live = [rid for rid, r in self.truth[object_type].items() if not r["archived"]]
            present = sorted(
                (rid for rid in live if col[rid] is not None),
                key=lambda rid: (col[rid], tie_rank(rid)),
            )
            missing = sorted((rid for rid in live if col[rid] is None), key=tie_rank)
            cached = (version, (present, [col[rid] for rid in present], missing))  # type: ignore[misc]
            self._sorted[(object_type, prop)] = cached
        return cached[1]

    def search(self, object_type: str, body: dict[str, Any]) -> tuple[int, list[Record]]:
        """Run a search request: (total, the page of records)."""
        try:
            groups = compile_groups(body, lambda name: self.schema.prop(object_type, name))
            after, limit = page_window(body)
            prop, descending = sort_spec(body)
            if self.schema.prop(object_type, prop) is None:
                raise SearchError(f"Sort property {prop!r} does not exist")
        except SearchError as exc:
            raise validation_error(str(exc)) from exc
        candidates, groups = self._candidates(object_type, prop, descending, groups)
        records = self.truth[object_type]

        def text_of(rid: str, name: str) -> str | None:
            return lower_or_none(records[rid]["properties"].get(name))

        matched = [
            rid
            for rid in candidates
            if matches(groups, rid, lambda p: self.column(object_type, p), text_of)
        ]
        query = str(body.get("query") or "").lower()
        if query:
            matched = [
                rid
                for rid in matched
                if any(query in str(v).lower() for v in records[rid]["properties"].values() if v)
            ]
        return len(matched), [records[rid] for rid in matched[after : after + limit]]

    def _candidates(
        self, object_type: str, prop: str, descending: bool, groups: list[list[Filter]]
    ) -> tuple[list[str], list[list[Filter]]]:
        """Ids to test, in result order, and the filters still to apply to them.

        A single group with range filters on the sort property is answered by bisecting the
        sorted index; only its other filters remain to be evaluated per record.
        """
        present, values, missing = self.sort_index(object_type, prop)
        lo, hi = 0, len(present)
        if len(groups) != 1 or not any(is_range_on(f, prop) for f in groups[0]):
            ordered = present[::-1] if descending else present
            return ordered + missing, groups
        residual = []
        for f in groups[0]:
            if is_range_on(f, prop):
                lo, hi = narrow(values, f, lo, hi)
            else:
                residual.append(f)
        window = present[lo : max(lo, hi)]
        return (window[::-1] if descending else window), ([residual] if residual else [])


def safe_typed(definition: PropDef | None, raw: Any) -> Typed | None:
    """`typed`, treating unparsable stored values as missing."""
    try:
        return typed(definition, raw)
    except ValueError:
        return None


def lower_or_none(value: str | None) -> str | None:
    """Lower-cased text or None."""
    return None if value is None else value.lower()


def line_amount(price: str | None, quantity: str | None) -> str | None:
    """A line item's calculated amount: price x quantity (None when either is unset)."""
    if price in (None, "") or quantity in (None, ""):
        return None
    return str(Decimal(price) * Decimal(quantity))


def history_entry(value: str | None, at: str) -> dict[str, Any]:
    """One propertiesWithHistory entry."""
    return {
        "value": value,
        "timestamp": at,
        "sourceType": "INTEGRATION",
        "sourceId": "emulator",
        "updatedByUserId": None,
    }
