"""A segment's audio as a WAV file (so a person can listen before naming a voice)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from memory.errors import InvalidInput
from tools.context import App

PAD_SECONDS = 0.15


def segment_wav(app: App, segment_id: int) -> bytes:
    """16 kHz mono PCM16 WAV of one segment, slightly padded."""
    from inference.audio import decode_span  # PyAV, loaded only when a clip is asked for

    segment = app.memory.get_segment(segment_id)
    info = app.memory.get_conversation_info(segment.conversation_id)
    if not info.audio_path or not Path(info.audio_path).is_file():
        raise InvalidInput(
            f"the audio of conversation {info.id} is no longer stored "
            f"({info.audio_path or 'no path recorded'}); the transcript is all that is left."
        )
    audio = decode_span(Path(info.audio_path), max(0.0, segment.start - PAD_SECONDS),
                        segment.end + PAD_SECONDS)
    pcm = (audio.samples * 32767.0).astype("<i2")  # decoding keeps samples in [-1, 1]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(audio.sample_rate)
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()
