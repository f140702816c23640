"""The shared audio store: where a recording waits for the worker that processes it. A job
carries a key, not a path of the machine that queued it; the worker opens the key in the
same store. Today a directory every API server and worker mounts at the same path (a
network volume, SPEAKER_MEMORY_AUDIO_STORE_DIR); an object store would implement the same
three calls (its `open` fetching to a temporary file)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from memory.errors import AudioError, InvalidInput


class AudioStore(Protocol):
    def put(self, path: Path, sha256: str) -> str:
        """Keep the recording at `path` (its content hash `sha256`); returns its key."""
        ...

    def open(self, key: str) -> AbstractContextManager[Path]:
        """The recording of `key` as a local file, for the duration of the `with`."""
        ...

    def delete(self, key: str) -> bool:
        """Remove `key`'s recording; whether there was one."""
        ...

    def location(self, key: str) -> str:
        """What a conversation records as its audio_path (clips and reprocessing read it)."""
        ...


class DirectoryAudioStore:
    """Recordings as files directly in one folder, named by content hash."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, path: Path, sha256: str) -> str:
        source = path.resolve()
        if source.parent == self.root:  # an upload is saved here already: no second copy
            return source.name
        key = f"{sha256[:16]}{source.suffix.lower()[:10]}"
        target = self.root / key
        if not target.exists():
            # Copied under a temporary name, then renamed: a worker never sees half a file.
            partial = self.root / f".put-{secrets.token_hex(8)}.part"
            try:
                shutil.copyfile(source, partial)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return key

    @contextmanager
    def open(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise AudioError(
                f"the recording {key!r} is not in the shared audio store {self.root}; check "
                "that every API server and worker mounts it at the same path "
                "(SPEAKER_MEMORY_AUDIO_STORE_DIR), then send the audio again.")
        yield path

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def location(self, key: str) -> str:
        return str(self._path(key))

    def _path(self, key: str) -> Path:
        # A key is a bare file name of our own making; anything else would reach outside.
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise InvalidInput(f"{key!r} is not a key of the shared audio store.")
        return self.root / key
