"""Join what was said (transcript words) with who spoke (diarization turns).

Each word takes the speaker of the turn it overlaps most; a transcript segment is split where
the speaker changes. Each output segment with enough speech gets its own voice vector, built
from the diarizer's window vectors that lie inside it (the vectors clustering already computed),
and only when there are none, from one batched embedding of the segments that still need one.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.protocols import VoiceEmbedder
from inference.types import (
    Audio,
    Diarization,
    PipelineSegment,
    Transcript,
    TranscriptSegment,
    Turn,
    Vector,
    Word,
    spoken_text,
)


@dataclass(frozen=True)
class AlignmentConfig:
    max_snap_seconds: float = 1.0
    """A word in a gap between turns takes the nearest turn within this distance, else None."""
    flicker_seconds: float = 0.5
    """A lone word shorter than this, between two runs of one speaker, is that speaker's."""
    min_vector_seconds: float = 1.0
    """Segments shorter than this get no voice vector (too little speech to be reliable)."""
    min_window_inside: float = 0.5
    """A window vector counts for a segment when this share of the shorter of the two (the
    window, or the segment: a 7 s pooled vector serves a 3 s sentence in it) overlaps."""
    max_extend_seconds: float = 0.5
    """A segment edge this close to the edge of its speaker's turn moves out to it (0 = off)."""


class TurnIndex:
    """Turns sorted by start, with the lookups alignment needs."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = sorted(turns, key=lambda t: (t.start, t.end))
        self._starts = [t.start for t in self.turns]

    def speaker_of(self, start: float, end: float, max_snap: float) -> str | None:
        """Label of the turn overlapping [start, end] most; else the nearest within max_snap."""
        if not self.turns:
            return None
        # Turns that can overlap start before `end`; they are sorted and non-overlapping, so
        # only a few before that point can still reach `start`.
        hi = bisect.bisect_right(self._starts, end)
        best_label, best_overlap = None, 0.0
        nearest_label, nearest_distance = None, float("inf")
        for turn in self.turns[max(0, hi - 8) : hi + 1]:
            overlap = min(end, turn.end) - max(start, turn.start)
            if overlap > best_overlap:
                best_label, best_overlap = turn.label, overlap
            distance = max(turn.start - end, start - turn.end, 0.0)
            if distance < nearest_distance:
                nearest_label, nearest_distance = turn.label, distance
        if best_label is not None:
            return best_label
        return nearest_label if nearest_distance <= max_snap else None


def align(
    transcript: Transcript, turns: Sequence[Turn], config: AlignmentConfig | None = None
) -> list[PipelineSegment]:
    """Transcript segments split by speaker, each with its local speaker label."""
    cfg = config or AlignmentConfig()
    index = TurnIndex(turns)
    out: list[PipelineSegment] = []
    for segment in transcript.segments:
        out.extend(_split_segment(segment, index, cfg))
    return out


def _split_segment(
    segment: TranscriptSegment, index: TurnIndex, cfg: AlignmentConfig
) -> list[PipelineSegment]:
    if not segment.words:
        label = index.speaker_of(segment.start, segment.end, cfg.max_snap_seconds)
        return [PipelineSegment(segment.start, segment.end, segment.text, [], label)]
    labels = [index.speaker_of(w.start, w.end, cfg.max_snap_seconds) for w in segment.words]
    labels = _smooth_flickers(segment.words, labels, cfg.flicker_seconds)
    pieces: list[PipelineSegment] = []
    run: list[Word] = []
    run_label: str | None = None
    for word, label in zip(segment.words, labels, strict=True):
        if run and label != run_label:
            pieces.append(_piece(run, run_label))
            run = []
        run.append(word)
        run_label = label
    if run:
        pieces.append(_piece(run, run_label))
    return [p for p in pieces if p.text]


def _smooth_flickers(
    words: Sequence[Word], labels: list[str | None], flicker_seconds: float
) -> list[str | None]:
    """A single short word labelled differently from identical neighbours joins them: word
    timestamps are a little off at turn boundaries, and a one-word speaker change inside a
    sentence is nearly always that error."""
    smoothed = list(labels)
    for i in range(1, len(words) - 1):
        before, after = smoothed[i - 1], labels[i + 1]
        if (
            before is not None
            and before == after
            and labels[i] != before
            and words[i].end - words[i].start < flicker_seconds
        ):
            smoothed[i] = before
    return smoothed


def _piece(words: list[Word], label: str | None) -> PipelineSegment:
    text = spoken_text(words)
    clean = [Word(w.word.strip(), w.start, w.end, w.probability) for w in words]
    return PipelineSegment(
        start=words[0].start, end=words[-1].end, text=text, words=clean, local_speaker=label
    )


def extend_to_turns(
    segments: Sequence[PipelineSegment], turns: Sequence[Turn], max_extend: float
) -> None:
    """Widen each segment to the edges of its speaker's turn when they are near.

    Whisper's word timings start late and end early by a few hundred milliseconds, while the
    diarizer's turns follow the speech in the audio; a stored segment that stops short of its
    speaker's speech undercounts it. Edges only move outwards (every word stays inside its
    segment), by at most `max_extend`, within a turn of the segment's own speaker, and never
    into the neighbouring segments. `segments` must be in time order (as `align` makes them).
    """
    if max_extend <= 0 or not turns:
        return
    by_label: dict[str, list[Turn]] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        by_label.setdefault(turn.label, []).append(turn)
    original = [(s.start, s.end) for s in segments]
    for i, segment in enumerate(segments):
        own = [t for t in by_label.get(segment.local_speaker or "", [])
               if t.start < segment.end and t.end > segment.start]
        if not own:
            continue
        floor = segments[i - 1].end if i > 0 else 0.0
        ceiling = original[i + 1][0] if i + 1 < len(segments) else float("inf")
        first, last = own[0], own[-1]
        if segment.start - max_extend <= first.start < segment.start:
            segment.start = min(segment.start, max(first.start, floor))
        if segment.end < last.end <= segment.end + max_extend:
            segment.end = max(segment.end, min(last.end, ceiling))


# ---------------------------------------------------------------- segment voice vectors


@dataclass(frozen=True)
class Window:
    """A voice vector the diarizer computed, with where it lies and whose it is."""

    start: float
    end: float
    label: str
    vector: Vector


def windows_of(diarization: Diarization) -> list[Window]:
    """The diarizer's window vectors with their spans (empty when it gave no spans)."""
    out: list[Window] = []
    for label, spans in diarization.spans.items():
        vectors = diarization.vectors.get(label, [])
        if len(spans) == len(vectors):
            out.extend(Window(s, e, label, v) for (s, e), v in zip(spans, vectors, strict=True))
    return sorted(out, key=lambda w: w.start)


def attach_voice_vectors(
    segments: Sequence[PipelineSegment],
    windows: Sequence[Window],
    audio: Audio,
    embedder: VoiceEmbedder | None,
    config: AlignmentConfig | None = None,
) -> None:
    """Set `voice_vector` on every segment with >= min_vector_seconds of speech.

    Reuses the diarizer's window vectors of the segment's own speaker that lie inside the
    segment (the longest such windows: short ones only place boundaries); segments without
    such windows are embedded together in one batch (when an embedder is given).
    """
    cfg = config or AlignmentConfig()
    starts = [w.start for w in windows]
    missing: list[PipelineSegment] = []
    for segment in segments:
        if segment.end - segment.start < cfg.min_vector_seconds:
            continue
        vector = _vector_from_windows(segment, windows, starts, cfg.min_window_inside)
        if vector is None:
            missing.append(segment)
        else:
            segment.voice_vector = vector
    if missing and embedder is not None:
        clips = [audio.slice(s.start, s.end) for s in missing]
        for segment, vector in zip(missing, embedder.embed(clips), strict=True):
            segment.voice_vector = vector


def _vector_from_windows(
    segment: PipelineSegment, windows: Sequence[Window], starts: list[float], min_inside: float
) -> Vector | None:
    if segment.local_speaker is None or not windows:
        return None
    # Windows are sorted by start and none is longer than a few seconds: look near the segment.
    lo = bisect.bisect_left(starts, segment.start - 10.0)
    hi = bisect.bisect_right(starts, segment.end)
    length = segment.end - segment.start
    inside = [
        w for w in windows[lo:hi]
        if w.label == segment.local_speaker and w.end > w.start
        and (min(w.end, segment.end) - max(w.start, segment.start))
        / min(w.end - w.start, length) >= min_inside
    ]
    if not inside:
        return None
    longest = max(w.end - w.start for w in inside)
    chosen = [w.vector for w in inside if w.end - w.start >= 0.75 * longest]
    return normalise(np.mean(np.stack(chosen), axis=0))


def normalise(vector: np.ndarray) -> Vector:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        return np.asarray(vector, dtype=np.float32)
    return np.asarray(vector / norm, dtype=np.float32)
