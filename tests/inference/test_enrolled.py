"""Memory-informed diarization: enrolled voices label clusters, and a voice's fragments join."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from inference.enrolled import FRAGMENT_SLACK, match_clusters
from inference.types import Diarization, Turn
from memory.types import EnrolledVoice, SpeakerInfo
from tests.inference.inference_fakes import voice_vector

THRESHOLD = 0.9


def enrolled(speaker_id: int, voice: str) -> EnrolledVoice:
    now = datetime(2026, 1, 1)
    info = SpeakerInfo(speaker_id, voice, "enrolled", voice, None, now, now)
    return EnrolledVoice(speaker=info, centroid=voice_vector(voice), threshold=THRESHOLD)


def at_score(voice: str, score: float) -> np.ndarray:
    """A unit vector whose cosine with `voice`'s vector is exactly `score`."""
    base = voice_vector(voice)
    other = voice_vector("someone else")
    other = other - (other @ base) * base
    other /= np.linalg.norm(other)
    return (score * base + np.sqrt(1 - score**2) * other).astype(np.float32)


def diarization(vectors: dict[str, np.ndarray]) -> Diarization:
    turns = [Turn(float(i), float(i) + 1, label) for i, label in enumerate(vectors)]
    return Diarization(turns, {label: [v] for label, v in vectors.items()}, "fake-voice")


def test_a_fragment_of_a_recognised_voice_joins_it_below_the_threshold() -> None:
    fragment = THRESHOLD - FRAGMENT_SLACK / 2
    found = match_clusters(
        diarization({"A": at_score("alice", 0.97), "C": at_score("alice", fragment)}),
        [enrolled(7, "alice"), enrolled(9, "dora")],
    )
    assert {label: m.speaker_id for label, m in found.items()} == {"A": 7, "C": 7}


def test_the_same_score_alone_names_nobody() -> None:
    fragment = THRESHOLD - FRAGMENT_SLACK / 2
    found = match_clusters(diarization({"C": at_score("alice", fragment)}),
                           [enrolled(7, "alice")])
    assert found == {}


def test_a_cluster_further_below_stays_apart() -> None:
    far = THRESHOLD - 2 * FRAGMENT_SLACK
    found = match_clusters(
        diarization({"A": at_score("alice", 0.97), "C": at_score("alice", far)}),
        [enrolled(7, "alice")],
    )
    assert set(found) == {"A"}
