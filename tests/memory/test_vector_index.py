"""The staged semantic search (memory/vector_index.py): Hamming scan of binary codes, in-RAM
asymmetric re-rank, exact re-score. Each stage is checked against a numpy brute force, and
the whole against the exact top-k (recall) on clustered vectors with many near-ties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from memory.vector_index import (
    _CodeTable,
    _nearest_positions,
    _rerank_positions,
    candidate_counts,
    quantise,
)
from tests.memory.backends import Backend
from tests.memory.fakes import TEXT_MODEL, Voices, make_result

Vec = npt.NDArray[np.float32]


def clustered(rng: np.random.Generator, n: int, centres: Vec) -> Vec:
    """Unit vectors around a few topic centres (same-topic cosine ~0.4): the exact top-k
    hides among many near-ties, the hard case for binary codes (the benchmark's text)."""
    rows = centres[rng.integers(len(centres), size=n)]
    rows = rows + rng.standard_normal(rows.shape) * 0.06
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def topics(rng: np.random.Generator, count: int, dim: int = 384) -> Vec:
    centres = rng.standard_normal((count, dim))
    return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


def code_table(vectors: Vec) -> _CodeTable:
    codes = np.packbits(vectors > 0, axis=1)
    return _CodeTable(np.arange(1, vectors.shape[0] + 1, dtype=np.int64), codes)


def test_candidate_counts_grow_with_the_store() -> None:
    # (re-scored exactly, kept by the Hamming scan)
    assert candidate_counts(1_000_000, 1.0, 20) == (3333, 10_000)
    assert candidate_counts(100_000, 1.0, 20) == (400, 1200)
    assert candidate_counts(1000, 1.0, 20) == (400, 1000)  # never more than the store
    assert candidate_counts(300, 1.0, 20) == (300, 300)
    assert candidate_counts(100_000, 1.0, 100) == (1000, 3000)  # 10x what is wanted
    # A filter matching 10% of a 1M store: enough candidates for 1/300 of its 100k rows
    # to pass the filter, i.e. ten times as many overall.
    assert candidate_counts(1_000_000, 0.1, 20) == (4000, 12_000)
    assert candidate_counts(1_000_000, 0.001, 20)[0] == 50_000  # capped


@pytest.mark.parametrize("dim", [384, 40])
def test_hamming_stage_keeps_exactly_the_nearest_codes(dim: int) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((5000, dim)).astype(np.float32)
    table = code_table(vectors)
    query = rng.standard_normal(dim).astype(np.float32)
    _, columns, size = table.view()
    kept = _nearest_positions(columns, size, table.query_words(quantise(query)), 700)

    bits = np.unpackbits(np.packbits(vectors > 0, axis=1), axis=1)[:, :dim]
    distances = (bits != (query > 0)).sum(axis=1)
    assert kept.size == 700
    assert np.all(np.diff(kept) > 0)  # position order, no repeats
    dropped = np.setdiff1d(np.arange(size), kept)
    assert distances[kept].max() <= distances[dropped].min()
    # ties at the cut-off: the lower positions are kept
    cutoff = distances[kept].max()
    at = np.flatnonzero(distances == cutoff)
    assert set(at[: np.isin(at, kept).sum()]) == set(kept[distances[kept] == cutoff])


@pytest.mark.parametrize("dim", [384, 40])
def test_rerank_orders_by_the_asymmetric_score(dim: int) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((3000, dim)).astype(np.float32)
    table = code_table(vectors)
    query = rng.standard_normal(dim).astype(np.float32)
    _, columns, size = table.view()
    positions = np.sort(rng.choice(size, 1200, replace=False))
    kept = _rerank_positions(columns, positions, query, 300)

    signs = np.where(vectors > 0, 1.0, -1.0)
    scores = signs[positions] @ query.astype(np.float64)
    expected = np.sort(positions[np.argsort(-scores, kind="stable")[:300]])
    assert kept.tolist() == expected.tolist()


def test_staged_selection_recall_on_near_ties() -> None:
    """The candidates the two in-RAM stages pass on contain >= 90% of the exact top 20.
    (How many re-scored rows that takes depends on how many rows tie with the true top 20:
    here ~1250 of one topic, as in the 100k benchmark store.)"""
    rng = np.random.default_rng(3)
    centres = topics(rng, 32)
    queries = clustered(rng, 10, centres)
    vectors = clustered(rng, 40_000, centres)
    table = code_table(vectors)
    _, columns, size = table.view()
    exact_count, rerank = candidate_counts(size, 1.0, 20)
    recalls = []
    for query in queries:
        truth = set(np.argsort(-(vectors @ query))[:20].tolist())
        kept = _nearest_positions(columns, size, table.query_words(quantise(query)), rerank)
        kept = _rerank_positions(columns, kept, query, exact_count)
        recalls.append(len(truth & set(kept.tolist())) / 20)
    assert np.mean(recalls) >= 0.9, recalls
    # The Hamming scan alone, with as many candidates, does clearly worse: the re-rank matters.
    hamming_only = []
    for query in queries:
        truth = set(np.argsort(-(vectors @ query))[:20].tolist())
        kept = _nearest_positions(columns, size, table.query_words(quantise(query)), exact_count)
        hamming_only.append(len(truth & set(kept.tolist())) / 20)
    assert np.mean(hamming_only) < np.mean(recalls)


def test_search_equals_brute_force_when_candidates_cover_the_store(
    backend: Backend, tmp_path: Path
) -> None:
    voices = Voices(seed=4)
    rng = np.random.default_rng(4)
    centres = topics(rng, 4)
    texts = [f"t{i}" for i in range(60)]
    with backend.open(tmp_path / "store.db") as memory:
        stored: dict[int, Vec] = {}
        for c in range(5):
            conversation = memory.create_conversation(title=f"c{c}")
            result = make_result(voices, ["ann", "bob"], 60, seed=c, texts=texts)
            for segment in result.segments:
                segment.text_vector = clustered(rng, 1, centres)[0]
            done = memory.ingest(conversation.id, result)
            for sid, segment in zip(done.segment_ids, result.segments, strict=True):
                assert segment.text_vector is not None
                stored[sid] = segment.text_vector
        ids = np.array(sorted(stored))
        matrix = np.vstack([stored[i] for i in ids])
        for query in clustered(rng, 5, centres):
            hits = memory.search_semantic(query, TEXT_MODEL, limit=40)  # 400 >= 300 rows
            scores = matrix @ query
            order = np.lexsort((-ids, -scores))[:40]
            assert [h.segment.id for h in hits] == ids[order].tolist()
            assert [h.score for h in hits] == pytest.approx(scores[order].tolist(), abs=1e-5)


def test_a_zero_text_vector_scores_zero_and_ranks_by_score(
    backend: Backend, tmp_path: Path
) -> None:
    voices = Voices(seed=5)
    texts = ["alpha", "beta", "gamma", "delta"]
    with backend.open(tmp_path / "store.db") as memory:
        conversation = memory.create_conversation(title="c")
        result = make_result(voices, ["ann"], 4, texts=texts)
        axis = np.eye(384, dtype=np.float32)
        vectors = [axis[0], -axis[0], np.zeros(384, np.float32), axis[0] + axis[1]]
        for segment, vector in zip(result.segments, vectors, strict=True):
            segment.text_vector = vector
        memory.ingest(conversation.id, result)
        hits = memory.search_semantic(axis[0], TEXT_MODEL, limit=4)
    assert [h.segment.text for h in hits] == ["alpha", "delta", "gamma", "beta"]
    assert [h.score for h in hits] == pytest.approx([1.0, 2**-0.5, 0.0, -1.0], abs=1e-6)
