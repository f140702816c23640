"""Shared fixtures of the inference tests: a short real clip from tests/data, and the bundled
models loaded once per test session (model tests are marked `models`)."""

from __future__ import annotations

import os

import pytest

# Nothing may download weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from inference.audio import decode
from inference.types import Audio
from tests.testdata import dev_conversation


@pytest.fixture(scope="session")
def short_clip() -> Audio:
    """dev01's first 19.6 s: two speakers (af_heart, then am_fenrir from 8.9 s, then af_heart
    from 16.7 s), cut in the pause before am_fenrir's second turn."""
    return decode(dev_conversation("dev01-start"))


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
