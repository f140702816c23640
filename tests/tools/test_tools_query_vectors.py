"""A search query's vector is computed once and then remembered, per text model, within a
bounded number of queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from inference.types import Vector
from tools.query_vectors import QueryVectors


class CountingEmbed:
    """A deterministic text embedding that counts the texts it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, texts: Sequence[str]) -> list[Vector]:
        self.asked.extend(texts)
        return [np.full(4, float(len(text)), np.float32) for text in texts]


def test_a_query_is_embedded_once_per_text_model() -> None:
    vectors, embed = QueryVectors(), CountingEmbed()
    first = vectors.vector("model-a", "budget", embed)
    again = vectors.vector("model-a", "budget", embed)
    other_model = vectors.vector("model-b", "budget", embed)
    assert embed.asked == ["budget", "budget"]
    assert again is first and np.array_equal(other_model, first)
    with pytest.raises(ValueError):  # shared between calls: read-only
        first[0] = 1.0


def test_the_least_recently_used_query_is_forgotten_first() -> None:
    vectors, embed = QueryVectors(kept=2), CountingEmbed()
    for query in ("one", "two", "one", "three", "one", "two"):
        vectors.vector("m", query, embed)
    # "two" was the least recently used when "three" came, and had to be embedded again.
    assert embed.asked == ["one", "two", "three", "two"]
