"""One table per connector from what a CRM answered to the kpisync error tree.

A connector turns a failed answer (its client's exception, or a response) into an `Answer`:
HTTP status, the CRM's own error code, a short detail (already masked), the body text, the
operation. Its `ErrorTable` is an ordered list of `Rule`s; the first whose status range, codes,
body pattern and operation all match names the error class, the message and the hint. So the
whole policy of a connector is one screen of data, pinned by one parametrised test
(tests/test_error_tables.py); network failures, which carry no answer, stay in the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kpisync.errors import KpisyncError, RateLimited


@dataclass(frozen=True)
class Answer:
    """A failed answer of the CRM, in the terms its table matches on."""

    status: int  # HTTP status (0: none)
    code: str = ""  # the CRM's error code or category
    detail: str = ""  # the CRM's message, masked
    body: str = ""  # the body as text (for patterns)
    operation: str = ""  # what was asked (an endpoint or a webservice operation)
    retry_after: float | None = None


Build = Callable[[str, "str | None", Answer], KpisyncError]


@dataclass(frozen=True)
class Rule:
    """`error` when every given condition holds. `message` is formatted with `what` (the call),
    `status`, `code`, `detail` and `operation`, and the table's `context` (e.g. `host`)."""

    error: type[KpisyncError]
    message: str
    hint: str | None = None
    status: range | None = None  # None: any status
    codes: frozenset[str] | None = None  # None: any code
    body: str | None = None  # a regular expression the body must match (re.search)
    operation: str | None = None
    build: Build | None = None  # for error classes with more than (message, hint)

    def matches(self, answer: Answer) -> bool:
        return (
            (self.status is None or answer.status in self.status)
            and (self.codes is None or answer.code in self.codes)
            and (self.body is None or re.search(self.body, answer.body) is not None)
            and (self.operation is None or answer.operation == self.operation)
        )


def status(low: int, high: int | None = None) -> range:
    """The statuses low..high (inclusive; one status when high is not given)."""
    return range(low, (high if high is not None else low) + 1)


class ErrorTable:
    def __init__(self, crm: str, rules: Sequence[Rule]) -> None:
        if (
            not rules
            or rules[-1].status is not None
            or rules[-1].codes is not None
            or rules[-1].body is not None
            or rules[-1].operation is not None
        ):
            raise ValueError(f"{crm}'s error table must end with a rule that matches anything")
        self.crm = crm
        self.rules = tuple(rules)

    def rule_for(self, answer: Answer) -> Rule:
        return next(rule for rule in self.rules if rule.matches(answer))

    def error(self, answer: Answer, *, what: str = "", **context: str) -> KpisyncError:
        """The kpisync error for `answer` (returned, for the caller to raise)."""
        rule = self.rule_for(answer)
        text = rule.message.format(
            what=what,
            status=answer.status,
            code=answer.code,
            detail=answer.detail,
            operation=answer.operation,
            **context,
        )
        if rule.build is not None:
            return rule.build(text, rule.hint, answer)
        if issubclass(rule.error, RateLimited):
            return rule.error(text, retry_after=answer.retry_after, hint=rule.hint)
        return rule.error(text, hint=rule.hint)
