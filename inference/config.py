"""The pipeline's plain configuration (inference never imports tools/: tools converts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DiarizerName = Literal["neural", "builtin", "pyannote"]
VoiceEmbedderName = Literal["campplus", "resemblyzer", "pyannote"]

LIVE_PARALLEL_PASSES = 2
"""Live sessions transcribed at once, each pass on its own Whisper worker (measured in
inference.transcribe.WhisperWindow: two passes side by side beat two in turn on 2 cores)."""


@dataclass(frozen=True)
class PipelineConfig:
    whisper_model: str = "tiny.en"
    """'tiny.en' and 'base' are bundled; any faster-whisper size name or CTranslate2 folder."""
    language: str | None = None
    """Force a transcription language (ISO code); None detects it."""
    device: str = "auto"
    compute_type: str = "auto"
    diarizer: DiarizerName = "neural"
    """neural: segmentation-3.0 + voice vectors per chunk; builtin: VAD windows (GE2E era)."""
    voice_embedder: VoiceEmbedderName = "campplus"
    emotion: bool = False
    hf_token: str | None = None
    models_dir: Path = Path("data/models")
    """Writable cache for models that must be unpacked (Whisper base)."""
    weights_dir: Path | None = None
    """Segmentation and CAM++ files (inference.weights); None = the installation's folder."""
    max_audio_seconds: float = 4 * 3600.0
    match_margin: float | None = None
    """Memory-informed diarization: the best enrolled voice must beat the runner-up by this
    (None: the voice model's measured margin, memory.types.MODEL_THRESHOLDS)."""
    beam_size: int = 5
    live_whisper_model: str = "tiny.en"
    """The model live sessions transcribe with (each pass re-reads the growing buffer: a
    small model keeps up in real time on a CPU)."""
    live_beam_size: int = 1
    """Greedy decoding for live passes: LocalAgreement only needs two passes to agree."""
    live_vad_threshold: float = 0.5
    """Live audio with no speech at this silero threshold is not sent to Whisper."""
    live_parallel_passes: int = LIVE_PARALLEL_PASSES
    """Live Whisper passes that may run at once (one CTranslate2 worker each)."""
    cpu_threads: int = 0
    """CTranslate2 threads on CPU; 0 = its default."""
    torch_threads: int = 0
    """torch threads for the models beside ASR (on CPU); 0 = half the cores."""
