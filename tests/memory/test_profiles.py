"""Enrollment clips and profiles rebuilt for a new voice model: what the store keeps, which
speakers need a rebuild, and that identity history and undo stay exact around rebuilt prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory import SpeakerMemory
from memory.errors import ModelMismatch
from memory.types import (
    CAMPPLUS_MODEL_ID,
    GE2E_MODEL_ID,
    TELEPHONE_CHANNEL,
    RebuiltVoice,
    with_channel,
)
from tests.memory.fakes import Voices, make_result
from tests.memory.state import rows

TELEPHONE = with_channel(CAMPPLUS_MODEL_ID, TELEPHONE_CHANNEL)


@pytest.fixture
def new_voices() -> Voices:
    """The same people as the new model hears them: other vectors, 192-d."""
    return Voices(seed=21, dim=192)


def ge2e_store(store: SpeakerMemory, voices: Voices, tmp_path: Path) -> dict[str, int]:
    """Ann enrolled with a kept clip; a recording of Ann and an unknown voice (Bob)."""
    ann = store.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 12.0,
                       clip_path=str(tmp_path / "ann.wav"), clip_sha256="a" * 64)
    conversation = store.create_conversation(title="standup", audio_path=str(tmp_path / "c.wav"))
    ingested = store.ingest(conversation.id, make_result(voices, ["ann", "bob"], 6,
                                                         voice_model_id=GE2E_MODEL_ID))
    bob = next(d.speaker.id for d in ingested.decisions if d.created)
    return {"ann": ann.speaker.id, "bob": bob, "conversation": conversation.id}


def rebuild(
    store: SpeakerMemory, new_voices: Voices, speaker_id: int, voice: str,
    conversation_id: int | None = 1,
) -> int:
    """As tools/rebuild.py stores it: a wideband and a telephone-band profile of one source."""
    source = "enrollment:1" if conversation_id is None else f"conversation:{conversation_id}"
    return store.add_rebuilt_profile(speaker_id, CAMPPLUS_MODEL_ID, [
        RebuiltVoice(CAMPPLUS_MODEL_ID, new_voices.clips(voice, 4), source, 30.0,
                     conversation_id),
        RebuiltVoice(TELEPHONE, new_voices.clips(f"{voice}/phone", 2), source, 30.0,
                     conversation_id),
    ])


def models_of(store: SpeakerMemory, speaker_id: int) -> set[str]:
    return {r[2] for r in rows(store.db_path, "voiceprint") if r[1] == speaker_id}


def test_enroll_keeps_its_clip_and_undo_forgets_it(
    store: SpeakerMemory, voices: Voices, tmp_path: Path
) -> None:
    enrolled = store.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 12.0,
                            clip_path=str(tmp_path / "ann.wav"), clip_sha256="a" * 64)
    clips = store.profile_audio("Ann").clips
    assert [(c.speaker_id, c.path, c.sha256, c.speech_seconds) for c in clips] == [
        (enrolled.speaker.id, str(tmp_path / "ann.wav"), "a" * 64, 12.0)]
    # Strengthening adds a second clip; undo of it removes that one only.
    store.enroll("ann", voices.clips("ann", 2), GE2E_MODEL_ID, "ann2.wav", 8.0,
                 clip_path=str(tmp_path / "ann2.wav"))
    assert len(store.profile_audio("Ann").clips) == 2
    store.undo()
    assert [c.path for c in store.profile_audio("Ann").clips] == [str(tmp_path / "ann.wav")]
    store.undo()
    assert rows(store.db_path, "enrollment_clip") == []
    assert store.list_speakers() == []


def test_merge_moves_clips_and_delete_forgets_them_both_undone_exactly(
    store: SpeakerMemory, voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    before = rows(store.db_path, "enrollment_clip")
    store.merge("Ann", ids["bob"])  # "Ann" was Unknown 1's voice all along: she keeps her name
    assert [c.speaker_id for c in store.profile_audio(ids["bob"]).clips] == [ids["bob"]]
    store.undo()
    assert rows(store.db_path, "enrollment_clip") == before
    store.delete_speaker("Ann")
    assert rows(store.db_path, "enrollment_clip") == []
    store.undo()
    assert rows(store.db_path, "enrollment_clip") == before


def test_speakers_needing_a_profile_of_the_new_model(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    store.enroll("Cy", new_voices.clips("cy", 2), TELEPHONE, "cy-call.wav", 9.0)
    store.create_conversation(title="no voices yet")
    needing = store.speakers_needing_profile(CAMPPLUS_MODEL_ID)
    # Cy has a telephone-band CAM++ profile: a channel of the model counts as having it.
    assert [s.id for s in needing] == [ids["ann"], ids["bob"]]
    assert store.speakers_needing_profile(GE2E_MODEL_ID)[0].label == "Cy"
    audio = store.profile_audio(ids["ann"])
    assert audio.speaker.label == "Ann"
    assert [c.audio_path for c in audio.conversations] == [str(tmp_path / "c.wav")]
    spans = audio.conversations[0].spans
    lengths = [s.end - s.start for s in spans]
    assert len(spans) == 3 and lengths == sorted(lengths, reverse=True)


def test_profile_audio_prefers_manual_segments_and_skips_excluded_ones(
    store: SpeakerMemory, voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    other = store.create_conversation(title="later", audio_path=str(tmp_path / "d.wav"))
    ingested = store.ingest(other.id, make_result(voices, ["bob", "cid"], 4, seed=3,
                                                  voice_model_id=GE2E_MODEL_ID))
    cid_segment = ingested.segment_ids[1]
    store.identify("Bob", speaker=ids["bob"])
    store.identify("Cid", segment_id=cid_segment)
    store.identify("Bob", segment_id=cid_segment)  # wrongly: Cid's segments, now manual
    store.mark_misidentified(cid_segment)  # one of them was not Bob: moved on and excluded
    audio = store.profile_audio("Bob")
    first = audio.conversations[0]
    assert first.conversation_id == other.id and first.manual_seconds > 0
    assert [s.manual for s in first.spans] == [True, False, False]
    assert cid_segment not in {s.segment_id for c in audio.conversations for s in c.spans}
    assert audio.conversations[1].conversation_id == ids["conversation"]
    moved_to = store.get_segment(cid_segment).speaker
    assert moved_to is not None and moved_to.label != "Bob"
    assert cid_segment not in {
        s.segment_id for c in store.profile_audio(moved_to.id).conversations for s in c.spans}


def test_a_rebuilt_profile_is_stored_once_and_matches(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    events = store.identity_history()
    added = rebuild(store, new_voices, ids["ann"], "ann")
    assert added == (1 + 3) + (1 + 2)  # per profile: the mean and up to three representatives
    assert models_of(store, ids["ann"]) == {GE2E_MODEL_ID, CAMPPLUS_MODEL_ID, TELEPHONE}
    assert rebuild(store, new_voices, ids["ann"], "ann") == 0  # has one now: nothing added
    assert store.add_rebuilt_profile(999, CAMPPLUS_MODEL_ID, []) == 0  # gone: nothing
    assert store.identity_history() == events  # no identity event
    assert [s.id for s in store.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [ids["bob"]]
    best = store.match_voice(new_voices.clips("ann", 2), CAMPPLUS_MODEL_ID)[0]
    assert best.speaker.label == "Ann" and best.score > 0.9
    phone = store.match_voice(new_voices.clips("ann/phone", 1), TELEPHONE)[0]
    assert phone.speaker.label == "Ann"
    sources = {r[4] for r in rows(store.db_path, "voiceprint") if r[2] == CAMPPLUS_MODEL_ID}
    assert "rebuilt:conversation:1" in sources
    with pytest.raises(ModelMismatch, match="cannot hold vectors of"):
        store.add_rebuilt_profile(ids["bob"], CAMPPLUS_MODEL_ID, [
            RebuiltVoice(GE2E_MODEL_ID, voices.clips("bob", 1), "conversation:1", 3.0)])
    assert models_of(store, ids["bob"]) == {GE2E_MODEL_ID}


def test_earlier_identity_changes_still_undo_after_a_rebuild(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    named = store.identify("Bob", speaker=ids["bob"])  # names only: moves no audio
    merged = store.merge("Bob", "Ann")  # moves Bob's segments, prints and nothing else
    rebuild(store, new_voices, ids["ann"], "ann")  # Ann's profile now holds Bob's audio too

    store.undo(merged.event_id)
    # Bob is back with his segments; the prints rebuilt from the merged audio went with the
    # merge, so both need a rebuild again.
    assert store.resolve_speaker("Bob").id == ids["bob"]
    assert models_of(store, ids["ann"]) == {GE2E_MODEL_ID}
    assert [s.id for s in store.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [
        ids["ann"], ids["bob"]]

    rebuild(store, new_voices, ids["bob"], "bob")
    store.undo(named.event_id)  # moved no audio: Bob's (now unnamed) rebuilt profile stays
    assert store.resolve_speaker(ids["bob"]).label == "Unknown 1"
    assert CAMPPLUS_MODEL_ID in models_of(store, ids["bob"])


def test_undo_of_an_enrollment_after_a_rebuild_removes_the_speaker(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    enrolled = store.enroll("Dee", voices.clips("dee", 3), GE2E_MODEL_ID, "dee.wav", 10.0,
                            clip_path=str(tmp_path / "dee.wav"))
    rebuild(store, new_voices, enrolled.speaker.id, "dee", conversation_id=None)
    store.undo(enrolled.event_id)
    assert store.list_speakers() == []
    assert rows(store.db_path, "voiceprint") == rows(store.db_path, "enrollment_clip") == []


def test_prints_rebuilt_before_a_change_come_back_with_its_undo(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    rebuild(store, new_voices, ids["ann"], "ann")
    rebuild(store, new_voices, ids["bob"], "bob")
    before = {t: rows(store.db_path, t) for t in ("speaker", "voiceprint", "enrollment_clip")}
    store.merge(ids["bob"], "Ann")
    store.undo()
    store.delete_speaker("Ann")
    store.undo()
    after = {t: rows(store.db_path, t) for t in ("speaker", "voiceprint", "enrollment_clip")}
    assert after == before
    assert store.speakers_needing_profile(CAMPPLUS_MODEL_ID) == []


def test_prints_rebuilt_from_an_enrollment_clip_are_never_pruned(
    store: SpeakerMemory, voices: Voices, new_voices: Voices, tmp_path: Path
) -> None:
    ids = ge2e_store(store, voices, tmp_path)
    rebuild(store, new_voices, ids["ann"], "ann", conversation_id=None)
    from_clip = [r[0] for r in rows(store.db_path, "voiceprint")
                 if r[2] == CAMPPLUS_MODEL_ID and r[4].startswith("rebuilt:enrollment:")]
    assert len(from_clip) == 4
    for seed in range(40):  # Ann heard again and again with the new model
        conversation = store.create_conversation(title=f"later {seed}")
        store.ingest(conversation.id, make_result(new_voices, ["ann"], 2, seed=seed,
                                                  voice_model_id=CAMPPLUS_MODEL_ID))
    kept = [r[0] for r in rows(store.db_path, "voiceprint")
            if r[1] == ids["ann"] and r[2] == CAMPPLUS_MODEL_ID]
    assert len(kept) == 64  # bounded (memory.voiceprints.MAX_VOICEPRINTS)...
    assert set(from_clip) <= set(kept)  # ...but the clip's profile stays
