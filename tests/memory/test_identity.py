from __future__ import annotations

import pytest

from memory import SpeakerMemory
from memory.errors import (
    InvalidName,
    InvalidOperation,
    NameTaken,
    SegmentNotFound,
    SpeakerNotFound,
)
from memory.types import IngestResult
from tests.memory.backends import Backend
from tests.memory.fakes import VOICE_MODEL, Voices, make_result


def ingest(store: SpeakerMemory, voices: Voices, names: list[str], n: int = 6,
           seed: int = 0) -> IngestResult:
    conversation = store.create_conversation(title=f"talk {seed}")
    return store.ingest(conversation.id, make_result(voices, names, n, seed=seed))


def labels(store: SpeakerMemory, conversation_id: int) -> list[str | None]:
    return [s.speaker.label if s.speaker else None
            for s in store.get_conversation(conversation_id).segments]


# ---------------------------------------------------------------- identify


def test_identify_unknown_with_new_name_names_it_everywhere(
    store: SpeakerMemory, voices: Voices
) -> None:
    first = ingest(store, voices, ["ann", "bob"], 6, seed=1)
    second = ingest(store, voices, ["ann"], 3, seed=2)
    result = store.identify("Ann", segment_id=second.segment_ids[0])
    assert result.changed and result.event_id > 0
    assert result.speaker.name == "Ann" and result.speaker.kind == "enrolled"
    assert result.speaker.id == first.decisions[0].speaker.id
    assert (result.segments_relabelled, result.conversations_relabelled) == (6, 2)
    assert result.speakers_merged == []
    assert labels(store, first.conversation_id) == ["Ann", "Unknown 2"] * 3
    assert labels(store, second.conversation_id) == ["Ann"] * 3


def test_identify_is_idempotent(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann"], 2)
    store.identify("Ann", segment_id=result.segment_ids[0])
    again = store.identify("ann", segment_id=result.segment_ids[1])
    assert not again.changed and again.event_id == 0
    assert again.segments_relabelled == 0 and again.speaker.name == "Ann"
    assert len(store.identity_history()) == 1


def test_identify_with_existing_name_merges_the_unknown(
    store: SpeakerMemory, voices: Voices
) -> None:
    sarah = store.enroll("Sarah", voices.clips("sarah", 2), VOICE_MODEL, "enroll").speaker
    # A different voice of the same person (say, a bad phone line) stays unknown at first.
    result = ingest(store, voices, ["sarah-phone", "tom"], 4)
    unknown = result.decisions[0].speaker
    assert unknown.kind == "unknown"
    outcome = store.identify("SARAH", segment_id=result.segment_ids[0])
    assert outcome.speaker.id == sarah.id
    assert [s.label for s in outcome.speakers_merged] == [unknown.label]
    assert outcome.segments_relabelled == 2
    assert labels(store, result.conversation_id) == ["Sarah", "Unknown 2"] * 2
    with pytest.raises(SpeakerNotFound):
        store.resolve_speaker(unknown.id)


def test_identify_moves_segment_from_wrong_named_speaker(
    store: SpeakerMemory, voices: Voices
) -> None:
    store.enroll("Bob", voices.clips("bob", 2), VOICE_MODEL, "bob")
    # The diarizer merged bob and a look-alike in this recording: cluster matched Bob.
    result = ingest(store, voices, ["bob", "ann"], 6)
    wrong = result.segment_ids[2]
    assert store.get_segment(wrong).speaker is not None
    outcome = store.identify("Carla", segment_id=wrong)
    assert outcome.changed and outcome.speaker.name == "Carla"
    moved = [s for s in store.get_conversation(result.conversation_id).segments
             if s.local_speaker == "SPEAKER_00"]
    assert {s.speaker.name for s in moved if s.speaker} == {"Carla"}
    assert {s.assignment_source for s in moved} == {"manual"}
    assert outcome.segments_relabelled == 3 and outcome.conversations_relabelled == 1
    bob = store.resolve_speaker("bob")
    summary = next(s for s in store.list_speakers() if s.speaker.id == bob.id)
    assert summary.segment_count == 0 and summary.voiceprint_count > 0


def test_naming_a_voice_again_leaves_no_empty_name_behind(
    store: SpeakerMemory, voices: Voices
) -> None:
    # "That was Sarah" ... "no, Sara": the first name kept nothing and used to linger, empty.
    result = ingest(store, voices, ["ann", "bob"], 4)
    first = store.identify("Sarah", segment_id=result.segment_ids[0])
    again = store.identify("Sara", segment_id=result.segment_ids[0])
    assert again.changed and again.speaker.name == "Sara"
    assert again.speakers_removed == ["Sarah"]
    assert sorted(s.speaker.label for s in store.list_speakers()) == ["Sara", "Unknown 2"]
    with pytest.raises(SpeakerNotFound):
        store.resolve_speaker("Sarah")
    # Undo brings Sarah back with her segments, in one step.
    store.undo()
    assert store.resolve_speaker("Sarah").id == first.speaker.id
    assert labels(store, result.conversation_id) == ["Sarah", "Unknown 2"] * 2
    # An enrolled speaker stays even when a segment moves off it and leaves it without any.
    store.enroll("Bob", voices.clips("bob", 2), VOICE_MODEL, "bob")
    later = ingest(store, voices, ["bob"], 2, seed=5)
    store.identify("Carla", segment_id=later.segment_ids[0])
    assert store.resolve_speaker("Bob").name == "Bob"


def test_identify_unassigned_segment(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann"], 3)
    store.delete_speaker(result.decisions[0].speaker.id)
    outcome = store.identify("Ann", segment_id=result.segment_ids[0])
    assert outcome.speaker.name == "Ann" and outcome.segments_relabelled == 3
    assert labels(store, result.conversation_id) == ["Ann"] * 3


def test_identify_by_speaker_reference(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, voices, ["ann", "bob"], 4)
    assert store.identify("Ann", speaker="Unknown 1").speaker.name == "Ann"
    assert store.identify("Bob", speaker="2").speaker.name == "Bob"
    renamed = store.identify("Annie", speaker="ann")  # a named speaker, new name: rename
    assert renamed.speaker.name == "Annie" and renamed.segments_relabelled == 2
    merged = store.identify("Bob", speaker="Annie")  # existing name: merge
    assert merged.speaker.name == "Bob" and merged.segments_relabelled == 2
    assert [s.speaker.name for s in store.list_speakers()] == ["Bob"]


def test_identify_propagates_to_matching_unknowns_and_suggests_weaker(
    backend: Backend, tmp_path: object, voices: Voices
) -> None:
    from pathlib import Path

    import numpy as np

    from memory.types import MatchConfig
    from tests.memory.fakes import unit

    assert isinstance(tmp_path, Path)
    # Strict matching at ingest (so every recording makes a new unknown), looser propagation.
    config = MatchConfig(threshold=0.999, propagate_threshold=0.9, suggest_threshold=0.5)
    store = backend.open(tmp_path / "p.db", config)
    try:
        near = Voices(seed=7, noise=0.3)
        base = near.voice("dana").astype(np.float64)
        other = near.voice("zed").astype(np.float64)
        halfway = unit(base + 0.9 * other)  # cos ~0.74 with dana: a suggestion only
        a = ingest(store, near, ["dana"], 2, seed=1)
        b = ingest(store, near, ["dana"], 2, seed=2)
        c = store.create_conversation(title="halfway")
        result = make_result(near, ["x"], 2, seed=3)
        result.local_speakers[0].vectors = [halfway] * 3
        for seg in result.segments:
            seg.voice_vector = halfway
        store.ingest(c.id, result)
        ids = {a.decisions[0].speaker.id, b.decisions[0].speaker.id}
        assert len(ids) == 2
        outcome = store.identify("Dana", segment_id=a.segment_ids[0])
        assert outcome.speaker.name == "Dana"
        assert [s.id for s in outcome.speakers_merged] == [b.decisions[0].speaker.id]
        assert (outcome.segments_relabelled, outcome.conversations_relabelled) == (4, 2)
        assert [s.speaker.label for s in outcome.suggestions] == ["Unknown 3"]
        assert 0.5 <= outcome.suggestions[0].score < 0.9
        # One undo reverses the naming and the propagated merge together.
        store.undo()
        assert sorted(s.speaker.label for s in store.list_speakers()) == [
            "Unknown 1", "Unknown 2", "Unknown 3"]
    finally:
        store.close()


def test_identify_errors(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann"], 2)
    with pytest.raises(SegmentNotFound, match="no segment 99; the latest segment id is 2"):
        store.identify("Ann", segment_id=99)
    with pytest.raises(InvalidOperation, match="exactly one of segment_id or speaker"):
        store.identify("Ann")
    with pytest.raises(InvalidOperation, match="exactly one of segment_id or speaker"):
        store.identify("Ann", segment_id=result.segment_ids[0], speaker=1)
    with pytest.raises(InvalidName, match="may not be empty"):
        store.identify("   ", segment_id=result.segment_ids[0])
    with pytest.raises(InvalidName, match="looks like an automatic label"):
        store.identify("unknown 4", segment_id=result.segment_ids[0])
    with pytest.raises(InvalidName, match="only digits"):
        store.identify("42", segment_id=result.segment_ids[0])
    with pytest.raises(InvalidName, match="control characters"):
        store.identify("Ann\x00", segment_id=result.segment_ids[0])
    with pytest.raises(InvalidName, match="at most 120"):
        store.identify("A" * 121, segment_id=result.segment_ids[0])
    with pytest.raises(SpeakerNotFound, match="no speaker named 'Zoe'; no speaker has a name"):
        store.identify("Ann", speaker="Zoe")
    assert store.identity_history() == []


# ---------------------------------------------------------------- rename / merge


def test_rename(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann", "bob"], 4)
    change = store.rename("Unknown 1", "Ann")
    assert change.action == "rename" and change.speakers[0].name == "Ann"
    assert (change.segments_changed, change.conversations_changed) == (2, 1)
    assert "Renamed Unknown 1 to Ann" in change.message
    assert store.rename("ann", "Anna").speakers[0].name == "Anna"
    assert store.rename("anna", "ANNA").speakers[0].name == "ANNA"  # case-only change
    assert labels(store, result.conversation_id) == ["ANNA", "Unknown 2"] * 2


def test_rename_errors(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, voices, ["ann", "bob"], 4)
    store.rename(1, "Ann")
    with pytest.raises(NameTaken, match="the name 'ann' belongs to speaker 1"):
        store.rename(2, "ann")
    with pytest.raises(InvalidOperation, match="already called 'Ann'"):
        store.rename("Ann", "Ann")
    with pytest.raises(SpeakerNotFound, match="no speaker with id 7; the latest speaker id is 2"):
        store.rename(7, "Zed")
    with pytest.raises(SpeakerNotFound, match="no speaker labelled 'Unknown 9'"):
        store.rename("Unknown 9", "Zed")
    with pytest.raises(SpeakerNotFound, match="known names: Ann"):
        store.rename("Zed", "Zoe")
    with pytest.raises(SpeakerNotFound, match="given by id or name"):
        store.rename(1.5, "Zoe")  # type: ignore[arg-type]


def test_names_are_unique_case_insensitively_across_unicode(store: SpeakerMemory) -> None:
    first = store.enroll("Ärger", [[1.0, 0.0]], "m", "s")
    again = store.enroll("ärger", [[0.9, 0.1]], "m", "s2")
    assert again.speaker.id == first.speaker.id and not again.created
    other = store.enroll("Other", [[0.0, 1.0]], "m", "s").speaker
    with pytest.raises(NameTaken, match="belongs to speaker 1"):
        store.rename(other.id, "äRGER")
    with pytest.raises(NameTaken):
        store.rename(other.id, " ärger ")


def test_merge(store: SpeakerMemory, voices: Voices) -> None:
    first = ingest(store, voices, ["ann", "bob"], 4, seed=1)
    change = store.merge("Unknown 2", "Unknown 1")
    assert change.action == "merge" and change.segments_changed == 2
    assert labels(store, first.conversation_id) == ["Unknown 1"] * 4
    store.rename(1, "Ann")
    ingest(store, voices, ["carl"], 2, seed=2)
    # Merging a named speaker into an unknown keeps the name.
    merged = store.merge("Ann", "Unknown 3")
    assert merged.speakers[0].name == "Ann" and merged.speakers[0].id == 3


def test_merge_errors(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, voices, ["ann"], 2)
    with pytest.raises(InvalidOperation, match="cannot merge Unknown 1 into itself"):
        store.merge(1, "unknown 1")
    with pytest.raises(SpeakerNotFound):
        store.merge(1, 5)


# ---------------------------------------------------------------- misidentified


def test_mark_misidentified_to_given_speaker(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann", "bob"], 4)
    store.rename(1, "Ann")
    seg = result.segment_ids[0]
    before = {s.speaker.id: s.voiceprint_count for s in store.list_speakers()}
    change = store.mark_misidentified(seg, "Unknown 2")
    view = store.get_segment(seg)
    assert view.excluded_from_profile and view.assignment_source == "manual"
    assert view.speaker is not None and view.speaker.label == "Unknown 2"
    assert change.speakers[0].label == "Unknown 2"
    # Ann's profile from that conversation was rebuilt without the excluded segment.
    after = {s.speaker.id: s.voiceprint_count for s in store.list_speakers()}
    assert after[1] >= 1 and before[1] >= 1
    with pytest.raises(InvalidOperation, match="already on Unknown 2"):
        store.mark_misidentified(seg, 2)


def test_mark_misidentified_next_best_or_new_unknown(
    store: SpeakerMemory, voices: Voices
) -> None:
    store.enroll("Bob", voices.clips("bob", 2), VOICE_MODEL, "bob")
    result = ingest(store, voices, ["ann"], 3)
    ann = result.decisions[0].speaker
    # A segment that is really Bob's was put on Ann: the next best match takes it.
    conversation = result.conversation_id
    bob_clip_segment = result.segment_ids[1]
    from memory.api import SpeakerMemory as _  # noqa: F401  (same class, for clarity)

    store_vectors = store.segment_vectors(conversation)
    assert bob_clip_segment in store_vectors
    change = store.mark_misidentified(result.segment_ids[0])
    view = store.get_segment(result.segment_ids[0])
    assert view.excluded_from_profile
    # Ann's voice matches nobody else: a new unknown speaker takes the segment.
    assert view.speaker is not None and view.speaker.id != ann.id
    assert view.speaker.label == "Unknown 2" and "new speaker" in change.message


def test_mark_misidentified_errors(store: SpeakerMemory) -> None:
    with pytest.raises(SegmentNotFound, match="no segment 3; the store has no segments yet"):
        store.mark_misidentified(3)


# ---------------------------------------------------------------- delete


def test_delete_speaker_keeps_segments(store: SpeakerMemory, voices: Voices) -> None:
    result = ingest(store, voices, ["ann", "bob"], 4)
    texts = [s.text for s in store.get_conversation(result.conversation_id).segments]
    change = store.delete_speaker("Unknown 1")
    assert change.action == "delete" and change.segments_changed == 2
    assert "kept" in change.message
    detail = store.get_conversation(result.conversation_id).segments
    assert [s.text for s in detail] == texts
    assert labels(store, result.conversation_id) == [None, "Unknown 2"] * 2
    with pytest.raises(SpeakerNotFound):
        store.delete_speaker("Unknown 1")


def test_delete_unknown_speakers_by_kind(store: SpeakerMemory, voices: Voices) -> None:
    store.enroll("Unknown Soldier", [[1.0, 0.0]], "m", "s")  # a name, not a label
    result = ingest(store, voices, ["ann", "bob"], 4)
    store.rename("Unknown 1", "Ann")
    change = store.delete_unknown_speakers()
    assert [s.label for s in change.speakers] == ["Unknown 2"]
    assert change.segments_changed == 2
    assert sorted(s.speaker.label for s in store.list_speakers()) == ["Ann", "Unknown Soldier"]
    assert labels(store, result.conversation_id) == ["Ann", None] * 2
    nothing = store.delete_unknown_speakers()
    assert nothing.event_id == 0 and nothing.speakers == []


def test_unknown_labels_are_never_reused(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, voices, ["ann"], 2, seed=1)
    store.delete_unknown_speakers()
    result = ingest(store, voices, ["bob"], 2, seed=2)
    assert result.decisions[0].speaker.label == "Unknown 2"


def test_corrected_segment_is_not_merged_back_by_propagation(
    store: SpeakerMemory, voices: Voices
) -> None:
    result = ingest(store, voices, ["ann", "bob"], 6)
    segment = result.segment_ids[0]
    store.mark_misidentified(segment)  # "that was not Ann's voice" (a new unknown takes it)
    moved_to = store.get_segment(segment).speaker
    assert moved_to is not None
    named = store.identify("Ann", speaker=result.decisions[0].speaker.id)
    assert store.get_segment(segment).speaker == store.resolve_speaker(moved_to.id)
    assert moved_to.id in [s.speaker.id for s in named.suggestions]
