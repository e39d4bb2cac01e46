"""Search semantics of the HubSpot emulator: request validation, filters, sorting and paging.

Filter groups are ORed, filters inside a group ANDed; at most 5 groups, 10 filters per group and
25 in total. Values compare by the property's type: datetime/date properties by instant (values
may be epoch-ms numbers or strings, or ISO-8601), number properties numerically, everything else
as case-insensitive text. One sort is honoured; records that tie on the sort key come back in an
order fixed by a hash of the id (never id order), as real HubSpot gives no tie guarantee.
`after` is an offset; `after + limit` beyond 10,000 is a 400, like the real API.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from emulators.hubspot.schema import PropDef

MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
MAX_LIMIT, MAX_RESULTS = 200, 10_000
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
Typed = float | int | str
Predicate = Callable[[Typed | None, str | None], bool]


class SearchError(ValueError):
    """A search request HubSpot would reject with 400 VALIDATION_ERROR."""


def to_ms(value: Any) -> int:
    """Epoch-ms number or string, ISO datetime or ISO date -> epoch milliseconds."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return int(float(text))
    if len(text) == 10:
        text += "T00:00:00Z"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def typed(definition: PropDef | None, raw: Any) -> Typed | None:
    """A stored or filter value as the comparable Python value of its property type."""
    if raw is None or raw == "":
        return None
    kind = definition.type if definition else "string"
    if kind in ("datetime", "date"):
        return to_ms(raw)
    if kind == "number":
        return float(raw)
    return str(raw).lower()


def tie_rank(record_id: str) -> int:
    """A stable pseudo-random rank of an id, used to order sort-key ties."""
    return (int(record_id) * 2654435761 + 0x9E3779B9) % 4294967291


def tokens(text: str) -> list[str]:
    """Words of a text value for CONTAINS_TOKEN."""
    return [t for t in re.split(r"[\s,;:/()\[\]]+", text) if t]


def contains_token(value: str | None, wanted: str) -> bool:
    """HubSpot-style token match; '*' wildcards allowed."""
    if value is None:
        return False
    pattern = wanted.lower()
    if "*" in pattern:
        return fnmatchcase(value, pattern) or any(fnmatchcase(t, pattern) for t in tokens(value))
    return pattern in tokens(value) or pattern == value


@dataclass(frozen=True)
class Filter:
    """One compiled filter: the property it reads and its test of (typed, text) values."""

    prop: str
    test: Predicate
    op: str = ""
    value: Typed | None = None
    high: Typed | None = None


def compile_filter(spec: dict[str, Any], definition: PropDef | None) -> Filter:
    """Validate one filter and turn it into a predicate over (typed value, lower-case text)."""
    op = str(spec.get("operator", "")).upper()
    name = spec.get("propertyName")
    if op not in OPERATORS or not name:
        raise SearchError(f"Invalid filter: operator {op!r} on property {name!r}")
    if definition is None:
        raise SearchError(f"Property {name!r} does not exist")
    try:
        value = typed(definition, spec.get("value"))
        high = typed(definition, spec.get("highValue"))
        values = {typed(definition, v) for v in spec.get("values") or []}
    except ValueError as exc:
        raise SearchError(f"Invalid value for {name!r}: {exc}") from exc
    raw = str(spec.get("value", "")).lower()
    tests: dict[str, Predicate] = {
        "EQ": lambda v, _t: v is not None and v == value,
        "NEQ": lambda v, _t: v is None or v != value,
        "LT": lambda v, _t: v is not None and value is not None and v < value,  # type: ignore[operator]
        "LTE": lambda v, _t: v is not None and value is not None and v <= value,  # type: ignore[operator]
        "GT": lambda v, _t: v is not None and value is not None and v > value,  # type: ignore[operator]
        "GTE": lambda v, _t: v is not None and value is not None and v >= value,  # type: ignore[operator]
        "BETWEEN": lambda v, _t: (
            v is not None and value is not None and high is not None and value <= v <= high  # type: ignore[operator]
        ),
        "IN": lambda v, _t: v is not None and v in values,
        "NOT_IN": lambda v, _t: v is None or v not in values,
        "HAS_PROPERTY": lambda v, _t: v is not None,
        "NOT_HAS_PROPERTY": lambda v, _t: v is None,
        "CONTAINS_TOKEN": lambda _v, t: contains_token(t, raw),
        "NOT_CONTAINS_TOKEN": lambda _v, t: not contains_token(t, raw),
    }
    return Filter(name, tests[op], op, value, high)


RANGE_OPS = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"})


def narrow(values: list[Typed], f: Filter, lo: int, hi: int) -> tuple[int, int]:
    """Exact index window of sorted `values` that satisfies a range filter, within [lo, hi)."""
    v, op = f.value, f.op
    if v is None:
        return lo, hi
    if op in ("EQ", "GTE", "BETWEEN"):
        lo = max(lo, bisect_left(values, v))
    if op == "GT":
        lo = max(lo, bisect_right(values, v))
    if op in ("EQ", "LTE"):
        hi = min(hi, bisect_right(values, v))
    if op == "LT":
        hi = min(hi, bisect_left(values, v))
    if op == "BETWEEN" and f.high is not None:
        hi = min(hi, bisect_right(values, f.high))
    return lo, hi


def is_range_on(f: Filter, prop: str) -> bool:
    """True when the filter bounds `prop` and can be answered from a sorted index."""
    return (
        f.prop == prop
        and f.op in RANGE_OPS
        and f.value is not None
        and (f.op != "BETWEEN" or f.high is not None)
    )


SEARCH_FIELDS = frozenset(
    {"filterGroups", "filters", "sorts", "properties", "limit", "after", "query"}
)


def compile_groups(
    body: dict[str, Any], lookup: Callable[[str], PropDef | None]
) -> list[list[Filter]]:
    """Validate the filterGroups of a request against the limits and compile them. A top-level
    `filters` array is one more group, as HubSpot takes it."""
    unknown = sorted(set(body) - SEARCH_FIELDS)
    if unknown:
        raise SearchError(
            f"Unsupported search request field: {unknown[0]} (this emulator "
            f"implements {', '.join(sorted(SEARCH_FIELDS))})"
        )
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list")
    loose = body.get("filters")
    if loose is not None:
        if not isinstance(loose, list):
            raise SearchError("filters must be a list")
        groups = [*groups, {"filters": loose}] if loose else groups
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups ({len(groups)} > {MAX_GROUPS})")
    total = 0
    compiled: list[list[Filter]] = []
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Too many filters in a group ({len(filters)} > 10)")
        total += len(filters)
        compiled.append(
            [compile_filter(f, lookup(str(f.get("propertyName", "")))) for f in filters]
        )
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters ({total} > {MAX_FILTERS})")
    return [group for group in compiled if group]


def page_window(body: dict[str, Any]) -> tuple[int, int]:
    """(offset, limit) of a search request, validated against HubSpot's limits."""
    try:
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
    except (TypeError, ValueError) as exc:
        raise SearchError(f"Invalid paging: {exc}") from exc
    if limit < 1 or limit > MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    if after < 0 or after + limit > MAX_RESULTS:
        raise SearchError(f"Paging beyond the first {MAX_RESULTS} results is not supported")
    return after, limit


def sort_spec(body: dict[str, Any]) -> tuple[str, bool]:
    """(property, descending) of the first sort; default hs_object_id ascending."""
    sorts = body.get("sorts") or []
    if not sorts:
        return "hs_object_id", False
    first = sorts[0]
    if isinstance(first, str):  # the legacy "-prop" string form
        return first.lstrip("-"), first.startswith("-")
    return str(first.get("propertyName", "hs_object_id")), str(
        first.get("direction", "ASCENDING")
    ).upper() == "DESCENDING"


def sort_ids(ids: list[str], column: dict[str, Typed | None], descending: bool) -> list[str]:
    """Sort by the typed column; missing values last; ties by `tie_rank`, never by id."""
    present = [i for i in ids if column.get(i) is not None]
    missing = [i for i in ids if column.get(i) is None]
    present.sort(key=lambda i: (column[i], tie_rank(i)), reverse=descending)
    missing.sort(key=tie_rank)
    return present + missing


def matches(
    groups: list[list[Filter]],
    record_id: str,
    column_of: Callable[[str], dict[str, Typed | None]],
    text_of: Callable[[str, str], str | None],
) -> bool:
    """True when any group has all of its filters satisfied."""
    if not groups:
        return True
    for group in groups:
        if all(f.test(column_of(f.prop).get(record_id), text_of(record_id, f.prop)) for f in group):
            return True
    return False
