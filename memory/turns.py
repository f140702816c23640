"""Diarization turns: who spoke when, overlapping speech included, and what they tell about
segments (which other speakers talk over each one).

Turns are stored with the diarizer's per-recording labels, like segments' `local_speaker`.
A label is resolved to a speaker at read time: the speaker that most of the label's segments
in that conversation have now. Renames, merges, identify and undo thus show in the turns with
no bookkeeping of their own; a label none of whose segments has a speaker resolves to nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from memory.db import Tx
from memory.errors import InvalidOperation
from memory.tables import diarization_turn, segment
from memory.types import TurnLike

MIN_OVERLAP_SECONDS = 0.2
"""Another speaker talks over a segment when their turns cover at least this much of it:
shorter overlaps are mostly boundary jitter of the diarizer, or a breath."""

TurnRow = tuple[str, float, float]
"""(local label, start, end) seconds."""

SELECT_TURNS = select(
    diarization_turn.c.local_label, diarization_turn.c.start, diarization_turn.c.end
).order_by(diarization_turn.c.start, diarization_turn.c.id)
SEGMENTS_PER_LABEL = func.count().label("n")
SELECT_LABEL_SPEAKERS = (
    select(segment.c.local_speaker, segment.c.speaker_id, SEGMENTS_PER_LABEL)
    .where(segment.c.local_speaker.is_not(None), segment.c.speaker_id.is_not(None))
    .group_by(segment.c.local_speaker, segment.c.speaker_id)
    .order_by(segment.c.local_speaker, SEGMENTS_PER_LABEL.desc(), segment.c.speaker_id)
)


def checked(turns: Sequence[TurnLike]) -> list[TurnRow]:
    """A result's turns as rows, refused (InvalidOperation) unless every one has a label and
    finite times with end >= start >= 0."""
    rows: list[TurnRow] = []
    for i, turn in enumerate(turns):
        start, end = float(turn.start), float(turn.end)
        if not (math.isfinite(start) and math.isfinite(end) and end >= start >= 0):
            raise InvalidOperation(f"turn {i} has invalid times {turn.start}..{turn.end}")
        if not isinstance(turn.label, str) or not turn.label:
            raise InvalidOperation(f"turn {i} has no speaker label")
        rows.append((turn.label, start, end))
    return rows


def store(tx: Tx, conversation_id: int, rows: Sequence[TurnRow]) -> None:
    tx.insert_rows(diarization_turn, [
        {"conversation_id": conversation_id, "local_label": label, "start": start, "end": end}
        for label, start, end in rows
    ])


def load(tx: Tx, conversation_id: int, start: float | None = None,
         end: float | None = None) -> list[TurnRow]:
    """A conversation's turns by start time; with `start`/`end`, only those that overlap it."""
    statement = SELECT_TURNS.where(diarization_turn.c.conversation_id == conversation_id)
    if start is not None and end is not None:
        statement = statement.where(diarization_turn.c.start < end,
                                    diarization_turn.c.end > start)
    return [(str(local_label), float(turn_start), float(turn_end))
            for local_label, turn_start, turn_end in tx.stream(statement)]


def label_speakers(tx: Tx, conversation_id: int) -> dict[str, int]:
    """Each local label's speaker now: the one most of its segments have (ties: lowest id)."""
    out: dict[str, int] = {}
    for row in tx.rows(SELECT_LABEL_SPEAKERS.where(segment.c.conversation_id == conversation_id)):
        out.setdefault(str(row.local_speaker), int(row.speaker_id))
    return out


@dataclass(frozen=True)
class Span:
    """What overlap needs of a segment."""

    id: int
    conversation_id: int
    start: float
    end: float
    local_speaker: str | None
    speaker_id: int | None


def overlapping_speakers(tx: Tx, spans: Sequence[Span]) -> dict[int, list[int]]:
    """Per segment id: the other speakers whose turns cover >= MIN_OVERLAP_SECONDS of it, most
    overlap first. Segments without any are left out. The segment's own label and speaker are
    never counted (a segment moved to another speaker was that speaker's, not its label's)."""
    by_conversation: dict[int, list[Span]] = {}
    for span in spans:
        by_conversation.setdefault(span.conversation_id, []).append(span)
    out: dict[int, list[int]] = {}
    for conversation_id, group in by_conversation.items():
        group.sort(key=lambda s: s.start)
        turns = load(tx, conversation_id, group[0].start, max(s.end for s in group))
        if not turns:
            continue
        speakers: dict[str, int] | None = None
        # Sweep by start time: a turn that ended before a segment starts cannot overlap
        # any later segment either.
        active: list[TurnRow] = []
        following = 0
        for span in group:
            while following < len(turns) and turns[following][1] < span.end:
                active.append(turns[following])
                following += 1
            active = [t for t in active if t[2] > span.start]
            seconds: dict[str, float] = {}
            for label, start, end in active:
                shared = min(end, span.end) - max(start, span.start)
                if shared > 0 and label != span.local_speaker:
                    seconds[label] = seconds.get(label, 0.0) + shared
            if not seconds:
                continue
            if speakers is None:
                speakers = label_speakers(tx, conversation_id)
            per_speaker: dict[int, float] = {}
            for label, shared in seconds.items():
                speaker_id = speakers.get(label)
                if speaker_id is not None and speaker_id != span.speaker_id:
                    per_speaker[speaker_id] = per_speaker.get(speaker_id, 0.0) + shared
            found = sorted((-shared, sid) for sid, shared in per_speaker.items()
                           if shared >= MIN_OVERLAP_SECONDS)
            if found:
                out[span.id] = [sid for _, sid in found]
    return out
