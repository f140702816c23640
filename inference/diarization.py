"""Who spoke when, from speech regions, voice vectors and clustering.

Speech regions (from a VAD in the built-in diarizer; from neural segmentation, cut at speaker
changes, in the default one) → sliding windows (1.5 s, hop 0.75 s) → voice vectors →
clustering with an automatic speaker count (inference.clustering) → frame-level labels: each
50 ms frame takes the cluster whose centroid the windows covering it resemble most. Where the
long windows of a region disagree, a speaker change lies inside it: short windows (0.75 s, hop
0.25 s) are added there, so the change lands between the windows that disagree rather than at a
window edge. Centroids for this come from the windows that do not straddle a change. Label runs
shorter than a minimum turn are absorbed by their neighbours, and pauses between two stretches
of the same speaker are bridged (a turn includes its speaker's short pauses).

Regions too short for a reliable window ("Yes.") are embedded on their own and given the
nearest centroid, or the label of the surrounding speech when the match is unclear.
The window vectors of each cluster are returned with the turns, so the pipeline reuses them for
identification without a second embedding pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from inference.clustering import ClusteringConfig, centroids_of, cluster_speakers
from inference.device import one_blas_thread
from inference.protocols import VoiceActivityDetector, VoiceEmbedder
from inference.types import Audio, Diarization, SpeechRegion, Turn, Vector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiarizationConfig:
    window: float = 1.5
    """Seconds of audio per voice vector."""
    hop: float = 0.75
    min_window: float = 0.75
    """Regions shorter than this are not clustered; they are labelled afterwards."""
    min_short_region: float = 0.2
    """Regions shorter than this are not embedded at all: they take their neighbours' label."""
    short_region_margin: float = 0.05
    """A short region takes its nearest centroid only when it beats the next one by this."""
    fine_window: float = 0.75
    """Short windows that place speaker changes (and short replies) inside a region; 0 = off."""
    fine_hop: float = 0.25
    fine_weight: float = 1.0
    """Weight of the short windows' votes against the long windows' in each frame."""
    frame: float = 0.05
    min_turn: float = 0.4
    """Label runs shorter than this inside a region are absorbed by their neighbours."""
    bridge_gap: float = 1.5
    """Pauses up to this long between two turns of the same speaker become part of the turn."""
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)


@dataclass(frozen=True)
class _Window:
    start: float
    end: float
    region: int


EMBED_BATCH = 256
"""Windows cut and embedded at a time: hours of audio never hold more than one batch of
features beside the recording."""


class WindowDiarizer:
    """Who speaks in given speech regions: windows, voice vectors, clustering, frame labels.
    The regions come from a VAD (BuiltinDiarizer) or from neural segmentation, whose regions
    also end where the speaker changes (inference.neural_diarization)."""

    def __init__(self, embedder: VoiceEmbedder, config: DiarizationConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or DiarizationConfig()

    def diarize_regions(
        self,
        audio: Audio,
        regions: list[SpeechRegion],
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """`progress` receives the share of the recording whose windows are embedded (the
        bulk of the work) after each batch."""
        cfg = self.config
        clock = Clock()
        regions = [r for r in regions if r.end > r.start]
        windows = _windows(regions, cfg)
        if not windows:
            # Nothing long enough to tell voices apart: one speaker over all the speech.
            return self._single_speaker(audio, regions)

        vectors = self._embed(audio, windows, progress)
        clock.lap("embedding")
        with one_blas_thread():
            labels = cluster_speakers(vectors, num_speakers, min_speakers, max_speakers,
                                      cfg.clustering)
        centroids = _core_centroids(windows, vectors, labels)
        clock.lap("clustering")

        # Short windows only where the long ones disagree: that is where a change lies.
        fine = _fine_windows(regions, cfg, _mixed_regions(windows, labels))
        fine_vectors = (self._embed(audio, fine) if fine
                        else np.zeros((0, vectors.shape[1]), dtype=np.float32))
        clock.lap("fine_embedding")
        frame_labels = self._frame_labels(audio, regions, windows, vectors, centroids,
                                          fine, fine_vectors)
        turns = _turns_from_frames(frame_labels, cfg)
        turns = bridge_turns(turns, cfg.bridge_gap)
        clock.lap("labelling")
        log.debug("diarized %.1f s: %d windows (+%d short), %d clusters, %d turns",
                  audio.duration, len(windows), len(fine), int(labels.max()) + 1, len(turns))
        return replace(_named(turns, windows, labels, vectors, self.embedder.model_id),
                       timings=clock.laps)

    def _embed(
        self, audio: Audio, windows: list[_Window],
        progress: Callable[[float], None] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Vectors of (at least one) windows, a batch at a time."""
        vectors: list[Vector] = []
        for first in range(0, len(windows), EMBED_BATCH):
            batch = windows[first : first + EMBED_BATCH]
            vectors.extend(self.embedder.embed([audio.slice(w.start, w.end) for w in batch]))
            if progress is not None and audio.duration > 0:
                progress(min(1.0, batch[-1].end / audio.duration))
        return np.stack(vectors).astype(np.float32)

    # ------------------------------------------------------------------ frame labelling
    def _frame_labels(
        self,
        audio: Audio,
        regions: list[SpeechRegion],
        windows: list[_Window],
        vectors: npt.NDArray[np.float32],
        centroids: npt.NDArray[np.float64],
        fine: list[_Window],
        fine_vectors: npt.NDArray[np.float32],
    ) -> list[tuple[float, float, list[int]]]:
        """Per region: (start, end, one cluster index per frame; -1 = take the neighbours')."""
        cfg = self.config
        scores = vectors.astype(np.float64) @ centroids.T  # windows × clusters
        fine_scores = fine_vectors.astype(np.float64) @ centroids.T
        by_region: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_region.setdefault(window.region, []).append(i)
        fine_by_region: dict[int, list[int]] = {}
        for i, window in enumerate(fine):
            fine_by_region.setdefault(window.region, []).append(i)

        short = [
            i for i, r in enumerate(regions)
            if i not in by_region and r.end - r.start >= cfg.min_short_region
        ]
        short_labels = self._short_region_labels(audio, [regions[i] for i in short], centroids)
        short_label_of = dict(zip(short, short_labels, strict=True))

        result: list[tuple[float, float, list[int]]] = []
        for index, region in enumerate(regions):
            n_frames = max(1, round((region.end - region.start) / cfg.frame))
            if index not in by_region:
                label = short_label_of.get(index, -1)
                result.append((region.start, region.end, [label] * n_frames))
                continue
            totals = _frame_votes(region, n_frames, [windows[i] for i in by_region[index]],
                                  scores[by_region[index]], cfg.frame)
            fine_indices = fine_by_region.get(index, [])
            if fine_indices:
                totals += cfg.fine_weight * _frame_votes(
                    region, n_frames, [fine[i] for i in fine_indices], fine_scores[fine_indices],
                    cfg.frame)
            covered = np.isfinite(totals).all(axis=1) & (np.abs(totals).sum(axis=1) > 0)
            frame_labels = np.full(n_frames, -1, dtype=np.int64)
            frame_labels[covered] = totals[covered].argmax(axis=1)
            result.append((region.start, region.end, _smooth(frame_labels, cfg).tolist()))
        return result

    def _short_region_labels(
        self, audio: Audio, regions: list[SpeechRegion], centroids: npt.NDArray[np.float64]
    ) -> list[int]:
        if not regions:
            return []
        vectors = np.stack(self.embedder.embed([audio.slice(r.start, r.end) for r in regions]))
        scores = vectors.astype(np.float64) @ centroids.T
        labels: list[int] = []
        for row in scores:
            order = np.argsort(row)[::-1]
            margin = row[order[0]] - row[order[1]] if len(order) > 1 else np.inf
            clear = margin >= self.config.short_region_margin
            labels.append(int(order[0]) if clear else -1)
        return labels

    def _single_speaker(self, audio: Audio, regions: list[SpeechRegion]) -> Diarization:
        speech = [r for r in regions if r.end - r.start >= self.config.min_short_region]
        if not speech:
            return Diarization(turns=[], vectors={}, model_id=self.embedder.model_id)
        vectors = self.embedder.embed([audio.slice(r.start, r.end) for r in speech])
        turns = bridge_turns([Turn(r.start, r.end, "SPEAKER_00") for r in speech],
                        self.config.bridge_gap)
        return Diarization(turns=turns, vectors={"SPEAKER_00": list(vectors)},
                           model_id=self.embedder.model_id,
                           spans={"SPEAKER_00": [(r.start, r.end) for r in speech]})


class BuiltinDiarizer(WindowDiarizer):
    """Diarizer over any VoiceActivityDetector and VoiceEmbedder (silero + resemblyzer or
    CAM++): the VAD's speech regions are the regions."""

    reports_progress = True

    def __init__(
        self,
        vad: VoiceActivityDetector,
        embedder: VoiceEmbedder,
        config: DiarizationConfig | None = None,
    ) -> None:
        super().__init__(embedder, config)
        self.vad = vad

    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        return self.diarize_regions(audio, self.vad.speech_regions(audio), num_speakers,
                                    min_speakers, max_speakers, progress)


# ---------------------------------------------------------------------------- helpers

class Clock:
    """Seconds per step, for the pipeline's timings and the benchmarks."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now

    def take(self, laps: dict[str, float]) -> None:
        """The laps of a step that timed itself, up to now."""
        self.laps.update(laps)
        self._last = time.perf_counter()


def _windows(regions: list[SpeechRegion], cfg: DiarizationConfig) -> list[_Window]:
    windows: list[_Window] = []
    for index, region in enumerate(regions):
        length = region.end - region.start
        if length < cfg.min_window:
            continue
        if length <= cfg.window + cfg.hop / 2:
            windows.append(_Window(region.start, region.end, index))
            continue
        start = region.start
        while start + cfg.window < region.end - cfg.hop / 2:
            windows.append(_Window(start, start + cfg.window, index))
            start += cfg.hop
        windows.append(_Window(region.end - cfg.window, region.end, index))
    return windows


def _core_centroids(
    windows: list[_Window], vectors: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Cluster centroids from the windows whose neighbours in the region share their label:
    windows straddling a speaker change blend two voices and would pull every centroid
    towards the others, which blurs the frame-level decision exactly where it matters."""
    core = np.zeros(len(windows), dtype=bool)
    for i, window in enumerate(windows):
        neighbours = [j for j in (i - 1, i + 1)
                      if 0 <= j < len(windows) and windows[j].region == window.region]
        core[i] = all(labels[j] == labels[i] for j in neighbours)
    k = int(labels.max()) + 1
    if all(np.count_nonzero(core & (labels == c)) >= 2 for c in range(k)):
        return centroids_of(vectors[core], labels[core])
    return centroids_of(vectors, labels)


def _mixed_regions(windows: list[_Window], labels: npt.NDArray[np.int64]) -> set[int]:
    seen: dict[int, set[int]] = {}
    for window, label in zip(windows, labels.tolist(), strict=True):
        seen.setdefault(window.region, set()).add(int(label))
    return {region for region, found in seen.items() if len(found) > 1}


def _fine_windows(
    regions: list[SpeechRegion], cfg: DiarizationConfig, only: set[int]
) -> list[_Window]:
    if cfg.fine_window <= 0:
        return []
    fine_cfg = DiarizationConfig(window=cfg.fine_window, hop=cfg.fine_hop,
                                 min_window=cfg.min_window)
    return [w for w in _windows(regions, fine_cfg) if w.region in only]


def _frame_votes(
    region: SpeechRegion, n_frames: int, windows: list[_Window],
    scores: npt.NDArray[np.float64], frame: float,
) -> npt.NDArray[np.float64]:
    """Per frame, the mean similarity to each centroid of the windows covering it."""
    totals = np.zeros((n_frames, scores.shape[1]))
    counts = np.zeros(n_frames)
    for window, row in zip(windows, scores, strict=True):
        first = max(0, int((window.start - region.start) / frame))
        last = min(n_frames, max(int(np.ceil((window.end - region.start) / frame)), first + 1))
        totals[first:last] += row
        counts[first:last] += 1
    return np.asarray(totals / np.maximum(counts, 1)[:, None])


def _smooth(labels: npt.NDArray[np.int64], cfg: DiarizationConfig) -> npt.NDArray[np.int64]:
    """Absorb label runs shorter than min_turn into the longer neighbouring run."""
    min_frames = max(1, round(cfg.min_turn / cfg.frame))
    labels = labels.copy()
    while True:
        runs = _runs(labels)
        if len(runs) <= 1:
            return labels
        lengths = [end - start for start, end, _ in runs]
        shortest = int(np.argmin(lengths))
        if lengths[shortest] >= min_frames:
            return labels
        start, end, _ = runs[shortest]
        neighbours = [j for j in (shortest - 1, shortest + 1) if 0 <= j < len(runs)]
        chosen = max(neighbours, key=lambda j: lengths[j])
        labels[start:end] = runs[chosen][2]


def _runs(labels: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    runs: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((start, i, int(labels[start])))
            start = i
    return runs


def _turns_from_frames(
    regions: list[tuple[float, float, list[int]]], cfg: DiarizationConfig
) -> list[Turn]:
    """Turns from per-frame labels; unlabelled regions take the nearest labelled neighbour."""
    pieces: list[tuple[float, float, int]] = []
    for start, end, labels in regions:
        for first, last, label in _runs(np.asarray(labels, dtype=np.int64)):
            piece_start = start + first * cfg.frame
            piece_end = end if last == len(labels) else start + last * cfg.frame
            pieces.append((piece_start, min(piece_end, end), label))
    if all(piece[2] < 0 for piece in pieces):
        return []
    previous = _nearest_labelled(pieces, range(len(pieces)))
    following = _nearest_labelled(pieces, range(len(pieces) - 1, -1, -1))
    turns: list[Turn] = []
    for i, (start, end, label) in enumerate(pieces):
        if label < 0:
            candidates = [j for j in (previous[i], following[i]) if j is not None]
            nearest = min(candidates, key=lambda j: _gap(pieces[j], (start, end)))
            label = pieces[nearest][2]
        turns.append(Turn(start, end, str(label)))
    return turns


def _nearest_labelled(pieces: list[tuple[float, float, int]], order: range) -> list[int | None]:
    """For each piece, the closest labelled piece met so far walking in `order`."""
    found: list[int | None] = [None] * len(pieces)
    last: int | None = None
    for i in order:
        if pieces[i][2] >= 0:
            last = i
        found[i] = last
    return found


def _gap(a: tuple[float, float, int], b: tuple[float, float]) -> float:
    return max(0.0, max(a[0], b[0]) - min(a[1], b[1]))


def bridge_turns(turns: list[Turn], max_gap: float) -> list[Turn]:
    """Consecutive turns of one label at most `max_gap` apart become one turn."""
    merged: list[Turn] = []
    for turn in sorted(turns, key=lambda t: t.start):
        if merged and merged[-1].label == turn.label and turn.start - merged[-1].end <= max_gap:
            merged[-1] = Turn(merged[-1].start, max(merged[-1].end, turn.end), turn.label)
        else:
            merged.append(turn)
    return merged


def _named(
    turns: list[Turn], windows: list[_Window], labels: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32], model_id: str,
) -> Diarization:
    """Rename cluster indices to SPEAKER_00, 01... by first appearance; keep labels with turns.
    Each label keeps its window vectors with their spans, for segment vectors downstream."""
    names: dict[str, str] = {}
    for turn in turns:
        names.setdefault(turn.label, f"SPEAKER_{len(names):02d}")
    named_turns = [Turn(t.start, t.end, names[t.label]) for t in turns]
    by_label: dict[str, list[Vector]] = {name: [] for name in names.values()}
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in names.values()}
    for window, vector, label in zip(windows, vectors, labels.tolist(), strict=True):
        name = names.get(str(label))
        if name is not None:
            by_label[name].append(vector.astype(np.float32))
            spans[name].append((window.start, window.end))
    return Diarization(turns=named_turns, vectors=by_label, model_id=model_id, spans=spans)
