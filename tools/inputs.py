"""Audio arguments from agents: a path confined to the allowed roots, or bytes (base64, upload)
capped in size and kept under DATA_DIR/audio so that clips and reprocessing can find them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from inference.audio import sha256 as file_sha256
from memory.errors import InputTooLarge, InvalidInput, PathNotAllowed
from memory.limits import MAX_SOURCE_NAME_LENGTH, bounded
from memory.types import MAX_ID
from tools.context import App
from tools.settings import Settings

MAX_PATH_LENGTH = 4096
"""A path argument (or a file name that carries one): Linux's PATH_MAX."""

SpeakerArg = int | str
"""A speaker id, name (case-insensitive) or 'Unknown N' label."""


def require_id(value: int, name: str) -> int:
    """`value` as a row id: a whole number from 1 to MAX_ID (no booleans), else InvalidInput
    naming where valid ids come from."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidInput(
            f"{name} must be a whole number from 1 to {MAX_ID} (got {value!r}); take ids from "
            "list_conversations, list_speakers, a transcript or a search hit."
        )
    return value


def speaker_arg(speaker: SpeakerArg) -> SpeakerArg:
    """An id given as text ("12") becomes the int id; names stay names."""
    if isinstance(speaker, str):
        text = speaker.strip()
        if not text:
            raise InvalidInput("speaker is empty; give a speaker id, name or 'Unknown N' label.")
        if text.isascii() and text.isdigit():
            return require_id(int(text), "speaker id")
        return text
    return require_id(speaker, "speaker id")


@dataclass(frozen=True)
class AudioFile:
    path: Path
    """Where the audio lies (inside an allowed root, or a saved upload)."""
    source_name: str
    """The file name the user knows it by."""
    sha256: str
    recorded_at: datetime | None = None
    """When known: a file's modification time (uploads carry none)."""


def resolve_path(app: App, raw: str) -> Path:
    """The file `raw` names, resolved (symlinks followed) and inside an allowed root.

    A relative path is looked up in each root in turn. `..` and symlinks that lead outside
    every root are refused, as are missing files and folders.
    """
    if not raw.strip():
        raise InvalidInput("path is empty; give the audio file's path or use audio_base64.")
    bounded(raw, "path", MAX_PATH_LENGTH)
    if "\0" in raw:
        raise InvalidInput("path contains a NUL character, which no file name can hold; give "
                           "the audio file's path as plain text, or use audio_base64.")
    roots = app.allowed_roots
    given = Path(raw).expanduser()
    candidates = [given] if given.is_absolute() else [root / given for root in roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, RuntimeError) as exc:  # symlink loops, permission
            raise InvalidInput(f"cannot open {raw!r}: {exc}") from exc
        if not any(resolved.is_relative_to(root) for root in roots):
            raise PathNotAllowed(
                f"{raw!r} is outside the allowed folders ({_roots_text(roots)}); copy the file "
                f"into {roots[0]} or add its folder to SPEAKER_MEMORY_ALLOWED_ROOTS."
            )
        if not resolved.is_file():
            raise InvalidInput(f"{raw!r} is not a file; give the path of an audio file.")
        return resolved
    raise InvalidInput(
        f"no file at {raw!r}; paths are resolved inside {_roots_text(roots)}. "
        f"Put the audio into {roots[0]} or send it as audio_base64."
    )


def audio_argument(
    app: App, path: str | None, audio_base64: str | None, filename: str | None
) -> AudioFile:
    """The audio of a tool call: exactly one of a path or base64 bytes."""
    if (path is None) == (audio_base64 is None):
        raise InvalidInput(
            "give exactly one of path (a file on the server) or audio_base64 (the file's bytes)."
        )
    if path is not None:
        return audio_from_path(app, path)
    assert audio_base64 is not None
    return audio_from_base64(app, audio_base64, filename)


def audio_from_path(app: App, raw: str) -> AudioFile:
    path = resolve_path(app, raw)
    return AudioFile(path=path, source_name=path.name, sha256=file_sha256(path),
                     recorded_at=_mtime(path))


MAX_BASE64_AUDIO_BYTES = 32 * 1024 * 1024
"""Audio sent inside a JSON-RPC call is parsed whole, in memory, several times over (a 400 MB
argument cost 3.9 GB): base64 is for clips and short recordings; larger files go by path or
as a REST upload, which stream to disk."""


def base64_audio_cap(settings: Settings) -> int:
    """Bytes of audio one audio_base64 argument may carry."""
    return min(settings.max_upload_bytes, MAX_BASE64_AUDIO_BYTES)


def audio_from_base64(app: App, data: str, filename: str | None) -> AudioFile:
    if filename:
        filename = safe_filename(filename)  # refused before decoding, when it is absurd
    cap = base64_audio_cap(app.settings)
    # 4 base64 characters carry 3 bytes: refuse before decoding anything large.
    if len(data) * 3 // 4 > cap + 3:
        raise InputTooLarge(
            f"audio_base64 decodes to about {len(data) * 3 // 4:,} bytes, over the "
            f"{cap:,}-byte limit for audio inside a call; put the file into "
            f"{app.allowed_roots[0]} and pass its path, or upload it to /api/v1/conversations."
        )
    try:
        content = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"audio_base64 is not valid base64 ({exc}).") from exc
    return save_audio_bytes(app, content, filename)


def save_audio_bytes(app: App, content: bytes, filename: str | None) -> AudioFile:
    """Keep uploaded bytes under DATA_DIR/audio, named by content hash (idempotent)."""
    cap = app.settings.max_upload_bytes
    if len(content) > cap:
        raise InputTooLarge(
            f"the upload is {len(content):,} bytes, over the {cap:,}-byte limit "
            "(SPEAKER_MEMORY_MAX_UPLOAD_BYTES)."
        )
    # The same path as a streamed upload (its own temporary file: two equal uploads at once
    # do not collide).
    with UploadWriter(app, filename) as writer:
        writer.write(content)
        return writer.finish()


class UploadWriter:
    """Streams an upload to DATA_DIR/audio while hashing it, refusing it past the size cap, so
    that a large upload never sits in memory. Use as a context manager; `finish()` keeps it."""

    def __init__(self, app: App, filename: str | None) -> None:
        self._app = app
        self._cap = app.settings.max_upload_bytes
        self._name = safe_filename(filename) if filename else None
        self._digest = hashlib.sha256()
        self._size = 0
        self._partial = app.settings.audio_dir / f".upload-{secrets.token_hex(8)}.part"
        self._handle = self._partial.open("wb")

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._cap:
            raise InputTooLarge(
                f"the upload is over the {self._cap:,}-byte limit "
                "(SPEAKER_MEMORY_MAX_UPLOAD_BYTES)."
            )
        self._digest.update(chunk)
        self._handle.write(chunk)

    def finish(self) -> AudioFile:
        self._handle.close()
        if self._size == 0:
            raise InvalidInput("the audio is empty (0 bytes); send the recording's content.")
        digest = self._digest.hexdigest()
        name = self._name or f"upload-{digest[:12]}"
        target = self._app.settings.audio_dir / f"{digest[:16]}{Path(name).suffix.lower()[:10]}"
        if target.exists():
            self._partial.unlink()
        else:
            self._partial.replace(target)
        return AudioFile(path=target.resolve(), source_name=name, sha256=digest)

    def __enter__(self) -> UploadWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()
        self._partial.unlink(missing_ok=True)


def discard_stored_copy(app: App, path: str | Path | None) -> bool:
    """Delete `path` if it is a copy this server made of uploaded or base64 bytes (they are
    kept directly in DATA_DIR/audio) or a live session's recording (DATA_DIR/audio/live);
    returns whether a file was deleted. A file the user pointed to by path lies elsewhere and
    is never touched, nor are the enrollment clips kept in a folder below."""
    if path is None:
        return False
    stored = Path(path)
    ours = (app.settings.audio_dir.resolve(), app.settings.live_audio_dir.resolve())
    if stored.parent.resolve() not in ours:
        return False
    try:
        stored.unlink()
    except FileNotFoundError:
        return False
    return True


def safe_filename(name: str) -> str:
    """The base name only, without characters that mean something to a shell or a path.
    InvalidInput when `name` is longer than any path (it may carry the client's folders)."""
    bounded(name, "file name", MAX_PATH_LENGTH)
    base = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", base).strip(" .")
    return cleaned[:MAX_SOURCE_NAME_LENGTH] or "audio"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _roots_text(roots: list[Path]) -> str:
    return ", ".join(str(root) for root in roots)


def local_audio(path: Path) -> AudioFile:
    """A file named on the command line by the machine's own user: no root confinement."""
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise InvalidInput(f"no file at {path}.")
    return AudioFile(path=resolved, source_name=resolved.name, sha256=file_sha256(resolved),
                     recorded_at=_mtime(resolved))
