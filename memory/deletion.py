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

import json
from dataclasses import dataclass

from memory.conversations import conversation_info, get_conversation_row
from memory.db import Tx
from memory.identity import Ctx, drop_empty_unknown
from memory.search_index import SearchIndex
from memory.speakers import SpeakerRow
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
    conversation = conversation_info(get_conversation_row(tx, conversation_id))
    segment_rows = tx.all(
        "SELECT id, speaker_id FROM segment WHERE conversation_id = ? ORDER BY id",
        (conversation_id,),
    )
    ids_json = "[" + ",".join(str(int(r[0])) for r in segment_rows) + "]"
    print_owners = tx.all(
        "SELECT DISTINCT speaker_id FROM voiceprint WHERE conversation_id = ?"
        " OR segment_id IN (SELECT value FROM json_each(?))",
        (conversation_id, ids_json),
    )
    affected = {int(r[1]) for r in segment_rows if r[1] is not None}
    affected |= {int(r[0]) for r in print_owners}

    voiceprints = tx.run(
        "DELETE FROM voiceprint WHERE conversation_id = ?"
        " OR segment_id IN (SELECT value FROM json_each(?))",
        (conversation_id, ids_json),
    )
    remove_transcript(tx, index, conversation_id, ids_json)
    tx.run("DELETE FROM conversation WHERE id = ?", (conversation_id,))

    removed: list[SpeakerRow] = []
    for speaker_id in sorted(affected):
        # An unknown left with nothing was heard only in this conversation.
        row = drop_empty_unknown(tx, speaker_id)
        if row is not None:
            removed.append(row)
    changed = sorted(affected - {int(r[0]) for r in removed})
    recompute_centroids(tx, changed)
    ctx.cache.refresh(tx, affected)
    return Removed(conversation, len(segment_rows), voiceprints, removed, changed)



def remove_transcript(
    tx: Tx, index: SearchIndex, conversation_id: int, segment_ids_json: str
) -> None:
    """Delete a conversation's segments (a JSON list of all their ids) with their text, index
    rows and vectors, and its clusters and diarization turns; voiceprints are the caller's."""
    segment_ids = [int(i) for i in json.loads(segment_ids_json)]
    index.remove_text(tx, segment_ids)  # needs segment_content's text: before it goes
    index.remove_vectors(tx, segment_ids)
    for table in ("segment_voice", "segment_content"):
        tx.run(f"DELETE FROM {table} WHERE segment_id IN (SELECT value FROM json_each(?))",
               (segment_ids_json,))
    for table in ("segment", "local_cluster", "diarization_turn"):
        tx.run(f"DELETE FROM {table} WHERE conversation_id = ?", (conversation_id,))
