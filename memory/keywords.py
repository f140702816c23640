"""What both keyword-search backends share: the words of a query, and the match cap."""

from __future__ import annotations

import unicodedata

NEWEST_MATCHES = 1000
"""Matches ranked (bm25 on SQLite, ts_rank on PostgreSQL) are the newest this many: keeps
common words fast at 1M rows."""


def words(text: str) -> list[str]:
    """The searchable words of any user text (split on white space; control characters,
    NUL above all, are separators; a token needs a letter or a digit)."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return [t for t in text.split() if any(ch.isalnum() for ch in t)]
