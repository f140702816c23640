"""The built-in diarizer: frame-level logic with deterministic fakes, then real models on a
short real clip from tests/data scored with pyannote.metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from inference.diarization import BuiltinDiarizer
from inference.types import Audio, Diarization, SpeechRegion, Vector
from tests.testdata import dev_conversation, enrollment_clip

RATE = 16_000
# The fake "voices": speaker i speaks with constant amplitude LEVELS[i].
LEVELS = (0.1, 0.2, 0.3)


class FixedVad:
    def __init__(self, regions: list[SpeechRegion]) -> None:
        self.regions = regions

    def speech_regions(self, audio: Audio) -> list[SpeechRegion]:
        return list(self.regions)


class AmplitudeEmbedder:
    """A deterministic voice model: a clip's vector mixes one direction per voice, weighted by
    the share of the clip spoken at that voice's amplitude."""

    model_id = "fake-amplitude"
    dimension = 8

    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        vectors = []
        for clip in clips:
            shares = np.array([np.mean(np.isclose(np.abs(clip), lv, atol=0.01)) for lv in LEVELS])
            vector = np.zeros(self.dimension, dtype=np.float32)
            vector[: len(LEVELS)] = shares
            vector[len(LEVELS)] = 0.05  # something shared by every voice (the "channel")
            vectors.append(vector / np.linalg.norm(vector))
        return vectors


def synthetic(turns: list[tuple[float, float, int]], duration: float) -> Audio:
    samples = np.zeros(int(duration * RATE), dtype=np.float32)
    for start, end, voice in turns:
        samples[int(start * RATE) : int(end * RATE)] = LEVELS[voice]
    return Audio(samples)


def test_changes_inside_one_region_are_placed_within_a_frame_or_two() -> None:
    truth = [(0.0, 6.0, 0), (6.0, 10.2, 1), (10.2, 16.0, 0), (16.0, 21.0, 1)]
    audio = synthetic(truth, 21.0)
    diarizer = BuiltinDiarizer(FixedVad([SpeechRegion(0.0, 21.0)]), AmplitudeEmbedder())
    result = diarizer.diarize(audio)
    assert [t.label for t in result.turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00",
                                               "SPEAKER_01"]
    for turn, (start, end, _) in zip(result.turns, truth, strict=True):
        assert abs(turn.start - start) <= 0.3 and abs(turn.end - end) <= 0.3
    assert result.model_id == "fake-amplitude"


def test_turns_are_sorted_exclusive_and_carry_their_vectors() -> None:
    truth = [(0.5, 4.0, 0), (4.6, 9.0, 1), (9.5, 9.8, 0), (10.3, 15.0, 2), (15.5, 19.0, 0)]
    regions = [SpeechRegion(s, e) for s, e, _ in truth]
    diarizer = BuiltinDiarizer(FixedVad(regions), AmplitudeEmbedder())
    result = diarizer.diarize(synthetic(truth, 20.0))
    assert_well_formed(result)
    assert len({t.label for t in result.turns}) == 3
    # The 0.3 s reply is too short to embed well; it still gets a speaker.
    assert any(t.start <= 9.5 and t.end >= 9.8 for t in result.turns)


def test_short_pauses_inside_a_turn_are_bridged() -> None:
    truth = [(0.0, 5.0, 0), (5.8, 9.0, 0), (9.4, 14.0, 1)]
    regions = [SpeechRegion(s, e) for s, e, _ in truth]
    result = BuiltinDiarizer(FixedVad(regions), AmplitudeEmbedder()).diarize(
        synthetic(truth, 14.0))
    assert next((t.start, t.end) for t in result.turns) == (0.0, 9.0)
    assert len(result.turns) == 2


def test_only_short_replies_make_one_speaker_with_vectors() -> None:
    truth = [(0.0, 0.6, 0), (1.5, 2.1, 0), (3.0, 3.5, 0)]
    regions = [SpeechRegion(s, e) for s, e, _ in truth]
    result = BuiltinDiarizer(FixedVad(regions), AmplitudeEmbedder()).diarize(
        synthetic(truth, 4.0))
    assert {t.label for t in result.turns} == {"SPEAKER_00"}
    assert_well_formed(result)


def test_no_speech_gives_no_turns() -> None:
    result = BuiltinDiarizer(FixedVad([]), AmplitudeEmbedder()).diarize(synthetic([], 5.0))
    assert result.turns == [] and result.vectors == {}


def test_num_speakers_is_passed_to_the_clustering() -> None:
    truth = [(0.0, 5.0, 0), (5.0, 10.0, 1), (10.0, 15.0, 2)]
    diarizer = BuiltinDiarizer(FixedVad([SpeechRegion(0.0, 15.0)]), AmplitudeEmbedder())
    assert len({t.label for t in diarizer.diarize(synthetic(truth, 15.0)).turns}) == 3
    one = diarizer.diarize(synthetic(truth, 15.0), num_speakers=1)
    assert {t.label for t in one.turns} == {"SPEAKER_00"}
    assert_well_formed(one)


def assert_well_formed(result: Diarization) -> None:
    starts = [t.start for t in result.turns]
    assert starts == sorted(starts)
    for previous, turn in zip(result.turns, result.turns[1:], strict=False):
        assert previous.end <= turn.start + 1e-9
    assert all(t.end > t.start for t in result.turns)
    assert set(result.vectors) == {t.label for t in result.turns}
    assert all(result.vectors[label] for label in result.vectors)
    # Each vector comes with the span it was computed from, inside the recording's speech.
    assert set(result.spans) == set(result.vectors)
    for label, spans in result.spans.items():
        assert len(spans) == len(result.vectors[label])
        assert all(0.0 <= start < end for start, end in spans)


# ------------------------------------------------------------------------ real models


@pytest.mark.models
def test_two_speakers_on_a_real_clip(builtin_diarizer: BuiltinDiarizer,
                                     short_clip: Audio) -> None:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    result = builtin_diarizer.diarize(short_clip)
    assert_well_formed(result)
    assert len({t.label for t in result.turns}) == 2
    assert result.model_id == "resemblyzer-ge2e-0.1.4"

    reference = Annotation()
    for line in dev_conversation("dev01-start", ".rttm").read_text().splitlines():
        parts = line.split()
        start, end = float(parts[3]), float(parts[3]) + float(parts[4])
        if start < short_clip.duration:
            reference[Segment(start, min(end, short_clip.duration))] = parts[7]
    hypothesis = Annotation()
    for turn in result.turns:
        hypothesis[Segment(turn.start, turn.end)] = turn.label
    der = DiarizationErrorRate(collar=0.0)(reference, hypothesis)
    assert der < 0.15
    # Every label's window vectors are unit voice vectors of the real model (256-d).
    for vectors in result.vectors.values():
        assert all(v.shape == (256,) and np.isclose(np.linalg.norm(v), 1.0, atol=1e-4)
                   for v in vectors)


@pytest.mark.models
def test_silence_gives_no_turns_with_the_real_models(builtin_diarizer: BuiltinDiarizer) -> None:
    result = builtin_diarizer.diarize(Audio(np.zeros(RATE * 3, dtype=np.float32)))
    assert result.turns == [] and result.vectors == {}


@pytest.mark.models
@pytest.mark.parametrize("voice", ["am_fenrir", "bf_emma"])
def test_one_voice_is_one_speaker(builtin_diarizer: BuiltinDiarizer, voice: str) -> None:
    from inference.audio import decode

    result = builtin_diarizer.diarize(decode(enrollment_clip(voice)))
    assert {t.label for t in result.turns} == {"SPEAKER_00"}
    assert sum(t.end - t.start for t in result.turns) > 8.0
