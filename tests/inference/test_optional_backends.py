"""The optional backends (pyannote, emotion2vec): their weights cannot be downloaded here, so
their output conversion runs on fakes shaped like the libraries' real outputs, and their
absence gives an error naming the extra."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from inference.emotion import Emotion2VecRecognizer, convert_output, english_label
from inference.lazy import Lazy
from inference.pyannote_backend import (
    MODEL_ID,
    PyannoteDiarizer,
    PyannoteEmbedder,
    annotation_turns,
    normalise_embedding,
)
from inference.pyannote_backend import convert_output as convert_diarization
from inference.types import Audio, Turn
from memory.errors import MissingExtra

FUNASR_LABELS = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral",
                 "其他/other", "难过/sad", "吃惊/surprised", "<unk>"]


# ---------------------------------------------------------------- emotion2vec


def test_funasr_labels_become_plain_english() -> None:
    assert english_label("开心/happy") == "happy"
    assert english_label("<unk>") == "unknown"
    assert english_label("") == "unknown"


def test_funasr_output_becomes_the_top_emotion() -> None:
    scores = [0.01, 0.0, 0.02, 0.81, 0.1, 0.0, 0.06, 0.0, 0.0]
    result = convert_output({"key": "x", "labels": FUNASR_LABELS, "scores": scores})
    assert (result.label, result.confidence) == ("happy", pytest.approx(0.81))
    assert convert_output({"labels": [], "scores": []}).label == "unknown"


class FakeAutoModel:
    """Shaped like funasr.AutoModel: generate() returns one dict per input."""

    def __init__(self) -> None:
        self.inputs: list[int] = []

    def generate(self, clip: np.ndarray, **kwargs: Any) -> list[dict[str, Any]]:
        self.inputs.append(len(clip))
        sad = [0.0] * 9
        sad[6] = 0.7
        sad[4] = 0.3
        return [{"key": "clip", "labels": FUNASR_LABELS, "scores": sad}]


def test_recognizer_labels_each_clip_and_skips_very_short_ones() -> None:
    recognizer = Emotion2VecRecognizer()
    fake = FakeAutoModel()
    recognizer._model = Lazy.of(fake)  # the loaded model; loading itself needs the extra
    results = recognizer.recognize([np.zeros(16_000, np.float32), np.zeros(1_000, np.float32)])
    assert [(r.label, r.confidence) for r in results] == [("sad", 0.7), ("unknown", 0.0)]
    assert fake.inputs == [16_000]
    assert recognizer.model_id == "emotion2vec-emotion2vec_plus_base"


@pytest.mark.skipif(importlib.util.find_spec("funasr") is not None, reason="funasr is installed")
def test_missing_emotion_extra_is_named() -> None:
    with pytest.raises(MissingExtra, match=r"'emotion' extra"):
        Emotion2VecRecognizer().recognize([np.zeros(16_000, np.float32)])


# ---------------------------------------------------------------- pyannote


def annotation(*turns: tuple[float, float, str]) -> Annotation:
    result = Annotation()
    for start, end, label in turns:
        result[Segment(start, end)] = label
    return result


def test_pyannote4_output_uses_exclusive_turns_and_per_speaker_embeddings() -> None:
    full = annotation((0.0, 5.0, "SPEAKER_00"), (4.0, 9.0, "SPEAKER_01"), (9.5, 12.0, "SPEAKER_02"))
    exclusive = annotation((0.0, 4.5, "SPEAKER_00"), (4.5, 9.0, "SPEAKER_01"),
                           (9.5, 12.0, "SPEAKER_02"))
    embeddings = np.array([[3.0, 4.0], [0.0, 2.0], [np.nan, np.nan]], dtype=np.float32)
    output = SimpleNamespace(speaker_diarization=full, exclusive_speaker_diarization=exclusive,
                             speaker_embeddings=embeddings)
    diarization = convert_diarization(output)
    assert diarization.turns == [Turn(0.0, 4.5, "SPEAKER_00"), Turn(4.5, 9.0, "SPEAKER_01"),
                                 Turn(9.5, 12.0, "SPEAKER_02")]
    assert diarization.model_id == MODEL_ID
    assert set(diarization.vectors) == {"SPEAKER_00", "SPEAKER_01"}  # NaN row: no vector
    np.testing.assert_allclose(diarization.vectors["SPEAKER_00"][0], [0.6, 0.8], rtol=1e-6)
    assert diarization.spans == {}  # one vector per speaker, not per window


def test_pyannote3_bare_annotation_gives_turns_without_vectors() -> None:
    diarization = convert_diarization(annotation((2.0, 3.0, "B"), (0.0, 1.0, "A")))
    assert diarization.turns == [Turn(0.0, 1.0, "A"), Turn(2.0, 3.0, "B")]
    assert diarization.vectors == {}


def test_annotation_turns_drop_empty_segments() -> None:
    assert annotation_turns(annotation((0.0, 1.0, "A"), (1.0, 1.0, "B"))) == [Turn(0.0, 1.0, "A")]


class FakeCommunityPipeline:
    """Shaped like pyannote.audio's Pipeline: called with a waveform dict."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, file: dict[str, Any], **kwargs: Any) -> SimpleNamespace:
        self.calls.append({"shape": tuple(file["waveform"].shape), "rate": file["sample_rate"],
                           **kwargs})
        turns = annotation((0.0, 1.0, "SPEAKER_00"))
        return SimpleNamespace(speaker_diarization=turns, exclusive_speaker_diarization=turns,
                               speaker_embeddings=np.ones((1, 4), np.float32))


def test_diarizer_passes_the_speaker_count_hints() -> None:
    diarizer = PyannoteDiarizer(token="hf_x")
    fake = FakeCommunityPipeline()
    # The loaded pipeline; loading itself needs the extra and a token.
    diarizer._pipeline = Lazy.of(fake)
    diarization = diarizer.diarize(Audio(np.zeros(16_000, np.float32)), min_speakers=2,
                                   max_speakers=4)
    assert fake.calls == [{"shape": (1, 16_000), "rate": 16_000, "min_speakers": 2,
                           "max_speakers": 4}]
    assert [t.label for t in diarization.turns] == ["SPEAKER_00"]
    np.testing.assert_allclose(diarization.vectors["SPEAKER_00"][0], [0.5] * 4)


def test_embedder_normalises_whole_clip_embeddings() -> None:
    embedder = PyannoteEmbedder()
    embedder._inference = Lazy.of(lambda file: np.array([[0.0, 3.0, 4.0]]))  # (1, D) like Inference
    vectors = embedder.embed([np.zeros(100, np.float32), np.zeros(32_000, np.float32)])
    np.testing.assert_allclose(vectors[0], [0.0, 0.6, 0.8])
    assert len(vectors) == 2
    assert not np.any(normalise_embedding(np.full(3, np.nan)))


@pytest.mark.skipif(importlib.util.find_spec("pyannote.audio") is not None,
                    reason="pyannote.audio is installed")
def test_missing_pyannote_extra_is_named() -> None:
    with pytest.raises(MissingExtra, match=r"'pyannote' extra"):
        PyannoteDiarizer().load()
    with pytest.raises(MissingExtra, match=r"'pyannote' extra"):
        PyannoteEmbedder().embed([np.zeros(16_000, np.float32)])
