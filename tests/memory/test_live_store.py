"""Live sessions in the store: segments stored as confirmed, then replaced by the offline
result in one transaction that keeps the ids an agent saw and the labels a person gave."""

from __future__ import annotations

import pytest

from inference.types import Word
from memory.api import SpeakerMemory
from memory.errors import InvalidOperation
from memory.live import LiveSegmentIn
from tests.memory.fakes import VOICE_MODEL, Voices, make_result


def live_segment(start: float, end: float, text: str, voice: int,
                 speaker_id: int | None) -> LiveSegmentIn:
    words = [Word(w, start, end, 0.9) for w in text.split()]
    return LiveSegmentIn(start=start, end=end, text=text, words=words, voice=voice,
                         speaker_id=speaker_id)


def test_a_live_segment_is_readable_and_searchable_at_once(store: SpeakerMemory) -> None:
    info = store.start_live(title="standup", audio_path="/tmp/x.wav", source_name="websocket")
    segment_id, speaker = store.add_live_segment(
        info.id, live_segment(0.0, 2.0, "the budget is approved", 1, None))
    assert speaker.label == "Unknown 1"
    assert store.latest_segments(limit=1)[0].id == segment_id
    assert [h.segment.id for h in store.search_keyword("budget")] == [segment_id]
    assert [s.conversation_id for s in store.live_sessions()] == [info.id]


def test_an_open_live_segment_grows_in_place_and_keeps_its_speaker(
    store: SpeakerMemory, voices: Voices
) -> None:
    info = store.start_live(title="standup", audio_path="/tmp/x.wav", source_name="websocket")
    segment_id, _ = store.add_live_segment(info.id, live_segment(0.0, 1.0, "the budget", 1, None))
    store.identify("Dana", segment_id=segment_id)  # named while it is still open
    vector = voices.clips("ann", 1)[0]
    speaker = store.extend_live_segment(info.id, segment_id, LiveSegmentIn(
        start=0.0, end=2.5, text="the budget is approved",
        words=[Word(w, 0.0, 2.5, 0.9) for w in ["the", "budget", "is", "approved"]], voice=1,
        speaker_id=None, voice_vector=vector))
    assert speaker is not None and speaker.label == "Dana"
    [stored] = store.get_conversation(info.id).segments
    assert (stored.id, stored.end, stored.text) == (segment_id, 2.5, "the budget is approved")
    assert stored.speaker.label == "Dana"
    assert [h.segment.id for h in store.search_keyword("approved")] == [segment_id]
    assert [h.segment.id for h in store.search_keyword("budget")] == [segment_id]
    assert store.get_conversation_info(info.id).duration == 2.5
    # Only an open segment of this session's voice can grow.
    with pytest.raises(InvalidOperation, match="not an open segment"):
        store.extend_live_segment(info.id, segment_id, live_segment(0.0, 3.0, "x", 2, None))


def test_finalising_keeps_seen_ids_and_the_labels_a_person_gave(
    store: SpeakerMemory, voices: Voices
) -> None:
    info = store.start_live(title="call", audio_path="/tmp/x.wav", source_name="websocket")
    # Live: two voices, as the session heard them (segments of make_result's timing: 2 s
    # each, 0.25 s apart, ann and bob in turn).
    first, ann_live = store.add_live_segment(info.id, live_segment(0.0, 2.0, "hello", 1, None))
    second, _ = store.add_live_segment(info.id, live_segment(2.25, 4.25, "hi", 2, None))
    third, _ = store.add_live_segment(info.id, live_segment(4.5, 6.5, "so", 1, ann_live.id))
    # During the session a person names the second voice.
    store.identify("Bob", segment_id=second)

    done = store.finalise_live(info.id, make_result(voices, ["ann", "bob"], 4))

    segments = store.get_conversation(info.id).segments
    ids = [s.id for s in segments]
    assert ids[:3] == [first, second, third]  # the ids an agent saw point at the same time
    assert ids[3] not in (first, second, third)
    labels = [s.speaker.label for s in segments]
    assert labels == ["Unknown 1", "Bob", "Unknown 1", "Bob"]
    assert store.get_conversation_info(info.id).status == "done"
    assert store.live_sessions() == []
    assert {d.speaker.label for d in done.decisions} == {"Unknown 1", "Bob"}
    # The offline text replaced the live text.
    assert segments[0].text != "hello"
    with pytest.raises(InvalidOperation):
        store.finalise_live(info.id, make_result(voices, ["ann"], 1))


def test_a_voice_the_memory_knows_takes_its_name_at_finalising(
    store: SpeakerMemory, voices: Voices
) -> None:
    store.enroll("Ann", voices.clips("ann", 4), VOICE_MODEL, "ann.wav", 20.0)
    info = store.start_live(title="call", audio_path="/tmp/x.wav", source_name="websocket")
    store.add_live_segment(info.id, live_segment(0.0, 2.0, "hello", 1, None))
    store.finalise_live(info.id, make_result(voices, ["ann"], 2))
    assert {s.speaker.label for s in store.get_conversation(info.id).segments} == {"Ann"}
    # The unknown the session created for her has nothing left: it is gone.
    assert [s.speaker.label for s in store.list_speakers(kind="unknown")] == []


def test_moving_a_live_voice_to_a_recognised_speaker(store: SpeakerMemory,
                                                      voices: Voices) -> None:
    ann = store.enroll("Ann", voices.clips("ann", 4), VOICE_MODEL, "ann.wav", 20.0).speaker
    info = store.start_live(title="call", audio_path="/tmp/x.wav", source_name="websocket")
    a, _ = store.add_live_segment(info.id, live_segment(0.0, 2.0, "hello", 3, None))
    b, _ = store.add_live_segment(info.id, live_segment(2.0, 3.0, "there", 3, None))
    assert store.move_live_voice(info.id, 3, ann.id) == [a, b]
    assert {s.label for s in store.segment_speakers(info.id).values()} == {"Ann"}
    assert store.list_speakers(kind="unknown") == []
    found = store.recognise_voice(voices.clips("ann", 2), VOICE_MODEL)
    assert found is not None and found.speaker.id == ann.id
    assert store.recognise_voice(voices.clips("zed", 2), VOICE_MODEL) is None
