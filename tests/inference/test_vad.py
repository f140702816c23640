"""Silero VAD (bundled with faster-whisper) on real speech and on silence."""

from __future__ import annotations

import numpy as np
import pytest

from inference.types import Audio, SpeechRegion
from inference.vad import SileroVAD, merge_regions, speech_seconds

pytestmark = pytest.mark.models


def test_silence_has_no_speech(silero_vad: SileroVAD) -> None:
    assert silero_vad.speech_regions(Audio(np.zeros(16_000 * 3, np.float32))) == []
    assert silero_vad.speech_regions(Audio(np.zeros(0, np.float32))) == []


def test_regions_cover_the_reference_speech(silero_vad: SileroVAD, short_clip: Audio) -> None:
    regions = silero_vad.speech_regions(short_clip)
    # dev01's reference: af_heart 0.771-8.191, am_fenrir 8.855-17.505, af_heart 16.671-19.511.
    reference = [(0.771, 8.191), (8.855, 17.505), (16.671, 19.511)]
    covered = sum(
        max(0.0, min(r.end, e) - max(r.start, s)) for r in regions for s, e in reference
    ) - 0.834  # the overlap 16.671-17.505 was counted twice in the reference
    total = 8.191 - 0.771 + 19.511 - 8.855
    assert covered / total > 0.9
    assert speech_seconds(regions) < short_clip.duration  # the pauses are not speech
    assert regions == sorted(regions, key=lambda r: r.start)
    assert all(0.0 <= r.start < r.end <= short_clip.duration for r in regions)


def test_the_same_recording_is_analysed_once(silero_vad: SileroVAD, short_clip: Audio) -> None:
    first = silero_vad.speech_regions(short_clip)
    remembered = silero_vad._recall(short_clip)
    assert remembered == first
    # A copy of the samples is another recording as far as the memo is concerned.
    assert silero_vad._recall(Audio(short_clip.samples.copy())) is None


def test_merge_regions_pads_and_joins_close_regions() -> None:
    regions = [SpeechRegion(1.0, 2.0), SpeechRegion(2.5, 3.0), SpeechRegion(6.0, 9.9)]
    merged = merge_regions(regions, pad=0.2, max_gap=1.0, duration=10.0)
    assert merged == [SpeechRegion(0.8, 3.2), SpeechRegion(5.8, 10.0)]


def test_a_lower_threshold_variant_hears_at_least_as_much(
    silero_vad: SileroVAD, short_clip: Audio
) -> None:
    lenient = silero_vad.with_threshold(0.25)
    assert lenient is silero_vad.with_threshold(0.25)  # one instance (and memo) per threshold
    assert silero_vad.with_threshold(silero_vad.config.threshold) is silero_vad
    assert lenient.config.threshold == 0.25
    assert lenient.config.min_silence_ms == silero_vad.config.min_silence_ms
    strict_speech = speech_seconds(silero_vad.speech_regions(short_clip))
    assert speech_seconds(lenient.speech_regions(short_clip)) >= strict_speech > 0
