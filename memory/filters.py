"""SearchFilters as a Core condition, shared by keyword and semantic search on both backends.

The condition is on the `segment` and `conversation` tables: `joined` joins both to a search
source by its segment id column. Time means the conversation's recorded_at, falling back to
its created_at.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func

from memory.tables import conversation, segment
from memory.timeutil import to_db
from memory.types import SearchFilters

conversation_time = func.coalesce(conversation.c.recorded_at, conversation.c.created_at)
SEGMENT_CONVERSATION = segment.join(conversation, conversation.c.id == segment.c.conversation_id)
"""The rows a filter reads: each segment with its conversation."""


def filter_condition(filters: SearchFilters | None) -> ColumnElement[bool] | None:
    """The filter on segment and conversation; None when there is no filter."""
    if filters is None:
        return None
    parts: list[ColumnElement[bool]] = []
    if filters.speaker_id is not None:
        parts.append(segment.c.speaker_id == filters.speaker_id)
    if filters.conversation_id is not None:
        parts.append(segment.c.conversation_id == filters.conversation_id)
    if filters.since is not None:
        parts.append(conversation_time >= to_db(filters.since))
    if filters.until is not None:
        parts.append(conversation_time <= to_db(filters.until))
    return and_(*parts) if parts else None


def joined(
    statement: Select[Any], segment_id: ColumnElement[Any], condition: ColumnElement[bool] | None
) -> Select[Any]:
    """`statement` restricted to the rows whose segment (`segment_id`) passes `condition`;
    unchanged without one (no join: the index alone)."""
    if condition is None:
        return statement
    return (statement.join(segment, segment.c.id == segment_id)
            .join(conversation, conversation.c.id == segment.c.conversation_id)
            .where(condition))

