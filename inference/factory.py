"""Build the pipeline's backends from a PipelineConfig.

Building is cheap: every backend loads its model on first use. The VAD instance is shared by
the transcriber and the diarizer so that one VAD pass serves both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inference.config import PipelineConfig
from inference.device import choose_device, share_cpu_with_asr
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

log = logging.getLogger(__name__)


@dataclass
class Backends:
    vad: VoiceActivityDetector
    transcriber: Transcriber
    diarizer: Diarizer
    voice_embedder: VoiceEmbedder
    text_embedder: TextEmbedder | None
    emotion: EmotionRecognizer | None = None
    """Wraps the diarizer's embedder to hand its window vectors to the segments."""


def build_backends(config: PipelineConfig) -> Backends:
    if choose_device(config.device).device == "cpu":
        share_cpu_with_asr(config.torch_threads)
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
    if config.diarizer == "pyannote" and config.voice_embedder != "pyannote":
        log.warning("diarizer 'pyannote' with voice embedder %r: enrolled voices and recordings "
                    "get vectors of different models and are never compared; set "
                    "SPEAKER_MEMORY_VOICE_EMBEDDER=pyannote", config.voice_embedder)
    voice_embedder = build_voice_embedder(config)
    diarizer = build_diarizer(config, vad, voice_embedder)
    from inference.text_embedding import MiniLMTextEmbedder

    emotion: EmotionRecognizer | None = None
    if config.emotion:
        from inference.emotion import Emotion2VecRecognizer, check_available

        check_available()
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
        from inference.pyannote_backend import PyannoteEmbedder, check_available

        check_available()
        return PyannoteEmbedder(token=config.hf_token, device=config.device)
    if config.voice_embedder == "resemblyzer":
        from inference.voice import ResemblyzerEmbedder

        return ResemblyzerEmbedder(device=config.device)
    from inference.campplus import CamppEmbedder

    return CamppEmbedder(weights_dir=config.weights_dir, device=config.device)


def build_diarizer(
    config: PipelineConfig, vad: VoiceActivityDetector, voice_embedder: VoiceEmbedder
) -> Diarizer:
    if config.diarizer == "pyannote":
        from inference.pyannote_backend import PyannoteDiarizer, check_available

        check_available()
        return PyannoteDiarizer(token=config.hf_token, device=config.device)
    if config.diarizer == "builtin":
        from inference.diarization import BuiltinDiarizer

        return BuiltinDiarizer(vad, voice_embedder)
    from inference.neural_diarization import NeuralDiarizer
    from inference.segmentation import SegmentationModel

    return NeuralDiarizer(
        SegmentationModel(weights_dir=config.weights_dir, device=config.device), voice_embedder
    )
