"""Undo restores the exact previous rows of every identity action."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memory import SpeakerMemory
from memory.errors import EventNotFound, InvalidOperation, UndoConflict
from tests.memory.fakes import VOICE_MODEL, Voices, make_result
from tests.memory.state import centroids, snapshot


def populated(store: SpeakerMemory, voices: Voices) -> list[int]:
    store.enroll("Bob", voices.clips("bob", 3), VOICE_MODEL, "bob.wav", 20.0)
    segment_ids: list[int] = []
    for seed, names in enumerate([["ann", "bob"], ["carl", "ann"], ["ann", "dora", "bob"]]):
        conversation = store.create_conversation(title=f"c{seed}")
        segment_ids += store.ingest(
            conversation.id, make_result(voices, names, 6, seed=seed)
        ).segment_ids
    return segment_ids


ACTIONS: dict[str, Callable[[SpeakerMemory, list[int]], object]] = {
    "identify-new-name": lambda s, ids: s.identify("Ann", segment_id=ids[0]),
    "identify-existing-name": lambda s, ids: s.identify("Bob", speaker="Unknown 1"),
    "identify-move-segment": lambda s, ids: s.identify("Eve", segment_id=ids[1]),
    "rename": lambda s, ids: s.rename("Unknown 2", "Carl"),
    "merge": lambda s, ids: s.merge("Unknown 2", "Unknown 1"),
    "misidentify-to": lambda s, ids: s.mark_misidentified(ids[0], "Bob"),
    "misidentify-auto": lambda s, ids: s.mark_misidentified(ids[0]),
    "delete": lambda s, ids: s.delete_speaker("Bob"),
    "delete-unknown": lambda s, ids: s.delete_unknown_speakers(),
    "enroll-new": lambda s, ids: s.enroll("Zed", [[1.0] + [0.0] * 255], VOICE_MODEL, "z"),
    "enroll-existing": lambda s, ids: s.enroll("Bob", [[0.0] * 255 + [1.0]], VOICE_MODEL, "b2"),
    "reprocess": lambda s, ids: s.reprocess(1),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_undo_restores_exact_rows(
    store: SpeakerMemory, voices: Voices, action: str
) -> None:
    ids = populated(store, voices)
    before = snapshot(store.db_path)
    before_centroids = centroids(store.db_path)
    ACTIONS[action](store, ids)
    assert snapshot(store.db_path) != before
    change = store.undo()
    assert change.action == "undo"
    assert snapshot(store.db_path) == before
    after_centroids = centroids(store.db_path)
    assert after_centroids.keys() == before_centroids.keys()
    assert {k: v[0] for k, v in after_centroids.items()} == {
        k: v[0] for k, v in before_centroids.items()}
    assert store.identity_history(1)[0].undone


def test_merge_then_undo_is_a_no_op_for_search_and_queries(
    store: SpeakerMemory, voices: Voices
) -> None:
    populated(store, voices)
    speakers = store.list_speakers()
    conversations = store.list_conversations()
    store.merge("Unknown 1", "Bob")
    store.undo()
    assert store.list_speakers() == speakers
    assert store.list_conversations() == conversations


def test_undo_by_id_and_errors(store: SpeakerMemory, voices: Voices) -> None:
    with pytest.raises(EventNotFound, match="nothing to undo"):
        store.undo()
    with pytest.raises(EventNotFound, match="no identity event 4; there are no identity events"):
        store.undo(4)
    populated(store, voices)
    first = store.rename("Unknown 1", "Ann").event_id
    store.rename("Unknown 2", "Carl")
    assert store.undo(first).event_id == first  # independent speakers: fine out of order
    with pytest.raises(InvalidOperation, match=f"event {first} \\(rename\\) was already undone"):
        store.undo(first)
    with pytest.raises(EventNotFound, match="the latest event id is 3"):
        store.undo(99)
    history = store.identity_history()
    assert [(e.action, e.undone) for e in history] == [
        ("rename", False), ("rename", True), ("enroll", False)]


def test_undo_conflict_when_later_event_touched_same_speakers(
    store: SpeakerMemory, voices: Voices
) -> None:
    populated(store, voices)
    rename = store.rename("Unknown 1", "Ann").event_id
    merge = store.merge("Ann", "Bob").event_id
    before = snapshot(store.db_path)
    with pytest.raises(UndoConflict, match=f"later event {merge} \\(merge\\) changed the same"):
        store.undo(rename)
    assert snapshot(store.db_path) == before
    store.undo(merge)
    store.undo(rename)
    assert store.resolve_speaker("Unknown 1").name is None


def test_undo_conflict_when_rows_changed_outside_events(
    store: SpeakerMemory, voices: Voices, tmp_path: Path
) -> None:
    ids = populated(store, voices)
    store.delete_speaker("Unknown 1")
    # A later identify of one of the now-unassigned segments moves it to a new speaker.
    store.identify("Fay", segment_id=ids[0])
    event = store.identity_history()[1]
    assert event.action == "delete"
    with pytest.raises(UndoConflict):
        store.undo(event.id)


def test_undone_name_is_free_again(store: SpeakerMemory, voices: Voices) -> None:
    populated(store, voices)
    store.rename("Unknown 1", "Ann")
    store.undo()
    assert store.rename("Unknown 2", "Ann").speakers[0].name == "Ann"
