"""A segment's audio as a WAV file (so a person can listen before naming a voice)."""

from __future__ import annotations

from pathlib import Path

from memory.errors import InvalidInput
from tools.context import App

PAD_SECONDS = 0.15


def segment_wav(app: App, segment_id: int) -> bytes:
    """16 kHz mono PCM16 WAV of one segment, slightly padded."""
    from inference.audio import decode_span, wav_bytes  # PyAV: only when a clip is asked

    segment = app.memory.get_segment(segment_id)
    info = app.memory.get_conversation_info(segment.conversation_id)
    if not info.audio_path or not Path(info.audio_path).is_file():
        raise InvalidInput(
            f"the audio of conversation {info.id} is no longer stored "
            f"({info.audio_path or 'no path recorded'}); the transcript is all that is left."
        )
    return wav_bytes(decode_span(Path(info.audio_path), max(0.0, segment.start - PAD_SECONDS),
                                 segment.end + PAD_SECONDS))
