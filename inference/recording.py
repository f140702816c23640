"""A live session's recording: 16 kHz mono 16-bit WAV, appended to as audio arrives.

The header's sizes are rewritten at every flush, so the file is a valid WAV of what was
flushed at any moment; a process that dies leaves at most the last unflushed chunk out, and
`repair` fixes the header from the file's size (what a later finalisation needs).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from inference.types import SAMPLE_RATE

HEADER_BYTES = 44
BYTES_PER_SAMPLE = 2


def _header(data_bytes: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE,
                                    SAMPLE_RATE * BYTES_PER_SAMPLE, BYTES_PER_SAMPLE, 16)
            + b"data" + struct.pack("<I", data_bytes))


class WavRecorder:
    """Appends float32 samples in [-1, 1] as 16-bit PCM to a new WAV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("xb")  # never overwrite another recording
        self._file.write(_header(0))
        self.samples = 0

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
        self._file.write(pcm.tobytes())
        self.samples += len(pcm)

    def flush(self) -> None:
        """Make the file a valid WAV of everything appended so far."""
        self._file.seek(0)
        self._file.write(_header(self.samples * BYTES_PER_SAMPLE))
        self._file.seek(0, 2)
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


def repair(path: Path) -> float:
    """Fix the header of a recording whose writer died (sizes from the file's length);
    returns its seconds."""
    size = path.stat().st_size
    data = max(0, size - HEADER_BYTES)
    data -= data % BYTES_PER_SAMPLE
    with path.open("r+b") as handle:
        handle.write(_header(data))
        handle.truncate(HEADER_BYTES + data)
    return data / BYTES_PER_SAMPLE / SAMPLE_RATE
