"""Completions: the values an argument can take, offered while someone types it — conversation
ids (matched on the id or on the title, newest first) and speakers (by name or 'Unknown N'
label, most recently heard first). Matching is on the start, ignoring case."""

from __future__ import annotations

from datetime import UTC, datetime

from tools.context import App
from tools.models import CompletionOut

MAX_VALUES = 100
"""The protocol's cap on the values of one completion."""


def conversation_ids(app: App, typed: str) -> CompletionOut:
    prefix = typed.strip().casefold()
    return _bounded([
        str(conversation_id)
        for conversation_id, title in app.memory.conversation_titles()
        if str(conversation_id).startswith(prefix) or title.casefold().startswith(prefix)
    ])


def speakers(app: App, typed: str) -> CompletionOut:
    prefix = typed.strip().casefold()
    never = datetime.min.replace(tzinfo=UTC)
    heard = sorted(
        app.memory.list_speakers(),
        key=lambda s: (s.last_heard or never, s.speaker.id),
        reverse=True,
    )
    return _bounded([
        s.speaker.label for s in heard if s.speaker.label.casefold().startswith(prefix)
    ])


def _bounded(matches: list[str]) -> CompletionOut:
    return CompletionOut(values=matches[:MAX_VALUES], total=len(matches),
                         has_more=len(matches) > MAX_VALUES)
