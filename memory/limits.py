"""Bounds of the free text the store keeps, each defined once. The store refuses longer text
where it enters (a 50 MB title once made every list_conversations answer 105 MB); edges check
their arguments against the same constants, to refuse before any work is done, and MCP schemas
show them as maxLength. Speaker names: memory.speakers.MAX_NAME_LENGTH."""

from __future__ import annotations

from memory.errors import InvalidInput

MAX_TITLE_LENGTH = 500
"""A conversation title: a line a person reads in a list."""
MAX_SOURCE_NAME_LENGTH = 255
"""The file name a recording came as: 255 is what common filesystems allow."""
MAX_LANGUAGE_LENGTH = 16
"""A language code ('en', 'pt-BR', 'yue'), with room for a region or script subtag."""
MAX_ERROR_LENGTH = 2000
"""Why processing failed, as stored: longer reasons are cut (they are ours, not input)."""


def bounded(value: str, what: str, limit: int) -> str:
    """`value`, or InvalidInput saying how long it was and what is allowed."""
    if len(value) > limit:
        raise InvalidInput(
            f"{what} is {len(value):,} characters long; at most {limit:,} are allowed. "
            f"Give a shorter {what}."
        )
    return value


def cut(value: str | None, limit: int) -> str | None:
    """Text of our own making, shortened to `limit` characters (marked with an ellipsis)."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"
