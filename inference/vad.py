"""Speech regions from silero VAD (the ONNX model bundled in faster-whisper's assets).

The pipeline runs VAD once per recording: `SileroVAD` remembers its answer for the last few
audio arrays it saw, so the transcriber and the diarizer, each given the same instance, share
one pass over the audio.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, replace

import numpy as np

from inference.types import Audio, SpeechRegion

log = logging.getLogger(__name__)

_REMEMBERED = 4
"""Recordings whose regions are kept (by identity of their sample array)."""


@dataclass(frozen=True)
class VadConfig:
    """Fine-grained regions: short pauses split speech, so speaker changes fall between them."""

    threshold: float = 0.5
    min_speech_ms: int = 200
    min_silence_ms: int = 300
    speech_pad_ms: int = 60


class SileroVAD:
    """VoiceActivityDetector over faster-whisper's bundled silero model (onnxruntime, CPU)."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self._lock = threading.Lock()
        self._memo: list[tuple[weakref.ref[np.ndarray], int, list[SpeechRegion]]] = []
        self._variants: dict[float, SileroVAD] = {}

    def with_threshold(self, threshold: float) -> SileroVAD:
        """This VAD with another speech threshold (one instance per threshold, so each keeps
        its own memo): ASR wants recall where the diarizer wants clean regions."""
        if threshold == self.config.threshold:
            return self
        with self._lock:
            if threshold not in self._variants:
                self._variants[threshold] = SileroVAD(replace(self.config, threshold=threshold))
            return self._variants[threshold]

    def speech_regions(self, audio: Audio) -> list[SpeechRegion]:
        cached = self._recall(audio)
        if cached is not None:
            return list(cached)
        regions = self._detect(audio)
        with self._lock:
            self._memo = [m for m in self._memo if m[0]() is not None][-(_REMEMBERED - 1) :]
            self._memo.append((weakref.ref(audio.samples), len(audio.samples), regions))
        return list(regions)

    def _recall(self, audio: Audio) -> list[SpeechRegion] | None:
        with self._lock:
            for ref, length, regions in self._memo:
                if ref() is audio.samples and length == len(audio.samples):
                    return regions
        return None

    def _detect(self, audio: Audio) -> list[SpeechRegion]:
        if len(audio.samples) == 0:
            return []
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        options = VadOptions(
            threshold=self.config.threshold,
            min_speech_duration_ms=self.config.min_speech_ms,
            min_silence_duration_ms=self.config.min_silence_ms,
            speech_pad_ms=self.config.speech_pad_ms,
        )
        chunks = get_speech_timestamps(audio.samples, options, sampling_rate=audio.sample_rate)
        rate = float(audio.sample_rate)
        regions = [SpeechRegion(c["start"] / rate, c["end"] / rate) for c in chunks]
        log.debug("VAD: %d speech regions, %.1f s of speech in %.1f s",
                  len(regions), speech_seconds(regions), audio.duration)
        return regions


def speech_seconds(regions: list[SpeechRegion]) -> float:
    return sum(r.end - r.start for r in regions)


def concatenate_regions(audio: Audio, regions: list[SpeechRegion]) -> np.ndarray:
    """The samples of `regions`, end to end, in one copy."""
    pieces = [audio.slice(r.start, r.end) for r in regions]
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)


def merge_regions(
    regions: list[SpeechRegion], *, pad: float, max_gap: float, duration: float
) -> list[SpeechRegion]:
    """Pad each region and join those closer than `max_gap` (coarser chunks, e.g. for ASR)."""
    merged: list[SpeechRegion] = []
    for region in sorted(regions, key=lambda r: r.start):
        start, end = max(0.0, region.start - pad), min(duration, region.end + pad)
        if merged and start - merged[-1].end <= max_gap:
            merged[-1] = SpeechRegion(merged[-1].start, max(merged[-1].end, end))
        else:
            merged.append(SpeechRegion(start, end))
    return merged
