"""One page of a listing, newest first: what the API returns as ``total``, ``limit``, ``offset``
and ``next_offset``, and what the HTML listings page through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Page"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """``items`` of a listing of ``total``, starting at ``offset``, at most ``limit`` of them."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts; None on the last page."""
        end = self.offset + self.limit
        return end if end < self.total else None
