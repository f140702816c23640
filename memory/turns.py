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

from memory.db import Tx
from memory.errors import InvalidOperation
from memory.types import TurnLike

MIN_OVERLAP_SECONDS = 0.2
"""Another speaker talks over a segment when their turns cover at least this much of it:
shorter overlaps are mostly boundary jitter of the diarizer, or a breath."""

TurnRow = tuple[str, float, float]
"""(local label, start, end) seconds."""


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
    tx.many(
        "INSERT INTO diarization_turn(conversation_id, local_label, start, \"end\")"
        " VALUES (?, ?, ?, ?)",
        [(conversation_id, label, start, end) for label, start, end in rows],
    )


def load(tx: Tx, conversation_id: int, start: float | None = None,
         end: float | None = None) -> list[TurnRow]:
    """A conversation's turns by start time; with `start`/`end`, only those that overlap it."""
    window = ""
    params: list[int | float] = [conversation_id]
    if start is not None and end is not None:
        window = " AND start < ? AND \"end\" > ?"
        params += [end, start]
    return [(str(label), float(s), float(e)) for label, s, e in tx.all(
        "SELECT local_label, start, \"end\" FROM diarization_turn"
        f" WHERE conversation_id = ?{window} ORDER BY start, id",
        params,
    )]


def label_speakers(tx: Tx, conversation_id: int) -> dict[str, int]:
    """Each local label's speaker now: the one most of its segments have (ties: lowest id)."""
    out: dict[str, int] = {}
    for label, speaker_id, _ in tx.all(
        "SELECT local_speaker, speaker_id, count(*) AS n FROM segment"
        " WHERE conversation_id = ? AND local_speaker IS NOT NULL AND speaker_id IS NOT NULL"
        " GROUP BY local_speaker, speaker_id ORDER BY local_speaker, n DESC, speaker_id",
        (conversation_id,),
    ):
        out.setdefault(str(label), int(speaker_id))
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
