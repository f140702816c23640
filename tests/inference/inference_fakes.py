"""Deterministic stand-ins for the models, for unit tests of the pipeline's own logic.

They are real implementations of the inference Protocols (no patching): a scripted
transcriber and diarizer, a voice embedder whose vector is derived from a voice id, and a
text embedder whose vector is derived from the words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from inference.types import (
    Audio,
    Diarization,
    SpeechRegion,
    Transcript,
    TranscriptSegment,
    Turn,
    Vector,
    Word,
)


def voice_vector(voice: str, dim: int = 16, noise: float = 0.0, seed: int = 0) -> Vector:
    """A unit vector for a voice id, plus optional noise (deterministic per seed)."""
    base = np.random.default_rng(int(hashlib.sha1(voice.encode()).hexdigest()[:8], 16))
    vector = base.normal(size=dim)
    if noise:
        vector = vector / np.linalg.norm(vector) + np.random.default_rng(seed).normal(
            scale=noise, size=dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def words(text: str, start: float, step: float = 0.5) -> list[Word]:
    """Whisper-style words (leading space), one every `step` seconds."""
    out = []
    for i, token in enumerate(text.split()):
        out.append(Word(" " + token, start + i * step, start + i * step + step * 0.8, 0.9))
    return out


def segment(text: str, start: float, step: float = 0.5) -> TranscriptSegment:
    ws = words(text, start, step)
    return TranscriptSegment(ws[0].start, ws[-1].end, text, ws)


class ScriptedVAD:
    def __init__(self, regions: list[SpeechRegion] | None = None) -> None:
        self.regions = regions
        self.calls = 0

    def speech_regions(self, audio: Audio) -> list[SpeechRegion]:
        self.calls += 1
        if self.regions is not None:
            return list(self.regions)
        # Energy-based: stretches of 0.1 s frames above a floor.
        frame = audio.sample_rate // 10
        regions: list[SpeechRegion] = []
        for i in range(0, len(audio.samples), frame):
            if np.abs(audio.samples[i : i + frame]).mean() > 1e-3:
                t = i / audio.sample_rate
                if regions and abs(regions[-1].end - t) < 1e-9:
                    regions[-1] = SpeechRegion(regions[-1].start, t + 0.1)
                else:
                    regions.append(SpeechRegion(t, t + 0.1))
        return regions


class ScriptedTranscriber:
    model_id = "fake-asr"

    def __init__(self, segments: list[TranscriptSegment], language: str = "en") -> None:
        self.segments = segments
        self.language = language
        self.calls = 0

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        self.calls += 1
        kept = [s for s in self.segments if s.end <= audio.duration + 1e-6]
        return Transcript(kept, language or self.language, self.model_id)


class ScriptedDiarizer:
    """Turns as scripted; each turn contributes 1.5 s windows of its voice's vector."""

    def __init__(self, turns: list[Turn], voices: dict[str, str], model_id: str = "fake-voice",
                 with_spans: bool = True) -> None:
        self.turns = turns
        self.voices = voices
        self.model_id = model_id
        self.with_spans = with_spans
        self.calls: list[dict[str, int | None]] = []

    def diarize(self, audio: Audio, num_speakers: int | None = None,
                min_speakers: int | None = None, max_speakers: int | None = None) -> Diarization:
        self.calls.append({"num": num_speakers, "min": min_speakers, "max": max_speakers})
        vectors: dict[str, list[Vector]] = {}
        spans: dict[str, list[tuple[float, float]]] = {}
        for n, turn in enumerate(self.turns):
            t = turn.start
            while t + 1.5 <= turn.end + 1e-9:
                vectors.setdefault(turn.label, []).append(
                    voice_vector(self.voices[turn.label], noise=0.05, seed=n * 1000 + int(t * 10)))
                spans.setdefault(turn.label, []).append((t, t + 1.5))
                t += 0.75
        return Diarization(list(self.turns), vectors, self.model_id,
                           spans if self.with_spans else {})


class CountingVoiceEmbedder:
    """Vector from the clip's length only (enough to test batching and plumbing)."""

    model_id = "fake-voice"
    dimension = 16

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        self.batches.append(len(clips))
        return [voice_vector(f"len{len(c) // 1600}") for c in clips]


class WordHashTextEmbedder:
    model_id = "fake-text"
    dimension = 32

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        out = []
        for text in texts:
            vector = np.zeros(self.dimension, dtype=np.float32)
            for token in text.lower().split():
                vector[int(hashlib.sha1(token.encode()).hexdigest(), 16) % self.dimension] += 1
            norm = np.linalg.norm(vector)
            out.append(vector / norm if norm else vector)
        return out


def tone_audio(seconds: float, rate: int = 16_000) -> Audio:
    """Audible noise for `seconds` (the fakes only need samples of the right length)."""
    rng = np.random.default_rng(0)
    return Audio((rng.normal(scale=0.1, size=int(seconds * rate))).astype(np.float32))


class StreamingScriptedTranscriber(ScriptedTranscriber):
    """Hands each segment over as it is 'recognised' (as WhisperTranscriber does)."""

    streams_segments = True

    def __init__(self, segments: list[TranscriptSegment], pause: float = 0.0) -> None:
        super().__init__(segments)
        self.pause = pause
        self.handed_over = 0

    def transcribe(self, audio: Audio, language: str | None = None,  # type: ignore[override]
                   progress: Callable[[float], None] | None = None,
                   on_segment: Callable[[TranscriptSegment], None] | None = None) -> Transcript:
        import time

        for s in self.segments:
            time.sleep(self.pause)
            if on_segment is not None:
                on_segment(s)
            self.handed_over += 1
            if progress is not None:
                progress(s.end / audio.duration)
        return super().transcribe(audio, language)


class FailingDiarizer:
    def diarize(self, audio: Audio, num_speakers: int | None = None,
                min_speakers: int | None = None, max_speakers: int | None = None) -> Diarization:
        raise RuntimeError("diarizer broke")
