"""Read side: speakers with their statistics, conversations, segments and search hits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select

from memory import turns
from memory.conversations import (
    SELECT_CONVERSATION,
    ConversationRow,
    conversation_info,
    get_conversation_row,
)
from memory.db import Tx
from memory.errors import SegmentNotFound
from memory.identity import no_segment_message
from memory.speakers import SELECT_SPEAKER, info, infos
from memory.sql import in_ids
from memory.tables import conversation, segment, segment_content, speaker, voiceprint
from memory.timeutil import from_db, to_db
from memory.types import (
    ConversationDetail,
    ConversationSummary,
    Page,
    SearchHit,
    SegmentView,
    SpeakerInfo,
    SpeakerKind,
    SpeakerSummary,
    SpeakerTally,
    SpeakerTurn,
    Word,
)

SELECT_SEGMENT = select(
    segment.c.id, segment.c.conversation_id, segment.c.start, segment.c.end,
    segment_content.c.text, segment.c.speaker_id, segment.c.speaker_confidence,
    segment.c.assignment_source, segment.c.excluded_from_profile, segment.c.emotion,
    segment.c.emotion_confidence, segment_content.c.words, segment.c.local_speaker,
).select_from(segment.join(segment_content, segment_content.c.segment_id == segment.c.id))
"""A segment with its text: what a SegmentView is made from."""
SegmentRow = Row[Any]
conversation_time = func.coalesce(conversation.c.recorded_at, conversation.c.created_at)
"""When a conversation happened: recorded, or else stored."""
NEWEST_FIRST = (conversation_time.desc(), conversation.c.id.desc())
SEGMENT_LENGTH = segment.c.end - segment.c.start


def segment_views(
    tx: Tx, rows: Sequence[SegmentRow], with_words: bool = True
) -> list[SegmentView]:
    over = turns.overlapping_speakers(tx, [
        turns.Span(int(r.id), int(r.conversation_id), float(r.start), float(r.end),
                   r.local_speaker, None if r.speaker_id is None else int(r.speaker_id))
        for r in rows
    ])
    speakers = infos(tx, [r.speaker_id for r in rows if r.speaker_id is not None]
                     + [sid for ids in over.values() for sid in ids])
    return [_segment_view(r, speakers, with_words, over.get(int(r.id), [])) for r in rows]


def _segment_view(
    row: SegmentRow, speakers: dict[int, SpeakerInfo], with_words: bool,
    overlapped_by: list[int],
) -> SegmentView:
    words = [Word(str(word), float(start), float(end), float(probability))
             for word, start, end, probability in json.loads(row.words)] if with_words else []
    return SegmentView(
        id=int(row.id), conversation_id=int(row.conversation_id), start=float(row.start),
        end=float(row.end), text=row.text,
        speaker=None if row.speaker_id is None else speakers.get(int(row.speaker_id)),
        speaker_confidence=row.speaker_confidence, assignment_source=row.assignment_source,
        excluded_from_profile=bool(row.excluded_from_profile), emotion=row.emotion,
        emotion_confidence=row.emotion_confidence, words=words,
        local_speaker=row.local_speaker,
        overlapped_by=[speakers[sid] for sid in overlapped_by],
    )


def segments_by_ids(tx: Tx, ids: Sequence[int]) -> dict[int, SegmentView]:
    if not ids:
        return {}
    rows = tx.rows(SELECT_SEGMENT.where(in_ids(segment.c.id, ids)))
    return {v.id: v for v in segment_views(tx, rows)}


def get_segment(tx: Tx, segment_id: int) -> SegmentView:
    found = segments_by_ids(tx, [segment_id])
    if segment_id not in found:
        raise SegmentNotFound(no_segment_message(tx, segment_id))
    return found[segment_id]


def list_speakers(tx: Tx, kind: SpeakerKind | None) -> list[SpeakerSummary]:
    chosen = SELECT_SPEAKER.where(speaker.c.kind == kind) if kind else SELECT_SPEAKER
    rows = tx.rows(chosen.order_by(speaker.c.id))
    stats = {int(r.speaker_id): r for r in tx.rows(SPEAKER_STATS)}
    prints = {int(r.speaker_id): int(r.prints) for r in tx.rows(VOICEPRINT_COUNTS)}
    out: list[SpeakerSummary] = []
    for row in rows:
        sid = int(row.id)
        stat = stats.get(sid)
        out.append(SpeakerSummary(
            speaker=info(row),
            segment_count=0 if stat is None else int(stat.segments),
            conversation_count=0 if stat is None else int(stat.conversations),
            speech_seconds=0.0 if stat is None else float(stat.seconds or 0.0),
            last_heard=None if stat is None else from_db(stat.last_heard),
            voiceprint_count=prints.get(sid, 0),
        ))
    return out


SPEAKER_STATS = (
    select(segment.c.speaker_id, func.count().label("segments"),
           func.count(segment.c.conversation_id.distinct()).label("conversations"),
           func.sum(SEGMENT_LENGTH).label("seconds"),
           func.max(conversation_time).label("last_heard"))
    .select_from(segment.join(conversation, conversation.c.id == segment.c.conversation_id))
    .where(segment.c.speaker_id.is_not(None))
    .group_by(segment.c.speaker_id)
)
VOICEPRINT_COUNTS = select(
    voiceprint.c.speaker_id, func.count().label("prints")
).group_by(voiceprint.c.speaker_id)


def list_conversations(
    tx: Tx, *, limit: int, offset: int, speaker_id: int | None,
    since: datetime | None, until: datetime | None,
) -> Page[ConversationSummary]:
    chosen: list[ColumnElement[bool]] = []
    if speaker_id is not None:
        chosen.append(conversation.c.id.in_(
            select(segment.c.conversation_id).distinct()
            .where(segment.c.speaker_id == speaker_id)
        ))
    if since is not None:
        chosen.append(conversation_time >= to_db(since))
    if until is not None:
        chosen.append(conversation_time <= to_db(until))
    total = int(tx.value(select(func.count()).select_from(conversation).where(*chosen)))
    rows = tx.rows(
        SELECT_CONVERSATION.where(*chosen).order_by(*NEWEST_FIRST).limit(limit).offset(offset)
    )
    return Page(items=[summary(tx, r) for r in rows], total=total, limit=limit, offset=offset)


def conversation_titles(tx: Tx) -> list[tuple[int, str]]:
    """(id, title) of every conversation, newest first (two columns: cheap even for many)."""
    rows = tx.rows(select(conversation.c.id, conversation.c.title).order_by(*NEWEST_FIRST))
    return [(int(r.id), str(r.title)) for r in rows]


def summary(tx: Tx, row: ConversationRow) -> ConversationSummary:
    held = conversation_info(row)
    stats = tx.rows(
        select(segment.c.speaker_id, func.count().label("segments"))
        .where(segment.c.conversation_id == held.id).group_by(segment.c.speaker_id)
    )
    speakers = infos(tx, [r.speaker_id for r in stats if r.speaker_id is not None])
    return ConversationSummary(
        conversation=held,
        segment_count=sum(int(r.segments) for r in stats),
        speakers=[speakers[k] for k in sorted(speakers)],
    )


def get_conversation(tx: Tx, conversation_id: int) -> ConversationDetail:
    row = get_conversation_row(tx, conversation_id)
    rows = tx.rows(
        SELECT_SEGMENT.where(segment.c.conversation_id == conversation_id)
        .order_by(segment.c.start, segment.c.id)
    )
    return ConversationDetail(conversation_info(row), segment_views(tx, rows),
                              speaker_turns(tx, conversation_id))


EXAMPLE_CANDIDATES = 3
"""A speaker's longest segments checked for someone talking over them, to pick its example."""


def speaker_tallies(tx: Tx, conversation_id: int) -> list[SpeakerTally]:
    """The conversation's speakers, most segments first, each with its segment count and its
    example segment; reads counts and a few candidates, not the whole transcript."""
    get_conversation_row(tx, conversation_id)
    heard = (segment.c.conversation_id == conversation_id, segment.c.speaker_id.is_not(None))
    counts = tx.rows(
        select(segment.c.speaker_id, func.count().label("segments")).where(*heard)
        .group_by(segment.c.speaker_id).order_by(func.count().desc(), segment.c.speaker_id)
    )
    ranked = select(
        segment.c.id,
        func.row_number().over(
            partition_by=segment.c.speaker_id, order_by=(SEGMENT_LENGTH.desc(), segment.c.id)
        ).label("place"),
    ).where(*heard).subquery("ranked")
    longest = select(ranked.c.id).where(ranked.c.place <= EXAMPLE_CANDIDATES)
    rows = tx.rows(
        SELECT_SEGMENT.where(segment.c.id.in_(longest)).order_by(segment.c.start, segment.c.id)
    )
    best: dict[int, tuple[SpeakerInfo, SegmentView]] = {}
    for view in segment_views(tx, rows, with_words=False):
        if view.speaker is None:
            continue
        held = best.get(view.speaker.id)
        if held is None or _shows_voice_better(view, held[1]):
            best[view.speaker.id] = (view.speaker, view)
    return [SpeakerTally(best[int(r.speaker_id)][0], int(r.segments), best[int(r.speaker_id)][1])
            for r in counts]


def speaker_example(tx: Tx, speaker_id: int) -> SegmentView | None:
    """The speaker's segment that shows the voice best across every conversation (a sample to
    play): of its longest few, the one nobody talks over. None when no segment is left."""
    rows = tx.rows(
        SELECT_SEGMENT.where(segment.c.speaker_id == speaker_id)
        .order_by(SEGMENT_LENGTH.desc(), segment.c.id).limit(EXAMPLE_CANDIDATES)
    )
    best: SegmentView | None = None
    for view in segment_views(tx, rows, with_words=False):
        if best is None or _shows_voice_better(view, best):
            best = view
    return best


def _shows_voice_better(segment: SegmentView, than: SegmentView) -> bool:
    """Alone beats overlapped; then longer beats shorter; then earlier."""
    def key(s: SegmentView) -> tuple[bool, float, float]:
        return not s.overlapped_by, s.end - s.start, -s.start

    return key(segment) > key(than)


def speaker_turns(tx: Tx, conversation_id: int) -> list[SpeakerTurn]:
    """The conversation's diarization, each turn with the speaker its label resolves to now."""
    rows = turns.load(tx, conversation_id)
    if not rows:
        return []
    of_label = turns.label_speakers(tx, conversation_id)
    speakers = infos(tx, list(of_label.values()))
    return [SpeakerTurn(start, end, label,
                        speakers.get(of_label[label]) if label in of_label else None)
            for label, start, end in rows]


def latest_segments(tx: Tx, limit: int, conversation_id: int | None) -> list[SegmentView]:
    """The most recent segments: newest conversations first, latest segments first."""
    if conversation_id is not None:
        get_conversation_row(tx, conversation_id)
        conversations = [conversation_id]
    else:
        conversations = []
    out: list[SegmentRow] = []
    offset = 0
    while len(out) < limit:
        if conversation_id is None:
            batch = [int(r.id) for r in tx.rows(
                select(conversation.c.id).order_by(*NEWEST_FIRST).limit(20).offset(offset)
            )]
            offset += 20
            if not batch:
                break
            conversations = batch
        for cid in conversations:
            out += tx.rows(
                SELECT_SEGMENT.where(segment.c.conversation_id == cid)
                .order_by(segment.c.start.desc(), segment.c.id.desc()).limit(limit - len(out))
            )
            if len(out) >= limit:
                break
        if conversation_id is not None:
            break
    return segment_views(tx, out[:limit])


def hits(tx: Tx, scored: Sequence[tuple[int, float]]) -> list[SearchHit]:
    views = segments_by_ids(tx, [sid for sid, _ in scored])
    conversations = {int(r.id): (r.title, from_db(r.time)) for r in tx.rows(
        select(conversation.c.id, conversation.c.title, conversation_time.label("time"))
        .where(in_ids(conversation.c.id, [v.conversation_id for v in views.values()]))
    )}
    out: list[SearchHit] = []
    for sid, score in scored:
        view = views.get(sid)
        if view is None:
            continue
        title, recorded = conversations[view.conversation_id]
        out.append(SearchHit(view, title, recorded, score))
    return out
