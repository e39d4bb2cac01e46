"""A small real SOQL parser and evaluator for the Salesforce emulator.

Supported: `SELECT f1, f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST],
...] [LIMIT n]`. Conditions: comparisons (`= != <> < <= > >=`), `[NOT] IN (...)`, `LIKE`, `NOT`,
`AND`/`OR` with parentheses, and semi-joins and anti-joins (`Id [NOT] IN (SELECT RefId FROM Other
[WHERE ...])`) with the real restrictions: the outer field and the selected one are id or
reference fields, the sub-select names another object and has no ORDER BY, LIMIT or semi-join of
its own, a query holds at most two, and none sits under an OR. A sub-select reads the object's
records outside the recycle bin. Literals: 'strings' (with backslash escapes), numbers,
TRUE/FALSE, NULL, unquoted datetimes (`2024-01-01T00:00:00Z`, `...000+0000`, `...+01:00`, with
up to six fractional digits, `...00.912000Z`, as Salesforce takes them) and
dates (`2024-01-01`). As in Salesforce, AND and OR may not be mixed without parentheses, a
datetime field only compares with a datetime literal and a date field with a date literal.
Anything else (date literals such as TODAY, parent-to-child subqueries, relationship fields,
GROUP BY, OFFSET, aggregates) raises `SoqlError`, which the emulator answers with the real error
codes: MALFORMED_QUERY for syntax, INVALID_FIELD for unknown fields or mistyped values,
INVALID_TYPE for unknown objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
Rows = Callable[[str], Iterable[Record]]  # an object's records, for semi-join sub-selects
MAX_SEMI_JOINS = 2
JOIN_KINDS = ("id", "reference")

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
""",
    re.VERBOSE,
)
KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "ORDER",
    "BY",
    "LIMIT",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "TRUE",
    "FALSE",
    "NULL",
    "COUNT",
    "OFFSET",
    "GROUP",
    "HAVING",
    "TYPEOF",
    "WITH",
    "FOR",
}
ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "'": "'",
    '"': '"',
    "\\": "\\",
    "_": "\\_",
    "%": "\\%",
}


# token kind -> (the field types it may be compared with, its value)
TYPED_LITERALS: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "datetime": (("datetime",), lambda text: parse_datetime(text)),
    "date": (("date",), date.fromisoformat),
    "number": (("double", "currency", "percent", "int"), Decimal),
}


class SoqlError(Exception):
    """A query the emulator refuses, with the Salesforce error code to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]  # empty for COUNT()
    sobject: str
    where: Predicate | None
    order: tuple[OrderKey, ...]
    limit: int | None
    count_only: bool = False
    kinds: Mapping[str, str] = field(default_factory=dict)  # field -> describe type


class Catalog(Protocol):
    """What the parser needs to know about the org's objects (names are case-insensitive)."""

    def sobject_name(self, name: str) -> str | None: ...

    def field_of(self, sobject: str, name: str) -> tuple[str, str] | None:
        """(canonical name, describe type) of a field, None if the object has no such field."""
        ...


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        found = TOKEN.match(text, position)
        if found is None:
            raise malformed(text, position, f"unexpected character {text[position]!r}")
        kind = found.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, found.group(), position + 1))
        position = found.end()
    return tokens


def malformed(text: str, column: int, what: str) -> SoqlError:
    return SoqlError(
        "MALFORMED_QUERY", f"\n{text[:120]}\n^\nERROR at Row:1:Column:{column}\n{what}"
    )


def parse(text: str, catalog: Catalog, rows: Rows | None = None) -> Query:
    """Parse `text`; `catalog` says which objects and fields exist and their types, and `rows`
    gives the live records a semi-join's sub-select reads (no semi-joins without it)."""
    return _Parser(text, tokenize(text), catalog, rows).query()


class _Parser:
    def __init__(
        self, text: str, tokens: list[Token], catalog: Catalog, rows: Rows | None = None
    ) -> None:
        self.text, self.tokens, self.catalog, self.rows = text, tokens, catalog, rows
        self.index = 0
        self.sobject = ""
        self.kinds: dict[str, str] = {}
        self.semi_joins = 0
        self.inside_semi_join = False

    # --- token helpers ---------------------------------------------------------------------------
    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise malformed(self.text, len(self.text), "unexpected end of query")
        self.index += 1
        return token

    def accept(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.upper == word:
            self.index += 1
            return True
        return False

    def expect(self, word: str) -> None:
        token = self.take()
        if token.upper != word:
            raise malformed(self.text, token.column, f"unexpected token: '{token.text}'")

    def fail(self, token: Token) -> SoqlError:
        return malformed(self.text, token.column, f"unexpected token: '{token.text}'")

    # --- grammar ---------------------------------------------------------------------------------
    def query(self) -> Query:
        self.expect("SELECT")
        names, count_only = self.select_list()
        self.expect("FROM")
        self.sobject = self.target()
        fields = tuple(self.field(name) for name in names)
        where = self.condition() if self.accept("WHERE") else None
        order: list[OrderKey] = []
        if self.accept("ORDER"):
            self.expect("BY")
            order.append(self.order_key())
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                order.append(self.order_key())
        limit = None
        if self.accept("LIMIT"):
            token = self.take()
            if token.kind != "number" or not token.text.isdigit():
                raise self.fail(token)
            limit = int(token.text)
        leftover = self.peek()
        if leftover is not None:
            raise self.fail(leftover)
        return Query(fields, self.sobject, where, tuple(order), limit, count_only, dict(self.kinds))

    def target(self) -> str:
        token = self.take()
        if token.kind != "word" or token.upper in KEYWORDS:
            raise self.fail(token)
        sobject = self.catalog.sobject_name(token.text)
        if sobject is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"\n{self.text[:120]}\nERROR at Row:1:Column:"
                f"{token.column}\nsObject type '{token.text}' is not supported.",
            )
        return sobject

    def select_list(self) -> tuple[list[Token], bool]:
        if self.accept("COUNT"):
            if self.take().text != "(" or self.take().text != ")":
                raise malformed(self.text, 8, "only COUNT() is supported")
            return [], True
        names = [self.take()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.take()
            names.append(self.take())
        for token in names:
            if token.kind != "word" or token.upper in KEYWORDS:
                raise self.fail(token)
        return names, False

    def field(self, token: Token) -> str:
        if token.kind != "word" or token.upper in KEYWORDS:
            raise self.fail(token)
        found = self.catalog.field_of(self.sobject, token.text)
        if found is None:
            kind = "relationship" if "." in token.text else "column"
            raise SoqlError(
                "INVALID_FIELD",
                f"\n{self.text[:120]}\nERROR at Row:1:Column:"
                f"{token.column}\nNo such {kind} '{token.text}' on entity "
                f"'{self.sobject}'. If you are attempting to use a custom field, be "
                "sure to append the '__c' after the custom field name.",
            )
        self.kinds[found[0]] = found[1]
        return found[0]

    def order_key(self) -> OrderKey:
        name = self.field(self.take())
        descending = False
        if self.accept("DESC"):
            descending = True
        else:
            self.accept("ASC")
        nulls_last = descending
        if self.accept("NULLS"):
            if self.accept("LAST"):
                nulls_last = True
            else:
                self.expect("FIRST")
                nulls_last = False
        return OrderKey(name, descending, nulls_last)

    def condition(self) -> Predicate:
        joins_before = self.semi_joins
        left = self.negation()
        joiner = None
        parts = [left]
        while True:
            token = self.peek()
            if token is None or token.kind != "word" or token.upper not in ("AND", "OR"):
                break
            if joiner is not None and token.upper != joiner:
                raise self.fail(token)  # SOQL wants parentheses when AND and OR mix
            joiner = token.upper
            self.take()
            parts.append(self.negation())
        if joiner == "OR" and self.semi_joins > joins_before:
            raise malformed(
                self.text, 1, "Semi join sub-selects are not allowed with the 'OR' operator"
            )
        if joiner == "AND":
            return lambda r: all(p(r) for p in parts)
        if joiner == "OR":
            return lambda r: any(p(r) for p in parts)
        return left

    def negation(self) -> Predicate:
        if self.accept("NOT"):
            inner = self.negation()
            return lambda r: not inner(r)
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.condition()
            if self.take().text != ")":
                raise malformed(self.text, token.column, "missing ')'")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.field(self.take())
        kind = self.kinds[name]
        negate = self.accept("NOT")
        if self.accept("IN"):
            if self.take().text != "(":
                raise malformed(self.text, 1, "expected '(' after IN")
            if self.accept("SELECT"):
                return self.semi_join(name, kind, negate)
            values = [self.literal(name, kind)]
            while True:
                token = self.take()
                if token.text == ")":
                    break
                if token.text != ",":
                    raise self.fail(token)
                values.append(self.literal(name, kind))
            wanted = {fold(v, kind) for v in values}
            if negate:
                return lambda r: fold(r.get(name), kind) not in wanted
            return lambda r: fold(r.get(name), kind) in wanted
        if negate:
            raise self.fail(self.take())
        if self.accept("LIKE"):
            pattern = like_regex(self.literal(name, "string"))
            return lambda r: (
                r.get(name) is not None and pattern.fullmatch(str(r.get(name))) is not None
            )
        op = self.take()
        if op.kind != "op":
            raise self.fail(op)
        value = self.literal(name, kind)
        return compare(name, kind, op.text, value)

    def semi_join(self, name: str, kind: str, anti: bool) -> Predicate:
        """`name [NOT] IN (SELECT field FROM Other [WHERE ...])`, its SELECT already taken."""
        rows = self.rows
        if rows is None:
            raise malformed(self.text, 1, "semi join sub-selects are not supported here")
        if self.inside_semi_join:
            raise malformed(self.text, 1, "Nesting of semi join sub-selects is not supported")
        self.semi_joins += 1
        if self.semi_joins > MAX_SEMI_JOINS:
            raise malformed(self.text, 1, "Maximum of 2 semi join sub-selects are allowed")
        if kind not in JOIN_KINDS:
            raise malformed(
                self.text,
                1,
                f"Semi join sub-selects are only allowed on id or "
                f"reference fields, not on '{name}'",
            )
        outer, outer_kinds = self.sobject, self.kinds
        selected = self.take()
        self.expect("FROM")
        self.sobject, self.kinds, self.inside_semi_join = self.target(), {}, True
        if self.sobject == outer:
            raise malformed(
                self.text,
                selected.column,
                "The inner and outer selects should not be on the same object type",
            )
        picked = self.field(selected)
        if self.kinds[picked] not in JOIN_KINDS:
            raise malformed(
                self.text,
                selected.column,
                f"semi join sub selects can only query id fields, cannot use: '{selected.text}'",
            )
        inner, where = self.sobject, self.condition() if self.accept("WHERE") else None
        closing = self.take()
        if closing.text != ")":
            raise self.fail(closing)  # ORDER BY, LIMIT and the like have no place here
        self.sobject, self.kinds, self.inside_semi_join = outer, outer_kinds, False
        found: frozenset[Any] | None = None

        def matched() -> frozenset[Any]:
            nonlocal found
            if found is None:
                found = frozenset(r.get(picked) for r in rows(inner) if where is None or where(r))
            return found

        if anti:
            return lambda r: r.get(name) not in matched()
        return lambda r: r.get(name) in matched()

    def literal(self, name: str, kind: str) -> Any:
        token = self.take()
        upper = token.upper
        if token.kind == "word" and upper == "NULL":
            return None
        if token.kind == "word" and upper in ("TRUE", "FALSE"):
            if kind != "boolean":
                raise self.mistyped(name, kind, token)
            return upper == "TRUE"
        if token.kind in TYPED_LITERALS:
            kinds, convert = TYPED_LITERALS[token.kind]
            if kind not in kinds:
                raise self.mistyped(name, kind, token)
            return convert(token.text)
        if token.kind == "string":
            if kind in ("datetime", "date", "boolean", "double", "currency", "percent", "int"):
                raise self.mistyped(name, kind, token)
            return unescape(token.text[1:-1])
        if token.kind == "word" and upper not in KEYWORDS:
            raise malformed(
                self.text,
                token.column,
                f"unexpected token: '{token.text}' "
                "(date literals such as TODAY are not supported here)",
            )
        raise self.fail(token)

    def mistyped(self, name: str, kind: str, token: Token) -> SoqlError:
        quoted = "and should not be enclosed in quotes" if token.kind == "string" else ""
        return SoqlError(
            "INVALID_FIELD",
            f"\n{self.text[:120]}\nERROR at Row:1:Column:"
            f"{token.column}\nvalue of filter criterion for field '{name}' must be "
            f"of type {kind} {quoted}".rstrip(),
        )


def unescape(body: str) -> str:
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def like_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def parse_datetime(text: str) -> datetime:
    value = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):
        value = f"{value[:-2]}:{value[-2:]}"
    return datetime.fromisoformat(value).astimezone(UTC)


def fold(value: Any, kind: str) -> Any:
    """The comparable form: text compares case-insensitively (ids exactly), numbers by value."""
    if value is None:
        return None
    if kind in ("double", "currency", "percent", "int"):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if isinstance(value, str) and kind not in ("id", "reference"):
        return value.lower()
    return value


def compare(name: str, kind: str, op: str, value: Any) -> Predicate:
    target = fold(value, kind)
    if op in ("=", "!=", "<>"):
        equal = op == "="
        return lambda r: (fold(r.get(name), kind) == target) is equal
    check: Callable[[Any], Any] = {
        "<": lambda a: a < target,
        "<=": lambda a: a <= target,
        ">": lambda a: a > target,
        ">=": lambda a: a >= target,
    }[op]

    def predicate(record: Record) -> bool:
        current = fold(record.get(name), kind)
        return current is not None and target is not None and bool(check(current))

    return predicate


def sort_key(order: tuple[OrderKey, ...], kinds: Mapping[str, str]) -> Callable[[Record], Any]:
    """A key for `sorted` honouring every ORDER BY item (directions and nulls placement)."""

    def key(record: Record) -> tuple[Any, ...]:
        parts: list[Any] = []
        for item in order:
            value = fold(record.get(item.field), kinds.get(item.field, "string"))
            missing = value is None
            rank = (1 if item.nulls_last else -1) if missing else 0
            if missing:
                parts.append((rank, 0))
            else:
                parts.append((rank, Reverse(value) if item.descending else value))
        return tuple(parts)

    return key


class Reverse:
    """Wraps a value so that sorting ascending orders it descending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Reverse) -> bool:
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reverse) and self.value == other.value
