"""Build the pipeline's backends from a PipelineConfig.

Building is cheap: every backend loads its model on first use. The VAD instance is shared by
the transcriber and the diarizer so that one VAD pass serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.config import PipelineConfig
from inference.protocols import (
    Diarizer,
    EmotionRecognizer,
    TextEmbedder,
    Transcriber,
    VoiceActivityDetector,
    VoiceEmbedder,
)
from inference.transcribe import TranscribeOptions, WhisperTranscriber
from inference.vad import SileroVAD


@dataclass
class Backends:
    vad: VoiceActivityDetector
    transcriber: Transcriber
    diarizer: Diarizer
    voice_embedder: VoiceEmbedder
    text_embedder: TextEmbedder | None
    emotion: EmotionRecognizer | None = None


def build_backends(config: PipelineConfig) -> Backends:
    vad = SileroVAD()
    transcriber = WhisperTranscriber(
        config.whisper_model,
        cache_dir=config.models_dir,
        device=config.device,
        compute_type=config.compute_type,
        cpu_threads=config.cpu_threads,
        vad=vad,
        options=TranscribeOptions(beam_size=config.beam_size),
    )
    voice_embedder = build_voice_embedder(config)
    diarizer = build_diarizer(config, vad, voice_embedder)
    from inference.text_embedding import MiniLMTextEmbedder

    emotion: EmotionRecognizer | None = None
    if config.emotion:
        from inference.emotion import Emotion2VecRecognizer

        emotion = Emotion2VecRecognizer(device=config.device)
    return Backends(
        vad=vad,
        transcriber=transcriber,
        diarizer=diarizer,
        voice_embedder=voice_embedder,
        text_embedder=MiniLMTextEmbedder(device=config.device),
        emotion=emotion,
    )


def build_voice_embedder(config: PipelineConfig) -> VoiceEmbedder:
    if config.voice_embedder == "pyannote":
        from inference.pyannote_backend import PyannoteEmbedder

        return PyannoteEmbedder(token=config.hf_token, device=config.device)
    from inference.voice import ResemblyzerEmbedder

    return ResemblyzerEmbedder(device=config.device)


def build_diarizer(
    config: PipelineConfig, vad: VoiceActivityDetector, voice_embedder: VoiceEmbedder
) -> Diarizer:
    if config.diarizer == "pyannote":
        from inference.pyannote_backend import PyannoteDiarizer

        return PyannoteDiarizer(token=config.hf_token, device=config.device)
    from inference.diarization import BuiltinDiarizer

    return BuiltinDiarizer(vad, voice_embedder)
