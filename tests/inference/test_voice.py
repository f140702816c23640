"""resemblyzer voice embedder on enrollment clips from tests/data (synthetic and real voices)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inference.audio import decode
from inference.voice import DIMENSION, MODEL_ID, ResemblyzerEmbedder
from tests.testdata import enrollment_clip

pytestmark = pytest.mark.models


def enrollment(voice: str) -> np.ndarray:
    return decode(enrollment_clip(voice)).samples


def test_vectors_are_normalised_256_d(voice_embedder: ResemblyzerEmbedder) -> None:
    clip = enrollment("af_heart")
    vectors = voice_embedder.embed([clip[:16_000 * 3], clip[: 16_000 // 2], clip])
    assert voice_embedder.model_id == MODEL_ID == "resemblyzer-ge2e-0.1.4"
    assert len(vectors) == 3
    for vector in vectors:
        assert vector.shape == (DIMENSION,) and vector.dtype == np.float32
        assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert voice_embedder.embed([]) == []


def test_same_voice_is_closer_than_other_voices(voice_embedder: ResemblyzerEmbedder) -> None:
    """Two halves of one enrollment clip match each other better than any other voice."""
    voices = ["af_heart", "am_fenrir", "bf_emma", "ls_3080", "ls_2033"]  # 3 synthetic, 2 real
    halves = {}
    for voice in voices:
        clip = enrollment(voice)
        middle = len(clip) // 2
        halves[voice] = voice_embedder.embed([clip[:middle], clip[middle:]])
    for voice in voices:
        first, second = halves[voice]
        same = float(first @ second)
        others = [float(first @ halves[o][1]) for o in voices if o != voice]
        assert same > max(others) + 0.05, (voice, same, others)
        assert same > 0.8


def test_batching_does_not_change_the_vectors(voice_embedder: ResemblyzerEmbedder) -> None:
    clip = enrollment("bf_emma")
    windows = [clip[i * 8_000 : i * 8_000 + 24_000] for i in range(10)]
    together = np.stack(voice_embedder.embed(windows))
    alone = np.stack([voice_embedder.embed([w])[0] for w in windows])
    assert np.allclose(together, alone, atol=1e-4)


def test_silence_and_empty_clips_give_finite_vectors(voice_embedder: ResemblyzerEmbedder) -> None:
    vectors = voice_embedder.embed([np.zeros(16_000, np.float32), np.zeros(0, np.float32)])
    assert all(np.isfinite(v).all() and v.shape == (DIMENSION,) for v in vectors)


def test_loads_once_across_threads() -> None:
    embedder = ResemblyzerEmbedder(device="cpu")
    clip = enrollment("am_fenrir")[:16_000 * 2]
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed([clip])[0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert all(np.allclose(r, results[0], atol=1e-5) for r in results)
