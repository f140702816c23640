"""Remember the window vectors a diarizer computes, so segments reuse them.

The built-in diarizer embeds clips cut from the recording (`Audio.slice`, numpy views into
its sample buffer). `RecordingEmbedder` wraps the voice embedder the diarizer is given and,
while a `recording(audio)` block is open on the calling thread, notes for each clip that is a
view into that recording where it lies (from its offset in the buffer) and the vector it got.
The pipeline then builds each transcript segment's voice vector from the windows inside it:
no second embedding pass. Clips that are copies are simply not recorded (the pipeline then
embeds segments itself), and a Diarization that carries `spans` does not need this at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from inference.protocols import VoiceEmbedder
from inference.types import Audio, Vector

Span = tuple[float, float, Vector]
"""(start s, end s, vector) of one embedded window."""


class RecordingEmbedder:
    """A VoiceEmbedder that passes through to `inner` and records windows of one recording."""

    def __init__(self, inner: VoiceEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self._local = threading.local()  # each pipeline run records on its own thread

    def embed(self, clips: Sequence[npt.NDArray[np.float32]]) -> list[Vector]:
        vectors = self.inner.embed(clips)
        target: tuple[Audio, list[Span]] | None = getattr(self._local, "target", None)
        if target is not None:
            audio, spans = target
            for clip, vector in zip(clips, vectors, strict=True):
                where = _position(audio.samples, clip)
                if where is not None:
                    start, length = where
                    rate = audio.sample_rate
                    spans.append((start / rate, (start + length) / rate, vector))
        return vectors

    @contextmanager
    def recording(self, audio: Audio) -> Iterator[list[Span]]:
        """Collect, into the yielded list, the windows of `audio` embedded on this thread."""
        spans: list[Span] = []
        previous = getattr(self._local, "target", None)
        self._local.target = (audio, spans)
        try:
            yield spans
        finally:
            self._local.target = previous


def _position(
    buffer: npt.NDArray[np.float32], clip: npt.NDArray[np.float32]
) -> tuple[int, int] | None:
    """(first sample, length) of `clip` inside `buffer` when it is a contiguous view of it."""
    if clip.dtype != buffer.dtype or clip.ndim != 1 or len(clip) == 0:
        return None
    if clip.strides != buffer.strides or not np.may_share_memory(clip, buffer):
        return None
    itemsize = buffer.itemsize
    offset = clip.__array_interface__["data"][0] - buffer.__array_interface__["data"][0]
    if offset % itemsize:
        return None
    start = offset // itemsize
    if start < 0 or start + len(clip) > len(buffer):
        return None
    return start, len(clip)
