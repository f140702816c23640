"""Live audio in: bytes as a client streams them, out as 16 kHz mono float32 chunks.

Two formats arrive on the live WebSocket:
- raw PCM16 (little-endian, mono) at a rate the client states: converted and resampled
  chunk by chunk (a polyphase filter whose state would cost more than it saves is not kept:
  chunk edges are well under a millisecond of error at these ratios);
- WebM/Opus, as a browser's MediaRecorder sends it: a container, so it is demuxed and decoded
  incrementally by PyAV on a thread of its own that reads from a pipe the chunks are written to.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from inference.types import SAMPLE_RATE
from memory.errors import CorruptAudio, InvalidInput

MIN_RATE = 8000
MAX_RATE = 48000

Samples = npt.NDArray[np.float32]


class LiveDecoder(Protocol):
    """Bytes in (any chunking), 16 kHz mono float32 out."""

    def feed(self, data: bytes) -> Samples: ...

    def finish(self) -> Samples:
        """No more bytes: whatever is still buffered."""
        ...


def check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) \
            or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise InvalidInput(
            f"sample_rate must be a whole number of Hz between {MIN_RATE} and {MAX_RATE}, "
            f"got {sample_rate!r}")
    return sample_rate


class Pcm16Decoder:
    """Little-endian signed 16-bit mono PCM at `sample_rate`."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = check_rate(sample_rate)
        self._odd = b""  # a frame split across two chunks
        divisor = math.gcd(self.sample_rate, SAMPLE_RATE)
        self._up, self._down = SAMPLE_RATE // divisor, self.sample_rate // divisor

    def feed(self, data: bytes) -> Samples:
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        return self._resample(samples)

    def finish(self) -> Samples:
        self._odd = b""
        return np.zeros(0, np.float32)

    def _resample(self, samples: Samples) -> Samples:
        if self._up == self._down or len(samples) == 0:
            return samples
        from scipy.signal import resample_poly

        return np.asarray(resample_poly(samples, self._up, self._down), dtype=np.float32)


class _Pipe:
    """A file-like object PyAV reads from, fed by another thread; `read` waits for data."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        self._buffer = b""
        self._closed = False

    def write(self, data: bytes) -> None:
        self._chunks.put(data)

    def close(self) -> None:
        self._chunks.put(None)

    def read(self, size: int = -1) -> bytes:
        while not self._closed and (size < 0 or len(self._buffer) < size):
            chunk = self._chunks.get()
            if chunk is None:
                self._closed = True
                break
            self._buffer += chunk
            if size >= 0 and self._buffer:
                break  # a short read is fine; PyAV asks again
        n = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


class WebmOpusDecoder:
    """MediaRecorder's `audio/webm;codecs=opus` stream, decoded as it arrives."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._out: queue.Queue[Samples] = queue.Queue()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._decode, name="sm-webm", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> Samples:
        self._raise_if_failed()
        self._pipe.write(data)
        return self._drain()

    def finish(self) -> Samples:
        self._pipe.close()
        self._thread.join(timeout=30)
        self._raise_if_failed()
        return self._drain()

    def _drain(self) -> Samples:
        pieces = []
        while True:
            try:
                pieces.append(self._out.get_nowait())
            except queue.Empty:
                break
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise CorruptAudio(
                "the WebM/Opus stream could not be decoded "
                f"({self._error}); send audio/webm;codecs=opus chunks from MediaRecorder, in "
                "order, or raw pcm16") from self._error

    def _decode(self) -> None:
        import av

        try:
            with av.open(self._pipe, mode="r", format="webm") as container:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        self._out.put(_mono(out.to_ndarray()))
                for out in resampler.resample(None):
                    self._out.put(_mono(out.to_ndarray()))
        except Exception as exc:  # reported to the feeding side on its next call
            self._error = exc
            # Keep reading so that the writer never blocks on a dead decoder.
            while self._pipe.read(65536):
                pass


def _mono(array: npt.NDArray[Any]) -> Samples:
    return np.asarray(array, dtype=np.float32).reshape(-1)


def decoder_for(audio_format: str, sample_rate: int) -> LiveDecoder:
    """The decoder of a live stream's declared format ('pcm16' or 'webm')."""
    if audio_format == "pcm16":
        return Pcm16Decoder(sample_rate)
    if audio_format == "webm":
        return WebmOpusDecoder()
    raise InvalidInput(f"format must be 'pcm16' or 'webm', got {audio_format!r}")
