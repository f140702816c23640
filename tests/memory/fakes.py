"""Synthetic pipeline results (the pipeline's own dataclasses) for memory tests and others.

A "voice" is a random unit vector; each clip of it is that vector plus small noise,
renormalised, so clips of one voice are close (cosine ~0.95) and different voices are far
(~0). Text vectors are a deterministic bag of hashed word vectors, so texts that share words
are near in meaning. Everything is seeded: the same calls give the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

# The pipeline's own result types: what memory.ingest really receives.
from inference.types import LocalSpeaker, PipelineResult, PipelineSegment, Turn, Word

VOICE_MODEL = "fake-voice-1.0"
TEXT_MODEL = "fake-text-1.0"
VOICE_DIM = 256
TEXT_DIM = 384

Vec = npt.NDArray[np.float32]

VOCABULARY = (
    "budget", "meeting", "project", "deadline", "coffee", "weather", "football", "holiday",
    "report", "client", "design", "launch", "review", "travel", "hiring", "invoice", "server",
    "database", "music", "garden", "kitchen", "train", "ticket", "doctor", "school", "market",
    "price", "energy", "river", "mountain", "letter", "camera", "window",
)


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def unit(vector: npt.NDArray[np.float64]) -> Vec:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class Voices:
    """Deterministic synthetic voices: `voice(name)` is its true direction, `clip(name)` a
    noisy sample of it."""

    def __init__(self, seed: int = 0, dim: int = VOICE_DIM, noise: float = 0.3) -> None:
        self.seed = seed
        self.dim = dim
        self.noise = noise
        self._clips = 0

    def voice(self, name: str) -> Vec:
        rng = np.random.default_rng(_seed("voice", self.seed, name))
        return unit(rng.standard_normal(self.dim))

    def clip(self, name: str) -> Vec:
        self._clips += 1
        rng = np.random.default_rng(_seed("clip", self.seed, name, self._clips))
        noise = rng.standard_normal(self.dim) / np.sqrt(self.dim) * self.noise
        return unit(self.voice(name).astype(np.float64) + noise)

    def clips(self, name: str, count: int) -> list[Vec]:
        return [self.clip(name) for _ in range(count)]


def text_vector(text: str, dim: int = TEXT_DIM) -> Vec:
    """Bag of hashed word vectors: shared words make texts near."""
    total = np.zeros(dim)
    for word in text.lower().split():
        rng = np.random.default_rng(_seed("word", word.strip(".,!?")))
        total += rng.standard_normal(dim)
    if not total.any():
        total[0] = 1.0
    return unit(total)


def sentence(rng: np.random.Generator, words: int = 6) -> str:
    return " ".join(str(rng.choice(VOCABULARY)) for _ in range(words))


def make_result(
    voices: Voices,
    speakers: Sequence[str],
    n_segments: int = 12,
    *,
    seed: int = 0,
    texts: Sequence[str] | None = None,
    windows_per_speaker: int = 8,
    segment_seconds: float = 2.0,
    with_text_vectors: bool = True,
    with_voice_vectors: bool = True,
    matched: dict[str, int] | None = None,
    voice_model_id: str = VOICE_MODEL,
) -> PipelineResult:
    """A recording in which `speakers` (voice names) take turns, round-robin.

    Local labels are SPEAKER_00, SPEAKER_01... in the order of `speakers`; the diarization
    turns are the segments' spans (append to `turns` for overlapping speech). `texts`
    overrides the generated sentences (cycled). `matched` maps a voice name to a stored
    speaker id, as memory-informed diarization would."""
    rng = np.random.default_rng(_seed("result", voices.seed, seed, *speakers))
    labels = {name: f"SPEAKER_{i:02d}" for i, name in enumerate(speakers)}
    segments: list[PipelineSegment] = []
    t = 0.0
    for i in range(n_segments):
        name = speakers[i % len(speakers)]
        text = texts[i % len(texts)] if texts else sentence(rng)
        tokens = text.split()
        step = segment_seconds / max(1, len(tokens))
        words = [Word(w, t + k * step, t + (k + 1) * step, 0.9) for k, w in enumerate(tokens)]
        segments.append(PipelineSegment(
            start=t, end=t + segment_seconds, text=text, words=words,
            local_speaker=labels[name],
            voice_vector=voices.clip(name) if with_voice_vectors else None,
            text_vector=text_vector(text) if with_text_vectors else None,
        ))
        t += segment_seconds + 0.25
    local = [
        LocalSpeaker(
            label=labels[name],
            vectors=voices.clips(name, windows_per_speaker),
            speech_seconds=segment_seconds * sum(
                1 for k in range(n_segments) if speakers[k % len(speakers)] == name
            ),
            matched_speaker_id=(matched or {}).get(name),
        )
        for name in dict.fromkeys(speakers)
    ]
    return PipelineResult(
        segments=segments, local_speakers=local, voice_model_id=voice_model_id,
        text_model_id=TEXT_MODEL if with_text_vectors else None, language="en", duration=t,
        asr_model_id="fake-asr-1.0",
        turns=[Turn(s.start, s.end, s.local_speaker) for s in segments if s.local_speaker],
    )
