"""The machine's microphone through sounddevice (PortAudio): the `live` extra.

sounddevice is imported when a microphone is opened, so that the server runs without it; its
absence, or PortAudio's, is a NoAudioDevice error that says what to install.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.types import SAMPLE_RATE
from memory.errors import NoAudioDevice

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the live extra (pip install 'speaker-memory[live]') and PortAudio "
    "(Debian/Ubuntu: apt-get install libportaudio2; macOS: brew install portaudio)"
)
BLOCK_SECONDS = 0.1


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default: bool


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise NoAudioDevice(f"no microphone support here ({exc}); {INSTALL_HINT}") from exc
    return sounddevice


def list_devices() -> list[InputDevice]:
    """The input devices PortAudio sees."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0] if sd.default.device else None
    except Exception as exc:
        raise NoAudioDevice(f"cannot list audio devices ({exc}); {INSTALL_HINT}") from exc
    return [InputDevice(i, str(d["name"]), int(d["max_input_channels"]), i == default)
            for i, d in enumerate(devices) if int(d["max_input_channels"]) > 0]


class Microphone:
    """Captures 16 kHz mono float32 from an input device into `on_audio` (PortAudio's
    thread), until closed."""

    def __init__(self, device: str | int | None,
                 on_audio: Callable[[npt.NDArray[np.float32]], object]) -> None:
        sd = _sounddevice()
        self._on_audio = on_audio
        self.dropped = 0
        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                blocksize=int(SAMPLE_RATE * BLOCK_SECONDS), callback=self._callback)
            self._stream.start()
        except Exception as exc:
            names = ", ".join(f"{d.index}: {d.name}" for d in _safe_devices()) or "none"
            raise NoAudioDevice(
                f"cannot open the microphone {device if device is not None else '(default)'} "
                f"({exc}); input devices: {names}. Pick one with --device (or the device "
                f"argument), or {INSTALL_HINT}") from exc

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        if status:
            self.dropped += 1  # an overflow: PortAudio lost a block; the stream goes on
        self._on_audio(np.asarray(data, dtype=np.float32).reshape(-1).copy())

    def close(self) -> None:
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:
            log.debug("closing the microphone failed", exc_info=True)


def _safe_devices() -> list[InputDevice]:
    try:
        return list_devices()
    except NoAudioDevice:
        return []
