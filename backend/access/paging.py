"""Paging of lists: the checked ``page``/``size`` parameters and the page every ``/api`` list
answers with (Blynk's platform API shape; its ``BlynkPage`` has only ``content`` and
``totalElements``)."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from backend.errors import ValidationError

MAX_PAGE_SIZE = 1000

T = TypeVar("T")


def page_args(page: int, size: int) -> tuple[int, int]:
    """Check paging parameters (``page`` 0-based, ``size`` 1..1000)."""
    if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationError(f"page must be 0 or more and size 1 to {MAX_PAGE_SIZE}")
    return page, size


class Page(msgspec.Struct, Generic[T]):
    """A page of a list, in the shape of Blynk's platform API (``page`` is 0-based)."""

    content: list[T]
    totalElements: int  # noqa: N815 (Blynk's name)
    page: int
    size: int
