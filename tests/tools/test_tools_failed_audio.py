"""What happens to the audio of a failed job: the server's copy of an upload goes (unless
SPEAKER_MEMORY_KEEP_FAILED_AUDIO), a file given by path stays, and a retry brings the bytes
again."""

from __future__ import annotations

from pathlib import Path

from tests.tools.fake_pipeline import FakePipeline, Turn
from tests.tools.runs import run_to_end, unscripted, upload
from tools import processing
from tools.context import App
from tools.inputs import audio_from_path

TURNS = [
    Turn("uma", "Can everyone hear me on the call?"),
    Turn("vic", "Yes, loud and clear from here."),
    Turn("uma", "Good, then let us start with the roadmap."),
]


def test_a_failed_upload_is_deleted_and_sending_it_again_retries(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    original = unscripted(tmp_path)
    sent = upload(app, original)
    assert sent.path.parent == app.settings.audio_dir.resolve()
    cid = run_to_end(app, sent)
    assert processing.processing_status(app, cid).status == "failed"
    assert not sent.path.exists()  # the failed upload's bytes are not kept
    assert "send the same audio again with process_audio to retry" in (
        processing.summarise(app, cid).message)

    fake.script(original, TURNS)  # the cause is fixed: the same bytes again retry
    again = upload(app, original, "noise (again).WAV")
    assert run_to_end(app, again) == cid
    info = app.memory.get_conversation_info(cid)
    assert info.status == "done" and info.audio_path == str(again.path)
    assert Path(info.audio_path).is_file()


def test_a_retry_with_another_file_name_points_at_the_new_copy(
    app: App, fake: FakePipeline, tmp_path: Path
) -> None:
    original = unscripted(tmp_path)
    app.settings.keep_failed_audio = True
    first = upload(app, original, "noise.wav")
    cid = run_to_end(app, first)
    assert first.path.is_file()  # kept, as asked
    fake.script(original, TURNS)
    second = upload(app, original, "noise.flac")
    assert second.path != first.path
    assert run_to_end(app, second) == cid
    assert app.memory.get_conversation_info(cid).audio_path == str(second.path)


def test_a_failed_file_given_by_path_is_never_deleted(
    app: App, fake: FakePipeline
) -> None:
    mine = unscripted(app.settings.inbox_dir)
    cid = run_to_end(app, audio_from_path(app, str(mine)))
    assert processing.processing_status(app, cid).status == "failed"
    assert mine.is_file()
