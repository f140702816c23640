"""Clustering of (chunk, local speaker) voice vectors into the recording's speakers.

The segmentation model names up to three local speakers per 10 s chunk; each gets one voice
vector. Clustering them is two steps, as in pyannote's pipeline:
1. Agglomerative clustering (average linkage on unit vectors) cut at a distance threshold:
   the speaker count follows from how far apart voices are, so it holds from one speaker to
   ten and more, for a minute or for hours. Clusters too small to be a speaker are folded into
   the nearest large one. `num_speakers` / `min_speakers` / `max_speakers` cut the tree at
   another level instead.
2. Constrained assignment: within each chunk, local speakers are matched to cluster centroids
   by an optimal one-to-one assignment (Hungarian), so two local speakers of one chunk, who
   the segmentation model heard as different people, never end up in one cluster. Vectors
   too short to take part in step 1 are assigned here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.clustering import (
    even_subsample,
    label_centroids,
    speaker_count_bounds,
    unit_rows,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

UNASSIGNED = -1


@dataclass(frozen=True)
class ChunkClusteringConfig:
    threshold: float = 0.85
    """Average-linkage distance (mean Euclidean distance of unit vectors, 0.85 ~ cosine 0.64)
    at which two groups of vectors stop being one voice. Tuned with CAM++ on dev, real-dev and
    pyannote-sample (README, evaluation); average linkage keeps its meaning however many
    vectors a long recording brings, where complete or Ward linkage drift with size."""
    min_cluster_size: int = 3
    """Clusters with fewer vectors than this are not speakers of their own..."""
    min_cluster_fraction: float = 0.1
    """...unless the recording has so few vectors that this share of them is smaller."""
    linkage: str = "average"
    """scipy linkage method over Euclidean distances of unit vectors."""
    max_auto_speakers: int = 20
    max_points: int = 6000
    """Above this many vectors, step 1 clusters an even subsample (memory is quadratic)."""


def cluster_chunk_speakers(
    vectors: npt.ArrayLike,
    chunks: npt.ArrayLike,
    train: npt.ArrayLike,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    config: ChunkClusteringConfig | None = None,
) -> IntArray:
    """Cluster index (0..k-1) per vector; vectors of one chunk always get distinct clusters.

    `chunks[i]`: the chunk vector i comes from. `train[i]`: whether vector i is reliable
    enough (enough clean speech) to shape the clusters; the others are only assigned.
    """
    cfg = config or ChunkClusteringConfig()
    x = unit_rows(np.asarray(vectors, dtype=np.float64))
    chunk_of = np.asarray(chunks, dtype=np.int64).reshape(-1)
    trusted = np.asarray(train, dtype=bool).reshape(-1)
    if not len(x) == len(chunk_of) == len(trusted):
        raise ValueError("vectors, chunks and train must have one entry per vector")
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    if not trusted.any():
        trusted = np.ones(len(x), dtype=bool)  # nothing reliable: let every vector shape them
    low, high = speaker_count_bounds(num_speakers, min_speakers, max_speakers,
                                     cfg.max_auto_speakers)
    clustered = _cluster(x[trusted], low, high, cfg)
    preferred = np.full(len(x), UNASSIGNED, dtype=np.int64)
    preferred[trusted] = clustered
    return assign_within_chunks(x, chunk_of, label_centroids(x[trusted], clustered), preferred)


# ----------------------------------------------------------------------------- step 1

def _cluster(x: FloatArray, low: int, high: int, cfg: ChunkClusteringConfig) -> IntArray:
    """Labels 0..k-1 of the rows of x (unit vectors), k within [low, high] where possible."""
    from scipy.cluster.hierarchy import linkage

    n = x.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    sample = even_subsample(n, cfg.max_points)
    merges = linkage(x[sample], method=cfg.linkage, metric="euclidean")
    m = len(sample)
    min_size = max(1, min(cfg.min_cluster_size, round(cfg.min_cluster_fraction * m)))
    # Some linkages (centroid, median) can merge at a smaller distance than an earlier merge,
    # so the tree is cut by merge order: the merges before the first one above the threshold.
    above = np.flatnonzero(merges[:, 2] > cfg.threshold)
    labels = _after_merges(merges, m, int(above[0]) if len(above) else m - 1)
    k = _large_count(labels, min_size)
    if not low <= k <= high:
        # Undo or add merges until the tree has the nearest allowed number of large clusters.
        labels = _cut_for_large(merges, min(max(k, low), high), min_size, m)
    if _large_count(labels, min_size) >= low:  # else a forced count keeps small clusters
        labels = _fold_small(x[sample], labels, min_size)
    if m == n:
        return labels
    return _nearest(x, label_centroids(x[sample], labels))


def _after_merges(merges: FloatArray, n: int, count: int) -> IntArray:
    """Cluster labels 0..k-1 after the first `count` merges of a linkage matrix."""
    parent = np.arange(2 * n - 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for step in range(count):
        a, b = int(merges[step, 0]), int(merges[step, 1])
        parent[root(a)] = n + step
        parent[root(b)] = n + step
    roots = np.array([root(i) for i in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return np.asarray(labels, dtype=np.int64).reshape(-1)


def _cut_for_large(merges: FloatArray, wanted: int, min_size: int, n: int) -> IntArray:
    """The cut with the fewest clusters that has `wanted` clusters of at least min_size vectors
    (or, when no cut has that many, the cut with exactly `wanted` clusters)."""
    for clusters in range(min(wanted, n), n + 1):
        labels = _after_merges(merges, n, n - clusters)
        if _large_count(labels, min_size) >= wanted:
            return labels
    return _after_merges(merges, n, n - min(wanted, n))


def _large_count(labels: IntArray, min_size: int) -> int:
    return int((np.bincount(labels) >= min_size).sum())


def _fold_small(x: FloatArray, labels: IntArray, min_size: int) -> IntArray:
    """Vectors of clusters under min_size join the nearest large cluster; labels 0..k-1."""
    sizes = np.bincount(labels)
    large = np.flatnonzero(sizes >= min_size)
    if len(large) == 0:
        return np.zeros(len(labels), dtype=np.int64)
    remap = np.full(len(sizes), UNASSIGNED, dtype=np.int64)
    remap[large] = np.arange(len(large))
    out = remap[labels]
    small = out == UNASSIGNED
    if small.any():
        centroids = label_centroids(x[~small], out[~small])
        out[small] = _nearest(x[small], centroids)
    return out


# ----------------------------------------------------------------------------- step 2

def assign_within_chunks(
    x: FloatArray, chunk_of: IntArray, centroids: FloatArray, preferred: IntArray | None = None,
) -> IntArray:
    """Per chunk, the one-to-one assignment of its vectors to centroids with the highest total
    similarity. A chunk with more vectors than there are clusters leaves the weakest ones
    UNASSIGNED (they are not given a cluster that another local speaker already has).

    `preferred[i]`: the cluster vector i was clustered into (or UNASSIGNED); it keeps it unless
    another vector of its chunk is in the same cluster (a similarity can gain at most 2)."""
    from scipy.optimize import linear_sum_assignment

    scores = x @ centroids.T
    if preferred is not None:
        keep = preferred >= 0
        scores[np.flatnonzero(keep), preferred[keep]] += 2.0
    labels = np.full(len(x), UNASSIGNED, dtype=np.int64)
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.flatnonzero(np.diff(chunk_of[order])) + 1
    for members in np.split(order, bounds):
        if len(members) == 1:
            labels[members[0]] = int(np.argmax(scores[members[0]]))
            continue
        rows, cols = linear_sum_assignment(scores[members], maximize=True)
        labels[members[rows]] = cols
    return labels


# ----------------------------------------------------------------------------- helpers

def _nearest(x: FloatArray, centroids: FloatArray) -> IntArray:
    return np.asarray((x @ centroids.T).argmax(axis=1), dtype=np.int64)
