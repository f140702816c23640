"""Deleting a conversation: every row hanging off it goes in one transaction, the profiles it
fed are recomputed, and earlier identity events that need its rows refuse to be undone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlean

from memory import SpeakerMemory
from memory.errors import ConversationNotFound, UndoConflict
from tests.memory import backends
from tests.memory.fakes import TEXT_MODEL, VOICE_MODEL, Voices, make_result, text_vector
from tests.memory.state import centroids, query, rows, snapshot
from tests.memory.test_undo import ACTIONS, populated

CONVERSATION_TABLES = ("segment", "local_cluster", "diarization_turn")
SEGMENT_TABLES = ("segment_content", "segment_voice", "segment_text_vector")


def _count(db_path: Path, sql: str, params: dict[str, object] | None = None) -> int:
    return int(query(db_path, sql, params)[0][0])


def _dangling(db_path: Path) -> list[tuple[object, ...]]:
    """Rows whose foreign keys point at nothing, and a text index that disagrees with its
    content table (integrity-check raises then). PostgreSQL enforces foreign keys in every
    statement and derives its text index from the row itself: nothing can dangle there."""
    if backends.postgres_for(db_path) is not None:
        return []
    conn = sqlean.connect(str(db_path))
    try:
        conn.execute("INSERT INTO segment_fts(segment_fts, rank) VALUES ('integrity-check', 1)")
        return [tuple(r) for r in conn.execute("PRAGMA foreign_key_check")]
    finally:
        conn.close()


def _expected_centroids(db_path: Path) -> dict[tuple[int, str], tuple[int, bytes]]:
    """Each speaker's centroid as computed afresh from its voiceprints."""
    totals: dict[tuple[int, str], list[np.ndarray]] = {}
    for row in rows(db_path, "voiceprint"):
        totals.setdefault((int(row[1]), str(row[2])), []).append(
            np.frombuffer(row[3], dtype=np.float32))
    return {key: (len(vectors), np.sum(np.vstack(vectors).astype(np.float64), axis=0).tobytes())
            for key, vectors in totals.items()}


def test_every_row_of_the_conversation_goes_and_profiles_are_recomputed(
    store: SpeakerMemory, voices: Voices
) -> None:
    populated(store, voices)  # conversation 2: carl (heard only there) and ann (everywhere)
    carl = store.resolve_speaker("Unknown 2")
    ann = store.resolve_speaker("Unknown 1")
    other_segments = _count(store.db_path, "SELECT count(*) FROM segment WHERE conversation_id"
                                           " != 2")
    deleted = store.delete_conversation(2)

    assert deleted.conversation.id == 2 and deleted.conversation.title == "c1"
    assert deleted.segments == 6 and deleted.voiceprints > 0
    assert [s.id for s in deleted.speakers_removed] == [carl.id]
    assert [s.id for s in deleted.speakers_changed] == [ann.id]
    db = store.db_path
    assert _count(db, "SELECT count(*) FROM conversation WHERE id = 2") == 0
    for table in CONVERSATION_TABLES:
        assert _count(db, f"SELECT count(*) FROM {table} WHERE conversation_id = 2") == 0, table
    assert _count(db, "SELECT count(*) FROM segment") == other_segments
    for table in SEGMENT_TABLES:
        assert _count(db, f"SELECT count(*) FROM {table}") == other_segments, table
    index = ("segment_text_bits_384_rowids" if backends.postgres_for(db) is None
             else "segment_text_embedding_384")  # the backend's own text-vector index
    assert _count(db, f"SELECT count(*) FROM {index}") == other_segments
    assert _count(db, "SELECT count(*) FROM voiceprint WHERE conversation_id = 2") == 0
    assert _count(db, "SELECT count(*) FROM speaker WHERE id = :id", {"id": carl.id}) == 0
    assert _dangling(db) == []
    assert centroids(db) == _expected_centroids(db)
    assert [c.conversation.id for c in store.list_conversations().items] == [3, 1]
    assert {s.speaker.id for s in store.list_speakers()} == {
        ann.id, store.resolve_speaker("Bob").id, store.resolve_speaker("Unknown 3").id}


def test_search_no_longer_finds_its_segments(store: SpeakerMemory, voices: Voices) -> None:
    words = ["zebra crossing tonight", "zebra stripes again"]
    kept = store.create_conversation(title="kept")
    store.ingest(kept.id, make_result(voices, ["ann"], 2, seed=1, texts=["plain budget talk"]))
    gone = store.create_conversation(title="gone", sha256="a" * 64)
    gone_ids = store.ingest(gone.id, make_result(voices, ["ann"], 2, texts=words)).segment_ids
    query = text_vector("zebra crossing tonight")
    store.warm_up()  # the RAM codes hold the segments that are about to go
    assert {h.segment.id for h in store.search_keyword("zebra")} == set(gone_ids)
    store.delete_conversation(gone.id)
    assert store.search_keyword("zebra") == []
    assert not {h.segment.id for h in store.search_semantic(query, TEXT_MODEL)} & set(gone_ids)
    assert not {h.segment.id for h in store.search_hybrid("zebra", query, TEXT_MODEL)} & set(
        gone_ids)
    # The same audio may be stored again: its fingerprint went with it.
    assert store.create_conversation(title="again", sha256="a" * 64).id > gone.id


def test_a_failed_conversation_without_segments_is_deleted(store: SpeakerMemory) -> None:
    failed = store.create_conversation(title="broken upload", audio_path="/data/audio/x.wav")
    store.set_conversation_status(failed.id, "failed", error="not audio")
    deleted = store.delete_conversation(failed.id)
    assert deleted.segments == 0 and deleted.speakers_removed == []
    assert deleted.conversation.audio_path == "/data/audio/x.wav"
    with pytest.raises(ConversationNotFound, match=f"no conversation {failed.id}"):
        store.delete_conversation(failed.id)


def test_a_speaker_named_there_keeps_its_name(store: SpeakerMemory, voices: Voices) -> None:
    populated(store, voices)
    store.rename("Unknown 2", "Carl")  # heard only in conversation 2
    deleted = store.delete_conversation(2)
    assert deleted.speakers_removed == []
    assert store.resolve_speaker("Carl").id in {s.id for s in deleted.speakers_changed}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_undoing_an_earlier_change_never_restores_deleted_rows(
    store: SpeakerMemory, voices: Voices, action: str
) -> None:
    """After a conversation is deleted, undoing an earlier identity change either works on
    what is left or raises UndoConflict and changes nothing; nothing points at a deleted row."""
    ids = populated(store, voices)
    ACTIONS[action](store, ids)
    store.delete_conversation(1)  # the conversation most actions touched (ids[0] is in it)
    before = snapshot(store.db_path)
    try:
        store.undo()
    except UndoConflict as exc:
        assert "cannot be undone" in str(exc)
        assert snapshot(store.db_path) == before
    assert _dangling(store.db_path) == []
    assert _count(store.db_path, "SELECT count(*) FROM voiceprint WHERE conversation_id = 1") == 0
    assert centroids(store.db_path) == _expected_centroids(store.db_path)


@pytest.mark.parametrize("action", ["identify-move-segment", "misidentify-to", "delete",
                                    "reprocess"])
def test_undo_that_needs_deleted_rows_says_so(
    store: SpeakerMemory, voices: Voices, action: str
) -> None:
    ids = populated(store, voices)
    ACTIONS[action](store, ids)
    event = store.identity_history(1)[0]
    store.delete_conversation(1)
    before = snapshot(store.db_path)
    with pytest.raises(UndoConflict, match=f"event {event.id} cannot be undone: it needs .*"
                                           "deleting a conversation removed since"):
        store.undo(event.id)
    assert snapshot(store.db_path) == before


def test_enrolled_prints_stay(store: SpeakerMemory, voices: Voices) -> None:
    populated(store, voices)
    bob = store.resolve_speaker("Bob")
    store.delete_conversation(1)
    store.delete_conversation(3)  # every conversation Bob was heard in
    assert store.resolve_speaker("Bob").id == bob.id
    assert _count(store.db_path, "SELECT count(*) FROM voiceprint WHERE speaker_id = :id",
                  {"id": bob.id}) > 0
    assert [v.speaker.id for v in store.enrolled_voices(VOICE_MODEL)] == [bob.id]


def test_voice_samples_of_a_deleted_conversation_are_never_put_back(
    store: SpeakerMemory, voices: Voices
) -> None:
    """A re-match of a conversation whose segments were all named by hand changes no segment:
    its undo would only put back the conversation's old voice samples."""
    conversation = store.create_conversation(title="named by hand")
    first, second = store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 2)
                                 ).segment_ids
    store.identify("Eve", segment_id=first)
    store.identify("Finn", segment_id=second)
    # Moving a segment of a named voice to another name marks it manual.
    store.identify("Finn", segment_id=first)
    store.identify("Eve", segment_id=second)
    store.reprocess(conversation.id)
    event = store.identity_history(1)[0]
    assert event.action == "reprocess"
    store.delete_conversation(conversation.id)
    before = snapshot(store.db_path)
    with pytest.raises(UndoConflict, match=f"it needs conversation {conversation.id}, which"):
        store.undo(event.id)
    assert snapshot(store.db_path) == before and _dangling(store.db_path) == []
