"""Backends built from a PipelineConfig (building loads no model)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.config import PipelineConfig
from inference.factory import build_backends
from inference.neural_diarization import NeuralDiarizer
from inference.pipeline import shared_pipeline
from inference.transcribe import WhisperTranscriber
from inference.vad import SileroVAD
from memory.errors import MissingExtra


@pytest.fixture
def torch_threads() -> Iterator[int]:
    """Building backends sets torch's thread count; put it back for the other tests."""
    import torch

    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_default_backends_share_one_vad_and_one_voice_embedder(
    tmp_path: Path, torch_threads: int
) -> None:
    backends = build_backends(PipelineConfig(models_dir=tmp_path))
    assert isinstance(backends.vad, SileroVAD)
    assert isinstance(backends.transcriber, WhisperTranscriber)
    assert backends.transcriber.model_id == "faster-whisper-tiny.en"
    assert backends.transcriber._vad is backends.vad
    assert isinstance(backends.diarizer, NeuralDiarizer)
    assert backends.diarizer.embedder is backends.voice_embedder
    assert backends.voice_embedder.model_id == "campplus-cn-en-common-3dspeaker"
    assert backends.text_embedder is not None
    assert backends.text_embedder.model_id == "all-MiniLM-L6-v2"
    assert backends.emotion is None


def test_torch_gets_the_cores_asr_leaves(tmp_path: Path, torch_threads: int) -> None:
    import torch

    build_backends(PipelineConfig(models_dir=tmp_path, device="cpu", torch_threads=3))
    assert torch.get_num_threads() == 3


def test_one_shared_pipeline_per_configuration(tmp_path: Path) -> None:
    config = PipelineConfig(models_dir=tmp_path)
    assert shared_pipeline(config) is shared_pipeline(PipelineConfig(models_dir=tmp_path))
    assert shared_pipeline(config) is not shared_pipeline(
        PipelineConfig(models_dir=tmp_path, whisper_model="base"))


@pytest.mark.skipif(importlib.util.find_spec("funasr") is not None, reason="funasr is installed")
def test_emotion_without_its_extra_fails_at_startup(tmp_path: Path, torch_threads: int) -> None:
    with pytest.raises(MissingExtra, match="'emotion' extra"):
        build_backends(PipelineConfig(models_dir=tmp_path, emotion=True))


def test_pyannote_without_its_extra_fails_at_startup(tmp_path: Path, torch_threads: int) -> None:
    pytest.importorskip("pyannote.core")
    if importlib.util.find_spec("pyannote.audio") is not None:
        pytest.skip("pyannote.audio is installed")
    with pytest.raises(MissingExtra, match="'pyannote' extra"):
        build_backends(PipelineConfig(models_dir=tmp_path, diarizer="pyannote"))
