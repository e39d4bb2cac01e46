"""The VTQL subset of Vtiger's query operation: parse a query into a `Query`, or fail as Vtiger does.

    SELECT * | f1, f2 | count(*) FROM <Module> [WHERE cond] [ORDER BY f [ASC|DESC], ...]
        [LIMIT [offset,] count];

Conditions: `f op 'value'` with = != < > <= >=, `f IN ('a', 'b')`, `f LIKE 'x%'`, joined by AND
(binding tighter) and OR, with parentheses. Observed 8.2 behaviour kept: the trailing ';' is
required, `<>` is a syntax error, `!= ''` and dotted references (`related_to.accountname`) are an
INTERNAL_SERVER_ERROR, and LIMIT counts above 100 are clamped to 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_ROWS = 100
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'(?:[^'\\]|\\.|'')*')|(?P<number>\d+)
                        |(?P<op><>|!=|<=|>=|=|<|>)|(?P<punct>[(),;*])
                        |(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))""",
    re.VERBOSE,
)
KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "in",
    "like",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "count",
}


class VtqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # = != < > <= >= in like
    values: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """OR of ANDs: each inner tuple is a conjunction of conditions or nested groups."""

    any_of: tuple[tuple[Condition | Group, ...], ...]


@dataclass
class Query:
    module: str
    columns: tuple[str, ...] | None  # None: *
    count: bool = False
    where: Group | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    offset: int = 0
    limit: int = MAX_ROWS

    def fields_used(self) -> set[str]:
        used = set(self.columns or ()) | {name for name, _ in self.order}
        if self.where is not None:
            used |= _fields_of(self.where)
        return used


def _fields_of(group: Group) -> set[str]:
    out: set[str] = set()
    for conjunction in group.any_of:
        for item in conjunction:
            out |= _fields_of(item) if isinstance(item, Group) else {item.field}
    return out


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise VtqlError(
                "QUERY_SYNTAX_ERROR", f"Syntax Error on line 1: near {text[position:]!r}"
            )
        kind = found.lastgroup or ""
        value = found.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'").replace("\\'", "'")
        elif kind == "word" and value.lower() in KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append((kind, value))
        position = found.end()
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token[0] != kind or (value is not None and token[1] != value):
            raise VtqlError(
                "QUERY_SYNTAX_ERROR",
                f"Syntax Error on line 1: token {token[1] or 'EOF'!r} unexpected",
            )
        self.at += 1
        return token[1]

    def accept(self, kind: str, value: str | None = None) -> bool:
        token = self.peek()
        if token[0] == kind and (value is None or token[1] == value):
            self.at += 1
            return True
        return False

    def ident(self) -> str:
        name = self.take("word")
        if "." in name:
            raise VtqlError("INTERNAL_SERVER_ERROR", "Unknown error")
        return name

    def parse(self) -> Query:
        self.take("kw", "select")
        columns: tuple[str, ...] | None = None
        counting = False
        if self.accept("punct", "*"):
            pass
        elif self.accept("kw", "count"):
            self.take("punct", "(")
            self.take("punct", "*")
            self.take("punct", ")")
            counting = True
        else:
            names = [self.ident()]
            while self.accept("punct", ","):
                names.append(self.ident())
            columns = tuple(names)
        self.take("kw", "from")
        query = Query(module=self.take("word"), columns=columns, count=counting)
        if self.accept("kw", "where"):
            query.where = self.disjunction()
        if self.accept("kw", "order"):
            self.take("kw", "by")
            while True:
                name = self.ident()
                descending = self.accept("kw", "desc")
                if not descending:
                    self.accept("kw", "asc")
                query.order.append((name, descending))
                if not self.accept("punct", ","):
                    break
        if self.accept("kw", "limit"):
            first = int(self.take("number"))
            if self.accept("punct", ","):
                query.offset, query.limit = first, int(self.take("number"))
            else:
                query.limit = first
        query.limit = min(query.limit, MAX_ROWS)
        self.take("punct", ";")
        if self.peek()[0] != "end":
            raise VtqlError("QUERY_SYNTAX_ERROR", "Syntax Error on line 1: text after ';'")
        return query

    def disjunction(self) -> Group:
        options = [self.conjunction()]
        while self.accept("kw", "or"):
            options.append(self.conjunction())
        return Group(tuple(options))

    def conjunction(self) -> tuple[Condition | Group, ...]:
        items = [self.condition()]
        while self.accept("kw", "and"):
            items.append(self.condition())
        return tuple(items)

    def condition(self) -> Condition | Group:
        if self.accept("punct", "("):
            group = self.disjunction()
            self.take("punct", ")")
            return group
        name = self.ident()
        if self.accept("kw", "in"):
            self.take("punct", "(")
            values = [self.value()]
            while self.accept("punct", ","):
                values.append(self.value())
            self.take("punct", ")")
            return Condition(name, "in", tuple(values))
        if self.accept("kw", "like"):
            return Condition(name, "like", (self.value(),))
        op = self.take("op")
        if op == "<>":
            raise VtqlError("QUERY_SYNTAX_ERROR", "Syntax Error on line 1: token '<>' unexpected")
        value = self.value()
        if op == "!=" and value == "":
            raise VtqlError("INTERNAL_SERVER_ERROR", "Unknown error")
        return Condition(name, op, (value,))

    def value(self) -> str:
        kind, value = self.peek()
        if kind in ("string", "number"):
            self.at += 1
            return value
        raise VtqlError("QUERY_SYNTAX_ERROR", f"Syntax Error on line 1: token {value!r} unexpected")


def parse_query(text: str) -> Query:
    """A parsed query, or VtqlError with Vtiger's error code."""
    if not text.strip().endswith(";"):
        raise VtqlError("QUERY_SYNTAX_ERROR", "Syntax Error on line 1: token 'EOF' unexpected")
    return Parser(text).parse()


def like_pattern(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)
