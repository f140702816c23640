"""Decoding every format ffmpeg reads, and a typed error for every unusable input."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from inference.audio import decode, decode_span, sha256
from inference.types import SAMPLE_RATE, Audio
from memory.errors import (
    AudioError,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    NotAudio,
    ZeroDurationAudio,
)

CLIP_SECONDS = 4.0

# (file suffix, container, codec, encoder sample rate)
FORMATS = [
    ("wav", "wav", "pcm_s16le", 16_000),
    ("mp3", "mp3", "libmp3lame", 16_000),
    ("m4a", "mp4", "aac", 16_000),
    ("flac", "flac", "flac", 16_000),
    ("ogg", "ogg", "libopus", 48_000),
    ("webm", "webm", "libopus", 48_000),
]


@pytest.fixture(scope="module")
def clip(short_clip: Audio) -> np.ndarray:
    """4 s of real speech (the opening of dev01, from tests/data)."""
    return short_clip.samples[: int(CLIP_SECONDS * SAMPLE_RATE)]


def encode(path: Path, container: str, codec: str, rate: int, samples: np.ndarray,
           video: bool = False) -> Path:
    """Write `samples` (16 kHz mono) with PyAV's encoders (ffmpeg inside the wheel)."""
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if video:  # every stream is declared before the first packet is written
            picture = out.add_stream("mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
            for i in range(int(CLIP_SECONDS * 10)):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                frame.pts = i
                for packet in picture.encode(frame):
                    out.mux(packet)
            for packet in picture.encode(None):
                out.mux(packet)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=rate, frame_size=stream.codec_context.frame_size or 1024)
        source = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32),
                                            format="flt", layout="mono")
        source.sample_rate = SAMPLE_RATE
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(("suffix", "container", "codec", "rate"), FORMATS)
def test_every_format_decodes_to_16k_mono_float32(
    tmp_path: Path, clip: np.ndarray, suffix: str, container: str, codec: str, rate: int
) -> None:
    path = encode(tmp_path / f"clip.{suffix}", container, codec, rate, clip)
    audio = decode(path)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    assert float(np.abs(audio.samples).max()) <= 1.0
    # Lossy codecs shift and smooth the signal; the loudness must survive.
    assert float(np.sqrt(np.mean(audio.samples**2))) == pytest.approx(
        float(np.sqrt(np.mean(clip**2))), rel=0.3)


def test_the_audio_track_of_a_video_is_decoded(tmp_path: Path, clip: np.ndarray) -> None:
    path = encode(tmp_path / "call.mp4", "mp4", "aac", 16_000, clip, video=True)
    assert decode(path).duration == pytest.approx(CLIP_SECONDS, abs=0.1)


def test_bytes_and_path_decode_alike_and_hash_alike(tmp_path: Path, clip: np.ndarray) -> None:
    path = encode(tmp_path / "clip.flac", "flac", "flac", 16_000, clip)
    data = path.read_bytes()
    assert np.array_equal(decode(path).samples, decode(data).samples)
    assert sha256(path) == sha256(data) != sha256(data + b"\0")
    assert len(sha256(data)) == 64


def test_stereo_44k_is_downmixed_and_resampled() -> None:
    t = np.arange(44_100 * 2) / 44_100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1).reshape(-1)  # interleaved L R
    audio = decode(wav_bytes(stereo, rate=44_100, channels=2))
    assert audio.duration == pytest.approx(2.0, abs=0.01)
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.5, abs=0.05)


def test_silence_is_not_an_error() -> None:
    audio = decode(wav_bytes(np.zeros(SAMPLE_RATE * 2)))
    assert audio.duration == pytest.approx(2.0)
    assert not np.any(audio.samples)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.m4a"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudio, match="empty"):
        decode(path)
    with pytest.raises(EmptyAudio):
        decode(b"")


def test_random_bytes_are_not_audio() -> None:
    with pytest.raises(NotAudio, match="not audio"):
        decode(np.random.default_rng(7).bytes(20_000))


def test_a_text_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"  # the name does not make it audio
    path.write_text("Meeting notes: ship on Friday.\n" * 50)
    with pytest.raises(NotAudio):
        decode(path)


def test_a_video_without_sound_is_not_audio(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(NotAudio, match="no audio track"):
        decode(path)


def test_a_folder_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(NotAudio):
        decode(tmp_path)


@pytest.mark.parametrize(("suffix", "container", "codec", "rate"),
                         [f for f in FORMATS if f[0] in ("wav", "mp3", "m4a", "flac", "webm")])
def test_truncated_files_are_corrupt(
    tmp_path: Path, clip: np.ndarray, suffix: str, container: str, codec: str, rate: int
) -> None:
    data = encode(tmp_path / f"clip.{suffix}", container, codec, rate, clip).read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptAudio, match=r"truncated|corrupt"):
        decode(cut)


def test_a_wav_header_without_its_data_is_corrupt(clip: np.ndarray) -> None:
    with pytest.raises(CorruptAudio):
        decode(wav_bytes(clip)[:44])


def test_noise_behind_an_audio_signature_is_corrupt() -> None:
    with pytest.raises(CorruptAudio, match="damaged"):
        decode(b"fLaC" + os.urandom(5000))


def test_zero_duration_audio() -> None:
    with pytest.raises(ZeroDurationAudio):
        decode(wav_bytes(np.zeros(0)))


def test_audio_longer_than_the_maximum(clip: np.ndarray) -> None:
    with pytest.raises(AudioTooLong, match="MAX_AUDIO_SECONDS"):
        decode(wav_bytes(clip), max_seconds=2.0)
    assert decode(wav_bytes(clip), max_seconds=None).duration == pytest.approx(CLIP_SECONDS)


def test_every_audio_error_is_one_family() -> None:
    for error in (EmptyAudio, NotAudio, CorruptAudio, ZeroDurationAudio, AudioTooLong):
        assert issubclass(error, AudioError)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        decode(tmp_path / "nope.wav")


@pytest.mark.parametrize(("suffix", "container", "codec", "rate"), FORMATS)
def test_a_span_decodes_like_the_same_span_of_the_whole_file(
    tmp_path: Path, clip: np.ndarray, suffix: str, container: str, codec: str, rate: int
) -> None:
    path = encode(tmp_path / f"clip.{suffix}", container, codec, rate, clip)
    whole = decode(path).slice(1.3, 2.8)
    span = decode_span(path, 1.3, 2.8).samples
    assert len(span) == len(whole)
    # The same samples at the same times: mp3 and opus prime their decoders, and a seek must
    # not shift the clip by that priming (70 ms for this mp3).
    inner = slice(200, -200)
    lags = list(range(-160, 161))
    scores = [float(np.dot(np.roll(span, lag)[inner], whole[inner])) for lag in lags]
    best = int(np.argmax(scores))
    assert abs(lags[best]) <= 16  # 1 ms
    norms = float(np.linalg.norm(span[inner]) * np.linalg.norm(whole[inner]))
    assert scores[best] / norms > 0.99


def test_a_span_at_the_edges_is_cut_to_the_audio(tmp_path: Path, clip: np.ndarray) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(clip))
    assert np.allclose(decode_span(path, 0.0, 0.5).samples, decode(path).slice(0.0, 0.5))
    tail = decode_span(path, CLIP_SECONDS - 0.5, CLIP_SECONDS + 3.0).samples
    assert len(tail) == int(0.5 * SAMPLE_RATE)


def test_a_span_of_a_file_that_is_not_audio_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not audio at all\n" * 10)
    with pytest.raises(NotAudio):
        decode_span(path, 0.0, 1.0)
