"""Shared fixtures of the inference tests: the corpus, short real clips, and the bundled models
loaded once per test session (model tests are marked `models`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# Nothing may download weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from inference.audio import decode
from inference.types import Audio

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "dev" / "manifest.json").is_file():
        pytest.skip(f"the evaluation corpus is not at {CORPUS.resolve()}")
    return CORPUS


@pytest.fixture(scope="session")
def dev_audio(corpus_dir: Path) -> Callable[[str], Audio]:
    """Decoded dev conversations by id ('dev01'), decoded once per session."""
    cache: dict[str, Audio] = {}

    def load(conversation_id: str) -> Audio:
        if conversation_id not in cache:
            path = corpus_dir / "dev" / "conversations" / f"{conversation_id}.wav"
            cache[conversation_id] = decode(path)
        return cache[conversation_id]

    return load


@pytest.fixture(scope="session")
def short_clip(dev_audio: Callable[[str], Audio]) -> Audio:
    """The first 20 s of dev01: two speakers (af_heart, then am_fenrir from 8.9 s)."""
    audio = dev_audio("dev01")
    return Audio(samples=audio.samples[: 20 * audio.sample_rate].copy())


@pytest.fixture(scope="session")
def silero_vad():  # type: ignore[no-untyped-def]
    from inference.vad import SileroVAD

    return SileroVAD()


@pytest.fixture(scope="session")
def tiny_transcriber(silero_vad, tmp_path_factory):  # type: ignore[no-untyped-def]
    from inference.transcribe import WhisperTranscriber

    return WhisperTranscriber(
        "tiny.en", cache_dir=tmp_path_factory.mktemp("models"), vad=silero_vad
    )


@pytest.fixture(scope="session")
def text_embedder():  # type: ignore[no-untyped-def]
    from inference.text_embedding import MiniLMTextEmbedder

    return MiniLMTextEmbedder(device="cpu")


@pytest.fixture(scope="session")
def voice_embedder():  # type: ignore[no-untyped-def]
    voice = pytest.importorskip("inference.voice", reason="inference/voice.py is not written yet")
    return voice.ResemblyzerEmbedder(device="cpu")


@pytest.fixture(scope="session")
def builtin_diarizer(silero_vad, voice_embedder):  # type: ignore[no-untyped-def]
    diarization = pytest.importorskip(
        "inference.diarization", reason="inference/diarization.py is not written yet"
    )
    return diarization.BuiltinDiarizer(silero_vad, voice_embedder)
