"""SQL for SearchFilters, shared by keyword and semantic search.

The clause refers to the segment as `s` and its conversation as `c` (callers join both).
Time means the conversation's recorded_at, falling back to its created_at.
"""

from __future__ import annotations

from typing import Any

from memory.timeutil import to_db
from memory.types import SearchFilters

CONVERSATION_TIME = "COALESCE(c.recorded_at, c.created_at)"


def filter_clause(filters: SearchFilters | None) -> tuple[str, list[Any]]:
    """(' AND ...' conditions, params); empty when there is no filter."""
    if filters is None:
        return "", []
    parts: list[str] = []
    params: list[Any] = []
    if filters.speaker_id is not None:
        parts.append("s.speaker_id = ?")
        params.append(filters.speaker_id)
    if filters.conversation_id is not None:
        parts.append("s.conversation_id = ?")
        params.append(filters.conversation_id)
    if filters.since is not None:
        parts.append(f"{CONVERSATION_TIME} >= ?")
        params.append(to_db(filters.since))
    if filters.until is not None:
        parts.append(f"{CONVERSATION_TIME} <= ?")
        params.append(to_db(filters.until))
    return "".join(f" AND {p}" for p in parts), params


def is_empty(filters: SearchFilters | None) -> bool:
    return filters is None or filters == SearchFilters()
