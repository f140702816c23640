"""Deleting a conversation for good: its segments and everything hanging off them (text
index rows, text and voice vectors, diarization turns, clusters), the voice samples learnt from
it, and the unknown speakers heard only there.

Final, not an identity event: the rows are gone (a failed upload's 512 MB and a conversation
the user wants forgotten should not linger for an undo). Speakers who lose voice samples get
their centroids recomputed, as after any identity change. Earlier identity events whose undo
would need the deleted rows refuse it with UndoConflict (memory.events), so nothing points at a
deleted row afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, or_, select

from memory.conversations import conversation_info, get_conversation_row
from memory.db import Tx
from memory.identity import Ctx, drop_empty_unknown
from memory.search_index import SearchIndex
from memory.speakers import SpeakerRow
from memory.sql import in_ids
from memory.tables import (
    conversation,
    diarization_turn,
    local_cluster,
    segment,
    segment_content,
    segment_voice,
    voiceprint,
)
from memory.types import ConversationInfo
from memory.voiceprints import recompute_centroids


@dataclass(frozen=True)
class Removed:
    conversation: ConversationInfo
    segments: int
    voiceprints: int
    speakers_removed: list[SpeakerRow]
    """Speaker rows, as they were, of the unknowns deleted with the conversation."""
    speakers_changed: list[int]


def delete_conversation(ctx: Ctx, index: SearchIndex, conversation_id: int) -> Removed:
    """Delete the conversation and what hangs off it, in the caller's transaction."""
    tx = ctx.tx
    info = conversation_info(get_conversation_row(tx, conversation_id))
    segment_ids: list[int] = []
    affected: set[int] = set()
    for segment_id, speaker_id in tx.stream(
        select(segment.c.id, segment.c.speaker_id)
        .where(segment.c.conversation_id == conversation_id).order_by(segment.c.id)
    ):
        segment_ids.append(int(segment_id))
        if speaker_id is not None:
            affected.add(int(speaker_id))
    learnt_here = or_(voiceprint.c.conversation_id == conversation_id,
                      in_ids(voiceprint.c.segment_id, segment_ids))
    affected |= {int(r.speaker_id) for r in tx.rows(
        select(voiceprint.c.speaker_id).distinct().where(learnt_here)
    )}

    voiceprints = tx.execute(delete(voiceprint).where(learnt_here))
    remove_transcript(tx, index, conversation_id, segment_ids)
    tx.execute(delete(conversation).where(conversation.c.id == conversation_id))

    removed: list[SpeakerRow] = []
    for speaker_id in sorted(affected):
        # An unknown left with nothing was heard only in this conversation.
        row = drop_empty_unknown(tx, speaker_id)
        if row is not None:
            removed.append(row)
    changed = sorted(affected - {int(r.id) for r in removed})
    recompute_centroids(tx, changed)
    ctx.cache.refresh(tx, affected)
    return Removed(info, len(segment_ids), voiceprints, removed, changed)


def remove_transcript(
    tx: Tx, index: SearchIndex, conversation_id: int, segment_ids: Sequence[int]
) -> None:
    """Delete a conversation's segments (all their ids) with their text, index rows and
    vectors, and its clusters and diarization turns; voiceprints are the caller's."""
    index.remove_text(tx, segment_ids)  # needs segment_content's text: before it goes
    index.remove_vectors(tx, segment_ids)
    for by_segment in (segment_voice, segment_content):
        tx.execute(delete(by_segment).where(in_ids(by_segment.c.segment_id, segment_ids)))
    for by_conversation in (segment, local_cluster, diarization_turn):
        tx.execute(delete(by_conversation)
                   .where(by_conversation.c.conversation_id == conversation_id))
