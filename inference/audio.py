"""Decode any audio ffmpeg reads (through PyAV) to 16 kHz mono float32, with typed errors.

Every way an input can be unusable maps to one class of memory.errors, and the message says
what to do. Silence is not an error: it decodes to samples like any other audio.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from inference.types import SAMPLE_RATE, Audio
from memory.errors import (
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    NotAudio,
    ZeroDurationAudio,
)

log = logging.getLogger(__name__)

AudioSource = str | Path | bytes
"""A file path, or the file's bytes (uploads, base64 payloads)."""

DEFAULT_MAX_SECONDS = 4 * 3600.0

# Decoded audio shorter than this share of what the container declares is a truncated file.
_MIN_DECODED_SHARE = 0.9
# ...unless the gap is tiny (encoder padding, rounding of the declared duration).
_DURATION_SLACK_SECONDS = 0.5

# Leading bytes of containers ffmpeg reads; a file that starts like audio but fails to decode
# is corrupt, anything else is "not audio".
_AUDIO_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"RIFF"),  # wav
    (0, b"RIFX"),
    (0, b"ID3"),  # mp3 with tags
    (0, b"fLaC"),
    (0, b"OggS"),  # ogg / opus
    (0, b"\x1a\x45\xdf\xa3"),  # webm / matroska
    (4, b"ftyp"),  # mp4 / m4a
    (0, b"FORM"),  # aiff
    (0, b"#!AMR"),
    (0, b"caff"),
)


_HEAD_BYTES = 4096

_SEEK_PREROLL_SECONDS = 0.5


def sha256(source: AudioSource) -> str:
    """Hex digest of the file's content (the same bytes give the same conversation)."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def decode(source: AudioSource, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Audio:
    """Decode `source` to 16 kHz mono float32.

    Raises EmptyAudio, NotAudio, CorruptAudio, ZeroDurationAudio or AudioTooLong (all
    memory.errors.AudioError) with a message naming the input.
    """
    name = _describe(source)
    head = _read_head(source, name)
    if not head:
        raise EmptyAudio(f"{name} is empty (0 bytes); send the recording's content.")
    looks_like_audio = _looks_like_audio(head)

    import av  # PyAV: imported here so that `import inference.audio` stays cheap.

    handle: BinaryIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        container = av.open(handle, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise _undecodable(name, looks_like_audio, exc) from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _undecodable(name, looks_like_audio, exc) from exc
    with container:
        if not container.streams.audio:
            raise NotAudio(
                f"{name} has no audio track (container '{container.format.name}'); "
                "send an audio file or a video with sound."
            )
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        wav_declared = _wav_declared_seconds(head)
        if wav_declared is not None:
            # ffmpeg trusts the file size over a WAV header, so a cut WAV looks complete.
            declared = max(declared or 0.0, wav_declared)
        if max_seconds is not None and declared is not None and declared > max_seconds:
            raise _too_long(name, declared, max_seconds)
        samples = _decode_stream(container, stream, name, max_seconds, looks_like_audio)

    duration = len(samples) / SAMPLE_RATE
    if (
        declared is not None
        and declared - duration > _DURATION_SLACK_SECONDS
        and duration < declared * _MIN_DECODED_SHARE
    ):
        raise CorruptAudio(
            f"{name} is truncated: its header declares {declared:.1f} s but only "
            f"{duration:.1f} s could be decoded; re-export or re-upload the complete file."
        )
    if len(samples) == 0:
        raise ZeroDurationAudio(f"{name} decodes to no samples (zero duration).")
    return Audio(samples=samples)


def wav_bytes(audio: Audio) -> bytes:
    """The audio as a 16-bit PCM mono WAV file's bytes (samples past full scale are clipped)."""
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(audio.sample_rate)
        out.writeframes((np.clip(audio.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def decode_span(source: str | Path, start: float, end: float) -> Audio:
    """Decode only `start`..`end` seconds of a stored file (a segment's clip): seeks near
    `start` and stops after `end`, so a clip of a 4 h recording costs what the clip costs.

    Raises the same errors as decode() for files that cannot be read. No length limit and no
    truncation check: the file was decoded whole when it was processed.
    """
    if end <= start:
        raise ValueError(f"empty span {start:.2f}-{end:.2f} s")
    name = _describe(source)
    looks_like_audio = _looks_like_audio(_read_head(source, name))

    import av

    try:
        container = av.open(str(source), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _undecodable(name, looks_like_audio, exc) from exc
    with container:
        if not container.streams.audio:
            raise NotAudio(f"{name} has no audio track.")
        stream = container.streams.audio[0]
        try:
            samples, first = _decode_window(container, stream, max(0.0, start), end)
        except av.error.FFmpegError as exc:
            raise CorruptAudio(f"{name} cannot be decoded at {start:.1f} s ({exc}).") from exc
    offset = max(0, round((max(0.0, start) - first) * SAMPLE_RATE))
    length = round((end - max(0.0, start)) * SAMPLE_RATE)
    return Audio(samples=np.ascontiguousarray(samples[offset : offset + length]))


def _decode_window(
    container: Any, stream: Any, start: float, end: float
) -> tuple[np.ndarray[Any, np.dtype[np.float32]], float]:
    """16 kHz mono samples from about `start` to past `end`, and the time of the first one."""
    import av

    # decode() numbers samples from the stream's first one, which codecs with priming samples
    # (mp3, opus) place after 0: frame times are shifted back by that origin.
    origin = (float(stream.start_time * stream.time_base)
              if stream.start_time is not None and stream.time_base is not None else 0.0)
    # Decoding starts a little early: lossy decoders (mp3's bit reservoir, opus) need a few
    # frames before their output matches a decode from the beginning.
    warm_up = max(0.0, start - _SEEK_PREROLL_SECONDS)
    if warm_up > 0 and stream.time_base is not None:
        # Lands on the last seek point at or before it (every packet, for most audio).
        container.seek(int((warm_up + origin) / stream.time_base), stream=stream, backward=True)
    resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    chunks: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    first: float | None = None
    done = False
    for packet in container.demux(stream):
        for frame in packet.decode():
            frame_start = float(frame.time) - origin if frame.time is not None else None
            if frame_start is not None:
                if frame_start + frame.samples / frame.sample_rate < warm_up:
                    continue  # the seek point was earlier than asked
                if frame_start > end:
                    done = True
                    break
            if first is None:
                first = frame_start if frame_start is not None else 0.0
            chunks.extend(_mono(out) for out in resampler.resample(frame))
        if done:
            break
    chunks.extend(_mono(out) for out in resampler.resample(None))
    if not chunks:
        return np.zeros(0, dtype=np.float32), start
    samples = np.concatenate(chunks)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples, first if first is not None else start


def _mono(frame: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One resampled frame as mono float32: the mean of its channels (see _decode_stream)."""
    planes = np.asarray(frame.to_ndarray())
    mono = planes.mean(axis=0) if planes.ndim == 2 else planes.reshape(-1)
    return np.asarray(mono, dtype=np.float32)


def _decode_stream(
    container: Any, stream: Any, name: str, max_seconds: float | None, looks_like_audio: bool
) -> np.ndarray[Any, np.dtype[np.float32]]:
    import av

    # Resample but keep the channels, then average them: ffmpeg's own downmix adds channels
    # at -3 dB each, which makes identical channels louder than either (and can clip).
    resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    chunks: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    total = 0
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)

    def collect(frames: Any) -> None:
        nonlocal total
        for out in frames:
            chunk = _mono(out)
            chunks.append(chunk)
            total += len(chunk)
        if limit is not None and total > limit:
            raise _too_long(name, total / SAMPLE_RATE, max_seconds or 0.0, at_least=True)

    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                collect(resampler.resample(frame))
        collect(resampler.resample(None))  # flush the resampler's buffered tail
    except av.error.FFmpegError as exc:
        if total == 0:
            raise _undecodable(name, looks_like_audio, exc) from exc
        raise CorruptAudio(
            f"{name} is corrupt after {total / SAMPLE_RATE:.1f} s of audio ({exc}); "
            "re-export or re-upload the complete file."
        ) from exc
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks)
    # Decoders may overshoot full scale slightly; the contract is [-1, 1].
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The duration the file's header claims, when it claims one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        # The container's duration is the audio's only when audio is all it holds.
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _read_head(source: AudioSource, name: str) -> bytes:
    """The first bytes of the file: enough for magic numbers and a WAV header."""
    if isinstance(source, bytes):
        return source[:_HEAD_BYTES]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{name} does not exist.")
    if path.is_dir():
        raise NotAudio(f"{name} is a folder, not an audio file.")
    with open(path, "rb") as handle:
        return handle.read(_HEAD_BYTES)


def _wav_declared_seconds(head: bytes) -> float | None:
    """Duration a RIFF/WAVE header declares for its 'data' chunk, if readable."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = 0
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        chunk_size = int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk_id == b"fmt " and offset + 20 <= len(head):
            byte_rate = int.from_bytes(head[offset + 16 : offset + 20], "little")
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (streaming writers); trust the decoder then.
            if byte_rate <= 0 or chunk_size in (0, 0xFFFFFFFF):
                return None
            return chunk_size / byte_rate
        offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _looks_like_audio(head: bytes) -> bool:
    if any(head[offset : offset + len(magic)] == magic for offset, magic in _AUDIO_MAGIC):
        return True
    return _is_mpeg_frame_header(head)


def _is_mpeg_frame_header(head: bytes) -> bool:
    """A bare MPEG audio frame (mp3 without tags): 11-bit sync word and valid fields."""
    if len(head) < 3 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate not in (0b0000, 0b1111) and rate != 0b11


def _undecodable(name: str, looks_like_audio: bool, exc: Exception) -> Exception:
    if looks_like_audio:
        return CorruptAudio(
            f"{name} looks like an audio file but cannot be decoded ({exc}); it is probably "
            "truncated or damaged: re-export or re-upload the complete file."
        )
    return NotAudio(
        f"{name} is not audio that ffmpeg can decode ({exc}); send wav, mp3, m4a, flac, ogg, "
        "webm or a video with an audio track."
    )


def _too_long(
    name: str, seconds: float, max_seconds: float, at_least: bool = False
) -> AudioTooLong:
    more = "more than " if at_least else ""
    return AudioTooLong(
        f"{name} lasts {more}{seconds:.0f} s, over the limit of {max_seconds:.0f} s "
        "(SPEAKER_MEMORY_MAX_AUDIO_SECONDS); split the recording or raise the limit."
    )


def _describe(source: AudioSource) -> str:
    if isinstance(source, bytes):
        return f"the audio data ({len(source)} bytes)"
    return f"'{source}'"
