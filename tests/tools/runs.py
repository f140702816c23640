"""Running processing jobs to the end in tests, and audio that arrives as bytes."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio

from tools import identity, processing
from tools.context import App, Job
from tools.inputs import AudioFile, audio_from_base64
from tools.models import EnrollOut


def run_to_end(app: App, audio: AudioFile) -> int:
    """Process `audio` and wait for its job; the conversation id."""
    started = processing.start_processing(app, audio, processing.ProcessOptions())
    if started.job is not None:
        assert started.job.future is not None
        started.job.future.result(timeout=30)
    return started.conversation_id


async def to_the_end(job: Job) -> None:
    """A tools flow's `follow` that waits for the job to finish."""
    assert job.future is not None
    await anyio.to_thread.run_sync(lambda: job.future.result(timeout=30) if job.future else None)


def enroll(app: App, name: str, audio: AudioFile) -> EnrollOut:
    """The enrollment flow, followed to its end."""
    return anyio.run(identity.enroll_speaker, app, name, audio, to_the_end)


def upload(app: App, path: Path, filename: str | None = None) -> AudioFile:
    """The file's bytes as an agent sends them (base64), kept by the server."""
    data = base64.b64encode(path.read_bytes()).decode()
    return audio_from_base64(app, data, filename or path.name)


def unscripted(folder: Path) -> Path:
    """Bytes the fake pipeline refuses (NotAudio) until a test scripts them."""
    path = folder / "noise.wav"
    path.write_bytes(b"RIFF....not really audio")
    return path
