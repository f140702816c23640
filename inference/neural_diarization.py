"""The default diarizer: neural segmentation for when and where the voice changes, CAM++ voice
windows for who.

1. Segmentation (inference.segmentation) over sliding 10 s chunks: per frame, which of up to
   three local speakers talk, two at once included.
2. The speech is cut into regions wherever a chunk hears one local speaker give way to another
   (reconstruction.speaker_regions): within a region one voice speaks.
3. Who speaks in each region: voice windows, clustering with an automatic speaker count and
   frame labels (inference.diarization.WindowDiarizer), as in the built-in diarizer but on
   these regions instead of VAD regions.
4. Where the chunks hear two people at once, the second one is added (reconstruction.
   with_overlap), so overlapping speech gives overlapping turns.

Why not cluster one vector per (chunk, local speaker), as pyannote's pipeline does: on telephone
and noisy recordings the segmentation model often hears two real people as one local speaker
within a chunk, and a chunk vector cannot undo that. Measured (README, evaluation): chunk-vector
clustering scored DER 16.0% on real-dev, 10.2% on dev and 7.5% on pyannote-sample; even perfect
clustering of those vectors would leave 11.2% / 6.8% / 5.8%. Windows inside the segmentation's
regions score 8.3% / 4.5% / 5.2%.
The window vectors of each speaker, averaged over a few seconds of unbroken speech, are
returned with the turns: the pipeline reuses them to identify voices and to give segments their
vectors, without a second embedding pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from inference.alignment import normalise
from inference.clustering import ClusteringConfig
from inference.diarization import Clock, DiarizationConfig, WindowDiarizer
from inference.protocols import VoiceEmbedder
from inference.reconstruction import ChunkFrames, speaker_regions, with_overlap
from inference.types import Audio, Diarization, Vector

log = logging.getLogger(__name__)


class ChunkSegmenter(Protocol):
    """Local speaker activity over sliding chunks (inference.segmentation.SegmentationModel)."""

    def segment(self, samples: npt.NDArray[np.float32], step: float) -> ChunkFrames: ...


def _window_config() -> DiarizationConfig:
    # 1.5 s windows 1 s apart, without the built-in diarizer's short windows around changes
    # (the regions already end at the segmentation's changes): 27% less audio to embed than
    # 0.75 s apart with short windows, for the same DER (real-dev 8.3%, dev 4.5%).
    # A voice heard for 1% of a long recording is a speaker (the built-in diarizer's 4% folded
    # a one-off voice of dev01-05 joined, 9.5 min, into another: DER 10.8% -> 5.0%). The
    # automatic count may reach 20: with the built-in 10, real-dev joined (17 voices, 8.5 min)
    # came out as one speaker, since the spectral eigengap has no clear gap below the truth.
    return DiarizationConfig(
        window=1.5, hop=1.0, fine_window=0.0, bridge_gap=0.75,
        clustering=ClusteringConfig(min_cluster_fraction=0.01, max_auto_speakers=20),
    )


@dataclass(frozen=True)
class NeuralDiarizationConfig:
    step: float = 5.0
    """Seconds between the starts of two 10 s chunks: every frame is seen by 10/step chunks,
    which averages out the segmentation's mistakes near chunk edges. Measured DER pyannote-
    sample / real-dev / dev: 2.5 s 4.5 / 8.2 / 4.4%, 5 s 5.2 / 8.3 / 4.5% at half the
    segmentation time, which on 2 cores competes with ASR."""
    windows: DiarizationConfig = field(default_factory=_window_config)
    """Voice windows and clustering inside the regions. Pauses up to 0.75 s join a speaker's
    turn: references differ on this (dev marks whole turns, pauses included; real-dev splits
    turns at pauses of 0.5 s); measured DER dev / real-dev (chunks 2.5 s apart): 0.5 s 5.2 /
    6.2%, 0.75 s 4.4 / 8.2%, 1.0 s 4.3 / 9.3%, the built-in diarizer's 1.5 s 3.7 / 11.7%."""
    pooled_seconds: float = 7.0
    """Consecutive windows of one speaker's unbroken speech are averaged into one voice vector
    of up to this span for identification: CAM++ tells voices apart reliably from about 3 s
    (enrollment profiles are 3 s windows), and single 1.5 s windows on a noisy phone line too
    often fall below the match bar one by one (memory's consistency rule). Measured on
    real-dev: 3.75 s left a telephone cluster at 64% consistent vectors (named from 70%);
    6.75 s gave 75% and attribution 90.5%."""


SEGMENTATION_SHARE = 0.2
"""Segmentation's part of diarizing a recording: 0.73 s of 3.6 s on dev01 (CPU), the window
embedding after it most of the rest."""


def _ignore(done: float) -> None:
    return None


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
        self._voices = WindowDiarizer(embedder, self.config.windows)

    reports_progress = True

    def diarize(
        self,
        audio: Audio,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """`progress`: the share of the recording diarized, segmentation counting for
        SEGMENTATION_SHARE and the window embedding that follows for the rest."""
        clock = Clock()
        frames = self.segmenter.segment(audio.samples, self.config.step)
        regions = speaker_regions(frames, audio.duration)
        clock.lap("segmentation")
        report = progress or _ignore
        report(SEGMENTATION_SHARE)
        voices = self._voices.diarize_regions(
            audio, regions, num_speakers, min_speakers, max_speakers,
            lambda done: report(SEGMENTATION_SHARE + (1 - SEGMENTATION_SHARE) * done))
        clock.take(voices.timings)
        turns = with_overlap(frames, voices.turns, audio.duration)
        clock.lap("overlap")
        log.debug("diarized %.1f s: %d regions, %d speakers, %d turns (%s)", audio.duration,
                  len(regions), len(voices.vectors), len(turns), clock.laps)
        return replace(voices, turns=turns, exclusive=voices.turns, timings=clock.laps,
                       **pooled(voices, self.config.pooled_seconds))


def pooled(voices: Diarization, seconds: float) -> dict[str, Any]:
    """Per label, runs of window vectors whose spans follow on without a gap, each run at
    most `seconds` long: each run's mean vector and its span (the `vectors` and `spans` of a
    Diarization)."""
    vectors: dict[str, list[Vector]] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for label, own in voices.vectors.items():
        order = sorted(range(len(own)), key=lambda i: voices.spans[label][i])
        groups: list[list[int]] = []
        for i in order:
            start, end = voices.spans[label][i]
            last = groups[-1] if groups else []
            if (last and start <= voices.spans[label][last[-1]][1]
                    and end - voices.spans[label][last[0]][0] <= seconds):
                last.append(i)
            else:
                groups.append([i])
        vectors[label] = [normalise(np.mean([own[i] for i in group], axis=0))
                          for group in groups]
        spans[label] = [(voices.spans[label][group[0]][0],
                         max(voices.spans[label][i][1] for i in group)) for group in groups]
    return {"vectors": vectors, "spans": spans}
