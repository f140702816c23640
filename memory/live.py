"""Live sessions in the store: a conversation whose segments arrive as they are confirmed, and
whose finished recording later replaces them with the offline pipeline's result.

A live segment is stored at once with the speaker the session chose (tools/live.py), so every
reader (get_latest_segments, search, identify) sees it within seconds. Its `local_speaker` is
the session's voice label ("live-3"): identify's "this segment and its cluster-mates" then means
the segments of that voice in this conversation, as for an offline recording.

Finalising maps the offline segments onto the live ones by time, in one transaction:
- a live segment's id goes to the offline segment that overlaps it most (one each), so an id an
  agent already saw still points at the same words;
- a live segment a person labelled by hand ('manual') keeps that speaker on its id;
- an offline cluster takes the speaker a person gave its voice during the session, else the
  stored voice it matches, else the speaker the session showed (labels do not change for
  nothing); unknowns the session created that end up with nothing are removed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update

from memory.conversations import (
    Ingested,
    Prior,
    get_conversation_row,
    ingest,
    next_segment_id,
    words_json,
)
from memory.db import Tx
from memory.deletion import remove_transcript
from memory.errors import InvalidOperation
from memory.identity import Ctx, drop_empty_unknown, holds
from memory.limits import MAX_TITLE_LENGTH, bounded
from memory.search_index import SearchIndex, TextCodes
from memory.speakers import create_unknown, get_row
from memory.sql import in_ids
from memory.tables import (
    conversation,
    live_session,
    segment_content,
    segment_voice,
    voiceprint,
)
from memory.tables import segment as segment_table
from memory.timeutil import now_db
from memory.types import PipelineResultLike, SegmentLike, Vector, WordLike
from memory.vectors import to_blob

LIVE_LABEL_PREFIX = "live-"
"""local_speaker of live segments: the session's voice number follows."""
SELECT_SESSION = select(
    live_session.c.conversation_id, live_session.c.audio_path, live_session.c.seconds
)
SELECT_LIVE_SEGMENTS = select(
    segment_table.c.id, segment_table.c.start, segment_table.c.end, segment_table.c.speaker_id,
    segment_table.c.assignment_source, segment_table.c.excluded_from_profile,
).order_by(segment_table.c.start, segment_table.c.id)


@dataclass(frozen=True)
class LiveSegmentIn:
    """One confirmed stretch of a live session, as the session stores it."""

    start: float
    end: float
    text: str
    words: Sequence[WordLike]
    voice: int
    """The session's voice number (its local label is LIVE_LABEL_PREFIX + voice)."""
    speaker_id: int | None
    """The stored speaker the session chose; None (or one deleted meanwhile): a new unknown."""
    confidence: float | None = None
    voice_vector: Vector | None = None
    text_vector: Vector | None = None
    text_model_id: str | None = None


@dataclass(frozen=True)
class OpenSession:
    conversation_id: int
    audio_path: str
    seconds: float


def start(tx: Tx, title: str, audio_path: str, source_name: str) -> int:
    """A new conversation (status 'processing': it has no final transcript yet) with its live
    session row."""
    bounded(title, "title", MAX_TITLE_LENGTH)
    conversation_id = tx.insert(insert(conversation).values(
        title=title, source_name=source_name, created_at=now_db(), recorded_at=now_db(),
        status="processing", audio_path=audio_path,
    ))
    tx.insert(insert(live_session).values(
        conversation_id=conversation_id, audio_path=audio_path, started_at=now_db(),
    ))
    return conversation_id


def open_sessions(tx: Tx) -> list[OpenSession]:
    """Sessions not finalised yet (a process that died leaves them)."""
    return [_session(r) for r in tx.rows(SELECT_SESSION.order_by(live_session.c.conversation_id))]


def _session(row: Row[Any]) -> OpenSession:
    return OpenSession(int(row.conversation_id), str(row.audio_path), float(row.seconds))


def require_open(tx: Tx, conversation_id: int) -> OpenSession:
    get_conversation_row(tx, conversation_id)
    row = tx.first(SELECT_SESSION.where(live_session.c.conversation_id == conversation_id))
    if row is None:
        raise InvalidOperation(
            f"conversation {conversation_id} is not a live session (or it was finalised)")
    return _session(row)


def add_segment(
    ctx: Ctx, index: SearchIndex, conversation_id: int, segment: LiveSegmentIn
) -> tuple[int, int, TextCodes]:
    """Store one confirmed segment; returns (segment id, speaker id, text codes to publish)."""
    tx = ctx.tx
    require_open(tx, conversation_id)
    if not (segment.end >= segment.start >= 0):
        raise InvalidOperation(f"invalid segment times {segment.start}..{segment.end}")
    speaker_id = segment.speaker_id
    if speaker_id is None or get_row(tx, speaker_id) is None:
        speaker_id = create_unknown(tx)
    segment_id = tx.insert(insert(segment_table).values(
        conversation_id=conversation_id, start=float(segment.start), end=float(segment.end),
        local_speaker=f"{LIVE_LABEL_PREFIX}{segment.voice}", speaker_id=speaker_id,
        speaker_confidence=segment.confidence, assignment_source="auto",
        excluded_from_profile=0,
    ))
    tx.insert(insert(segment_content).values(
        segment_id=segment_id, text=segment.text, words=words_json(segment.words),
    ))
    codes = _index_and_vectors(tx, index, conversation_id, segment_id, segment)
    ctx.cache.refresh(tx, [speaker_id])
    return segment_id, speaker_id, codes


def extend_segment(
    ctx: Ctx, index: SearchIndex, conversation_id: int, segment_id: int,
    segment: LiveSegmentIn,
) -> tuple[int | None, TextCodes]:
    """A stored live segment that was still open got more confirmed words: its times, text
    and words become `segment`'s, and its voice and text vectors are stored when given (when
    it is complete). Its speaker stays what it is now (the session chose it with the first
    words; a person may have named it since). Returns (its speaker id, text codes to
    publish)."""
    tx = ctx.tx
    require_open(tx, conversation_id)
    row = tx.first(select(segment_table.c.speaker_id).where(
        segment_table.c.id == segment_id, segment_table.c.conversation_id == conversation_id,
        segment_table.c.local_speaker == f"{LIVE_LABEL_PREFIX}{segment.voice}",
    ))
    if row is None:
        raise InvalidOperation(f"segment {segment_id} is not an open segment of live session "
                               f"{conversation_id}")
    if not (segment.end >= segment.start >= 0):
        raise InvalidOperation(f"invalid segment times {segment.start}..{segment.end}")
    tx.execute(update(segment_table).where(segment_table.c.id == segment_id).values(
        start=float(segment.start), end=float(segment.end),
    ))
    index.remove_text(tx, [segment_id])
    tx.execute(update(segment_content).where(segment_content.c.segment_id == segment_id).values(
        text=segment.text, words=words_json(segment.words),
    ))
    codes = _index_and_vectors(tx, index, conversation_id, segment_id, segment)
    return (None if row.speaker_id is None else int(row.speaker_id)), codes


def _index_and_vectors(
    tx: Tx, index: SearchIndex, conversation_id: int, segment_id: int,
    segment: LiveSegmentIn,
) -> TextCodes:
    """What goes with a live segment's stored text: its keyword index entry, its voice and
    text vectors when given, and the conversation's length. Returns text codes to publish."""
    index.add_text(tx, [(segment_id, segment.text)])
    if segment.voice_vector is not None:
        tx.execute(delete(segment_voice).where(segment_voice.c.segment_id == segment_id))
        tx.insert(insert(segment_voice).values(
            segment_id=segment_id, vector=to_blob(segment.voice_vector),
        ))
    codes: TextCodes = []
    if segment.text_vector is not None and segment.text_model_id:
        codes = index.add_vectors(tx, segment.text_model_id, [(segment_id, segment.text_vector)])
    # Portable SQL (no two-argument MAX on PostgreSQL): only ever lengthen it.
    tx.execute(update(conversation).where(
        conversation.c.id == conversation_id,
        func.coalesce(conversation.c.duration, 0) < float(segment.end),
    ).values(duration=float(segment.end)))
    return codes


def record_seconds(tx: Tx, conversation_id: int, seconds: float) -> None:
    """How much audio the session's recording holds (for finalising after a crash)."""
    tx.execute(update(live_session).where(live_session.c.conversation_id == conversation_id)
               .values(seconds=float(seconds)))
    tx.execute(update(conversation).where(conversation.c.id == conversation_id)
               .values(duration=float(seconds)))


def segment_speakers(tx: Tx, conversation_id: int) -> dict[int, int | None]:
    """segment id -> speaker id, for every segment of the conversation."""
    # Plain tuples, in the select's column order: a long session holds thousands.
    return {int(segment_id): (None if speaker_id is None else int(speaker_id))
            for segment_id, speaker_id in tx.stream(
                select(segment_table.c.id.label("segment_id"), segment_table.c.speaker_id)
                .where(segment_table.c.conversation_id == conversation_id)
            )}


def move_voice(tx: Tx, conversation_id: int, voice: int, speaker_id: int) -> list[int]:
    """The session recognised a voice it first stored as a new unknown: its automatically
    labelled segments move to `speaker_id`; the unknown goes when nothing is left of it.
    Returns the moved segment ids."""
    rows = tx.rows(select(segment_table.c.id, segment_table.c.speaker_id).where(
        segment_table.c.conversation_id == conversation_id,
        segment_table.c.local_speaker == f"{LIVE_LABEL_PREFIX}{voice}",
        segment_table.c.assignment_source == "auto", segment_table.c.speaker_id != speaker_id,
    ).order_by(segment_table.c.id))
    if not rows or get_row(tx, speaker_id) is None:
        return []
    moved = [int(r.id) for r in rows]
    tx.execute(update(segment_table).where(in_ids(segment_table.c.id, moved))
               .values(speaker_id=speaker_id))
    for old in {int(r.speaker_id) for r in rows if r.speaker_id is not None}:
        drop_empty_unknown(tx, old)
    return moved


def finalise(
    ctx: Ctx, index: SearchIndex, conversation_id: int, result: PipelineResultLike
) -> Ingested:
    """Replace the live segments with the offline result (see the module's docstring)."""
    tx = ctx.tx
    require_open(tx, conversation_id)
    rows = tx.rows(SELECT_LIVE_SEGMENTS.where(segment_table.c.conversation_id == conversation_id))
    live = [_LiveRow(int(r.id), float(r.start), float(r.end),
                     None if r.speaker_id is None else int(r.speaker_id),
                     r.assignment_source == "manual", int(r.excluded_from_profile))
            for r in rows]
    segments = list(result.segments)
    priors = _priors(tx, live, segments)
    ids = _reused_ids(live, segments)

    remove_transcript(tx, index, conversation_id, [row.id for row in live])
    fresh = _next_ids(tx, sum(1 for i in ids if i is None))
    segment_ids = [i if i is not None else next(fresh) for i in ids]
    done = ingest(ctx, index, conversation_id, result, segment_ids=segment_ids, priors=priors)

    by_id = {row.id: row for row in live}
    for segment_id in segment_ids:
        was = by_id.get(segment_id)
        if was is not None and was.manual and was.speaker_id is not None \
                and get_row(tx, was.speaker_id) is not None:
            tx.execute(update(segment_table).where(segment_table.c.id == segment_id).values(
                speaker_id=was.speaker_id, assignment_source="manual", speaker_confidence=1.0,
                excluded_from_profile=was.excluded,
            ))
    for speaker_id in sorted({row.speaker_id for row in live if row.speaker_id is not None}):
        drop_empty_unknown(tx, speaker_id)
    tx.execute(delete(live_session).where(live_session.c.conversation_id == conversation_id))
    ctx.cache.refresh(tx, [d.speaker_id for d in done.decisions])
    return done


@dataclass(frozen=True)
class _LiveRow:
    id: int
    start: float
    end: float
    speaker_id: int | None
    manual: bool
    excluded: int


def _overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def _reused_ids(live: Sequence[_LiveRow], segments: Sequence[SegmentLike]) -> list[int | None]:
    """For each offline segment, the live segment id it takes over (None: a new id). Pairs
    are taken by overlap, largest first, each id and each segment once."""
    pairs = []
    for i, segment in enumerate(segments):
        start, end = float(segment.start), float(segment.end)
        for row in live:
            overlap = _overlap(start, end, row.start, row.end)
            if overlap > 0:
                pairs.append((-overlap, i, row.id))
    taken: set[int] = set()
    ids: list[int | None] = [None] * len(segments)
    for _, i, segment_id in sorted(pairs):
        if ids[i] is None and segment_id not in taken:
            ids[i] = segment_id
            taken.add(segment_id)
    return ids


def _priors(tx: Tx, live: Sequence[_LiveRow], segments: Sequence[SegmentLike]) -> dict[str, Prior]:
    """Per offline cluster, the live speaker heard most in its time: 'chosen' when a person
    gave that speaker to some of these live segments (manual) or named the voice during the
    session (a named speaker with no voice profile yet), else 'shown'."""
    heard: dict[str, dict[int, float]] = {}
    for segment in segments:
        label = segment.local_speaker
        if label is None:
            continue
        start, end = float(segment.start), float(segment.end)
        for row in live:
            if row.speaker_id is not None:
                overlap = _overlap(start, end, row.start, row.end)
                if overlap > 0:
                    tally = heard.setdefault(str(label), {})
                    tally[row.speaker_id] = tally.get(row.speaker_id, 0.0) + overlap
    manual = {row.speaker_id for row in live if row.manual}
    priors: dict[str, Prior] = {}
    used: set[int] = set()
    ranked = sorted(((seconds, label, speaker_id) for label, tally in heard.items()
                     for speaker_id, seconds in tally.items()), reverse=True)
    for _, label, speaker_id in ranked:
        if label in priors or speaker_id in used:
            continue
        used.add(speaker_id)
        speaker = get_row(tx, speaker_id)
        if speaker is None:
            continue
        named_live = speaker.kind == "enrolled" and not holds(tx, voiceprint, speaker_id)
        if speaker_id in manual or named_live:
            priors[label] = Prior(chosen=speaker_id)
        else:
            priors[label] = Prior(shown=speaker_id)
    return priors


def _next_ids(tx: Tx, count: int) -> Iterator[int]:
    first = next_segment_id(tx)
    return iter(range(first, first + count))
