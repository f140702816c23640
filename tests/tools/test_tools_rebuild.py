"""The voice profile rebuild: a store built with GE2E gets CAM++ profiles from the audio it still
has (kept enrollment clips, recordings on disk), as a resumable background job.

The stores are built with memory's API and 256-d GE2E vectors over real short recordings in
tests/data; the fake pipeline stands for CAM++ (it decodes the spans and tells the channel from
the real audio), and one test runs the real pipeline end to end.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.audio import sha256
from inference.types import LocalSpeaker, PipelineResult, PipelineSegment, Turn, Word
from memory.types import CAMPPLUS_MODEL_ID, GE2E_MODEL_ID, TELEPHONE_CHANNEL, with_channel
from tests.memory.fakes import Voices
from tests.memory.state import rows
from tests.testdata import DATA
from tests.tools.fake_pipeline import FakePipeline
from tests.tools.fake_pipeline import Turn as ScriptTurn
from tests.tools.runs import enroll
from tools import identity, processing, rebuild
from tools.context import App
from tools.inputs import audio_from_path, local_audio
from tools.settings import Settings

TELEPHONE = with_channel(CAMPPLUS_MODEL_ID, TELEPHONE_CHANNEL)
READERS = {"ls_3080": "ann", "ls_2033": "bob"}


def call_turns() -> list[tuple[float, float, str]]:
    """Who talks when in rdev01_first30s.wav (two readers on a phone line), by our voice names."""
    turns = []
    for line in (DATA / "rdev01_first30s.rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        turns.append((start, min(30.0, start + length), READERS[fields[7]]))
    return turns


def ge2e_result(voices: Voices, turns: list[tuple[float, float, str]]) -> PipelineResult:
    """What the GE2E pipeline stored for a recording with these turns (256-d vectors)."""
    labels = {v: f"SPEAKER_{i:02d}" for i, v in enumerate(dict.fromkeys(t[2] for t in turns))}
    segments = [
        PipelineSegment(start, end, f"words of {voice}", [Word("words", start, end, 0.9)],
                        labels[voice], voice_vector=voices.clip(voice))
        for start, end, voice in turns
    ]
    speakers = [
        LocalSpeaker(label, voices.clips(voice, 4),
                     sum(end - start for start, end, v in turns if v == voice))
        for voice, label in labels.items()
    ]
    return PipelineResult(segments, speakers, GE2E_MODEL_ID, None, "en", turns[-1][1], "asr",
                          turns=[Turn(s.start, s.end, str(s.local_speaker)) for s in segments])


@dataclass
class Ge2eStore:
    ann: int
    bob: int
    cid: int
    dee: int
    call: int
    meeting: int


def build_ge2e_store(app: App, fake: FakePipeline, folder: Path) -> Ge2eStore:
    """Ann enrolled (clip kept) and heard on a phone call with Bob; Bob also in a wideband
    meeting; Cid heard only in a recording since deleted; Dee enrolled from a clip since lost."""
    voices = Voices(seed=3, dim=256)
    folder.mkdir(parents=True, exist_ok=True)
    clip = shutil.copy(DATA / "ls_3080_enroll.wav", folder / "ann-enroll.wav")
    memory = app.memory
    ann = memory.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 10.0,
                        clip_path=str(clip), clip_sha256=sha256(clip)).speaker.id
    fake.known_clip(clip, "ann")

    call_path = shutil.copy(DATA / "rdev01_first30s.wav", folder / "call.wav")
    call = memory.create_conversation(title="call", audio_path=str(call_path))
    ingested = memory.ingest(call.id, ge2e_result(voices, call_turns()))
    bob = next(d.speaker.id for d in ingested.decisions if d.created)
    fake.voices_at(call_path, call_turns())

    meeting_path = shutil.copy(DATA / "ls_2033_enroll.wav", folder / "meeting.wav")
    meeting = memory.create_conversation(title="meeting", audio_path=str(meeting_path))
    meeting_turns = [(0.0, 5.0, "bob"), (5.0, 10.5, "bob")]
    memory.ingest(meeting.id, ge2e_result(voices, meeting_turns))
    fake.voices_at(meeting_path, meeting_turns)

    lost = folder / "lost.wav"
    shutil.copy(DATA / "ls_2033_enroll.wav", lost)
    gone = memory.create_conversation(title="lost", audio_path=str(lost))
    cid = memory.ingest(gone.id, ge2e_result(voices, [(0.0, 4.0, "cid"), (4.0, 9.0, "cid")]))
    lost.unlink()

    dee = memory.enroll("Dee", voices.clips("dee", 3), GE2E_MODEL_ID, "dee.wav", 9.0,
                        clip_path=str(folder / "dee-lost.wav")).speaker.id
    return Ge2eStore(ann, bob, cid.decisions[0].speaker.id, dee, call.id, meeting.id)


def models_of(app: App, speaker_id: int) -> set[str]:
    return {r[2] for r in rows(app.memory.db_path, "voiceprint") if r[1] == speaker_id}


@pytest.fixture
def campplus(fake: FakePipeline) -> FakePipeline:
    """The fake pipeline as the new default voice model."""
    fake.voice_model_id = CAMPPLUS_MODEL_ID
    return fake


@pytest.fixture
def store(app: App, campplus: FakePipeline, tmp_path: Path) -> Ge2eStore:
    return build_ge2e_store(app, campplus, tmp_path / "audio")


def test_a_ge2e_store_gets_campplus_profiles_from_its_stored_audio(
    app: App, campplus: FakePipeline, store: Ge2eStore, tmp_path: Path
) -> None:
    assert [s.id for s in app.memory.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [
        store.ann, store.bob, store.cid, store.dee]
    history = app.memory.identity_history()

    tally = rebuild.rebuild_profiles(app)

    assert [s.label for s in tally.rebuilt] == ["Ann", "Unknown 1"]
    assert [s.label for s in tally.without_audio] == ["Unknown 2", "Dee"]
    assert (tally.total, tally.done, tally.skipped, tally.cancelled) == (4, 4, 0, False)
    # Ann: her kept clip (wideband, plus its telephone-band profile) and the phone call.
    assert models_of(app, store.ann) == {GE2E_MODEL_ID, CAMPPLUS_MODEL_ID, TELEPHONE}
    assert models_of(app, store.bob) == {GE2E_MODEL_ID, CAMPPLUS_MODEL_ID, TELEPHONE}
    # Only each speaker's own segments were decoded, in time order.
    ann_call = [spans for path, spans in campplus.embedded_spans
                if path.name == "call.wav" and spans[0][0] == 1.49]
    assert ann_call == [[(s, e) for s, e, v in call_turns() if v == "ann"]]
    assert app.memory.identity_history() == history  # no identity event
    assert [s.id for s in app.memory.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [
        store.cid, store.dee]

    # A new (wideband) recording of Ann is now recognised; the telephone profile matches her on
    # the phone.
    recording = campplus.recording(tmp_path / "new.wav", [ScriptTurn("ann", "Hello again.")])
    started = processing.start_processing(app, local_audio(recording),
                                          processing.ProcessOptions())
    assert started.job is not None and started.job.future is not None
    started.job.future.result(timeout=30)
    assert "recognised Ann" in processing.summarise(app, started.conversation_id).message
    phone = campplus.embed_voice_segments(DATA / "rdev01_first30s.wav", [(1.49, 5.03)])
    assert phone.model_id == TELEPHONE
    assert app.memory.match_voice(phone.vectors, TELEPHONE)[0].speaker.label == "Ann"


def test_running_it_again_adds_nothing(app: App, store: Ge2eStore) -> None:
    first = rebuild.rebuild_profiles(app)
    prints = rows(app.memory.db_path, "voiceprint")
    again = rebuild.rebuild_profiles(app)
    assert rows(app.memory.db_path, "voiceprint") == prints
    assert (again.total, again.rebuilt, again.skipped) == (2, [], 2)
    assert [s.id for s in again.without_audio] == [s.id for s in first.without_audio]


def test_an_interrupted_rebuild_continues_where_it_stopped(app: App, store: Ge2eStore) -> None:
    stop = threading.Event()

    def after_each(tally: rebuild.RebuildTally) -> None:
        if tally.done == 1:
            stop.set()

    first = rebuild.rebuild_profiles(app, cancel=stop, on_progress=after_each)
    assert first.cancelled and first.done == 1
    assert [s.id for s in first.rebuilt] == [store.ann]
    assert CAMPPLUS_MODEL_ID not in models_of(app, store.bob)
    # The store is the state: the next run starts with the speakers left.
    rest = rebuild.rebuild_profiles(app)
    assert rest.total == 3 and [s.id for s in rest.rebuilt] == [store.bob]
    assert not rest.cancelled and rest.done == 3
    assert CAMPPLUS_MODEL_ID in models_of(app, store.bob)


def test_speakers_whose_audio_is_gone_keep_their_old_profile_and_are_told_about(
    app: App, store: Ge2eStore
) -> None:
    before = {sid: [r for r in rows(app.memory.db_path, "voiceprint") if r[1] == sid]
              for sid in (store.cid, store.dee)}
    segments = [s.speaker for s in app.memory.latest_segments(limit=100)]
    job = rebuild.start_rebuild(app)
    assert job.future is not None
    job.future.result(timeout=30)
    status = rebuild.rebuild_status(app)
    assert status.status == "done"
    assert (status.rebuilt, status.skipped, status.speakers_done) == (2, 0, 4)
    assert [s.label for s in status.without_audio] == ["Unknown 2", "Dee"]
    assert "no stored audio left (Unknown 2, Dee)" in status.message
    assert "enroll_speaker" in status.message and "identify_speaker_in_segment" in status.message
    for sid, prints in before.items():  # old profile, names and segments untouched
        assert [r for r in rows(app.memory.db_path, "voiceprint") if r[1] == sid] == prints
    assert app.memory.resolve_speaker(store.dee).name == "Dee"
    assert [s.speaker for s in app.memory.latest_segments(limit=100)] == segments


def test_earlier_identity_changes_undo_cleanly_after_the_rebuild(
    app: App, store: Ge2eStore
) -> None:
    meeting = app.memory.get_conversation(store.meeting).segments[0]
    named = identity.identify_speaker_in_segment(app, meeting.id, "Bob")
    merged = identity.merge_speakers(app, "Bob", "Ann")  # a mistake, undone below
    renamed = identity.rename_speaker(app, "Dee", "Deirdre")
    rebuild.rebuild_profiles(app)
    assert CAMPPLUS_MODEL_ID in models_of(app, store.ann)

    identity.undo_identity_change(app, renamed.event_id)
    undone = identity.undo_identity_change(app, merged.event_id)
    assert "Undid event" in undone.message
    # Ann's rebuilt profile held Bob's audio: it went with the merge; the next run rebuilds
    # both from the assignment as it is now.
    assert app.memory.resolve_speaker("Bob").id == store.bob
    assert [s.id for s in app.memory.speakers_needing_profile(CAMPPLUS_MODEL_ID)] == [
        store.ann, store.bob, store.cid, store.dee]
    again = rebuild.rebuild_profiles(app)
    assert [s.label for s in again.rebuilt] == ["Ann", "Bob"]
    identity.undo_identity_change(app, named.event_id)  # naming moved no audio: profile stays
    assert app.memory.resolve_speaker(store.bob).label == "Unknown 1"
    assert CAMPPLUS_MODEL_ID in models_of(app, store.bob)


def test_the_audio_used_is_bounded_per_recording_and_per_speaker(
    app: App, campplus: FakePipeline, store: Ge2eStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild, "MAX_SECONDS_PER_CONVERSATION", 4.0)
    monkeypatch.setattr(rebuild, "MAX_CONVERSATIONS", 1)
    rebuild.rebuild_profiles(app)
    used = {path.name: spans for path, spans in campplus.embedded_spans}
    # Bob: only his recording with the most speech (the call: 14.7 s), its longest segments.
    assert set(used) == {"call.wav"} and len(campplus.embedded_spans) == 2
    for spans in used.values():
        assert sum(end - start for start, end in spans) == pytest.approx(4.0)
    bob = next(spans for path, spans in campplus.embedded_spans if spans[0][0] > 5)
    assert bob == [(5.714, 9.114), (11.241, 11.841)]


def test_the_job_reports_progress_and_recordings_wait_behind_it(
    campplus: FakePipeline, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", processing_workers=2, wait_seconds=30)
    with App(settings, pipeline=campplus, start_dir=tmp_path) as app:
        store = build_ge2e_store(app, campplus, tmp_path / "audio")
        campplus.embed_gate = threading.Event()
        job = rebuild.start_rebuild(app)
        assert rebuild.start_rebuild(app) is job  # one rebuild at a time
        recording = campplus.recording(app.settings.inbox_dir / "new.wav",
                                       [ScriptTurn("bob", "Back on a good microphone.")])
        started = processing.start_processing(app, audio_from_path(app, str(recording)),
                                              processing.ProcessOptions())
        assert started.job is not None and started.job.future is not None
        status = rebuild.rebuild_status(app)
        assert status.status in ("queued", "running") and status.speakers_done == 0
        assert "wait" in status.message
        while started.job.stage != "waiting for the voice profile rebuild":
            threading.Event().wait(0.01)
        assert app.memory.get_conversation_info(started.conversation_id).status == "queued"
        campplus.embed_gate.set()
        started.job.future.result(timeout=30)
        assert job.done and job.stage == "done" and job.fraction == 1.0
        # Matched against Bob's rebuilt profile, not heard as a new unknown voice.
        speakers = processing.summarise(app, started.conversation_id).speakers
        assert [(s.speaker.id, s.new) for s in speakers] == [(store.bob, False)]


def test_start_up_starts_it_only_when_speakers_need_it(
    app: App, campplus: FakePipeline, store: Ge2eStore
) -> None:
    job = rebuild.start_if_needed(app)
    assert job is not None and job.future is not None
    job.future.result(timeout=30)
    # Left: the two without audio. They cannot be rebuilt; a start-up still tries (cheaply).
    assert rebuild.rebuild_status(app).rebuilt == 2
    campplus.voice_model_id = GE2E_MODEL_ID  # back to the model everyone has
    assert rebuild.start_if_needed(app) is None
    assert rebuild.rebuild_status(app).status == "done"


def test_cancel_stops_a_running_rebuild_after_the_speaker_in_hand(
    app: App, campplus: FakePipeline, store: Ge2eStore
) -> None:
    campplus.embed_gate = threading.Event()
    job = rebuild.start_rebuild(app)
    while not campplus.embedded_spans:
        threading.Event().wait(0.01)
    status = rebuild.cancel_rebuild(app)
    campplus.embed_gate.set()
    assert job.future is not None
    job.future.result(timeout=30)
    status = rebuild.rebuild_status(app)
    assert status.status == "cancelled" and status.speakers_done == 1
    assert "run rebuild_voice_profiles again to continue" in status.message


def test_enrolling_keeps_the_clip_that_a_later_model_rebuilds_from(
    app: App, fake: FakePipeline
) -> None:
    clip = fake.clip(app.settings.inbox_dir / "sarah.wav", "sarah")
    enrolled = enroll(app, "Sarah", audio_from_path(app, str(clip)))
    kept = app.memory.profile_audio("Sarah").clips
    assert len(kept) == 1 and kept[0].sha256 == sha256(clip)
    kept_path = Path(kept[0].path)
    assert kept_path.parent == (app.settings.audio_dir / "enroll").resolve()
    assert kept_path.read_bytes() == clip.read_bytes()
    clip.unlink()  # the user's file may go: the kept copy stays

    fake.voice_model_id = CAMPPLUS_MODEL_ID  # the default voice model changes
    tally = rebuild.rebuild_profiles(app)
    assert [s.label for s in tally.rebuilt] == ["Sarah"]
    assert models_of(app, enrolled.speaker.id) == {"fake-voice-1", CAMPPLUS_MODEL_ID}

    identity.undo_identity_change(app, enrolled.event_id)
    assert rows(app.memory.db_path, "enrollment_clip") == []
    assert app.memory.list_speakers() == []


@pytest.mark.models
def test_the_real_pipeline_rebuilds_a_ge2e_store(tmp_path: Path) -> None:
    from inference.pipeline import Pipeline

    pipeline = Pipeline()
    settings = Settings(data_dir=tmp_path / "data")
    with App(settings, pipeline=pipeline, start_dir=tmp_path) as app:
        voices = Voices(seed=3, dim=256)
        clip = shutil.copy(DATA / "ls_3080_enroll.wav", tmp_path / "ann.wav")
        ann = app.memory.enroll("Ann", voices.clips("ann", 3), GE2E_MODEL_ID, "ann.wav", 10.0,
                                clip_path=str(clip)).speaker.id
        call_path = shutil.copy(DATA / "rdev01_first30s.wav", tmp_path / "call.wav")
        call = app.memory.create_conversation(title="call", audio_path=str(call_path))
        app.memory.ingest(call.id, ge2e_result(voices, call_turns()))
        bob = app.memory.resolve_speaker("Unknown 1").id

        tally = rebuild.rebuild_profiles(app)

        assert pipeline.voice_model_id == CAMPPLUS_MODEL_ID
        assert [s.id for s in tally.rebuilt] == [ann, bob]
        dims = {(r[1], r[2]): len(r[3]) // 4 for r in rows(app.memory.db_path, "voiceprint")}
        assert dims[(ann, CAMPPLUS_MODEL_ID)] == 192 and dims[(ann, TELEPHONE)] == 192
        assert (bob, TELEPHONE) in dims and (bob, CAMPPLUS_MODEL_ID) not in dims  # a phone call
        # The rebuilt profiles recognise the real voices again: Ann's clean clip, and Bob's
        # reader on the phone line against Ann's.
        again = pipeline.embed_voice(DATA / "ls_3080_enroll.wav")
        assert app.memory.match_voice(again.vectors, again.model_id)[0].speaker.id == ann
        on_phone = pipeline.embed_voice_segments(call_path, [(5.714, 9.114), (11.241, 14.431)])
        assert on_phone.model_id == TELEPHONE
        best = app.memory.match_voice(on_phone.vectors, TELEPHONE)
        assert best[0].speaker.id == bob and best[0].score > best[1].score

