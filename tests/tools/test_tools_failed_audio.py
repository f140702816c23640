"""What happens to the audio of a failed job: the server's copy of an upload goes (unless
SPEAKER_MEMORY_KEEP_FAILED_AUDIO), a file given by path stays, and a retry brings the bytes
again."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.tools.fake_pipeline import FakePipeline, Turn
from tools import processing
from tools.context import App
from tools.inputs import AudioFile, audio_from_base64, audio_from_path

TURNS = [
    Turn("uma", "Can everyone hear me on the call?"),
    Turn("vic", "Yes, loud and clear from here."),
    Turn("uma", "Good, then let us start with the roadmap."),
]


def _run(app: App, audio: AudioFile) -> int:
    started = processing.start_processing(app, audio, processing.ProcessOptions())
    if started.job is not None:
        assert started.job.future is not None
        started.job.future.result(timeout=30)
    return started.conversation_id


def _upload(app: App, path: Path, filename: str | None = None) -> AudioFile:
    data = base64.b64encode(path.read_bytes()).decode()
    return audio_from_base64(app, data, filename or path.name)


def _unscripted(tmp_path: Path) -> Path:
    """Bytes the fake pipeline refuses (NotAudio) until a test scripts them."""
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF....not really audio")
    return path


def test_a_failed_upload_is_deleted_and_sending_it_again_retries(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    original = _unscripted(tmp_path)
    upload = _upload(app, original)
    assert upload.path.parent == app.settings.audio_dir.resolve()
    cid = _run(app, upload)
    assert processing.processing_status(app, cid).status == "failed"
    assert not upload.path.exists()  # the failed upload's bytes are not kept
    assert "Sending the same audio again retries it" in processing.summarise(app, cid).message

    fake.script(original, TURNS)  # the cause is fixed: the same bytes again retry
    again = _upload(app, original, "noise (again).WAV")
    assert _run(app, again) == cid
    info = app.memory.get_conversation_info(cid)
    assert info.status == "done" and info.audio_path == str(again.path)
    assert Path(info.audio_path).is_file()


def test_a_retry_with_another_file_name_points_at_the_new_copy(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    original = _unscripted(tmp_path)
    app.settings.keep_failed_audio = True
    first = _upload(app, original, "noise.wav")
    cid = _run(app, first)
    assert first.path.is_file()  # kept, as asked
    fake.script(original, TURNS)
    second = _upload(app, original, "noise.flac")
    assert second.path != first.path
    assert _run(app, second) == cid
    assert app.memory.get_conversation_info(cid).audio_path == str(second.path)


def test_a_failed_file_given_by_path_is_never_deleted(
    app: App, fake: FakePipeline
) -> None:
    mine = _unscripted(app.settings.inbox_dir)
    cid = _run(app, audio_from_path(app, str(mine)))
    assert processing.processing_status(app, cid).status == "failed"
    assert mine.is_file()
