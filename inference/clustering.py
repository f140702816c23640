"""Speaker clustering of voice vectors with an automatic speaker count.

Two stages:
1. Spectral clustering with the auto-tuned binarised affinity of NME-SC (Park et al., 2019):
   for each candidate neighbour count p, keep each window's p most similar windows, symmetrise,
   and take the Laplacian's largest eigengap; the p with the best gap-to-p ratio wins and its
   eigengap gives the speaker count. A lone outlier window stays linked to its p nearest
   neighbours, so it cannot become a speaker of its own (the failure of plain agglomerative
   clustering on these vectors).
2. A refinement pass in the voice space: windows move to their nearest cluster centroid,
   clusters whose centroids are as close as one voice's are merged, and clusters too small to
   be a speaker are dissolved into their nearest neighbour.
`num_speakers` fixes the count; `min_speakers`/`max_speakers` bound it. Deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClusteringConfig:
    max_auto_speakers: int = 10
    """Upper bound on the automatic count when no max_speakers is given."""
    merge_ratio: float = 0.92
    """Two clusters are one voice when their windows are, on average, at least this share as
    similar across the clusters as within them (between / geometric mean of the withins).
    Measured with resemblyzer: one voice split in two gives 0.92-0.97; two voices 0.55-0.75
    on clean speech and up to 0.89 on a shared telephone channel."""
    min_cluster_fraction: float = 0.04
    """A cluster with fewer windows than this share of all windows is not a speaker..."""
    min_cluster_windows: int = 4
    """...nor one with fewer windows than this (about 3 s of speech at the diarizer's hop):
    too little to be told from a stray group of one voice's windows."""
    refine_iterations: int = 10
    max_spectral_points: int = 1500
    """Above this many windows, spectral clustering runs on an even subsample."""
    max_pruning_fraction: float = 0.25
    """Largest neighbour share p/n tried by the auto-tuned pruning."""
    seed: int = 0


def cluster_speakers(
    vectors: npt.ArrayLike,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    config: ClusteringConfig | None = None,
) -> IntArray:
    """Cluster labels 0..k-1 (numbered by first appearance) for the rows of `vectors`."""
    cfg = config or ClusteringConfig()
    x = unit_rows(np.asarray(vectors, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = _count_bounds(n, num_speakers, min_speakers, max_speakers, cfg)
    if high <= 1 or n == 1:
        return np.zeros(n, dtype=np.int64)

    sample = even_subsample(n, cfg.max_spectral_points)
    sample_labels = _spectral(x[sample], low, high, cfg)
    centroids = label_centroids(x[sample], sample_labels)
    labels = _nearest(x, centroids)
    labels = _refine(x, labels, low, cfg)
    return _renumber_by_first_appearance(labels)


def centroids_of(vectors: npt.ArrayLike, labels: IntArray) -> FloatArray:
    """L2-normalised mean vector of each label 0..max(labels)."""
    return label_centroids(unit_rows(np.asarray(vectors, dtype=np.float64)), labels)


# --------------------------------------------------------------------------- count bounds

def speaker_count_bounds(
    num_speakers: int | None, min_speakers: int | None, max_speakers: int | None,
    max_auto_speakers: int,
) -> tuple[int, int]:
    """(lowest, highest) speaker count allowed; equal when the count is fixed."""
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                        ("max_speakers", max_speakers)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if num_speakers is not None:
        return num_speakers, num_speakers
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise ValueError(f"min_speakers ({min_speakers}) exceeds max_speakers ({max_speakers})")
    low = min_speakers or 1
    high = max_speakers if max_speakers is not None else max(max_auto_speakers, low)
    return low, high


def _count_bounds(
    n: int,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    cfg: ClusteringConfig,
) -> tuple[int, int]:
    """The allowed count for n windows (no more speakers than windows)."""
    low, high = speaker_count_bounds(num_speakers, min_speakers, max_speakers,
                                     cfg.max_auto_speakers)
    low = min(low, n)
    return low, max(low, min(high, n))


# --------------------------------------------------------------------------- spectral stage

def _spectral(x: FloatArray, low: int, high: int, cfg: ClusteringConfig) -> IntArray:
    n = x.shape[0]
    if n <= 2:
        # Too few windows for a graph: split only if asked to.
        return np.arange(n, dtype=np.int64) if low >= n else np.zeros(n, dtype=np.int64)
    similarity = x @ x.T
    np.fill_diagonal(similarity, 1.0)
    best: tuple[float, int, FloatArray, FloatArray] | None = None
    # Small recordings need a wider neighbourhood than the share alone would give.
    max_p = min(n - 1, max(int(cfg.max_pruning_fraction * n), 6))
    for p in _pruning_candidates(max_p):
        eigenvalues, eigenvectors = _laplacian_spectrum(_binarised_affinity(similarity, p))
        if eigenvalues[1] <= 1e-6 * max(float(eigenvalues[-1]), 1.0) and p < max_p:
            continue  # a disconnected graph: p too small to say anything about the count
        # Count freely, then clip to the bounds: "at most 2" of 4 clear voices means 2.
        k, gap = _eigengap_count(eigenvalues, 1, min(n - 1, max(high, cfg.max_auto_speakers)))
        k = min(max(k, low), high)
        ratio = p / max(gap, 1e-9)
        if best is None or ratio < best[0]:
            best = (ratio, k, eigenvalues, eigenvectors)
    if best is None:
        return np.zeros(n, dtype=np.int64)
    _, k, _, eigenvectors = best
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    embedding = unit_rows(eigenvectors[:, :k])
    return _kmeans(embedding, k, cfg.seed)


def _pruning_candidates(max_p: int) -> list[int]:
    candidates = sorted({max(2, round(v)) for v in np.geomspace(2, max_p, num=12)})
    return candidates


def _binarised_affinity(similarity: FloatArray, p: int) -> FloatArray:
    """Keep each row's p strongest links (as 1), symmetrised."""
    n = similarity.shape[0]
    top = np.argpartition(-similarity, kth=p - 1, axis=1)[:, :p]
    affinity = np.zeros((n, n))
    np.put_along_axis(affinity, top, 1.0, axis=1)
    return np.asarray(0.5 * (affinity + affinity.T))


def _laplacian_spectrum(affinity: FloatArray) -> tuple[FloatArray, FloatArray]:
    np.fill_diagonal(affinity, 0.0)
    laplacian = np.diag(affinity.sum(axis=1)) - affinity
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian)
    return np.asarray(eigenvalues), np.asarray(eigenvectors)


def _eigengap_count(eigenvalues: FloatArray, low: int, high: int) -> tuple[int, float]:
    """Speaker count within [low, high] at the largest normalised eigengap, and that gap."""
    scale = max(float(eigenvalues[-1]), 1e-9)
    gaps = np.diff(eigenvalues[: high + 1]) / scale  # gaps[i] = λ[i+1] - λ[i] → k = i + 1
    if len(gaps) == 0:
        return low, 0.0
    k_values = np.arange(1, len(gaps) + 1)
    allowed = (k_values >= low) & (k_values <= high)
    if not allowed.any():
        return low, 0.0
    masked = np.where(allowed, gaps, -np.inf)
    index = int(np.argmax(masked))
    return int(k_values[index]), float(gaps[index])


def _kmeans(points: FloatArray, k: int, seed: int, n_init: int = 10, iterations: int = 100
            ) -> IntArray:
    """Plain k-means with k-means++ seeding, best of n_init runs."""
    rng = np.random.default_rng(seed)
    best_labels = np.zeros(points.shape[0], dtype=np.int64)
    best_inertia = np.inf
    for _ in range(n_init):
        centres = _kmeans_pp(points, k, rng)
        labels = np.zeros(points.shape[0], dtype=np.int64)
        for step in range(iterations):
            distances = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new_labels = distances.argmin(axis=1).astype(np.int64)
            if step > 0 and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for c in range(k):
                members = points[labels == c]
                if len(members):
                    centres[c] = members.mean(axis=0)
        inertia = float(((points - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels
    return best_labels


def _kmeans_pp(points: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    centres = [points[int(rng.integers(points.shape[0]))]]
    for _ in range(1, k):
        distances = np.min(
            ((points[:, None, :] - np.asarray(centres)[None, :, :]) ** 2).sum(axis=2), axis=1
        )
        total = distances.sum()
        if total <= 0:
            centres.append(points[int(rng.integers(points.shape[0]))])
            continue
        centres.append(points[int(rng.choice(points.shape[0], p=distances / total))])
    return np.asarray(centres, dtype=np.float64)


# --------------------------------------------------------------------------- refinement stage

def _refine(x: FloatArray, labels: IntArray, low: int, cfg: ClusteringConfig) -> IntArray:
    n = x.shape[0]
    min_size = max(cfg.min_cluster_windows, int(np.ceil(cfg.min_cluster_fraction * n)))
    labels = _compact(labels)
    for _ in range(cfg.refine_iterations):
        labels = _compact(_nearest(x, label_centroids(x, labels)))
        # Merge the most similar pair of clusters while they sound like one voice.
        changed = False
        while labels.max() + 1 > low:
            ratios = _between_within_ratios(x, labels)
            a, b = np.unravel_index(int(np.argmax(ratios)), ratios.shape)
            if ratios[a, b] < cfg.merge_ratio:
                break
            labels = _compact(np.where(labels == b, a, labels))
            changed = True
        # Dissolve the smallest cluster while it is too small to be a speaker.
        while labels.max() + 1 > low:
            sizes = np.bincount(labels)
            smallest = int(np.argmin(sizes))
            if sizes[smallest] >= min_size:
                break
            centroids = label_centroids(x, labels)
            centroids[smallest] = -np.inf
            members = labels == smallest
            labels = labels.copy()
            labels[members] = _nearest(x[members], centroids)
            labels = _compact(labels)
            changed = True
        settled = _compact(_nearest(x, label_centroids(x, labels)))
        if not changed and np.array_equal(labels, settled):
            break
    return labels


def _between_within_ratios(x: FloatArray, labels: IntArray) -> FloatArray:
    """Per pair of clusters: mean cross similarity / geometric mean of mean within similarity.

    A relative test: a noisy channel raises every similarity, voices or not, so a fixed
    centroid threshold would merge two people on one phone line; the ratio does not.
    Rows are unit vectors, so the sum of similarities between clusters a and b is the dot
    product of their vector sums: no n x n matrix, even for hours of windows."""
    k = int(labels.max()) + 1
    totals = np.zeros((k, x.shape[1]))
    np.add.at(totals, labels, x)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    sums = totals @ totals.T
    within = np.ones(k)
    for c in range(k):
        if sizes[c] >= 2:  # exclude each window's similarity with itself (1.0)
            within[c] = (sums[c, c] - sizes[c]) / (sizes[c] * (sizes[c] - 1))
    between = sums / np.maximum(np.outer(sizes, sizes), 1.0)
    ratios = between / np.sqrt(np.clip(np.outer(within, within), 1e-9, None))
    np.fill_diagonal(ratios, -np.inf)
    return np.asarray(ratios)


# --------------------------------------------------------------------------- helpers

def unit_rows(x: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero)."""
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms == 0, 1.0, norms))


def label_centroids(x: FloatArray, labels: IntArray) -> FloatArray:
    """Unit mean of the rows of each label 0..max(labels)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    return unit_rows(sums)


def _nearest(x: FloatArray, centroids: FloatArray) -> IntArray:
    scores = x @ np.where(np.isfinite(centroids), centroids, 0.0).T
    scores[:, ~np.isfinite(centroids).all(axis=1)] = -np.inf
    return np.asarray(scores.argmax(axis=1), dtype=np.int64)


def _compact(labels: IntArray) -> IntArray:
    """Renumber to 0..k-1 without gaps (order of first label value)."""
    _, compact = np.unique(labels, return_inverse=True)
    return np.asarray(compact, dtype=np.int64).reshape(-1)


def _renumber_by_first_appearance(labels: IntArray) -> IntArray:
    order: dict[int, int] = {}
    for value in labels.tolist():
        order.setdefault(int(value), len(order))
    return np.asarray([order[int(v)] for v in labels.tolist()], dtype=np.int64)


def even_subsample(n: int, limit: int) -> IntArray:
    """At most `limit` indices spread evenly over range(n)."""
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
