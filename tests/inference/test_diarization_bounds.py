"""scripts/diarization_bounds.py: the exclusive reference and the voice-model labels."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyannote.metrics")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import diarization_bounds as bounds
from evaluate import RefTurn

from inference.types import Turn


@dataclass(frozen=True)
class Frames:
    """Scripted segmentation output on a 0.1 s frame grid."""

    activations: np.ndarray
    chunk_starts: np.ndarray
    frame_step: float = 0.1
    frame_duration: float = 0.1


def test_exclusive_reference_keeps_overlaps_for_who_spoke_first() -> None:
    reference = [RefTurn(0.0, 4.0, "ann"), RefTurn(3.0, 6.0, "bob"),  # 1 s overlap
                 RefTurn(4.5, 5.0, "ann"),  # a backchannel inside bob's turn
                 RefTurn(7.0, 8.0, "ann")]
    turns = bounds.exclusive(reference)
    assert [label for _, _, label in turns] == ["ann", "bob", "ann"]
    assert turns[0][:2] == pytest.approx((0.0, 4.0))
    assert turns[1][:2] == pytest.approx((4.0, 6.0))
    assert turns[2][:2] == pytest.approx((7.0, 8.0))


def test_nearest_centroid_labels_use_long_turns_for_centroids() -> None:
    turns = [Turn(0.0, 3.0, "ann"), Turn(3.0, 6.0, "bob"),
             Turn(6.0, 6.5, "ann"),  # short, and its vector sounds like bob: relabelled
             Turn(6.5, 7.0, "bob")]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 1.0], [0.1, 0.9]])
    assert bounds.nearest_centroid_labels(turns, vectors) == ["ann", "bob", "bob", "bob"]


def test_segmentation_bound_maps_each_chunks_local_speakers_to_the_truth() -> None:
    from inference.neural_diarization import NeuralDiarizationConfig
    from inference.reconstruction import ReconstructionConfig
    from inference.types import Audio

    class TwoChunks:
        """Chunk 0 hears ann as local speaker 1; chunk 1 hears her as local speaker 0."""

        def segment(self, samples: np.ndarray, step: float) -> Frames:
            acts = np.zeros((2, 40, 3), np.uint8)
            acts[0, :20, 1] = 1  # ann 0-2 s
            acts[0, 20:, 0] = 1  # bob 2-4 s
            acts[1, :20, 2] = 1  # bob 2-4 s
            acts[1, 20:, 0] = 1  # ann 4-6 s
            return Frames(acts, np.array([0.0, 2.0]))

    reference = [RefTurn(0.0, 2.0, "ann"), RefTurn(2.0, 4.0, "bob"), RefTurn(4.0, 6.0, "ann")]
    turns = bounds.segmentation_bound(Audio(np.zeros(96_000, np.float32)), reference,
                                      TwoChunks(), NeuralDiarizationConfig(),
                                      ReconstructionConfig(min_duration_off=0.0))
    assert [(round(s, 2), round(e, 2), who) for s, e, who in sorted(turns)] == [
        (0.0, 2.0, "ann"), (2.0, 4.0, "bob"), (4.0, 6.0, "ann")]


def test_regions_bound_gives_each_region_its_main_true_speaker() -> None:
    from inference.neural_diarization import NeuralDiarizationConfig
    from inference.types import Audio

    class OneChunk:
        """ann 0-2 s, then bob 2-4 s."""

        def segment(self, samples: np.ndarray, step: float) -> Frames:
            acts = np.zeros((1, 40, 3), np.uint8)
            acts[0, :20, 0] = 1
            acts[0, 20:, 1] = 1
            return Frames(acts, np.array([0.0]))

    reference = [RefTurn(0.0, 1.9, "ann"), RefTurn(1.9, 4.0, "bob")]
    turns = bounds.regions_bound(Audio(np.zeros(64_000, np.float32)), reference, OneChunk(),
                                 NeuralDiarizationConfig())
    assert [(round(s, 2), round(e, 2), who) for s, e, who in sorted(turns)] == [
        (0.0, 2.0, "ann"), (2.0, 4.0, "bob")]
