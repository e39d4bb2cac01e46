"""Paging by token with a loop guard: a token (cursor, offset, page URL) seen twice is an error.

A CRM that answers the same "next page" twice would otherwise make a reader loop for ever,
quietly burning the org's API allowance. `PageTokens` remembers every token of one walk and
raises a ConnectorError naming the CRM, the stream and the token instead; `follow` is the usual
loop (ask, hand the answer on, take its next token) with that guard built in.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from kpisync.errors import ConnectorError

Token = TypeVar("Token", bound=Hashable)
Answer = TypeVar("Answer")


class PageTokens(Generic[Token]):
    """The tokens one walk has followed; `next()` refuses a repeated one."""

    def __init__(self, crm: str, stream: str) -> None:
        self.crm, self.stream = crm, stream
        self.seen: set[Token] = set()

    def next(self, token: Token | None) -> Token | None:
        """`token`, remembered; None (or "") when there is no next page; an error when the CRM
        gave this token before."""
        if token is None or token == "":
            return None
        if token in self.seen:
            raise ConnectorError(
                f"{self.crm} returned the page token {token!r} of {self.stream} twice: "
                "stopping rather than reading the same pages for ever",
                hint=f"a fault of {self.crm}'s paging; the next run starts again from the "
                "stored cursor",
            )
        self.seen.add(token)
        return token


def follow(
    fetch: Callable[[Token | None], Answer],
    next_token: Callable[[Answer], Token | None],
    *,
    crm: str,
    stream: str,
) -> Iterator[Answer]:
    """Each answer of `fetch(None)`, `fetch(t1)`, ... until an answer names no next token."""
    tokens: PageTokens[Token] = PageTokens(crm, stream)
    token: Token | None = None
    while True:
        answer = fetch(token)
        yield answer
        token = tokens.next(next_token(answer))
        if token is None:
            return
