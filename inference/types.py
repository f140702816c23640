"""Plain dataclasses that flow through the audio pipeline.

CONTRACT shared by every inference module and by tools/. `PipelineResult` satisfies
memory.types.PipelineResultLike, so `memory.ingest` takes it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# One definition of a word and a vector for both layers: what the pipeline emits is what
# memory stores.
from memory.types import Vector as Vector  # re-exported
from memory.types import Word as Word  # re-exported

SAMPLE_RATE = 16_000


def spoken_text(words: Sequence[Word]) -> str:
    """The text of Whisper's words. Each carries its leading space, and a piece without one
    belongs to the word before ("6" "%" is "6%", "40" ",000" is "40,000"), so joining them
    rebuilds the text as spoken (languages written without spaces included)."""
    return "".join(w.word for w in words).strip()


@dataclass(frozen=True)
class Audio:
    """16 kHz mono float32 samples in [-1, 1]."""

    samples: npt.NDArray[np.float32]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def slice(self, start: float, end: float) -> npt.NDArray[np.float32]:
        return self.samples[int(start * self.sample_rate) : int(end * self.sample_rate)]


@dataclass(frozen=True)
class SpeechRegion:
    start: float
    end: float


@dataclass(frozen=True)
class TranscriptSegment:
    start: float
    end: float
    text: str
    words: list[Word]


@dataclass(frozen=True)
class Transcript:
    segments: list[TranscriptSegment]
    language: str | None
    model_id: str


@dataclass(frozen=True)
class Turn:
    """A stretch of one per-recording speaker."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Diarization:
    turns: list[Turn]
    """Sorted by start. Turns of different labels overlap where two people talk at once."""
    vectors: dict[str, list[Vector]]
    """Per label: the voice vectors (windows) it was clustered from, reused for identification."""
    model_id: str
    """Voice model id of those vectors."""
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per label: (start, end) seconds of each vector in `vectors`, same order. Lets the
    pipeline reuse window vectors for segment vectors (no second embedding pass); empty when a
    backend has no per-window vectors (it then embeds segments itself)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step of the diarizer (segmentation, embedding, clustering, ...)."""
    exclusive: list[Turn] | None = None
    """One speaker at a time (in overlaps, the most active one), for word alignment; None when
    `turns` never overlap (then they serve as they are)."""

    @property
    def exclusive_turns(self) -> list[Turn]:
        return self.turns if self.exclusive is None else self.exclusive


@dataclass(frozen=True)
class EnrollmentVoice:
    """What `Pipeline.embed_voice` learns from an enrollment clip (one voice)."""

    vectors: list[Vector]
    model_id: str
    speech_seconds: float
    channel_vectors: dict[str, list[Vector]] = field(default_factory=dict)
    """The same speech as other channels carry it: model id → vectors (memory.enroll)."""
    voice_seconds: list[float] = field(default_factory=list)
    """Seconds of speech of each voice the diarizer hears in a clip, most first: more than
    one means the clip is not one person alone. Empty when not checked (profile rebuilds from
    a speaker's own segments)."""


@dataclass(frozen=True)
class EmotionResult:
    label: str
    confidence: float


@dataclass
class PipelineSegment:
    start: float
    end: float
    text: str
    words: list[Word]
    local_speaker: str | None
    voice_vector: Vector | None = None
    text_vector: Vector | None = None
    emotion: str | None = None
    emotion_confidence: float | None = None


@dataclass
class LocalSpeaker:
    label: str
    vectors: list[Vector]
    speech_seconds: float
    matched_speaker_id: int | None = None
    """Set by memory-informed diarization when the cluster matched an enrolled voice."""
    voice_model_id: str | None = None
    """The model id of `vectors` when it is not the result's: a voice heard through a telephone
    band is matched against telephone-band profiles (memory.types.with_channel)."""


@dataclass
class PipelineResult:
    segments: list[PipelineSegment]
    local_speakers: list[LocalSpeaker]
    voice_model_id: str
    text_model_id: str | None
    language: str | None
    duration: float
    asr_model_id: str | None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage (decode, asr, diarize, ...), for benchmarks and logs."""
    turns: list[Turn] = field(default_factory=list)
    """The diarization as stored: every local speaker's turns, by the same labels as the
    segments' `local_speaker`; two turns overlap where two people talk at once."""
