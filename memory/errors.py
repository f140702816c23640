"""Domain errors, defined once. Edges (tools, server) translate them for their callers.

Each class's docstring is its general meaning; the instance message is specific and
actionable ("no segment 812; the latest segment id is 640").
"""

from __future__ import annotations


class SpeakerMemoryError(Exception):
    """Base class of every error the memory layer raises on purpose."""


class NotFoundError(SpeakerMemoryError):
    """An id or name that does not exist."""


class SpeakerNotFound(NotFoundError):
    """No speaker with that id or name."""


class SegmentNotFound(NotFoundError):
    """No segment with that id."""


class ConversationNotFound(NotFoundError):
    """No conversation with that id."""


class EventNotFound(NotFoundError):
    """No identity event with that id (or nothing left to undo)."""


class NameTaken(SpeakerMemoryError):
    """The name belongs to another speaker (names are unique, case-insensitively)."""


class InvalidName(SpeakerMemoryError):
    """A speaker name must be non-empty text and may not look like an 'Unknown N' label."""


class ModelMismatch(SpeakerMemoryError):
    """Vectors of different embedding models (or dimensions) are never compared."""


class DuplicateAudio(SpeakerMemoryError):
    """The same audio content was ingested before."""

    def __init__(self, message: str, conversation_id: int) -> None:
        super().__init__(message)
        self.conversation_id = conversation_id


class InvalidOperation(SpeakerMemoryError):
    """The operation does not apply to this state (merge a speaker into itself, undo twice...)."""


class ConversationNotReady(InvalidOperation):
    """The conversation has no finished transcript (still processing, failed, interrupted)."""


class StillRunning(SpeakerMemoryError):
    """The work was accepted and goes on in the background; its result is not ready yet."""


class JobCancelled(SpeakerMemoryError):
    """A processing job stopped because someone asked it to (cancel_processing)."""


class UndoConflict(SpeakerMemoryError):
    """The event cannot be undone exactly because later changes touched the same rows."""


class StoreError(SpeakerMemoryError):
    """The store cannot be opened or migrated (wrong schema version, unreadable file...)."""


class ImportNotEmpty(SpeakerMemoryError):
    """A backup is imported only into an empty store."""


class StoreNotEmpty(SpeakerMemoryError):
    """A store is copied (migrate-store) only into an empty PostgreSQL database."""


# ---------------------------------------------------------------- audio input
# Raised by inference/ while decoding; defined here so that every edge translates one family.


class AudioError(SpeakerMemoryError):
    """The audio cannot be used; nothing was stored for it."""


class EmptyAudio(AudioError):
    """The file is empty (0 bytes)."""


class NotAudio(AudioError):
    """The file is not audio that ffmpeg can decode."""


class CorruptAudio(AudioError):
    """The audio is truncated or corrupt."""


class ZeroDurationAudio(AudioError):
    """The audio decodes to no samples."""


class AudioTooLong(AudioError):
    """The audio is longer than the configured maximum (SPEAKER_MEMORY_MAX_AUDIO_SECONDS)."""


class MissingExtra(SpeakerMemoryError):
    """An optional backend was asked for, but its extra is not installed."""


class ModelUnavailable(SpeakerMemoryError):
    """A model's weights are not available offline (and no token/hub access was given)."""


# ---------------------------------------------------------------- tool input
# Raised by tools/ when an agent's argument cannot be used; nothing was read or stored.


class InvalidInput(SpeakerMemoryError):
    """A tool argument is malformed or missing (give either a path or audio_base64...)."""


class PathNotAllowed(InvalidInput):
    """The path lies outside the allowed roots (SPEAKER_MEMORY_ALLOWED_ROOTS)."""


class InputTooLarge(InvalidInput):
    """An upload or base64 payload is larger than SPEAKER_MEMORY_MAX_UPLOAD_BYTES."""


class NoSpeech(AudioError):
    """The audio holds no speech where speech is required (a voice to enroll)."""


class BackupError(SpeakerMemoryError):
    """The backup file cannot be used (not JSON, not a speaker-memory backup, other version)."""


# ---------------------------------------------------------------- live listening


class TooManyLiveSessions(SpeakerMemoryError):
    """As many live sessions as SPEAKER_MEMORY_LIVE_MAX_SESSIONS allows are running."""


class NotListening(InvalidOperation):
    """No live session of this process matches (none runs, or it ended)."""


class NoAudioDevice(SpeakerMemoryError):
    """The server's microphone cannot be opened (PortAudio or the device is missing)."""
