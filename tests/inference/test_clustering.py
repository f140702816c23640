"""Speaker clustering on deterministic synthetic voice vectors (no model)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from inference.clustering import ClusteringConfig, centroids_of, cluster_speakers

DIM = 64


def voices(n_voices: int, seed: int = 7, spread: float = 0.35) -> npt.NDArray[np.float64]:
    """Random voice centres, far apart (random 64-d directions are nearly orthogonal)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_voices, DIM))
    del spread
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def windows_of(
    centres: npt.NDArray[np.float64], counts: list[int], noise: float = 0.06, seed: int = 11
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """`counts[i]` noisy windows around centre i, interleaved like turns of a conversation."""
    rng = np.random.default_rng(seed)
    truth: list[int] = []
    remaining = list(counts)
    while any(remaining):
        for voice, left in enumerate(remaining):
            take = min(left, 6)  # a "turn" of up to 6 windows
            truth.extend([voice] * take)
            remaining[voice] -= take
    labels = np.asarray(truth, dtype=np.int64)
    x = centres[labels] + rng.normal(scale=noise, size=(len(labels), DIM))
    return x, labels


def same_partition(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> bool:
    """True when the two labelings group the items identically (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("n_voices", [2, 3, 4, 6])
def test_recovers_the_number_of_voices(n_voices: int) -> None:
    x, truth = windows_of(voices(n_voices), [30 + 7 * i for i in range(n_voices)])
    labels = cluster_speakers(x)
    assert labels.max() + 1 == n_voices
    assert same_partition(labels, truth)


def test_more_than_ten_voices_with_the_neural_diarizers_settings() -> None:
    from inference.neural_diarization import NeuralDiarizationConfig

    n_voices = 14
    x, truth = windows_of(voices(n_voices), [20 + 2 * i for i in range(n_voices)])
    labels = cluster_speakers(x, config=NeuralDiarizationConfig().windows.clustering)
    assert labels.max() + 1 == n_voices
    assert same_partition(labels, truth)


def test_a_voice_heard_for_a_small_share_of_a_long_recording_stays_a_speaker() -> None:
    from inference.neural_diarization import NeuralDiarizationConfig

    # Two voices of 200 windows (about 2.5 min each) and one of 12 windows (9 s), 2.9% of all:
    # a speaker of its own at the neural diarizer's 1%, folded into another at the default 4%.
    x, truth = windows_of(voices(3), [200, 200, 12])
    assert cluster_speakers(x).max() + 1 == 2
    labels = cluster_speakers(x, config=NeuralDiarizationConfig().windows.clustering)
    assert labels.max() + 1 == 3
    assert same_partition(labels, truth)


def test_one_voice_stays_one_speaker() -> None:
    x, _ = windows_of(voices(1), [40], noise=0.08)
    assert set(cluster_speakers(x).tolist()) == {0}


def test_labels_are_numbered_by_first_appearance() -> None:
    x, _truth = windows_of(voices(3), [20, 20, 20])
    labels = cluster_speakers(x[::-1])
    assert labels[0] == 0
    first_seen = [int(np.argmax(labels == k)) for k in range(labels.max() + 1)]
    assert first_seen == sorted(first_seen)


def test_num_speakers_is_honoured() -> None:
    x, truth = windows_of(voices(3), [25, 25, 25])
    assert cluster_speakers(x, num_speakers=2).max() + 1 == 2
    assert cluster_speakers(x, num_speakers=4).max() + 1 == 4
    assert same_partition(cluster_speakers(x, num_speakers=3), truth)


def test_min_and_max_speakers_bound_the_automatic_count() -> None:
    x, _ = windows_of(voices(4), [25, 25, 25, 25])
    assert cluster_speakers(x, max_speakers=2).max() + 1 == 2
    y, _ = windows_of(voices(2), [30, 30])
    assert cluster_speakers(y, min_speakers=3).max() + 1 == 3
    assert cluster_speakers(x, min_speakers=2, max_speakers=6).max() + 1 == 4


def test_invalid_bounds_are_refused_with_a_clear_message() -> None:
    x, _ = windows_of(voices(2), [10, 10])
    with pytest.raises(ValueError, match="min_speakers"):
        cluster_speakers(x, min_speakers=3, max_speakers=2)
    with pytest.raises(ValueError, match="num_speakers"):
        cluster_speakers(x, num_speakers=0)


def test_outlier_windows_do_not_become_speakers() -> None:
    """The known failure of plain agglomerative clustering: a stray window (a cough, a door)
    far from every voice must join a real speaker, not open a cluster of its own."""
    centres = voices(2)
    x, truth = windows_of(centres, [40, 40])
    rng = np.random.default_rng(3)
    outliers = rng.normal(size=(2, DIM))
    x = np.vstack([x[:30], outliers[:1], x[30:60], outliers[1:], x[60:]])
    labels = cluster_speakers(x)
    assert labels.max() + 1 == 2
    inliers = np.r_[0:30, 31:61, 62:len(x)]
    assert same_partition(labels[inliers], truth)


def test_a_channel_that_raises_every_similarity_keeps_two_voices_apart() -> None:
    """Two voices on one phone line: every window shares a strong channel component, so the
    voice centroids are very similar (~0.9), yet the voices differ consistently."""
    rng = np.random.default_rng(5)
    channel = rng.normal(size=DIM)
    channel /= np.linalg.norm(channel)
    centres = voices(2) * 0.35 + channel
    x, truth = windows_of(centres / np.linalg.norm(centres, axis=1, keepdims=True), [25, 25],
                          noise=0.05)
    centroid_similarity = float(np.prod(centroids_of(x, truth), axis=0).sum())
    assert centroid_similarity > 0.85
    assert same_partition(cluster_speakers(x), truth)


def test_tiny_inputs() -> None:
    assert cluster_speakers(np.zeros((0, DIM))).tolist() == []
    assert cluster_speakers(np.ones((1, DIM))).tolist() == [0]
    two = voices(2)
    assert cluster_speakers(two, num_speakers=2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="2-D"):
        cluster_speakers(np.ones(DIM))


def test_deterministic() -> None:
    x, _ = windows_of(voices(3), [20, 15, 25], noise=0.2)
    assert cluster_speakers(x).tolist() == cluster_speakers(x).tolist()


def test_long_recordings_are_subsampled_and_every_window_labelled() -> None:
    x, truth = windows_of(voices(3), [400, 300, 300])
    labels = cluster_speakers(x, config=ClusteringConfig(max_spectral_points=200))
    assert len(labels) == len(x)
    assert same_partition(labels, truth)
