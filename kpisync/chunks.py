"""Split a sequence into consecutive chunks of at most `size` items (itertools.batched is 3.12+)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """The items in order, `size` at a time; the last chunk may be shorter; none when empty."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
