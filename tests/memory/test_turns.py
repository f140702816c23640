"""Diarization turns: stored with a conversation, and read back as who talks over which segment."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from inference.types import PipelineResult, Turn
from memory import SpeakerMemory
from memory.errors import InvalidOperation
from memory.turns import MIN_OVERLAP_SECONDS
from memory.types import SegmentView
from tests.memory.fakes import Voices, make_result
from tests.memory.state import rows

TEXTS = ["alpha budget", "bravo coffee", "charlie design", "delta energy", "echo garden",
         "foxtrot hiring"]


def overlapping(voices: Voices) -> PipelineResult:
    """ann (SPEAKER_00) and bob (SPEAKER_01) take turns: segments 0-2, 2.25-4.25, 4.5-6.5,
    6.75-8.75, 9-11, 11.25-13.25 s (ann, bob, ann, bob, ann, bob); then overlaps are added."""
    result = make_result(voices, ["ann", "bob"], 6, texts=TEXTS)
    assert MIN_OVERLAP_SECONDS == 0.2  # the spans below are chosen around it
    result.turns += [
        Turn(1.5, 2.25, "SPEAKER_01"),  # bob over the end of segment 0 (0.5 s)
        Turn(4.5, 4.625, "SPEAKER_01"),  # bob twice over segment 2: 0.125 + 0.125 s
        Turn(6.375, 6.5, "SPEAKER_01"),
        Turn(6.75, 6.875, "SPEAKER_00"),  # ann over segment 3 for 0.125 s: too short
        Turn(9.5, 10.5, "SPEAKER_07"),  # a label no segment has: resolves to nobody
    ]
    return result


def labels(segment: SegmentView) -> list[str]:
    return [s.label for s in segment.overlapped_by]


def overlaps(store: SpeakerMemory, conversation_id: int) -> list[list[str]]:
    return [labels(s) for s in store.get_conversation(conversation_id).segments]


def test_turns_are_stored_and_mark_the_segments_spoken_over(
    store: SpeakerMemory, voices: Voices
) -> None:
    conversation = store.create_conversation(title="crosstalk")
    ingested = store.ingest(conversation.id, overlapping(voices))
    ann, bob = (d.speaker for d in ingested.decisions)
    stored = rows(store.db_path, "diarization_turn")
    assert len(stored) == 6 + 5
    assert stored[6][1:] == (conversation.id, "SPEAKER_01", 1.5, 2.25)

    detail = store.get_conversation(conversation.id)
    assert [labels(s) for s in detail.segments] == [
        [bob.label], [], [bob.label], [], [], []]
    assert detail.segments[0].overlapped_by == [bob]
    # The timeline: every turn by start, with the speaker its label resolves to.
    assert [(t.start, t.local_label) for t in detail.turns][:3] == [
        (0.0, "SPEAKER_00"), (1.5, "SPEAKER_01"), (2.25, "SPEAKER_01")]
    resolved = {t.local_label: t.speaker for t in detail.turns}
    assert resolved == {"SPEAKER_00": ann, "SPEAKER_01": bob, "SPEAKER_07": None}

    # Every read model of a segment carries it.
    first = ingested.segment_ids[0]
    assert store.get_segment(first).overlapped_by == [bob]
    assert store.get_segment(ingested.segment_ids[3]).overlapped_by == []
    latest = store.latest_segments(limit=6, conversation_id=conversation.id)
    assert {s.id: labels(s) for s in latest}[first] == [bob.label]
    hit = store.search_keyword("budget")[0]
    assert hit.segment.id == first and hit.segment.overlapped_by == [bob]


def test_overlap_follows_identity_changes_and_undo(store: SpeakerMemory, voices: Voices) -> None:
    conversation = store.create_conversation(title="crosstalk")
    ids = store.ingest(conversation.id, overlapping(voices)).segment_ids
    other = store.create_conversation(title="carl alone")
    carl = store.ingest(other.id, make_result(voices, ["carl"], 2, seed=5)).decisions[0].speaker
    assert overlaps(store, conversation.id)[0] == ["Unknown 2"]

    store.identify("Bob", segment_id=ids[1])
    assert overlaps(store, conversation.id)[0] == ["Bob"]
    store.rename("Bob", "Robert")
    assert overlaps(store, conversation.id)[0] == ["Robert"]
    bob = store.resolve_speaker("Robert")
    store.merge("Robert", carl.id)  # carl's speaker takes the name: the voice was his
    assert [s.id for s in store.get_segment(ids[0]).overlapped_by] == [carl.id]
    store.undo()
    assert store.get_segment(ids[0]).overlapped_by == [bob]
    # Merged into the segment's own speaker: nobody else talks over it any more.
    ann = store.get_segment(ids[0]).speaker
    assert ann is not None
    store.merge("Robert", ann.id)
    assert overlaps(store, conversation.id) == [[]] * 6
    assert {t.speaker.id for t in store.get_conversation(conversation.id).turns
            if t.speaker} == {ann.id}
    store.undo()
    assert overlaps(store, conversation.id)[0] == ["Robert"]
    # Deleted: the label resolves to nobody.
    store.delete_speaker("Robert")
    assert overlaps(store, conversation.id) == [[]] * 6


def test_a_segment_moved_to_another_speaker_is_not_overlapped_by_its_own_turns(
    store: SpeakerMemory, voices: Voices
) -> None:
    conversation = store.create_conversation(title="crosstalk")
    ids = store.ingest(conversation.id, overlapping(voices)).segment_ids
    # Segment 1 (bob's label) was really ann: bob's turn under it was that same voice.
    store.mark_misidentified(ids[1], "Unknown 1")
    assert store.get_segment(ids[1]).overlapped_by == []
    assert overlaps(store, conversation.id)[0] == ["Unknown 2"]


def test_reprocess_keeps_the_turns(store: SpeakerMemory, voices: Voices) -> None:
    conversation = store.create_conversation(title="crosstalk")
    store.ingest(conversation.id, overlapping(voices))
    before = rows(store.db_path, "diarization_turn")
    store.reprocess(conversation.id)
    assert rows(store.db_path, "diarization_turn") == before
    assert overlaps(store, conversation.id)[0] == ["Unknown 2"]


def test_a_result_without_turns_has_no_overlaps(store: SpeakerMemory, voices: Voices) -> None:
    result = overlapping(voices)
    result.turns = []
    conversation = store.create_conversation(title="older pipeline")
    store.ingest(conversation.id, result)
    detail = store.get_conversation(conversation.id)
    assert detail.turns == [] and all(s.overlapped_by == [] for s in detail.segments)


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        (Turn(3.0, 1.0, "SPEAKER_00"), "turn 6 has invalid times 3.0..1.0"),
        (Turn(-1.0, 1.0, "SPEAKER_00"), "turn 6 has invalid times"),
        (Turn(0.0, math.inf, "SPEAKER_00"), "turn 6 has invalid times"),
        (Turn(math.nan, 1.0, "SPEAKER_00"), "turn 6 has invalid times"),
        (Turn(0.0, 1.0, ""), "turn 6 has no speaker label"),
    ],
)
def test_bad_turns_are_refused_and_nothing_is_stored(
    store: SpeakerMemory, voices: Voices, turn: Turn, message: str
) -> None:
    result = make_result(voices, ["ann", "bob"], 6)
    result.turns.append(turn)
    conversation = store.create_conversation(title="bad")
    with pytest.raises(InvalidOperation, match=message):
        store.ingest(conversation.id, result)
    assert rows(store.db_path, "diarization_turn") == []
    assert rows(store.db_path, "segment") == [] and store.list_speakers() == []


def test_overlap_matches_a_brute_force_count_on_random_timelines(
    store: SpeakerMemory, voices: Voices
) -> None:
    # Segments of any length, nested or overlapping each other; turns anywhere.
    rng = np.random.default_rng(3)
    overlapped = 0
    expected_of: dict[int, set[int]] = {}
    for round_ in range(5):
        result = make_result(voices, ["ann", "bob", "carl"], 12, seed=round_)
        for segment in result.segments:
            segment.start = float(rng.uniform(0, 20))
            segment.end = segment.start + float(rng.uniform(0, 6))
        result.turns = [
            Turn(start, start + float(rng.uniform(0, 3)), f"SPEAKER_{rng.integers(0, 4):02d}")
            for start in rng.uniform(0, 24, 30).tolist()
        ]
        conversation = store.create_conversation(title=f"random {round_}")
        store.ingest(conversation.id, result)
        detail = store.get_conversation(conversation.id)
        votes: dict[str, Counter[int]] = {}
        for s in detail.segments:
            if s.local_speaker is not None and s.speaker is not None:
                votes.setdefault(s.local_speaker, Counter())[s.speaker.id] += 1
        of_label = {label: min(c, key=lambda sid: (-c[sid], sid)) for label, c in votes.items()}
        for s in detail.segments:
            seconds: Counter[int] = Counter()
            for t in detail.turns:
                shared = min(t.end, s.end) - max(t.start, s.start)
                speaker = of_label.get(t.local_label)
                if (shared > 0 and t.local_label != s.local_speaker and speaker is not None
                        and (s.speaker is None or speaker != s.speaker.id)):
                    seconds[speaker] += shared
            expected = {sid for sid, total in seconds.items() if total >= MIN_OVERLAP_SECONDS}
            assert {o.id for o in s.overlapped_by} == expected, (round_, s.start, s.end)
            overlapped += bool(expected)
            expected_of[s.id] = expected
    assert overlapped >= 10
    # Read across all five conversations at once (as search hits are): the same overlaps.
    every = store.latest_segments(limit=60)
    assert {s.conversation_id for s in every} == set(range(1, 6))
    assert {s.id: {o.id for o in s.overlapped_by} for s in every} == expected_of
