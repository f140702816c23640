"""Audio to listen to: one segment as a WAV file (so a person can listen before naming a voice),
a speaker's sample, and a conversation's whole recording."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from memory.errors import InvalidInput, SegmentNotFound
from memory.types import ConversationInfo
from tools.context import App
from tools.inputs import SpeakerArg, speaker_arg

PAD_SECONDS = 0.15


@dataclass(frozen=True)
class Recording:
    path: Path
    media_type: str


def segment_wav(app: App, segment_id: int) -> bytes:
    """16 kHz mono PCM16 WAV of one segment, slightly padded."""
    from inference.audio import decode_span, wav_bytes  # PyAV: only when a clip is asked

    segment = app.memory.get_segment(segment_id)
    path = _stored_audio(app.memory.get_conversation_info(segment.conversation_id))
    return wav_bytes(decode_span(path, max(0.0, segment.start - PAD_SECONDS),
                                 segment.end + PAD_SECONDS))


def speaker_sample_wav(app: App, speaker: SpeakerArg) -> bytes:
    """The segment that shows the speaker's voice best, as segment_wav gives it."""
    ref = speaker_arg(speaker)
    example = app.memory.speaker_example(ref)
    if example is None:
        label = app.memory.resolve_speaker(ref).label
        raise SegmentNotFound(f"{label} has no segment left to play; enrollment clips are not "
                            "played back.")
    return segment_wav(app, example.id)


def recording(app: App, conversation_id: int) -> Recording:
    """The conversation's stored audio file, as it was received (the browser plays it)."""
    path = _stored_audio(app.memory.get_conversation_info(conversation_id))
    media_type, _ = mimetypes.guess_type(path.name)
    return Recording(path, media_type or "application/octet-stream")


def _stored_audio(info: ConversationInfo) -> Path:
    if not info.audio_path or not Path(info.audio_path).is_file():
        raise InvalidInput(
            f"the audio of conversation {info.id} is no longer stored "
            f"({info.audio_path or 'no path recorded'}); the transcript is all that is left."
        )
    return Path(info.audio_path)
