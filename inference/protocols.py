"""One small Protocol per model family. Backends are chosen by settings and load lazily."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from inference.types import (
    Audio,
    Diarization,
    EmotionResult,
    SpeechRegion,
    Transcript,
    TranscriptSegment,
    Vector,
)


class VoiceActivityDetector(Protocol):
    def speech_regions(self, audio: Audio) -> list[SpeechRegion]: ...


class Transcriber(Protocol):
    model_id: str

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """Segments with word timestamps and probabilities, and the detected language."""
        ...


@runtime_checkable
class StreamingTranscriber(Protocol):
    """A Transcriber that can also report progress and hand over each segment as it is done
    (WhisperTranscriber); the pipeline then aligns and embeds while ASR goes on."""

    model_id: str
    streams_segments: bool

    def transcribe(
        self,
        audio: Audio,
        language: str | None = None,
        progress: Callable[[float], None] | None = None,
        on_segment: Callable[[TranscriptSegment], None] | None = None,
    ) -> Transcript: ...


class VoiceEmbedder(Protocol):
    model_id: str
    """Name + version; vectors of different ids are never compared."""
    dimension: int

    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        """One L2-normalised vector per 16 kHz clip, batched."""
        ...


class Diarizer(Protocol):
    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization: ...


@runtime_checkable
class ReportingDiarizer(Protocol):
    """A Diarizer that can also report how far it got: `progress` receives the share (0..1)
    of the recording diarized so far (NeuralDiarizer, BuiltinDiarizer)."""

    reports_progress: bool

    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization: ...


class TextEmbedder(Protocol):
    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[Vector]: ...


class EmotionRecognizer(Protocol):
    model_id: str

    def recognize(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[EmotionResult]: ...
