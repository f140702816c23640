"""Read-only tools: conversations, transcripts, segments, search, speakers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from memory.errors import InvalidInput
from memory.limits import bounded
from memory.types import SearchFilters, SpeakerKind
from tools.context import App
from tools.exports import transcript_text
from tools.inputs import SpeakerArg, speaker_arg
from tools.models import (
    ConversationList,
    ConversationOut,
    HistoryOut,
    SearchResults,
    SegmentList,
    SpeakerConversations,
    SpeakerList,
    Transcript,
    detail_out,
    event_out,
    hit_out,
    segment_out,
    speaker_out,
    speaker_ref,
    summary_out,
)
from tools.processing import shown_status

MAX_QUERY_LENGTH = 1000
"""Search text: a question or a few sentences. FTS5 and the text model get no more."""


def list_conversations(
    app: App, limit: int = 20, offset: int = 0, speaker: SpeakerArg | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> ConversationList:
    page = app.memory.list_conversations(
        limit=limit, offset=offset, speaker=_ref(speaker), since=since,
        until=until,
    )
    return ConversationList(
        conversations=[_shown(app, summary_out(s)) for s in page.items], total=page.total,
        limit=page.limit, offset=page.offset,
    )


def get_conversation(
    app: App, conversation_id: int, format: Literal["json", "text"] = "json"
) -> Transcript:
    detail = app.memory.get_conversation(conversation_id)
    conversation = _shown(app, detail_out(detail))
    if format == "text":
        return Transcript(conversation=conversation, text=transcript_text(detail))
    return Transcript(conversation=conversation, segments=[segment_out(s) for s in detail.segments])


def get_latest_segments(
    app: App, limit: int = 20, conversation_id: int | None = None
) -> SegmentList:
    # A wrong conversation id raises ConversationNotFound in memory.latest_segments.
    segments = app.memory.latest_segments(limit=limit, conversation_id=conversation_id)
    return SegmentList(segments=[segment_out(s) for s in segments])


def search_conversations(
    app: App, query: str, mode: Literal["hybrid", "keyword", "semantic"] = "hybrid",
    speaker: SpeakerArg | None = None, conversation_id: int | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int = 20,
) -> SearchResults:
    if not query.strip():
        raise InvalidInput("query is empty; give words to look for.")
    bounded(query, "query", MAX_QUERY_LENGTH)
    memory = app.memory
    speaker_id = memory.resolve_speaker(speaker_arg(speaker)).id if speaker is not None else None
    if conversation_id is not None:
        memory.get_conversation_info(conversation_id)
    filters = SearchFilters(
        speaker_id=speaker_id, conversation_id=conversation_id, since=since, until=until
    )
    text_model_id = app.pipeline.text_model_id if mode != "keyword" else None
    if mode == "semantic" and text_model_id is None:
        raise InvalidInput(
            "semantic search is unavailable: no text embedding model is installed; "
            "use mode='keyword'."
        )
    if text_model_id is None:  # keyword asked for, or hybrid without a text model
        hits = memory.search_keyword(query, filters, limit=limit)
    else:
        vector = app.query_vectors.vector(text_model_id, query, app.pipeline.embed_text)
        if mode == "semantic":
            hits = memory.search_semantic(vector, text_model_id, filters, limit=limit)
        else:
            hits = memory.search_hybrid(query, vector, text_model_id, filters, limit=limit)
    return SearchResults(query=query, mode=mode, hits=[hit_out(h) for h in hits])


def search_conversations_by_speaker(
    app: App, speaker: SpeakerArg, limit: int = 20, offset: int = 0
) -> SpeakerConversations:
    info = app.memory.resolve_speaker(speaker_arg(speaker))
    page = app.memory.conversations_by_speaker(info.id, limit=limit, offset=offset)
    return SpeakerConversations(
        speaker=speaker_ref(info), conversations=[summary_out(s) for s in page.items],
        total=page.total, limit=page.limit, offset=page.offset,
    )


def list_speakers(app: App, kind: SpeakerKind | None = None) -> SpeakerList:
    return SpeakerList(speakers=[speaker_out(s) for s in app.memory.list_speakers(kind)])


def identity_history(app: App, limit: int = 20) -> HistoryOut:
    """The latest identity changes (naming, merging, ...), newest first: what undo reverses."""
    return HistoryOut(events=[event_out(e) for e in app.memory.identity_history(limit)])


def _ref(speaker: SpeakerArg | None) -> SpeakerArg | None:
    return None if speaker is None else speaker_arg(speaker)


def _shown(app: App, conversation: ConversationOut) -> ConversationOut:
    """The conversation with its status as tools show it ('interrupted' included)."""
    return conversation.model_copy(
        update={"status": shown_status(app, conversation.id, conversation.status)})
