"""Counted nouns in the messages people and agents read: "1 segment", "3 segments"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly one ("1 conversation", "0 conversations")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def segments_in_conversations(segments: int, conversations: int) -> str:
    """The count every identity change reports: "3 segments in 1 conversation"."""
    return f"{counted(segments, 'segment')} in {counted(conversations, 'conversation')}"
