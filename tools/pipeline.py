"""What tools need of the audio pipeline (PipelineLike), and how Settings become one: inference
defines its own plain config and never imports tools; this is the one conversion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inference.config import PipelineConfig
from inference.streaming import WindowTranscriber
from inference.types import EnrollmentVoice, PipelineResult, Vector
from memory.types import EnrolledVoice
from tools.settings import Settings

ProgressFn = Callable[[float, str], None]
"""(fraction 0..1 of the whole job, stage) — inference.pipeline.Progress."""


class PipelineLike(Protocol):
    """What tools need from inference.pipeline.Pipeline (a fake implements it in tests)."""

    @property
    def voice_model_id(self) -> str: ...

    @property
    def text_model_id(self) -> str | None:
        """None when no text embedding model is available (semantic search is then off)."""
        ...

    def run(
        self,
        audio_or_path: Path,
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        language: str | None = None,
        enrolled: Sequence[EnrolledVoice] = (),
        progress: ProgressFn | None = None,
    ) -> PipelineResult: ...

    def embed_voice(self, audio_or_path: Path) -> EnrollmentVoice:
        """L2-normalised vectors (per channel), voice model id, seconds of speech of a
        one-voice clip."""
        ...

    def embed_text(self, texts: Sequence[str]) -> list[Vector]: ...

    def live_window(self) -> WindowTranscriber:
        """The Whisper pass live sessions share."""
        ...

    def warm_up_live(self) -> None:
        """Load the live models now (the first session's first words would wait for them)."""
        ...

    def live_channel(self, samples: npt.NDArray[np.float32]) -> str: ...

    def live_voice(self, samples: npt.NDArray[np.float32]) -> Vector: ...

    def has_speech(self, samples: npt.NDArray[np.float32]) -> bool: ...

    def embed_voice_segments(
        self, path: Path, spans: Sequence[tuple[float, float]]
    ) -> EnrollmentVoice:
        """One voice's vectors from these (start, end) seconds of a stored recording, as
        embed_voice gives them for a clip: labelled with the telephone channel when the speech
        came through one. Raises NoSpeech when the spans hold too little speech."""
        ...


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The pipeline's configuration from the settings (the only place they meet)."""
    return PipelineConfig(
        whisper_model=settings.whisper_model,
        language=settings.language,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        torch_threads=settings.torch_threads,
        diarizer=settings.diarizer,
        voice_embedder=settings.voice_embedder,
        emotion=settings.emotion,
        hf_token=settings.hf_token,
        models_dir=settings.models_dir,
        weights_dir=settings.weights_dir,
        max_audio_seconds=float(settings.max_audio_seconds),
        match_margin=settings.match_margin,
        live_whisper_model=settings.live_whisper_model,
        live_vad_threshold=settings.live_vad_threshold,
        live_parallel_passes=settings.live_parallel_passes,
    )


def build_pipeline(settings: Settings) -> PipelineLike:
    """The real pipeline (models load lazily inside it, on first use)."""
    from inference.pipeline import shared_pipeline  # torch & co: imported only when needed

    return shared_pipeline(pipeline_config(settings))


def check_optional_backends(settings: Settings) -> None:
    """Raise MissingExtra at start-up when settings ask for a backend whose extra is missing,
    and ModelUnavailable when the default models' files are not installed, rather than on the
    first recording. Imports no model library."""
    if "pyannote" in (settings.diarizer, settings.voice_embedder):
        from inference.pyannote_backend import check_available as pyannote_available

        pyannote_available()
    if settings.emotion:
        from inference.emotion import check_available as emotion_available

        emotion_available()
    # The default models' files come from set-up, not from a package import: check them too
    # (ModelUnavailable names the set-up command).
    from inference.weights import CAMPPLUS, SEGMENTATION, locate

    if settings.diarizer == "neural":
        locate(SEGMENTATION, settings.weights_dir)
    if settings.voice_embedder == "campplus":
        locate(CAMPPLUS, settings.weights_dir)
