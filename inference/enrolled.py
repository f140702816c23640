"""Memory-informed diarization: recognise enrolled voices among a recording's clusters.

A cluster whose centroid matches an enrolled speaker's centroid (cosine >= that speaker's
threshold, and ahead of the runner-up by a margin) is labelled with the speaker directly. Two
clusters matching the same enrolled speaker are one voice that the clustering split: they are
merged before alignment, so the recording never shows one person as two speakers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.alignment import normalise
from inference.diarization import bridge_turns
from inference.types import Diarization, Turn, Vector
from memory.types import EnrolledVoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterMatch:
    speaker_id: int
    score: float


def cluster_centroids(diarization: Diarization) -> dict[str, Vector]:
    return {
        label: normalise(np.mean(np.stack(vectors), axis=0))
        for label, vectors in diarization.vectors.items()
        if vectors
    }


FRAGMENT_SLACK = 0.05
"""A further cluster of a voice already recognised in this recording joins it at this much less
than the voice's threshold: a recording rarely holds two people who both sound like one
enrolled voice, while clustering often splits one voice (reverberant or quiet stretches)."""


def match_clusters(
    diarization: Diarization, enrolled: Sequence[EnrolledVoice], margin: float = 0.0
) -> dict[str, ClusterMatch]:
    """Per cluster label, the enrolled speaker its centroid matches (absent when none)."""
    voices = [v for v in enrolled if v.centroid is not None and np.any(v.centroid)]
    if not voices:
        return {}
    matches = _matches(diarization, voices, margin, slack=0.0)
    recognised = {m.speaker_id for m in matches.values()}
    for label, match in _matches(diarization, voices, margin, slack=FRAGMENT_SLACK).items():
        if label not in matches and match.speaker_id in recognised:
            log.debug("cluster %s joins the other cluster of speaker %d (%.3f)", label,
                      match.speaker_id, match.score)
            matches[label] = match
    return matches


def _matches(
    diarization: Diarization, voices: Sequence[EnrolledVoice], margin: float, slack: float
) -> dict[str, ClusterMatch]:
    matches: dict[str, ClusterMatch] = {}
    for label, centroid in cluster_centroids(diarization).items():
        scored = []
        for voice in voices:
            reference = np.asarray(voice.centroid, dtype=np.float32).reshape(-1)
            if reference.shape != centroid.shape:
                continue  # another model's vectors are never compared
            scored.append((float(centroid @ normalise(reference)), voice))
        if not scored:
            continue
        scored.sort(key=lambda pair: pair[0], reverse=True)
        best_score, best = scored[0]
        runner_up = next((s for s, v in scored[1:] if v.speaker.id != best.speaker.id), None)
        if best_score < best.threshold - slack:
            continue
        if runner_up is not None and best_score - runner_up < margin:
            log.debug("cluster %s: %s and another voice are too close to call", label,
                      best.speaker.label)
            continue
        matches[label] = ClusterMatch(speaker_id=best.speaker.id, score=best_score)
    return matches


def merge_matched(
    diarization: Diarization, matches: dict[str, ClusterMatch]
) -> tuple[Diarization, dict[str, ClusterMatch]]:
    """Fold clusters matched to the same enrolled speaker into one label.

    The label kept is the one with the most speech; turns of the same label that now touch
    are joined. Returns the new diarization and the matches by surviving label.
    """
    by_speaker: dict[int, list[str]] = {}
    for label, match in matches.items():
        by_speaker.setdefault(match.speaker_id, []).append(label)
    speech = speech_by_label(diarization.turns)
    rename: dict[str, str] = {}
    for labels in by_speaker.values():
        if len(labels) < 2:
            continue
        keep = max(labels, key=lambda lb: (speech.get(lb, 0.0), lb))
        for label in labels:
            if label != keep:
                rename[label] = keep
    if not rename:
        return diarization, matches
    log.info("memory-informed diarization merged clusters %s", rename)
    vectors: dict[str, list[Vector]] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for label, label_vectors in diarization.vectors.items():
        target = rename.get(label, label)
        vectors.setdefault(target, []).extend(label_vectors)
        if label in diarization.spans:
            spans.setdefault(target, []).extend(diarization.spans[label])
    # Spans stay usable only if every merged label had them.
    spans = {lb: sp for lb, sp in spans.items() if len(sp) == len(vectors.get(lb, []))}
    turns = _renamed(diarization.turns, rename)
    exclusive = (None if diarization.exclusive is None
                 else _renamed(diarization.exclusive, rename))
    merged_matches: dict[str, ClusterMatch] = {}
    for label, match in matches.items():
        target = rename.get(label, label)
        if target not in merged_matches or match.score > merged_matches[target].score:
            merged_matches[target] = match
    return (
        Diarization(turns=turns, vectors=vectors, model_id=diarization.model_id, spans=spans,
                    exclusive=exclusive),
        merged_matches,
    )


def _renamed(turns: Sequence[Turn], rename: dict[str, str]) -> list[Turn]:
    """Turns under their new labels; one label's turns that now touch or overlap are joined
    (1e-6 s: float noise), real pauses are kept."""
    return bridge_turns([Turn(t.start, t.end, rename.get(t.label, t.label)) for t in turns], 1e-6)


def speech_by_label(turns: Sequence[Turn]) -> dict[str, float]:
    speech: dict[str, float] = {}
    for turn in turns:
        speech[turn.label] = speech.get(turn.label, 0.0) + (turn.end - turn.start)
    return speech
