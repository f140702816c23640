"""Diarization turns: who spoke when, overlapping speech included, and what they tell about
segments (which other speakers talk over each one).

Turns are stored with the diarizer's per-recording labels, like segments' `local_speaker`.
A label is resolved to a speaker at read time: the speaker that most of the label's segments
in that conversation have now. Renames, merges, identify and undo thus show in the turns with
no bookkeeping of their own; a label none of whose segments has a speaker resolves to nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

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
    select(segment.c.conversation_id, segment.c.local_speaker, segment.c.speaker_id,
           SEGMENTS_PER_LABEL)
    .where(segment.c.local_speaker.is_not(None), segment.c.speaker_id.is_not(None))
    .group_by(segment.c.conversation_id, segment.c.local_speaker, segment.c.speaker_id)
    .order_by(segment.c.conversation_id, segment.c.local_speaker, SEGMENTS_PER_LABEL.desc(),
              segment.c.speaker_id)
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


def load(tx: Tx, conversation_id: int) -> list[TurnRow]:
    """A conversation's turns by start time."""
    statement = SELECT_TURNS.where(diarization_turn.c.conversation_id == conversation_id)
    return [(str(local_label), float(turn_start), float(turn_end))
            for local_label, turn_start, turn_end in tx.stream(statement)]


def label_speakers(tx: Tx, conversation_id: int) -> dict[str, int]:
    """Each local label's speaker now: the one most of its segments have (ties: lowest id)."""
    return labels_speakers(tx, [conversation_id]).get(conversation_id, {})


def labels_speakers(tx: Tx, conversation_ids: Collection[int]) -> dict[int, dict[str, int]]:
    """label_speakers of several conversations in one query."""
    out: dict[int, dict[str, int]] = {}
    if not conversation_ids:
        return out
    statement = SELECT_LABEL_SPEAKERS.where(segment.c.conversation_id.in_(conversation_ids))
    for row in tx.rows(statement):
        of_conversation = out.setdefault(int(row.conversation_id), {})
        of_conversation.setdefault(str(row.local_speaker), int(row.speaker_id))
    return out


def load_windows(
    tx: Tx, windows: Sequence[tuple[int, float, float]]
) -> dict[int, list[TurnRow]]:
    """Per conversation, its turns that overlap its (conversation id, start, end) window, by
    start time: one query for all (search hits span many conversations; a query each cost
    ~0.8 ms on PostgreSQL, ~17 ms of a 20-hit search)."""
    out: dict[int, list[TurnRow]] = {}
    if not windows:
        return out
    overlapping = or_(*(
        and_(diarization_turn.c.conversation_id == conversation_id,
             diarization_turn.c.start < end, diarization_turn.c.end > start)
        for conversation_id, start, end in windows
    ))
    statement = select(diarization_turn.c.conversation_id, *SELECT_TURNS.selected_columns) \
        .where(overlapping).order_by(diarization_turn.c.start, diarization_turn.c.id)
    for conversation_id, local_label, turn_start, turn_end in tx.stream(statement):
        out.setdefault(int(conversation_id), []).append(
            (str(local_label), float(turn_start), float(turn_end)))
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
    for group in by_conversation.values():
        group.sort(key=lambda s: s.start)
    found_turns = load_windows(tx, [
        (conversation_id, group[0].start, max(s.end for s in group))
        for conversation_id, group in by_conversation.items()
    ])
    # Seconds of other labels' turns over each segment; the labels' speakers are read after,
    # for the conversations that have any.
    talked_over: dict[int, tuple[Span, dict[str, float]]] = {}
    for conversation_id, group in by_conversation.items():
        talked_over.update(
            (span.id, (span, seconds))
            for span, seconds in _other_labels(group, found_turns.get(conversation_id, []))
        )
    speakers = labels_speakers(tx, {span.conversation_id for span, _ in talked_over.values()})
    out: dict[int, list[int]] = {}
    for span, seconds in talked_over.values():
        of_label = speakers.get(span.conversation_id, {})
        per_speaker: dict[int, float] = {}
        for label, shared in seconds.items():
            speaker_id = of_label.get(label)
            if speaker_id is not None and speaker_id != span.speaker_id:
                per_speaker[speaker_id] = per_speaker.get(speaker_id, 0.0) + shared
        found = sorted((-shared, sid) for sid, shared in per_speaker.items()
                       if shared >= MIN_OVERLAP_SECONDS)
        if found:
            out[span.id] = [sid for _, sid in found]
    return out


def _other_labels(
    group: Sequence[Span], turns: Sequence[TurnRow]
) -> list[tuple[Span, dict[str, float]]]:
    """For each span of one conversation (by start time) that other labels' turns overlap:
    the seconds of each such label."""
    out: list[tuple[Span, dict[str, float]]] = []
    # Sweep by start time: a turn that ended before a segment starts cannot overlap any
    # later segment either.
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
        if seconds:
            out.append((span, seconds))
    return out
