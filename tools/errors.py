"""Turn a domain error into one message an agent can act on: what was wrong, and what exists."""

from __future__ import annotations

import logging

from memory.errors import (
    ConversationNotFound,
    DuplicateAudio,
    SegmentNotFound,
    SpeakerMemoryError,
    SpeakerNotFound,
)
from tools.context import App

log = logging.getLogger(__name__)


def explain(app: App, exc: SpeakerMemoryError) -> str:
    """The error's own message, plus where to look next. The store's not-found messages already
    give the latest id (memory.db.latest_id_hint); this adds the tool that lists the others."""
    message = str(exc) or (type(exc).__doc__ or type(exc).__name__).strip()
    try:
        hint = _hint(app, exc)
    except Exception:  # a hint must never hide the original error
        log.debug("no hint for %r", exc, exc_info=True)
        hint = None
    if hint and hint.lower() not in message.lower():
        message = f"{message.rstrip('.')}; {hint}"
    return message if message.endswith(".") else f"{message}."


def _hint(app: App, exc: SpeakerMemoryError) -> str | None:
    if isinstance(exc, SegmentNotFound):
        if not app.memory.latest_segments(limit=1):
            return "process a recording first"
        return "get_latest_segments lists recent segments"
    if isinstance(exc, ConversationNotFound):
        if not app.memory.list_conversations(limit=1).items:
            return "call process_audio first"
        return "list_conversations lists them"
    if isinstance(exc, SpeakerNotFound):
        speakers = app.memory.list_speakers()
        if not speakers:
            return "no speakers are stored yet"
        labels = ", ".join(s.speaker.label for s in speakers[:12])
        more = f" and {len(speakers) - 12} more" if len(speakers) > 12 else ""
        return f"known speakers: {labels}{more}"
    if isinstance(exc, DuplicateAudio):
        return f"see conversation {exc.conversation_id}"
    return None
