"""Read side: speakers with their statistics, conversations, segments and search hits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memory import turns
from memory.conversations import CONVERSATION_COLUMNS, conversation_info, get_conversation_row
from memory.db import Tx
from memory.errors import SegmentNotFound
from memory.identity import no_segment_message
from memory.speakers import SELECT_SPEAKER, info, infos
from memory.tables import speaker
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

SEGMENT_COLUMNS = (
    "s.id, s.conversation_id, s.start, s.\"end\", c.text, s.speaker_id, s.speaker_confidence,"
    " s.assignment_source, s.excluded_from_profile, s.emotion, s.emotion_confidence, c.words,"
    " s.local_speaker"
)
SEGMENT_FROM = "segment s JOIN segment_content c ON c.segment_id = s.id"
CONVERSATION_TIME = "COALESCE(recorded_at, created_at)"


def segment_views(
    tx: Tx, rows: Sequence[tuple[Any, ...]], with_words: bool = True
) -> list[SegmentView]:
    over = turns.overlapping_speakers(tx, [
        turns.Span(int(r[0]), int(r[1]), float(r[2]), float(r[3]), r[12],
                   None if r[5] is None else int(r[5]))
        for r in rows
    ])
    speakers = infos(tx, [r[5] for r in rows if r[5] is not None]
                     + [sid for ids in over.values() for sid in ids])
    return [_segment_view(r, speakers, with_words, over.get(int(r[0]), [])) for r in rows]


def _segment_view(
    row: tuple[Any, ...], speakers: dict[int, SpeakerInfo], with_words: bool,
    overlapped_by: list[int],
) -> SegmentView:
    words = [Word(str(w[0]), float(w[1]), float(w[2]), float(w[3]))
             for w in json.loads(row[11])] if with_words else []
    return SegmentView(
        id=int(row[0]), conversation_id=int(row[1]), start=float(row[2]), end=float(row[3]),
        text=row[4], speaker=None if row[5] is None else speakers.get(int(row[5])),
        speaker_confidence=row[6], assignment_source=row[7],
        excluded_from_profile=bool(row[8]), emotion=row[9], emotion_confidence=row[10],
        words=words, local_speaker=row[12],
        overlapped_by=[speakers[sid] for sid in overlapped_by],
    )


def segments_by_ids(tx: Tx, ids: Sequence[int]) -> dict[int, SegmentView]:
    if not ids:
        return {}
    rows = tx.all(
        f"SELECT {SEGMENT_COLUMNS} FROM {SEGMENT_FROM}"
        " WHERE s.id IN (SELECT value FROM json_each(?))",
        ("[" + ",".join(str(int(i)) for i in ids) + "]",),
    )
    return {v.id: v for v in segment_views(tx, rows)}


def get_segment(tx: Tx, segment_id: int) -> SegmentView:
    found = segments_by_ids(tx, [segment_id])
    if segment_id not in found:
        raise SegmentNotFound(no_segment_message(tx, segment_id))
    return found[segment_id]


def list_speakers(tx: Tx, kind: SpeakerKind | None) -> list[SpeakerSummary]:
    chosen = SELECT_SPEAKER.where(speaker.c.kind == kind) if kind else SELECT_SPEAKER
    rows = tx.rows(chosen.order_by(speaker.c.id))
    stats = {int(r[0]): r[1:] for r in tx.all(
        "SELECT s.speaker_id, count(*), count(DISTINCT s.conversation_id),"
        " SUM(s.\"end\" - s.start), MAX(COALESCE(c.recorded_at, c.created_at))"
        " FROM segment s JOIN conversation c ON c.id = s.conversation_id"
        " WHERE s.speaker_id IS NOT NULL GROUP BY s.speaker_id"
    )}
    prints = {int(r[0]): int(r[1]) for r in tx.all(
        "SELECT speaker_id, count(*) FROM voiceprint GROUP BY speaker_id"
    )}
    out: list[SpeakerSummary] = []
    for row in rows:
        sid = int(row[0])
        segs, convs, seconds, last = stats.get(sid, (0, 0, 0.0, None))
        out.append(SpeakerSummary(
            speaker=info(row), segment_count=int(segs), conversation_count=int(convs),
            speech_seconds=float(seconds or 0.0), last_heard=from_db(last),
            voiceprint_count=prints.get(sid, 0),
        ))
    return out


def list_conversations(
    tx: Tx, *, limit: int, offset: int, speaker_id: int | None,
    since: datetime | None, until: datetime | None,
) -> Page[ConversationSummary]:
    parts: list[str] = []
    params: list[Any] = []
    if speaker_id is not None:
        parts.append("id IN (SELECT DISTINCT conversation_id FROM segment WHERE speaker_id = ?)")
        params.append(speaker_id)
    if since is not None:
        parts.append(f"{CONVERSATION_TIME} >= ?")
        params.append(to_db(since))
    if until is not None:
        parts.append(f"{CONVERSATION_TIME} <= ?")
        params.append(to_db(until))
    where = ("WHERE " + " AND ".join(parts)) if parts else ""
    total = int(tx.scalar(f"SELECT count(*) FROM conversation {where}", params))
    rows = tx.all(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversation {where}"
        f" ORDER BY {CONVERSATION_TIME} DESC, id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return Page(items=[summary(tx, r) for r in rows], total=total, limit=limit, offset=offset)


def conversation_titles(tx: Tx) -> list[tuple[int, str]]:
    """(id, title) of every conversation, newest first (two columns: cheap even for many)."""
    rows = tx.all(f"SELECT id, title FROM conversation ORDER BY {CONVERSATION_TIME} DESC, id DESC")
    return [(int(r[0]), str(r[1])) for r in rows]


def summary(tx: Tx, row: Sequence[Any]) -> ConversationSummary:
    conversation = conversation_info(row)
    stats = tx.all(
        "SELECT speaker_id, count(*) FROM segment WHERE conversation_id = ? GROUP BY speaker_id",
        (conversation.id,),
    )
    speakers = infos(tx, [r[0] for r in stats if r[0] is not None])
    return ConversationSummary(
        conversation=conversation,
        segment_count=sum(int(r[1]) for r in stats),
        speakers=[speakers[k] for k in sorted(speakers)],
    )


def get_conversation(tx: Tx, conversation_id: int) -> ConversationDetail:
    row = get_conversation_row(tx, conversation_id)
    rows = tx.all(
        f"SELECT {SEGMENT_COLUMNS} FROM {SEGMENT_FROM} WHERE s.conversation_id = ?"
        " ORDER BY s.start, s.id",
        (conversation_id,),
    )
    return ConversationDetail(conversation_info(row), segment_views(tx, rows),
                              speaker_turns(tx, conversation_id))


EXAMPLE_CANDIDATES = 3
"""A speaker's longest segments checked for someone talking over them, to pick its example."""


def speaker_tallies(tx: Tx, conversation_id: int) -> list[SpeakerTally]:
    """The conversation's speakers, most segments first, each with its segment count and its
    example segment; reads counts and a few candidates, not the whole transcript."""
    get_conversation_row(tx, conversation_id)
    counts = tx.all(
        "SELECT speaker_id, COUNT(*) FROM segment WHERE conversation_id = ?"
        " AND speaker_id IS NOT NULL GROUP BY speaker_id ORDER BY COUNT(*) DESC, speaker_id",
        (conversation_id,),
    )
    rows = tx.all(
        f"SELECT {SEGMENT_COLUMNS} FROM {SEGMENT_FROM} WHERE s.id IN ("
        " SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY speaker_id"
        "  ORDER BY \"end\" - start DESC, id) AS place FROM segment"
        "  WHERE conversation_id = ? AND speaker_id IS NOT NULL) WHERE place <= ?)"
        " ORDER BY s.start, s.id",
        (conversation_id, EXAMPLE_CANDIDATES),
    )
    best: dict[int, tuple[SpeakerInfo, SegmentView]] = {}
    for view in segment_views(tx, rows, with_words=False):
        if view.speaker is None:
            continue
        held = best.get(view.speaker.id)
        if held is None or _shows_voice_better(view, held[1]):
            best[view.speaker.id] = (view.speaker, view)
    return [SpeakerTally(best[int(sid)][0], int(n), best[int(sid)][1]) for sid, n in counts]


def speaker_example(tx: Tx, speaker_id: int) -> SegmentView | None:
    """The speaker's segment that shows the voice best across every conversation (a sample to
    play): of its longest few, the one nobody talks over. None when no segment is left."""
    rows = tx.all(
        f"SELECT {SEGMENT_COLUMNS} FROM {SEGMENT_FROM} WHERE s.speaker_id = ?"
        " ORDER BY s.\"end\" - s.start DESC, s.id LIMIT ?",
        (speaker_id, EXAMPLE_CANDIDATES),
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
    out: list[tuple[Any, ...]] = []
    offset = 0
    while len(out) < limit:
        if conversation_id is None:
            batch = [int(r[0]) for r in tx.all(
                f"SELECT id FROM conversation ORDER BY {CONVERSATION_TIME} DESC, id DESC"
                " LIMIT 20 OFFSET ?", (offset,),
            )]
            offset += 20
            if not batch:
                break
            conversations = batch
        for cid in conversations:
            out += tx.all(
                f"SELECT {SEGMENT_COLUMNS} FROM {SEGMENT_FROM} WHERE s.conversation_id = ?"
                " ORDER BY s.start DESC, s.id DESC LIMIT ?",
                (cid, limit - len(out)),
            )
            if len(out) >= limit:
                break
        if conversation_id is not None:
            break
    return segment_views(tx, out[:limit])


def hits(tx: Tx, scored: Sequence[tuple[int, float]]) -> list[SearchHit]:
    views = segments_by_ids(tx, [sid for sid, _ in scored])
    conversations = {int(r[0]): (r[1], from_db(r[2])) for r in tx.all(
        f"SELECT id, title, {CONVERSATION_TIME} FROM conversation"
        " WHERE id IN (SELECT value FROM json_each(?))",
        ("[" + ",".join(str(v.conversation_id) for v in views.values()) + "]",),
    )}
    out: list[SearchHit] = []
    for sid, score in scored:
        view = views.get(sid)
        if view is None:
            continue
        title, recorded = conversations[view.conversation_id]
        out.append(SearchHit(view, title, recorded, score))
    return out
