"""From the segmentation's per-chunk local speakers to the recording's regions and turns.

Each 10 s chunk says, per frame, which of its (up to three) local speakers talk. Chunks overlap
(a sliding window), so every frame of the recording is seen by several chunks:
- how many people talk in a frame is the (rounded) mean of the chunks' local counts;
- `speaker_regions`: the speech, cut where a chunk hears one local speaker give way to another;
- `with_overlap`: given who speaks when (one at a time), the second speaker of every frame in
  which the chunks hear two people;
- `reconstruct`: turns from a given assignment of every local speaker to a recording speaker
  (a speaker's activity in a frame is the mean of what the chunks covering it say; a frame is
  given to as many speakers as talk, the most active first), as pyannote's pipeline does
  after clustering chunk vectors; scripts/diarization_bounds.py maps local speakers to the true
  speakers with it.
Two speakers in one frame are two overlapping turns; an exclusive version keeps only the most
active speaker of each frame (for word alignment, where each word has one speaker).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from inference.diarization import bridge_turns
from inference.types import SpeechRegion, Turn

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class ChunkFrames(Protocol):
    """Binary local-speaker activity of sliding chunks on a common frame grid
    (inference.segmentation.Segmentation)."""

    @property
    def activations(self) -> npt.NDArray[Any]:
        """(chunks, frames per chunk, local speakers), non-zero where that speaker talks."""
        ...

    @property
    def chunk_starts(self) -> npt.NDArray[np.float64]:
        """Start of each chunk, seconds."""
        ...

    @property
    def frame_step(self) -> float: ...

    @property
    def frame_duration(self) -> float: ...


@dataclass(frozen=True)
class ReconstructionConfig:
    min_duration_on: float = 0.0
    """Turns shorter than this are dropped."""
    min_duration_off: float = 0.5
    """Pauses shorter than this inside one speaker's speech are filled, when nobody else talks
    in them: a turn includes its speaker's short pauses, as references usually mark them
    (0.5 s measured: dev DER 11.7 -> 10.2%, real-dev 16.8 -> 16.0%, pyannote-sample 5.9 ->
    7.5%; 1.5 s, the old diarizer's bridge, cost real-dev 5 points)."""


@dataclass(frozen=True)
class Reconstruction:
    turns: list[Turn]
    """Per speaker, overlapping across speakers; labels are cluster indices as text."""
    exclusive: list[Turn]
    """One speaker at a time."""


def reconstruct(
    frames: ChunkFrames,
    assignment: IntArray,
    num_clusters: int,
    duration: float,
    config: ReconstructionConfig | None = None,
) -> Reconstruction:
    """Turns of clusters 0..num_clusters-1. `assignment[c, s]`: the cluster of local speaker s
    of chunk c, or negative for a local speaker that was not assigned (its activity is left
    out, but it still counts towards how many people talk)."""
    cfg = config or ReconstructionConfig()
    active, count = aggregate(frames, assignment, num_clusters, duration)
    chosen = _top_speakers(active, count)
    exclusive = _most_active(active, chosen)
    return Reconstruction(
        turns=_turns(chosen, frames, duration, cfg),
        exclusive=_turns(exclusive, frames, duration, cfg),
    )


def speaker_regions(frames: ChunkFrames, duration: float) -> list[SpeechRegion]:
    """The recording's speech (frames where the chunks say someone talks), cut wherever the
    chunk centred nearest a frame hears its one local speaker change into another: regions in
    which one voice speaks, for voice windows that do not straddle two people. Each frame is
    read in its most central chunk, where the model has context on both sides."""
    acts = np.asarray(frames.activations) > 0
    n_chunks, n_local_frames, n_local = acts.shape
    _, count = aggregate(frames, np.full((n_chunks, n_local), -1, dtype=np.int64), 0, duration)
    if len(count) == 0 or n_chunks == 0:
        return []
    # Per chunk frame: the one local speaker talking, NOBODY, or OVERLAP.
    talking = acts.sum(axis=2)
    state = np.where(talking == 1, acts.argmax(axis=2), np.where(talking == 0, _NOBODY, _OVERLAP))
    offsets = _offsets(frames)
    frame = np.arange(len(count))
    middles = offsets + n_local_frames // 2
    central = np.clip(np.searchsorted(middles, frame), 0, n_chunks - 1)
    before = np.clip(central - 1, 0, n_chunks - 1)
    central = np.where(np.abs(middles[before] - frame) < np.abs(middles[central] - frame),
                       before, central)
    local = np.clip(frame - offsets[central], 0, n_local_frames - 1)
    now = state[central, local]
    previous = state[central, np.maximum(local - 1, 0)]
    change = (now != previous) & (now >= 0) & (previous != _NOBODY) & (local > 0)
    regions: list[SpeechRegion] = []
    for first, stop in frame_runs(count >= 1):
        cuts = [first, *(np.flatnonzero(change[first + 1 : stop]) + first + 1).tolist(), stop]
        for a, b in itertools.pairwise(cuts):
            regions.append(SpeechRegion(*_clipped(run_seconds(a, b, frames), duration)))
    return [r for r in regions if r.end > r.start]


_NOBODY = -1
_OVERLAP = -2


def with_overlap(frames: ChunkFrames, turns: list[Turn], duration: float) -> list[Turn]:
    """`turns` (one speaker at a time) plus the second speaker wherever the chunks hear two
    people at once. Each chunk's local speakers are matched one-to-one to the turns' labels by
    the frames where they talk alone (so two local speakers of one chunk are never one
    speaker); in an overlapped frame, the most active label other than the frame's own talks
    too."""
    from scipy.optimize import linear_sum_assignment

    labels = sorted({t.label for t in turns})
    if not labels:
        return []
    acts = np.asarray(frames.activations) > 0
    n_chunks, n_local_frames, n_local = acts.shape
    total = _frame_count(duration, frames)
    primary = np.zeros((total, len(labels)), dtype=np.float64)
    times = np.arange(total) * frames.frame_step + frames.frame_duration / 2
    for turn in turns:
        inside = slice(*np.searchsorted(times, [turn.start, turn.end]))
        primary[inside, labels.index(turn.label)] = 1.0
    assignment = np.full((n_chunks, n_local), -1, dtype=np.int64)
    offsets = _offsets(frames)
    for c in range(n_chunks):
        index = offsets[c] + np.arange(n_local_frames)
        inside = index < total
        alone = acts[c, inside] & (acts[c, inside].sum(axis=1, keepdims=True) == 1)
        agreement = alone.T.astype(np.float64) @ primary[index[inside]]  # (local, labels)
        rows, cols = linear_sum_assignment(agreement, maximize=True)
        for s, k in zip(rows.tolist(), cols.tolist(), strict=True):
            if agreement[s, k] > 0:
                assignment[c, s] = k
    active, count = aggregate(frames, assignment, len(labels), duration)
    others = np.where(primary > 0, -1.0, active)
    second = others.argmax(axis=1)
    wanted = (count >= 2) & primary.any(axis=1) & (others.max(axis=1) > 0)
    extra = np.zeros_like(primary, dtype=bool)
    extra[np.flatnonzero(wanted), second[wanted]] = True
    extra_turns = [Turn(*_clipped(run_seconds(first, stop, frames), duration), label)
                   for k, label in enumerate(labels) for first, stop in frame_runs(extra[:, k])]
    merged: list[Turn] = []
    for label in labels:
        # A frame-grid edge next to a turn's own edge: less than a frame apart is touching.
        own = [t for t in [*turns, *extra_turns] if t.label == label]
        merged.extend(bridge_turns(own, frames.frame_step))
    return sorted((Turn(round(t.start, 3), round(t.end, 3), t.label) for t in merged),
                  key=lambda t: (t.start, t.end, t.label))


def _clipped(span: tuple[float, float], duration: float) -> tuple[float, float]:
    return max(0.0, span[0]), min(duration, span[1])


def aggregate(
    frames: ChunkFrames, assignment: IntArray, num_clusters: int, duration: float,
    only: npt.NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, IntArray]:
    """(mean activity per recording frame and cluster, speaker count per recording frame),
    over every chunk or over the `only` ones."""
    acts = np.asarray(frames.activations, dtype=np.float32)
    n_chunks, n_local_frames, n_local = acts.shape
    total = _frame_count(duration, frames)
    offsets = _offsets(frames)
    active = np.zeros((total, max(num_clusters, 1)), dtype=np.float32)
    count = np.zeros(total, dtype=np.float64)
    coverage = np.zeros(total, dtype=np.float64)
    local = np.arange(n_local_frames)
    for c in range(n_chunks) if only is None else np.flatnonzero(only).tolist():
        index = offsets[c] + local
        inside = index < total
        index = index[inside]
        coverage[index] += 1.0
        count[index] += acts[c, inside].sum(axis=1)
        for s in range(n_local):
            cluster = int(assignment[c, s])
            if cluster >= 0:
                active[index, cluster] += acts[c, inside, s]
    seen = np.maximum(coverage, 1.0)
    mean_active = active[:, :num_clusters] / seen[:, None]
    speakers = np.rint(count / seen).astype(np.int64)
    return mean_active, speakers


def _offsets(frames: ChunkFrames) -> IntArray:
    """Each chunk's first frame on the recording's frame grid."""
    return np.rint(np.asarray(frames.chunk_starts) / frames.frame_step).astype(np.int64)


def _frame_count(duration: float, frames: ChunkFrames) -> int:
    """Recording frames whose centre lies inside the audio."""
    centre = frames.frame_duration / 2
    return max(0, int(np.floor((duration - centre) / frames.frame_step)) + 1)


def _top_speakers(active: FloatArray, count: IntArray) -> npt.NDArray[np.bool_]:
    """Per frame, the `count` most active clusters (only those with any activity)."""
    chosen = np.zeros(active.shape, dtype=bool)
    if active.shape[1] == 0:
        return chosen
    ranked = np.argsort(-active, axis=1, kind="stable")
    for rank in range(active.shape[1]):
        pick = ranked[:, rank]
        wanted = (count > rank) & (active[np.arange(len(pick)), pick] > 0)
        chosen[np.flatnonzero(wanted), pick[wanted]] = True
    return chosen


def _most_active(active: FloatArray, chosen: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    exclusive = np.zeros_like(chosen)
    speaking = chosen.any(axis=1)
    if active.shape[1] == 0 or not speaking.any():
        return exclusive
    best = np.where(chosen, active, -np.inf).argmax(axis=1)
    exclusive[np.flatnonzero(speaking), best[speaking]] = True
    return exclusive


def frame_runs(mask: npt.NDArray[Any]) -> list[tuple[int, int]]:
    """(first, stop) frame indices of each run of non-zero frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (mask > 0).astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def run_seconds(first: int, stop: int, frames: ChunkFrames) -> tuple[float, float]:
    """Frames first..stop-1 as seconds from their grid's origin: a frame stands for one step
    of time around its centre (frame_duration / 2 after its start)."""
    step, centre = frames.frame_step, frames.frame_duration / 2
    return first * step + centre - step / 2, (stop - 1) * step + centre + step / 2


def _turns(
    binary: npt.NDArray[np.bool_], frames: ChunkFrames, duration: float,
    cfg: ReconstructionConfig,
) -> list[Turn]:
    """Runs of each cluster's frames as turns."""
    talking = binary.sum(axis=1)
    turns: list[Turn] = []
    for cluster in range(binary.shape[1]):
        runs: list[tuple[float, float]] = []
        last_stop = 0
        for first, stop in frame_runs(binary[:, cluster]):
            start, end = run_seconds(first, stop, frames)
            start, end = max(0.0, start), min(duration, end)
            silent = not talking[last_stop:first].any()
            if runs and silent and start - runs[-1][1] < cfg.min_duration_off:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
            last_stop = stop
        turns.extend(Turn(round(s, 3), round(e, 3), str(cluster)) for s, e in runs
                     if e - s >= cfg.min_duration_on and e > s)
    return sorted(turns, key=lambda t: (t.start, t.end, t.label))
