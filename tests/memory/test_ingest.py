from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from inference.types import PipelineResult
from memory import SpeakerMemory
from memory.errors import (
    ConversationNotFound,
    DuplicateAudio,
    InvalidOperation,
    ModelMismatch,
)
from memory.types import (
    CAMPPLUS_MODEL_ID,
    TELEPHONE_CHANNEL,
    MatchConfig,
    SearchFilters,
    with_channel,
)
from tests.memory.backends import Backend, open_memory
from tests.memory.fakes import VOICE_MODEL, Voices, make_result


def ingest(store: SpeakerMemory, result: PipelineResult, title: str = "talk") -> list[int]:
    conversation = store.create_conversation(title=title)
    return [d.speaker.id for d in store.ingest(conversation.id, result).decisions]


def test_new_voices_become_unknown_speakers(store: SpeakerMemory, voices: Voices) -> None:
    conversation = store.create_conversation(title="standup")
    result = store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 10))
    assert [d.created for d in result.decisions] == [True, True]
    assert [d.speaker.label for d in result.decisions] == ["Unknown 1", "Unknown 2"]
    assert len(result.segment_ids) == 10
    info = store.get_conversation_info(conversation.id)
    assert info.status == "done"
    assert info.model_ids["voice"] == VOICE_MODEL
    assert info.language == "en"
    detail = store.get_conversation(conversation.id)
    assert [s.speaker.label for s in detail.segments if s.speaker][:2] == ["Unknown 1", "Unknown 2"]
    assert all(s.assignment_source == "auto" for s in detail.segments)


def test_unknown_voice_persists_across_conversations(
    store: SpeakerMemory, voices: Voices
) -> None:
    first = ingest(store, make_result(voices, ["ann", "bob"], 8, seed=1))
    second = ingest(store, make_result(voices, ["carl", "ann"], 8, seed=2))
    third = ingest(store, make_result(voices, ["ann"], 4, seed=3))
    assert second[1] == first[0] and third[0] == first[0]
    assert second[0] not in first
    unknowns = store.list_speakers(kind="unknown")
    assert [s.speaker.label for s in unknowns] == ["Unknown 1", "Unknown 2", "Unknown 3"]
    ann = next(s for s in unknowns if s.speaker.id == first[0])
    assert ann.conversation_count == 3
    assert ann.segment_count == 4 + 4 + 4
    # Voiceprints stay proportional to clusters (mean + a few), not to windows or segments.
    assert ann.voiceprint_count <= 3 * 4


def test_enrolled_voice_is_recognised(store: SpeakerMemory, voices: Voices) -> None:
    enrolled = store.enroll("Sarah", voices.clips("sarah", 3), VOICE_MODEL, "sarah.wav", 30.0)
    assert enrolled.created and enrolled.speaker.kind == "enrolled"
    conversation = store.create_conversation(title="call")
    result = store.ingest(conversation.id, make_result(voices, ["sarah", "tom"], 6))
    sarah, tom = result.decisions
    assert sarah.speaker.id == enrolled.speaker.id and not sarah.created
    assert sarah.score is not None and sarah.score > 0.9
    assert tom.created and tom.speaker.label == "Unknown 1"


def test_match_needs_margin_over_runner_up(
    backend: Backend, tmp_path: object, voices: Voices
) -> None:
    from pathlib import Path

    from memory.types import MatchConfig

    assert isinstance(tmp_path, Path)
    store = open_memory(tmp_path / "m.db", MatchConfig(threshold=0.5, margin=0.5))
    try:
        store.enroll("A", voices.clips("twin", 2), VOICE_MODEL, "a")
        store.enroll("B", voices.clips("twin", 2), VOICE_MODEL, "b")
        ids = ingest(store, make_result(voices, ["twin"], 2))
        names = {s.speaker.id: s.speaker.name for s in store.list_speakers()}
        assert names[ids[0]] is None  # two equally good candidates: a new unknown instead
    finally:
        store.close()


def test_per_speaker_threshold_overrides_default(store: SpeakerMemory, voices: Voices) -> None:
    sarah = store.enroll("Sarah", voices.clips("sarah", 2), VOICE_MODEL, "s").speaker
    assert store.set_match_threshold("sarah", 0.999).match_threshold == 0.999
    ids = ingest(store, make_result(voices, ["sarah"], 2))
    assert ids[0] != sarah.id
    assert store.set_match_threshold(sarah.id, None).match_threshold is None
    with pytest.raises(InvalidOperation, match="a threshold is a cosine"):
        store.set_match_threshold(sarah.id, 3.0)


def test_matched_speaker_id_is_honoured(store: SpeakerMemory, voices: Voices) -> None:
    bob = store.enroll("Bob", voices.clips("bob", 2), VOICE_MODEL, "bob").speaker
    ids = ingest(store, make_result(voices, ["stranger"], 3, matched={"stranger": bob.id}))
    assert ids == [bob.id]


def test_duplicate_audio_is_reported(store: SpeakerMemory) -> None:
    first = store.create_conversation(title="a", sha256="abc")
    with pytest.raises(DuplicateAudio, match=f"conversation {first.id}") as caught:
        store.create_conversation(title="b", sha256="abc")
    assert caught.value.conversation_id == first.id
    assert store.find_conversation_by_sha256("abc") == first
    assert store.find_conversation_by_sha256("zzz") is None


def test_ingest_twice_is_refused(store: SpeakerMemory, voices: Voices) -> None:
    conversation = store.create_conversation(title="a")
    store.ingest(conversation.id, make_result(voices, ["ann"], 2))
    with pytest.raises(InvalidOperation, match="already has segments; use reprocess"):
        store.ingest(conversation.id, make_result(voices, ["ann"], 2))
    assert len(store.get_conversation(conversation.id).segments) == 2


def test_unknown_conversation(store: SpeakerMemory, voices: Voices) -> None:
    with pytest.raises(ConversationNotFound, match="no conversation 9; the store has no"):
        store.ingest(9, make_result(voices, ["ann"], 2))
    store.create_conversation(title="x")
    with pytest.raises(ConversationNotFound, match="latest conversation id is 1"):
        store.get_conversation(5)


def test_voice_dimension_mismatch_is_refused(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, make_result(voices, ["ann"], 2))
    other = Voices(dim=128)
    conversation = store.create_conversation(title="b")
    with pytest.raises(ModelMismatch, match="has 256-d vectors in this store, got 128-d"):
        store.ingest(conversation.id, make_result(other, ["ann"], 2))
    assert store.get_conversation(conversation.id).segments == []
    with pytest.raises(ModelMismatch, match="256-d"):
        store.enroll("Zed", other.clips("zed", 2), VOICE_MODEL, "z")


def test_other_voice_model_is_never_compared(store: SpeakerMemory, voices: Voices) -> None:
    first = ingest(store, make_result(voices, ["ann"], 2))
    second = ingest(store, make_result(voices, ["ann"], 2, voice_model_id="other-model-2"))
    assert first != second


def test_bad_vectors_and_times_are_refused(store: SpeakerMemory, voices: Voices) -> None:
    result = make_result(voices, ["ann"], 2)
    result.local_speakers[0].vectors[0] = np.full(256, np.nan, dtype=np.float32)
    conversation = store.create_conversation(title="nan")
    with pytest.raises(ModelMismatch, match="NaN"):
        store.ingest(conversation.id, result)
    result = make_result(voices, ["ann"], 2)
    result.segments[1].start, result.segments[1].end = 5.0, 1.0
    with pytest.raises(InvalidOperation, match="segment 1 has invalid times"):
        store.ingest(conversation.id, result)
    result = make_result(voices, ["ann"], 2)
    result.text_model_id = None
    with pytest.raises(ModelMismatch, match="without a text model id"):
        store.ingest(conversation.id, result)
    assert store.list_speakers() == []


def test_segments_without_cluster_entry_or_speaker(store: SpeakerMemory, voices: Voices) -> None:
    result = make_result(voices, ["ann", "bob"], 4)
    result.local_speakers = result.local_speakers[:1]  # bob only known from his segments
    result.segments[0].local_speaker = None
    conversation = store.create_conversation(title="x")
    decisions = store.ingest(conversation.id, result).decisions
    assert [d.local_label for d in decisions] == ["SPEAKER_00", "SPEAKER_01"]
    segments = store.get_conversation(conversation.id).segments
    assert segments[0].speaker is None and segments[0].assignment_source is None
    assert segments[1].speaker is not None and segments[1].speaker.id == decisions[1].speaker.id


def test_status_and_title(store: SpeakerMemory) -> None:
    conversation = store.create_conversation(title="a", source_name="a.wav")
    assert conversation.status == "queued"
    failed = store.set_conversation_status(conversation.id, "failed", "decoder crashed")
    assert failed.status == "failed" and failed.error == "decoder crashed"
    assert store.set_conversation_status(conversation.id, "processing").error is None
    assert store.update_conversation_title(conversation.id, "Weekly").title == "Weekly"
    with pytest.raises(InvalidOperation, match="status must be one of"):
        store.set_conversation_status(conversation.id, "lost")  # type: ignore[arg-type]


def test_segment_vectors_and_enrolled_voices(store: SpeakerMemory, voices: Voices) -> None:
    conversation = store.create_conversation(title="a")
    result = store.ingest(conversation.id, make_result(voices, ["ann"], 3))
    vectors = store.segment_vectors(conversation.id)
    assert sorted(vectors) == result.segment_ids
    assert all(v.shape == (256,) and abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors.values())
    assert store.enrolled_voices(VOICE_MODEL) == []
    store.identify("Ann", speaker=result.decisions[0].speaker.id)
    (voice,) = store.enrolled_voices(VOICE_MODEL)
    assert voice.speaker.name == "Ann"
    assert voice.threshold == store.config.for_model(VOICE_MODEL).threshold
    assert float(voice.centroid @ voices.voice("ann")) > 0.95


def test_reprocess_rematches_against_current_profiles(
    store: SpeakerMemory, voices: Voices
) -> None:
    conversation = store.create_conversation(title="early")
    before = store.ingest(conversation.id, make_result(voices, ["ann"], 4))
    assert before.decisions[0].created
    store.enroll("Ann", voices.clips("ann", 3), VOICE_MODEL, "ann.wav")
    after = store.reprocess(conversation.id)
    assert after.segment_ids == before.segment_ids
    assert after.decisions[0].speaker.name == "Ann"
    assert {s.speaker.name for s in store.get_conversation(conversation.id).segments
            if s.speaker} == {"Ann"}
    # The unknown left with nothing is gone; undo brings the old assignment back.
    assert [s.speaker.name for s in store.list_speakers()] == ["Ann"]
    store.undo()
    assert {s.speaker.label for s in store.get_conversation(conversation.id).segments
            if s.speaker} == {"Unknown 1"}


def test_two_instances_see_each_others_voices(
    backend: Backend, tmp_path: object, voices: Voices
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    first = open_memory(tmp_path / "shared.db")
    second = open_memory(tmp_path / "shared.db")
    try:
        ingest(first, make_result(voices, ["ann"], 2, seed=1))  # second's mirror now stale
        ingest(second, make_result(voices, ["bob"], 2, seed=2))
        ann_again = ingest(second, make_result(voices, ["ann"], 2, seed=3), "again")
        bob_again = ingest(first, make_result(voices, ["bob"], 2, seed=4), "again 2")
        assert [s.speaker.label for s in first.list_speakers()] == ["Unknown 1", "Unknown 2"]
        assert ann_again == [1] and bob_again == [2]
    finally:
        first.close()
        second.close()


def test_words_with_numpy_numbers_and_nan_are_stored(
    store: SpeakerMemory, voices: Voices
) -> None:
    result = make_result(voices, ["ann"], 1, texts=["hello world"])
    hello, world = result.segments[0].words
    # As a model may hand them over: numpy scalars, and NaN for an unknown probability.
    result.segments[0].words = [
        replace(hello, start=np.float32(0.5)),
        replace(world, probability=float("nan")),
    ]
    conversation = store.create_conversation(title="numpy")
    (segment_id,) = store.ingest(conversation.id, result).segment_ids
    words = store.get_segment(segment_id).words
    assert [w.word for w in words] == ["hello", "world"]
    assert words[0].start == 0.5 and words[1].probability == 0.0


def test_voiceprints_stay_bounded_for_a_voice_heard_everywhere(
    store: SpeakerMemory, voices: Voices
) -> None:
    from memory.voiceprints import MAX_VOICEPRINTS

    store.enroll("Me", voices.clips("me", 3), VOICE_MODEL, "me.wav")
    for seed in range(MAX_VOICEPRINTS // 4 + 2):
        ids = ingest(store, make_result(voices, ["me"], 6, seed=seed), f"c{seed}")
        assert ids == [1]
    (me,) = store.list_speakers()
    assert me.voiceprint_count == MAX_VOICEPRINTS
    assert me.conversation_count == MAX_VOICEPRINTS // 4 + 2
    # Enrollment prints are never the ones dropped.
    from tests.memory.state import rows

    sources = [r[4] for r in rows(store.db_path, "voiceprint")]
    assert sum(s.startswith("enrollment:") for s in sources) == 4


def test_enroll_errors(store: SpeakerMemory) -> None:
    with pytest.raises(ModelMismatch, match="at least one voice vector"):
        store.enroll("Ann", [], VOICE_MODEL, "a")
    with pytest.raises(ModelMismatch, match="voice model id"):
        store.enroll("Ann", [[1.0, 0.0]], "", "a")
    with pytest.raises(ModelMismatch, match="different dimensions"):
        store.enroll("Ann", [[1.0, 0.0], [1.0, 0.0, 0.0]], VOICE_MODEL, "a")
    from memory.errors import InvalidName

    with pytest.raises(InvalidName, match="must be text"):
        store.enroll(None, [[1.0, 0.0]], VOICE_MODEL, "a")  # type: ignore[arg-type]
    assert store.list_speakers() == [] and store.identity_history() == []


def test_cluster_without_segments_creates_no_speaker(store: SpeakerMemory, voices: Voices) -> None:
    result = make_result(voices, ["ann", "bob"], 4)
    for segment in result.segments:
        segment.local_speaker = "SPEAKER_00"
    conversation = store.create_conversation(title="x")
    decisions = store.ingest(conversation.id, result).decisions
    assert [d.local_label for d in decisions] == ["SPEAKER_00"]
    assert [s.speaker.label for s in store.list_speakers()] == ["Unknown 1"]


def test_match_voice_ranks_stored_speakers(store: SpeakerMemory, voices: Voices) -> None:
    assert store.match_voice(voices.clips("ann", 2), VOICE_MODEL) == []
    store.enroll("Ann", voices.clips("ann", 3), VOICE_MODEL, "ann")
    store.enroll("Bob", voices.clips("bob", 3), VOICE_MODEL, "bob")
    ranked = store.match_voice(voices.clips("bob", 2), VOICE_MODEL)
    assert [s.speaker.name for s in ranked] == ["Bob", "Ann"]
    assert ranked[0].score > 0.9 > ranked[1].score
    with pytest.raises(ModelMismatch, match="256-d"):
        store.match_voice([np.ones(8, dtype=np.float32)], VOICE_MODEL)
    with pytest.raises(ModelMismatch, match="at least one"):
        store.match_voice([], VOICE_MODEL)


def test_failed_ingest_stores_nothing(store: SpeakerMemory, voices: Voices) -> None:
    ingest(store, make_result(voices, ["ann"], 2, seed=1))
    bad = make_result(voices, ["bob"], 3, seed=2)
    for segment in bad.segments:  # the store knows this model as 384-d: fails late
        segment.text_vector = np.ones(128, dtype=np.float32)
    conversation = store.create_conversation(title="bad")
    with pytest.raises(ModelMismatch, match="has 384-d vectors in this store, got 128-d"):
        store.ingest(conversation.id, bad)
    assert store.get_conversation(conversation.id).segments == []
    assert store.get_conversation_info(conversation.id).status == "queued"
    assert [s.speaker.label for s in store.list_speakers()] == ["Unknown 1"]
    assert store.search_keyword(bad.segments[0].text.split()[0], SearchFilters(
        conversation_id=conversation.id)) == []
    # The same recording goes in cleanly afterwards, and numbering did not skip.
    good = make_result(voices, ["bob"], 3, seed=2)
    assert [d.speaker.label for d in store.ingest(conversation.id, good).decisions] == [
        "Unknown 2"]


def test_mixed_vector_dimensions_in_one_result(store: SpeakerMemory, voices: Voices) -> None:
    result = make_result(voices, ["ann"], 2)
    result.segments[1].text_vector = np.ones(128, dtype=np.float32)
    conversation = store.create_conversation(title="mixed")
    with pytest.raises(ModelMismatch, match="text vectors have different shapes"):
        store.ingest(conversation.id, result)


def test_reprocess_keeps_a_speaker_nothing_else_matches(
    store: SpeakerMemory, voices: Voices
) -> None:
    conversation = store.create_conversation(title="alone")
    first = store.ingest(conversation.id, make_result(voices, ["ann"], 3))
    again = store.reprocess(conversation.id)
    assert again.decisions[0].speaker.id == first.decisions[0].speaker.id
    assert not again.decisions[0].created
    assert [s.speaker.label for s in store.list_speakers()] == ["Unknown 1"]
    assert store.identity_history(1)[0].action == "reprocess"
    store.undo()
    assert [s.speaker.label for s in store.list_speakers()] == ["Unknown 1"]


def test_a_cluster_mixing_an_enrolled_voice_with_a_stranger_is_only_suggested(
    store: SpeakerMemory, voices: Voices
) -> None:
    sarah = store.enroll("Sarah", voices.clips("sarah", 3), VOICE_MODEL, "sarah.wav", 30.0)
    clean = make_result(voices, ["sarah", "tom"], 6, seed=5)
    named = store.ingest(store.create_conversation(title="clean").id, clean).decisions[0]
    assert named.speaker.id == sarah.speaker.id and named.suggestion is None
    # Diarization folded a stranger into Sarah's cluster: the mean still sounds like Sarah.
    result = make_result(voices, ["sarah", "tom"], 6)
    mixed = voices.clips("sarah", 5) + voices.clips("stranger", 4)
    result.local_speakers[0] = replace(result.local_speakers[0], vectors=mixed)
    first = store.ingest(store.create_conversation(title="mixed").id, result).decisions[0]
    assert first.created and first.speaker.kind == "unknown"  # never silently named
    assert first.score is not None and first.score >= 0.6
    assert first.suggestion is not None and first.suggestion.speaker.id == sarah.speaker.id


def test_one_stored_speaker_takes_one_cluster_of_a_recording(
    store: SpeakerMemory, voices: Voices
) -> None:
    # Two people on one phone line can both sound like a voice heard over a phone before;
    # the diarizer heard them as two people, so only the closer one is that voice.
    sarah = store.enroll("Sarah", voices.clips("sarah", 3), VOICE_MODEL, "sarah.wav").speaker
    result = make_result(voices, ["sarah", "tom"], 6)
    alike = replace(result.local_speakers[1], vectors=voices.clips("sarah", 8))
    result = replace(result, local_speakers=[result.local_speakers[0], alike])
    decisions = store.ingest(store.create_conversation(title="call").id, result).decisions
    assert [d.speaker.id == sarah.id for d in decisions].count(True) == 1
    assert [d.created for d in decisions].count(True) == 1


def test_a_phone_voice_is_named_though_its_vectors_scatter_one_by_one(
    store: SpeakerMemory, voices: Voices
) -> None:
    # A real voice on a noisy phone line: each vector alone is weak (under the telephone
    # suggest threshold), their mean is clear.
    phone = with_channel(CAMPPLUS_MODEL_ID, TELEPHONE_CHANNEL)
    sarah = store.enroll("Sarah", voices.clips("sarah", 3), phone, "sarah.wav").speaker
    noisy = Voices(seed=voices.seed, noise=1.6).clips("sarah", 12)
    result = make_result(voices, ["sarah"], 4, voice_model_id=CAMPPLUS_MODEL_ID)
    heard = replace(result.local_speakers[0], vectors=noisy, voice_model_id=phone)
    result = replace(result, local_speakers=[heard])
    thresholds = MatchConfig().for_model(phone)
    alone = [float(v @ voices.voice("sarah")) for v in noisy]
    assert sum(a >= thresholds.suggest_threshold for a in alone) < 0.7 * len(alone)
    assert min(alone) >= thresholds.vector_threshold
    decision = store.ingest(store.create_conversation(title="call").id, result).decisions[0]
    assert decision.speaker.id == sarah.id
    assert decision.score is not None and decision.score >= thresholds.threshold


def test_a_named_voice_does_not_learn_from_phone_calls_but_an_unknown_does(
    store: SpeakerMemory, voices: Voices
) -> None:
    # A profile that held a real call drew other callers over the threshold (real-dev): the
    # named voice's telephone profile stays what enrollment made it.
    phone = with_channel(CAMPPLUS_MODEL_ID, TELEPHONE_CHANNEL)
    sarah = store.enroll("Sarah", voices.clips("sarah", 3), phone, "sarah.wav").speaker
    enrolled = store.list_speakers()[0].voiceprint_count
    result = make_result(voices, ["sarah", "tom"], 6, voice_model_id=CAMPPLUS_MODEL_ID)
    result = replace(result, local_speakers=[replace(ls, voice_model_id=phone)
                                             for ls in result.local_speakers])
    decisions = store.ingest(store.create_conversation(title="call").id, result).decisions
    assert decisions[0].speaker.id == sarah.id and decisions[1].created
    prints = {s.speaker.id: s.voiceprint_count for s in store.list_speakers()}
    assert prints[sarah.id] == enrolled  # the enrollment's own
    assert prints[decisions[1].speaker.id] > 0  # the new unknown caller keeps its voice
