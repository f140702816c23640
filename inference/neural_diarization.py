"""The default diarizer: neural segmentation, CAM++ voice vectors, constrained clustering.

The steps of pyannote's speaker-diarization pipeline, each its own module:
1. segmentation (inference.segmentation): sliding 10 s chunks; per frame, which of up to three
   local speakers talk, two at once included;
2. one voice vector per (chunk, local speaker), from the speech where that speaker talks alone;
3. clustering (inference.chunk_clustering) with an automatic speaker count; two local speakers
   of one chunk never share a cluster;
4. reconstruction (inference.reconstruction): per frame, as many speakers as the chunks say
   talk, so overlapping speech gives overlapping turns.
The (chunk, speaker) vectors are returned with the turns: the pipeline reuses them to identify
voices and to give segments their vectors, without a second embedding pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from inference.chunk_clustering import (
    UNASSIGNED,
    ChunkClusteringConfig,
    cluster_chunk_speakers,
)
from inference.protocols import VoiceEmbedder
from inference.reconstruction import (
    ChunkFrames,
    ReconstructionConfig,
    frame_runs,
    reconstruct,
    run_seconds,
    stitch,
)
from inference.types import Audio, Diarization, Turn, Vector

log = logging.getLogger(__name__)


class ChunkSegmenter(Protocol):
    """Local speaker activity over sliding chunks (inference.segmentation.SegmentationModel)."""

    def segment(self, samples: npt.NDArray[np.float32], step: float) -> ChunkFrames: ...


@dataclass(frozen=True)
class NeuralDiarizationConfig:
    step: float = 2.5
    """Seconds between the starts of two 10 s chunks: every frame is seen by 10/step chunks,
    which averages out the segmentation's mistakes near chunk edges. Measured (README): 1 s
    gains ~0.5 DER points on dev and real-dev and costs 2.5x the segmentation time, which on
    2 cores competes with ASR."""
    embed_every: int = 4
    """Voice vectors are taken from every this-many-th chunk (and the last); the chunks in
    between are placed by their activity (reconstruction.stitch). Vectors cost far more than
    segmentation, and one 10 s chunk every 10 s already covers every second once (embedding
    every chunk at 1 s steps measured no better)."""
    min_train_seconds: float = 1.5
    """A (chunk, speaker) vector shapes the clusters only with this much speech of its own:
    shorter ones are too noisy to decide how many voices there are."""
    min_vector_seconds: float = 0.3
    """Shorter (chunk, speaker) stretches get no vector; their frames stay unassigned."""
    embed_batch: int = 64
    """(chunk, speaker) clips cut and embedded at a time (each at most 10 s)."""
    clustering: ChunkClusteringConfig = field(default_factory=ChunkClusteringConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)


@dataclass(frozen=True)
class _LocalSpeech:
    chunk: int
    speaker: int
    spans: list[tuple[int, int]]
    """Sample ranges of the speech the vector is made of."""
    clean_seconds: float
    start: float
    end: float


class NeuralDiarizer:
    """Diarizer over a ChunkSegmenter and a VoiceEmbedder (default: segmentation-3.0 + CAM++)."""

    def __init__(
        self,
        segmenter: ChunkSegmenter,
        embedder: VoiceEmbedder,
        config: NeuralDiarizationConfig | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.embedder = embedder
        self.config = config or NeuralDiarizationConfig()

    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> Diarization:
        cfg = self.config
        clock = _Clock()
        frames = self.segmenter.segment(audio.samples, cfg.step)
        clock.lap("segmentation")
        n_chunks, _, n_local = np.shape(frames.activations)
        known = np.zeros(n_chunks, dtype=bool)
        known[:: max(1, cfg.embed_every)] = True
        known[-1] = n_chunks > 0
        locals_ = local_speech(frames, audio.sample_rate, cfg.min_vector_seconds,
                               np.flatnonzero(known).tolist())
        if not locals_:
            return Diarization(turns=[], vectors={}, model_id=self.embedder.model_id,
                               timings=clock.laps)
        vectors = self._embed(audio, locals_)
        clock.lap("embedding")
        train = [ls.clean_seconds >= cfg.min_train_seconds for ls in locals_]
        labels = cluster_chunk_speakers(
            vectors, [ls.chunk for ls in locals_], train, num_speakers, min_speakers,
            max_speakers, cfg.clustering,
        )
        clock.lap("clustering")
        assignment = np.full((n_chunks, n_local), UNASSIGNED, dtype=np.int64)
        for ls, label in zip(locals_, labels.tolist(), strict=True):
            assignment[ls.chunk, ls.speaker] = label
        k = int(labels.max()) + 1 if len(labels) else 0
        assignment = stitch(frames, assignment, known, k, audio.duration)
        rebuilt = reconstruct(frames, assignment, k, audio.duration, cfg.reconstruction)
        clock.lap("reconstruction")
        log.debug("diarized %.1f s: %d chunks, %d vectors, %d speakers, %d turns (%s)",
                  audio.duration, n_chunks, len(locals_), k, len(rebuilt.turns), clock.laps)
        return _named(rebuilt.turns, rebuilt.exclusive, locals_, labels, vectors,
                      self.embedder.model_id, clock.laps)


    def _embed(self, audio: Audio, locals_: list[_LocalSpeech]) -> npt.NDArray[np.float32]:
        """One vector per local speaker, a batch at a time: hours of audio never hold more
        than one batch of clips beside the recording."""
        batch = self.config.embed_batch
        vectors: list[Vector] = []
        for first in range(0, len(locals_), batch):
            clips = [np.concatenate([audio.samples[a:b] for a, b in ls.spans])
                     for ls in locals_[first : first + batch]]
            vectors.extend(self.embedder.embed(clips))
        return np.stack(vectors).astype(np.float32)


def local_speech(
    frames: ChunkFrames, sample_rate: int, min_seconds: float, chunks: list[int] | None = None,
) -> list[_LocalSpeech]:
    """Per (chunk, local speaker) of `chunks` (default all): the samples where that speaker
    talks alone, or, when that is under `min_seconds`, all of its speech (an overlapped vector
    still places it)."""
    acts = np.asarray(frames.activations) > 0
    alone = acts & (acts.sum(axis=2, keepdims=True) == 1)
    step = frames.frame_step
    out: list[_LocalSpeech] = []
    for c in range(acts.shape[0]) if chunks is None else chunks:
        for s in range(acts.shape[2]):
            clean_seconds = float(alone[c, :, s].sum()) * step
            mask = alone[c, :, s] if clean_seconds >= min_seconds else acts[c, :, s]
            if float(mask.sum()) * step < min_seconds:
                continue
            spans = _sample_spans(mask, float(frames.chunk_starts[c]), frames, sample_rate)
            out.append(_LocalSpeech(c, s, spans, clean_seconds,
                                    spans[0][0] / sample_rate, spans[-1][1] / sample_rate))
    return out


def _sample_spans(
    mask: npt.NDArray[np.bool_], chunk_start: float, frames: ChunkFrames, sample_rate: int
) -> list[tuple[int, int]]:
    """Runs of frames as sample ranges."""
    spans = []
    for first, stop in frame_runs(mask):
        start, end = run_seconds(first, stop, frames)
        spans.append((max(0, int((chunk_start + start) * sample_rate)),
                      int((chunk_start + end) * sample_rate)))
    return spans


class _Clock:
    """Seconds per step, for the pipeline's timings and the benchmarks."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def _named(
    turns: list[Turn], exclusive: list[Turn], locals_: list[_LocalSpeech],
    labels: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], model_id: str,
    timings: dict[str, float],
) -> Diarization:
    """Cluster indices become SPEAKER_00, 01... by first appearance; each label keeps the
    vectors (and their spans) of its local speakers, reused for identification."""
    names: dict[str, str] = {}
    for turn in turns:
        names.setdefault(turn.label, f"SPEAKER_{len(names):02d}")
    by_label: dict[str, list[Vector]] = {name: [] for name in names.values()}
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in names.values()}
    for ls, label, vector in zip(locals_, labels.tolist(), vectors, strict=True):
        name = names.get(str(label))
        if name is not None:
            by_label[name].append(vector)
            spans[name].append((ls.start, ls.end))
    return Diarization(
        turns=[Turn(t.start, t.end, names[t.label]) for t in turns],
        vectors=by_label,
        model_id=model_id,
        spans=spans,
        exclusive=[Turn(t.start, t.end, names[t.label]) for t in exclusive if t.label in names],
        timings=timings,
    )
