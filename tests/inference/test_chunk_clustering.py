"""Clustering of (chunk, local speaker) vectors: automatic count, bounds, cannot-link."""

from __future__ import annotations

import numpy as np
import pytest

from inference.chunk_clustering import (
    UNASSIGNED,
    ChunkClusteringConfig,
    assign_within_chunks,
    cluster_chunk_speakers,
)


def voices(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """`count` random unit directions, far apart in 32 dimensions."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(count, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def samples(centres: np.ndarray, who: list[int], noise: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centres[who] + noise * rng.normal(size=(len(who), centres.shape[1]))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def same_partition(a: np.ndarray, b: list[int]) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    return len(pairs) == len(set(a.tolist())) == len(set(b))


@pytest.mark.parametrize("speakers", [1, 2, 4, 10])
def test_automatic_count_from_one_to_ten_speakers(speakers: int) -> None:
    centres = voices(speakers)
    who = [i % speakers for i in range(12 * speakers)]
    x = samples(centres, who, noise=0.08)
    labels = cluster_chunk_speakers(x, np.arange(len(who)), np.ones(len(who), bool))
    assert same_partition(labels, who)


def test_bounds_and_fixed_count_cut_the_tree_elsewhere() -> None:
    centres = voices(4)
    who = [i % 4 for i in range(40)]
    x = samples(centres, who, noise=0.08)
    chunks, train = np.arange(40), np.ones(40, bool)
    assert len(set(cluster_chunk_speakers(x, chunks, train, num_speakers=2).tolist())) == 2
    assert len(set(cluster_chunk_speakers(x, chunks, train, max_speakers=3).tolist())) == 3
    assert len(set(cluster_chunk_speakers(x, chunks, train, min_speakers=5).tolist())) == 5
    with pytest.raises(ValueError, match="min_speakers"):
        cluster_chunk_speakers(x, chunks, train, min_speakers=3, max_speakers=2)


def test_two_local_speakers_of_one_chunk_never_share_a_cluster() -> None:
    # Two similar voices: every chunk holds both; the vectors alone would pull some chunks'
    # pair into one cluster, the constraint must keep them apart.
    rng = np.random.default_rng(3)
    base = voices(1, seed=5)[0]
    other = base + 0.35 * voices(1, seed=6)[0]
    centres = np.stack([base, other / np.linalg.norm(other)])
    who = [0, 1] * 30
    x = samples(centres, who, noise=0.2, seed=int(rng.integers(100)))
    chunks = np.repeat(np.arange(30), 2)
    labels = cluster_chunk_speakers(x, chunks, np.ones(60, bool), num_speakers=2)
    for c in range(30):
        pair = labels[chunks == c]
        assert pair[0] != pair[1]


def test_a_chunk_with_more_speakers_than_clusters_leaves_the_weakest_unassigned() -> None:
    centroids = voices(2)
    x = np.stack([centroids[0], centroids[1], 0.6 * centroids[0] + 0.4 * centroids[1]])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = assign_within_chunks(x, np.array([0, 0, 0]), centroids)
    assert labels.tolist() == [0, 1, UNASSIGNED]


def test_untrusted_vectors_are_assigned_but_do_not_make_a_speaker() -> None:
    centres = voices(3)
    who = [0] * 10 + [1] * 10 + [2]
    x = samples(centres, who, noise=0.05)
    train = np.array([True] * 20 + [False])
    labels = cluster_chunk_speakers(x, np.arange(21), train)
    assert len(set(labels.tolist())) == 2  # the lone third voice joins its nearest speaker


def test_small_clusters_fold_into_large_ones() -> None:
    centres = voices(3)
    who = [0] * 20 + [1] * 20 + [2]  # one stray vector: not a speaker of its own
    x = samples(centres, who, noise=0.05)
    cfg = ChunkClusteringConfig(min_cluster_size=3)
    labels = cluster_chunk_speakers(x, np.arange(41), np.ones(41, bool), config=cfg)
    assert len(set(labels.tolist())) == 2
