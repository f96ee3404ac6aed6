"""Relay-style cursors: opaque strings that encode the position (an id) in a list."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from ordergraph.domain.errors import ValidationFailed
from ordergraph.domain.read_ports import Page

T = TypeVar("T")
MAX_PAGE_SIZE = 100
MAX_ID = 2**63  # ids are PostgreSQL bigints
MAX_ID_DIGITS = len(str(MAX_ID))


def encode_cursor(kind: str, item_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{item_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, _, raw_id = base64.urlsafe_b64decode(padded).decode().partition(":")
        # Only ids we could have issued: a huge one would overflow the database's bigint.
        if prefix == kind and _ascii_digits(raw_id) and len(raw_id) <= MAX_ID_DIGITS:
            return _positive_id(int(raw_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("This cursor is not one of this list's.", field="after")


def page_size(first: int | None, default: int) -> int:
    """`first`, capped at 100; negative is VALIDATION_FAILED."""
    if first is None:
        return default
    if first < 0:
        raise ValidationFailed("first must not be negative.", field="first")
    return min(first, MAX_PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class Connection(Generic[T]):
    edges: list[Edge[T]]
    has_next_page: bool
    end_cursor: str | None
    total_count: int

    @classmethod
    def from_page(cls, kind: str, page: Page[T]) -> Connection[T]:
        edges = [Edge(encode_cursor(kind, item.id), item) for item in page.items]  # type: ignore[attr-defined]
        return cls(edges=edges, has_next_page=page.has_next,
                   end_cursor=edges[-1].cursor if edges else None,
                   total_count=page.total_count)


def parse_id(raw: str | int | None) -> int | None:
    """A numeric id from a GraphQL ID; None for one that cannot name anything of ours.

    ASCII digits only, as we write ids: int() alone would also take " 1", "+1", "1_0" and
    full-width digits (U+FF11 for 1), other spellings of an id that must not name it."""
    if raw is None:
        return None
    text = str(raw)
    if not _ascii_digits(text) or len(text) > MAX_ID_DIGITS:
        return None
    try:
        return _positive_id(int(text))
    except ValueError:
        return None


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _positive_id(value: int) -> int:
    """The value if it fits an id column (a positive bigint); ValueError otherwise."""
    if 0 < value < MAX_ID:
        return value
    raise ValueError(f"{value} is not an id")
