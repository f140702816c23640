"""The pipeline's own logic with scripted models, then once with the real bundled models."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inference_fakes import (
    CountingVoiceEmbedder,
    FailingDiarizer,
    ScriptedDiarizer,
    ScriptedTranscriber,
    ScriptedVAD,
    StreamingScriptedTranscriber,
    WordHashTextEmbedder,
    segment,
    tone_audio,
    voice_vector,
)

from inference.factory import Backends
from inference.pipeline import Pipeline
from inference.types import Audio, EmotionResult, Turn
from memory.errors import EmptyAudio, NoSpeech, NotAudio
from memory.types import TELEPHONE_CHANNEL, EnrolledVoice, SpeakerInfo, with_channel
from tests.testdata import DATA, enrollment_clip

CONVERSATION = [
    segment("good morning everyone shall we start", 0.5),  # A, 0.5-3.4
    segment("yes I have the numbers ready", 4.0),  # B, 4.0-6.9
    segment("great let us hear them then", 7.5),  # A again, but diarized as C
]
TURNS = [Turn(0.0, 3.6, "A"), Turn(3.6, 7.2, "B"), Turn(7.2, 10.5, "C")]
VOICES = {"A": "alice", "B": "bob", "C": "alice"}


def make_pipeline(
    turns: list[Turn] = TURNS, voices: dict[str, str] = VOICES, vad: ScriptedVAD | None = None,
) -> tuple[Pipeline, ScriptedDiarizer]:
    diarizer = ScriptedDiarizer(turns, voices)
    backends = Backends(
        vad=vad or ScriptedVAD(),
        transcriber=ScriptedTranscriber(CONVERSATION),
        diarizer=diarizer,
        voice_embedder=CountingVoiceEmbedder(),
        text_embedder=WordHashTextEmbedder(),
    )
    return Pipeline(backends=backends), diarizer


def enrolled(speaker_id: int, name: str, voice: str, threshold: float = 0.75) -> EnrolledVoice:
    now = datetime(2026, 1, 1)
    info = SpeakerInfo(speaker_id, name, "enrolled", name, None, now, now)
    return EnrolledVoice(speaker=info, centroid=voice_vector(voice), threshold=threshold)


def test_result_carries_segments_speakers_vectors_and_timings() -> None:
    pipeline, diarizer = make_pipeline()
    stages: list[tuple[float, str]] = []
    result = pipeline.run(tone_audio(10.5), num_speakers=3,
                          progress=lambda f, s: stages.append((f, s)))
    assert [(s.local_speaker, s.text) for s in result.segments] == [
        ("A", CONVERSATION[0].text), ("B", CONVERSATION[1].text), ("C", CONVERSATION[2].text)]
    assert diarizer.calls == [{"num": 3, "min": None, "max": None}]
    assert [sp.label for sp in result.local_speakers] == ["A", "B", "C"]
    assert all(sp.vectors and sp.matched_speaker_id is None for sp in result.local_speakers)
    assert result.local_speakers[0].speech_seconds == pytest.approx(3.6)
    assert all(s.voice_vector is not None and s.text_vector is not None for s in result.segments)
    assert (result.voice_model_id, result.text_model_id, result.asr_model_id) == (
        "fake-voice", "fake-text", "fake-asr")
    assert result.language == "en" and result.duration == pytest.approx(10.5)
    assert {"decode", "vad", "asr", "diarize", "align", "text_vectors", "total"} <= set(
        result.timings)
    fractions = [f for f, _ in stages]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_clusters_matching_one_enrolled_voice_are_merged_and_labelled() -> None:
    pipeline, _ = make_pipeline()
    voices = [enrolled(7, "Alice", "alice"), enrolled(9, "Dora", "dora")]
    result = pipeline.run(tone_audio(10.5), enrolled=voices)
    assert [s.local_speaker for s in result.segments] == ["A", "B", "A"]
    by_label = {sp.label: sp for sp in result.local_speakers}
    assert set(by_label) == {"A", "B"}
    assert by_label["A"].matched_speaker_id == 7
    assert by_label["B"].matched_speaker_id is None  # bob is not enrolled
    assert by_label["A"].speech_seconds == pytest.approx(3.6 + 3.3)
    assert len(by_label["A"].vectors) > len(by_label["B"].vectors)
    # The merged segment still gets a vector from its own windows.
    assert result.segments[2].voice_vector is not None


def test_an_enrolled_voice_below_its_threshold_is_not_matched() -> None:
    pipeline, _ = make_pipeline()
    result = pipeline.run(tone_audio(10.5), enrolled=[enrolled(7, "Alice", "alice", 0.999)])
    assert all(sp.matched_speaker_id is None for sp in result.local_speakers)
    assert [sp.label for sp in result.local_speakers] == ["A", "B", "C"]


def test_enrolled_voices_of_another_dimension_are_ignored() -> None:
    pipeline, _ = make_pipeline()
    now = datetime(2026, 1, 1)
    other = EnrolledVoice(SpeakerInfo(3, "X", "enrolled", "X", None, now, now),
                          np.ones(256, np.float32) / 16, 0.1)
    result = pipeline.run(tone_audio(10.5), enrolled=[other])
    assert all(sp.matched_speaker_id is None for sp in result.local_speakers)


def test_enrolled_voices_are_not_compared_with_another_models_clusters() -> None:
    # A diarizer with its own embeddings (pyannote) beside a different voice embedder: the
    # enrolled centroids are of the embedder's model, so nothing may match, however close.
    pipeline, diarizer = make_pipeline()
    diarizer.model_id = "other-voice-model"
    result = pipeline.run(tone_audio(10.5), enrolled=[enrolled(7, "Alice", "alice")])
    assert all(sp.matched_speaker_id is None for sp in result.local_speakers)
    assert [sp.label for sp in result.local_speakers] == ["A", "B", "C"]


def test_silence_gives_a_result_without_segments() -> None:
    pipeline, diarizer = make_pipeline(vad=ScriptedVAD(regions=[]))
    result = pipeline.run(Audio(np.zeros(16_000 * 3, np.float32)))
    assert result.segments == [] and result.local_speakers == []
    assert diarizer.calls == []  # nothing to diarize
    assert result.duration == pytest.approx(3.0)


def test_vad_runs_once_per_recording() -> None:
    vad = ScriptedVAD()
    pipeline, _ = make_pipeline(vad=vad)
    pipeline.run(tone_audio(10.5))
    assert vad.calls == 1


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    pipeline, _ = make_pipeline()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudio):
        pipeline.run(empty)
    with pytest.raises(NotAudio):
        pipeline.run(b"this is a text file, not audio" * 10)


def test_embed_voice_cuts_speech_into_windows() -> None:
    pipeline, _ = make_pipeline()
    audio = Audio(np.concatenate([np.zeros(16_000, np.float32), tone_audio(8.0).samples,
                                  np.zeros(16_000, np.float32)]))
    voice = pipeline.embed_voice(audio)
    assert voice.model_id == "fake-voice"
    assert voice.speech_seconds == pytest.approx(8.0, abs=0.2)  # the silence is not counted
    assert len(voice.vectors) == 4  # 3 s windows, 1.5 s hop, over 8 s of speech
    assert all(np.isclose(np.linalg.norm(v), 1.0, atol=1e-5) for v in voice.vectors)
    # A wideband clip also gives its telephone-band profile, under the channel's model id.
    (telephone, vectors), = voice.channel_vectors.items()
    assert telephone == with_channel("fake-voice", TELEPHONE_CHANNEL) and len(vectors) == 4


def test_a_clip_from_a_phone_line_is_the_telephone_profile_itself() -> None:
    from scipy.signal import butter, sosfilt

    pipeline, _ = make_pipeline()
    band = butter(8, 3000.0, fs=16_000, output="sos")
    narrow = sosfilt(band, tone_audio(8.0).samples).astype(np.float32)
    voice = pipeline.embed_voice(Audio(narrow))
    assert voice.model_id == with_channel("fake-voice", TELEPHONE_CHANNEL)
    assert voice.channel_vectors == {} and len(voice.vectors) == 4


def test_embed_voice_counts_the_voices_a_clip_holds() -> None:
    # The scripted diarizer hears labels A (3.6 s), B (3.6 s) and C (3.3 s) in the clip; C is
    # alice's voice again, as A: one voice split in two clusters counts once.
    pipeline, _ = make_pipeline()
    voice = pipeline.embed_voice(Audio(tone_audio(10.5).samples))
    assert voice.voice_seconds == pytest.approx([6.9, 3.6])
    alone, _ = make_pipeline(turns=[Turn(0.0, 10.5, "A")])
    assert alone.embed_voice(Audio(tone_audio(10.5).samples)).voice_seconds == pytest.approx(
        [10.5])
    # A profile rebuilt from one speaker's own segments is not checked again.
    assert alone._voice_of(Audio(tone_audio(10.5).samples), count_voices=False).voice_seconds \
        == []


def test_an_enrollment_clip_of_hours_is_refused_after_five_minutes_of_decoding(
    tmp_path: Path
) -> None:
    # Silence compresses to almost nothing: a small file can hold hours. Decoding stops at
    # the enrollment cap instead of holding all of it (3.6 GB for 3 h 50 min before).
    import av

    from inference.pipeline import MAX_ENROLL_SECONDS
    from memory.errors import AudioTooLong

    path = tmp_path / "silence.flac"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=16_000, layout="mono")
        second = np.zeros((1, 16_000), np.int16)
        for _ in range(int(MAX_ENROLL_SECONDS) + 60):
            frame = av.AudioFrame.from_ndarray(second, format="s16", layout="mono")
            frame.sample_rate = 16_000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert path.stat().st_size < 1_000_000
    pipeline, _ = make_pipeline()
    with pytest.raises(AudioTooLong, match="enrollment clip lasts more than 300 s"):
        pipeline.embed_voice(path)


def test_embed_voice_refuses_a_clip_without_speech() -> None:
    pipeline, _ = make_pipeline()
    with pytest.raises(NoSpeech):
        pipeline.embed_voice(Audio(np.zeros(16_000 * 5, np.float32)))


def test_embed_text_uses_the_text_model() -> None:
    pipeline, _ = make_pipeline()
    vectors = pipeline.embed_text(["budget review", "budget review", "weather"])
    assert pipeline.text_model_id == "fake-text"
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0)


def test_runs_concurrently_from_several_threads() -> None:
    pipeline, _ = make_pipeline()
    results = []
    errors = []

    def work() -> None:
        try:
            results.append(pipeline.run(tone_audio(10.5)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [len(r.segments) for r in results] == [3, 3, 3]


# ---------------------------------------------------------------- through memory.ingest


def open_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from memory.api import SpeakerMemory

    try:
        return SpeakerMemory(tmp_path / "memory.db")
    except NotImplementedError:
        pytest.skip("memory.SpeakerMemory is not implemented yet")


def test_result_round_trips_through_memory_ingest(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        pipeline, _ = make_pipeline()
        result = pipeline.run(tone_audio(10.5))
        conversation = store.create_conversation(title="standup", sha256="abc")
        ingested = store.ingest(conversation.id, result)
        detail = store.get_conversation(conversation.id)
        assert [s.text for s in detail.segments] == [s.text for s in result.segments]
        assert [s.local_speaker for s in detail.segments] == ["A", "B", "C"]
        assert [[w.word for w in s.words] for s in detail.segments] == [
            [w.word for w in s.words] for s in result.segments]
        assert len(ingested.decisions) == 3
        assert all(s.speaker is not None for s in detail.segments)
        info = store.get_conversation_info(conversation.id)
        assert info.status == "done" and info.duration == pytest.approx(10.5)
        assert info.language == "en"
    finally:
        store.close()


def test_enrolled_voice_from_the_store_labels_the_recording(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        pipeline, _ = make_pipeline()
        alice = [voice_vector("alice", noise=0.05, seed=s) for s in range(5)]
        store.enroll("Alice", alice, pipeline.voice_model_id, source="test")
        voices = store.enrolled_voices(pipeline.voice_model_id)
        result = pipeline.run(tone_audio(10.5), enrolled=voices)
        conversation = store.create_conversation(title="with alice")
        store.ingest(conversation.id, result)
        detail = store.get_conversation(conversation.id)
        names = [s.speaker.name if s.speaker else None for s in detail.segments]
        assert names[0] == "Alice" and names[2] == "Alice"  # two clusters, one enrolled voice
        assert names[1] != "Alice"
        unknowns = {s.speaker.id for s in detail.segments if s.speaker and s.speaker.name is None}
        assert len(unknowns) == 1  # bob became one new unknown speaker
    finally:
        store.close()


# ---------------------------------------------------------------- the real bundled models


class CountingEmbedder:
    """Passes through to a real embedder, counting the clips it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model_id, self.dimension = inner, inner.model_id, inner.dimension
        self.clips = 0

    def embed(self, clips: Any) -> Any:
        self.clips += len(clips)
        return self.inner.embed(clips)


@pytest.fixture(scope="module")
def real_pipeline(  # type: ignore[no-untyped-def]
    silero_vad, tiny_transcriber, voice_embedder, text_embedder
) -> Pipeline:
    diarization = pytest.importorskip("inference.diarization")
    return Pipeline(backends=Backends(
        vad=silero_vad, transcriber=tiny_transcriber,
        diarizer=diarization.BuiltinDiarizer(silero_vad, voice_embedder),
        voice_embedder=CountingEmbedder(voice_embedder), text_embedder=text_embedder,
    ))


@pytest.mark.models
def test_real_models_on_a_two_speaker_clip(
    real_pipeline: Pipeline, short_clip: Audio, tmp_path: Path
) -> None:
    fallback = real_pipeline.backends.voice_embedder
    assert isinstance(fallback, CountingEmbedder)
    fallback.clips = 0
    result = real_pipeline.run(short_clip)
    assert fallback.clips == 0  # segment vectors reused the diarizer's windows
    text = " ".join(s.text for s in result.segments).lower()
    assert "client call" in text and "payment service" in text
    # Reference: af_heart until 8.2 s, am_fenrir 8.9-17.5 s.
    def speakers_between(start: float, end: float) -> set[str | None]:
        return {s.local_speaker for s in result.segments if start < (s.start + s.end) / 2 < end}

    first, second = speakers_between(0.0, 8.2), speakers_between(8.9, 16.5)
    assert len(first) == 1 and len(second) == 1 and first != second
    assert len(result.local_speakers) == 2
    assert result.voice_model_id == "resemblyzer-ge2e-0.1.4"
    assert result.text_model_id == "all-MiniLM-L6-v2"
    long_segments = [s for s in result.segments if s.end - s.start >= 1.0]
    assert long_segments and all(
        s.voice_vector is not None and s.voice_vector.shape == (256,) for s in long_segments)
    assert all(s.text_vector is not None and s.text_vector.shape == (384,)
               for s in result.segments)
    store = open_store(tmp_path)
    try:
        conversation = store.create_conversation(title="dev01 opening")
        store.ingest(conversation.id, result)
        stored = store.get_conversation(conversation.id).segments
        assert len({s.speaker.id for s in stored if s.speaker}) == 2
    finally:
        store.close()


@pytest.mark.models
def test_real_models_on_silence_give_no_segments(real_pipeline: Pipeline) -> None:
    result = real_pipeline.run(Audio(np.zeros(16_000 * 4, np.float32)))
    assert result.segments == [] and result.local_speakers == []
    assert result.duration == pytest.approx(4.0)


@pytest.mark.models
def test_real_enrollment_vectors_recognise_the_voice(
    real_pipeline: Pipeline, short_clip: Audio, voice_embedder: Any,
) -> None:
    voice = real_pipeline.embed_voice(enrollment_clip("af_heart"))
    assert voice.model_id == "resemblyzer-ge2e-0.1.4" and 10.0 < voice.speech_seconds < 14.0
    assert len(voice.vectors) >= 5
    centroid = np.mean(voice.vectors, axis=0)
    centroid /= np.linalg.norm(centroid)
    heart, fenrir = voice_embedder.embed([short_clip.slice(1.0, 8.0), short_clip.slice(9.0, 16.0)])
    assert float(centroid @ heart) > float(centroid @ fenrir) + 0.05


# ---------------------------------------------------------------- streaming ASR


def test_streamed_segments_give_the_same_result_as_a_finished_transcript() -> None:
    plain, _ = make_pipeline()
    expected = plain.run(tone_audio(10.5))
    streaming_asr = StreamingScriptedTranscriber(CONVERSATION, pause=0.01)
    backends = Backends(vad=ScriptedVAD(), transcriber=streaming_asr,
                        diarizer=ScriptedDiarizer(TURNS, VOICES),
                        voice_embedder=CountingVoiceEmbedder(),
                        text_embedder=WordHashTextEmbedder())
    reports: list[float] = []
    result = Pipeline(backends=backends).run(tone_audio(10.5),
                                             progress=lambda f, _s: reports.append(f))
    assert [(s.local_speaker, s.text, s.start, s.end) for s in result.segments] == [
        (s.local_speaker, s.text, s.start, s.end) for s in expected.segments]
    assert all(s.voice_vector is not None and s.text_vector is not None
               for s in result.segments)
    assert reports == sorted(reports) and reports[-1] == 1.0


class DiarizerAfterASR(ScriptedDiarizer):
    """Diarizes only once ASR is through the whole recording (the reports say so), then reports
    half the recording diarized, then all of it."""

    reports_progress = True

    def __init__(self, reports: list[tuple[float, str]]) -> None:
        super().__init__(TURNS, VOICES)
        self.reports = reports

    def diarize(self, audio: Audio, num_speakers: int | None = None,  # type: ignore[override]
                min_speakers: int | None = None, max_speakers: int | None = None,
                progress: Any = None) -> Any:
        import time

        deadline = time.monotonic() + 30
        while not any(stage == "diarizing" for _, stage in self.reports):
            assert time.monotonic() < deadline, f"ASR never finished: {self.reports}"
            time.sleep(0.01)
        progress(0.5)
        result = super().diarize(audio, num_speakers, min_speakers, max_speakers)
        progress(1.0)
        return result


def test_progress_counts_the_audio_both_asr_and_diarization_got_through() -> None:
    reports: list[tuple[float, str]] = []
    backends = Backends(vad=ScriptedVAD(),
                        transcriber=StreamingScriptedTranscriber(CONVERSATION),
                        diarizer=DiarizerAfterASR(reports),
                        voice_embedder=CountingVoiceEmbedder(),
                        text_embedder=WordHashTextEmbedder())
    Pipeline(backends=backends).run(tone_audio(10.5), progress=lambda f, s: reports.append((f, s)))
    shares = {stage: [f for f, s in reports if s == stage] for _, stage in reports}
    # ASR through the whole recording counts for half of the middle 90%, not all of it.
    assert shares["diarizing"] == pytest.approx([0.5, 0.725])
    assert max(shares["transcribing and diarizing"]) < 0.5
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and reports[-1] == (1.0, "done")
    # The stage never goes back to one it left.
    stages = [s for i, (_, s) in enumerate(reports) if i == 0 or reports[i - 1][1] != s]
    assert len(stages) == len(set(stages)), stages


def test_a_failing_diarizer_stops_the_transcription_and_raises() -> None:
    many = [segment(f"sentence number {i} here", i * 2.0) for i in range(30)]
    asr = StreamingScriptedTranscriber(many, pause=0.02)
    backends = Backends(vad=ScriptedVAD(), transcriber=asr, diarizer=FailingDiarizer(),
                        voice_embedder=CountingVoiceEmbedder(),
                        text_embedder=WordHashTextEmbedder())
    with pytest.raises(RuntimeError, match="diarizer broke"):
        Pipeline(backends=backends).run(tone_audio(61.0))
    assert asr.handed_over < len(many)  # ASR was told to stop, not run to the end


def test_invalid_arguments_are_refused_before_any_work() -> None:
    pipeline, diarizer = make_pipeline()
    with pytest.raises(ValueError, match="num_speakers"):
        pipeline.run(tone_audio(10.5), num_speakers=0)
    with pytest.raises(ValueError, match="16000 Hz"):
        pipeline.run(Audio(np.zeros(8_000, np.float32), sample_rate=8_000))
    assert diarizer.calls == []


class LengthEmotion:
    """Long clips are 'happy', short ones 'neutral' (deterministic)."""

    model_id = "fake-emotion"

    def recognize(self, clips: Any) -> list[EmotionResult]:
        return [EmotionResult("happy" if len(c) > 40_000 else "neutral", 0.8) for c in clips]


def test_optional_emotion_is_set_on_every_segment() -> None:
    backends = Backends(vad=ScriptedVAD(), transcriber=ScriptedTranscriber(CONVERSATION),
                        diarizer=ScriptedDiarizer(TURNS, VOICES),
                        voice_embedder=CountingVoiceEmbedder(),
                        text_embedder=WordHashTextEmbedder(), emotion=LengthEmotion())
    result = Pipeline(backends=backends).run(tone_audio(10.5))
    assert [(s.emotion, s.emotion_confidence) for s in result.segments] == [("happy", 0.8)] * 3
    assert "emotion" in result.timings


def test_a_broken_progress_callback_does_not_fail_the_recording() -> None:
    pipeline, _ = make_pipeline()

    def broken(fraction: float, stage: str) -> None:
        raise OSError("the terminal went away")

    assert len(pipeline.run(tone_audio(10.5), progress=broken).segments) == 3


@pytest.mark.models
def test_real_models_count_the_voices_of_an_enrollment_clip() -> None:
    # Segmentation-3.0 + CAM++ split this one-person clip in two (parts scoring 0.74); the
    # real call holds two people. Only the call may count as two voices.
    from inference.campplus import CamppEmbedder
    from inference.neural_diarization import NeuralDiarizer
    from inference.segmentation import SegmentationModel
    from inference.vad import SileroVAD

    embedder = CamppEmbedder(device="cpu")
    pipeline = Pipeline(backends=Backends(
        vad=SileroVAD(), transcriber=ScriptedTranscriber([]),
        diarizer=NeuralDiarizer(SegmentationModel(device="cpu"), embedder),
        voice_embedder=embedder, text_embedder=None,
    ))
    one = pipeline.embed_voice(enrollment_clip("ls_3080")).voice_seconds
    assert len(one) == 1 and one[0] > 8.0
    call = pipeline.embed_voice(DATA / "sample_call.wav").voice_seconds
    assert len(call) == 2 and min(call) > 0.3 * sum(call)
